"""The month-series chart (issue 17, what was left): a hidden cell (``<5`` or 秘匿) is drawn as a hatched box of
one fixed height whose title says 秘匿, never like a zero or as a bar of a count; a zero is a mark on the base
line. The page's SVG is checked in the browser (``tests/web/test_aggregates.py``)."""

from __future__ import annotations

import pytest

from services.aggregates.service import Table
from services.aggregates.suppression import PRIMARY, SECONDARY, Entry
from services.web.aggregates import HIDDEN_HEIGHT, chart

pytestmark = pytest.mark.unit


def test_a_hidden_cell_is_a_hatched_box_that_says_hidden_and_a_zero_a_mark():
    entries = [
        [Entry(12), Entry(None, PRIMARY), Entry(0), Entry(None, SECONDARY)],
        [Entry(8), Entry(7), Entry(None, SECONDARY), Entry(None, SECONDARY)],
        [Entry(20), Entry(None, SECONDARY), Entry(None, SECONDARY), Entry(None, SECONDARY)],
    ]
    table = Table("cases.registered", ["100001", "100002"], ["2026-04", "2026-05", "2026-06"], entries, None, "r")
    drawn = chart(table)
    bars = {(b.label.split(" ")[0], b.label.split(" ")[1].split(":")[0]): b for b in drawn.bars}
    assert len(drawn.bars) == 6
    hidden = [b for b in drawn.bars if b.kind == "hidden"]
    assert len(hidden) == 2
    assert all(b.height == HIDDEN_HEIGHT and b.y == drawn.base - HIDDEN_HEIGHT for b in hidden)
    assert all("秘匿" in b.label for b in hidden)
    assert {b.label.split(": ")[1] for b in hidden} == {
        "秘匿（<5、件数は示しません）",
        "秘匿（秘匿、件数は示しません）",
    }
    zero = [b for b in drawn.bars if b.kind == "zero"]
    assert len(zero) == 1 and zero[0].height == 2 and zero[0].label.endswith(": 0")
    values = sorted((b.height for b in drawn.bars if b.kind == "value"), reverse=True)
    top = drawn.ticks[-1][1]
    assert values == [200 * 12 / top, 200 * 8 / top, 200 * 7 / top]
    assert len(bars) == 6


def test_every_measure_has_a_japanese_label():
    from events.labels import MEASURE_JA
    from services.projections.municipal_counts import MEASURES

    assert [m for m in MEASURES if m not in MEASURE_JA] == []


def test_a_state_at_month_end_is_not_added_up_but_reports_expected_per_month_are():
    from services.aggregates.service import total_of

    assert total_of("cases.open") == total_of("cases.open:category=youhogo") == total_of("reports.missing") == "last"
    assert total_of("reviews.overdue") == "last"
    assert total_of("reports.expected") == total_of("cases.registered") == total_of("plans.review_due") == "sum"
    assert total_of("reviews.median_days") == "median"
