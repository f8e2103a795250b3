"""Reading the cells schools write (``adapters.csvfile``): months and dates in every form schools use (西暦,
和暦, full-width digits), and impossible ones named in Japanese. Pure functions: no file, no store.

The files themselves (encodings, headers, broken rows, garbage) are read through the importer in
``tests/schools/test_school_reports.py``."""

from __future__ import annotations

from datetime import date

import pytest

from adapters.csvfile import CellError, to_date, to_month

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "month, expected",
    [
        ("2026-04", "2026-04"),
        ("2026/4", "2026-04"),
        ("令和8年4月", "2026-04"),
        ("R8.4", "2026-04"),
        ("Ｒ８．４", "2026-04"),
        ("２０２６年４月", "2026-04"),
        ("202604", "2026-04"),
        ("令和元年5月", "2019-05"),
        ("H31.4", "2019-04"),
        ("昭和64年1月", "1989-01"),
        ("2026/4/1", "2026-04"),
    ],
)
def test_months_in_every_form_schools_write(month, expected):
    assert to_month(month) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-05-12", date(2026, 5, 12)),
        ("令和8年5月12日", date(2026, 5, 12)),
        ("R8.5.12", date(2026, 5, 12)),
        ("R8/5/12", date(2026, 5, 12)),
        ("２０２６／５／１２", date(2026, 5, 12)),
        ("平成31年4月30日", date(2019, 4, 30)),
        ("20260512", date(2026, 5, 12)),
    ],
)
def test_dates_in_every_form_schools_write(text, expected):
    assert to_date(text) == expected


@pytest.mark.parametrize(
    "text, parse, words",
    [
        ("R1.4", to_month, "令和の期間"),
        ("平成32年1月", to_month, "平成の期間"),
        ("2026-13", to_month, "年月として読めません"),
        ("R8.2.30", to_date, "という日付はありません"),
        ("H31.5.1", to_date, "平成の期間"),
        ("来週", to_date, "日付として読めません"),
    ],
)
def test_impossible_dates_are_named_in_japanese(text, parse, words):
    with pytest.raises(CellError) as error:
        parse(text)
    assert words in error.value.message_ja and text in error.value.message_ja
