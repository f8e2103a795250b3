"""``adapters.school.monthly_payload``: a checked monthly row's payload is built in its normal form instead of
being passed through ``AttendanceMonthly`` (``events.kinds.normalise_payload``). For any row (numbers as
schools write them, months in any form and year, texts of any length), ``parse_monthly`` gives the same row
(problems, or the payload with its keys in the same order) as with the payload built as main built it, through
the model (``monthly_payload_before``), which therefore never raises (before, a month before 1900 or a 欠席理由 over 20,000 characters passed the file's checks and the model
raised, stopping the import)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import adapters.school
from adapters.csvfile import CsvRow
from adapters.school import parse_monthly
from events.kinds import normalise_payload

pytestmark = pytest.mark.unit

HEADERS = {key: key for key in ("school_code", "student_no", "month", "school_days", "attended", "absent",
                                "absent_without_contact", "late", "early_leave", "reasons", "notes")}  # fmt: skip
TODAY = date(2026, 6, 5)

numbers = st.one_of(
    st.integers(0, 40).map(str),
    st.integers(0, 40).map(lambda n: str(n).translate(str.maketrans("0123456789", "０１２３４５６７８９"))),
    st.integers(0, 40).map(lambda n: f"{n}日"),
    st.sampled_from(["", "-1", "1.5", "abc", "²", " 7 ", "99999999999999999999"]),
)
months = st.one_of(
    st.builds(lambda y, m: f"{y}-{m:02d}", st.integers(1800, 2030), st.integers(0, 13)),
    st.builds(lambda m: f"2026-{m:02d}", st.integers(1, 6)),
    st.builds(lambda y, m: f"令和{y}年{m}月", st.integers(1, 90), st.integers(1, 12)),
    st.builds(lambda y, m: f"R{y}.{m}", st.integers(1, 90), st.integers(1, 12)),
    st.builds(lambda y, m: f"{y}/{m}/1", st.integers(1800, 3100), st.integers(1, 12)),
    st.sampled_from(["", "2026年4月", "202604", "明治32年4月", "1899年12月", "April"]),
)
texts = st.one_of(st.just(""), st.text(max_size=30), st.sampled_from(["x" * 20_000, "理" * 20_001]))


def monthly_payload_before(month, counts, optional, student_no, texts):
    """How main (d221e3e) built the payload: the checked values, then the kind's model (``normalise_payload``)."""
    payload = {
        "month": month,
        **counts,
        **{k: v for k, v in optional.items() if v is not None},
        "student_no": student_no,
    }
    for key in ("reasons", "notes"):
        if texts.get(key):
            payload[key] = texts[key]
    return normalise_payload("attendance.monthly", payload)


def written(n: int, how: int) -> str:
    """``n`` as a school may write it: plain, full-width, or with 日."""
    return [str(n), str(n).translate(str.maketrans("0123456789", "０１２３４５６７８９")), f"{n}日"][how % 3]


@st.composite
def day_counts(draw):
    """授業日数, 出席, 欠席, うち連絡なし, 遅刻, 早退: mostly consistent (so that most rows give a payload), any
    cell sometimes anything."""
    school_days = draw(st.integers(0, 31))
    attended = draw(st.integers(0, school_days))
    absent = draw(st.integers(0, school_days - attended))
    no_contact = draw(st.integers(0, absent))
    late, early = draw(st.none() | st.integers(0, school_days)), draw(st.none() | st.integers(0, school_days))
    cells = [written(n, draw(st.integers(0, 2))) if n is not None else "" for n in
             (school_days, attended, absent, no_contact, late, early)]  # fmt: skip
    for i in draw(st.lists(st.integers(0, 5), max_size=2)):
        cells[i] = draw(numbers)
    return cells


@settings(max_examples=300, deadline=None)
@given(
    month=months,
    counts=day_counts(),
    reasons=texts,
    notes=texts,
    student_no=st.sampled_from(["001", "０１２", "A-7", ""]),
)
def test_a_monthly_rows_payload_is_the_models_normal_form_or_the_row_has_a_problem(
    month, counts, reasons, notes, student_no
):
    values = dict(zip(("school_days", "attended", "absent", "absent_without_contact", "late", "early_leave"),
                      counts, strict=True))  # fmt: skip
    values |= {"school_code": "B1", "student_no": student_no, "month": month, "reasons": reasons.strip(),
               "notes": notes.strip()}  # fmt: skip
    row = CsvRow(2, values, dict(values))
    parsed = parse_monthly(row, HEADERS, TODAY)
    assert (parsed.payload is None) == bool(parsed.problems)
    event("a payload" if parsed.payload is not None else "a problem")
    built_here = adapters.school.monthly_payload
    adapters.school.monthly_payload = monthly_payload_before  # the reading it replaces (raises on a bad payload)
    try:
        before = parse_monthly(row, HEADERS, TODAY)
    finally:
        adapters.school.monthly_payload = built_here
    assert before == parsed
    if parsed.payload is not None:
        assert list(before.payload) == list(parsed.payload)  # the same keys in the same order: the same digest


@pytest.mark.parametrize(
    ("month", "reasons", "field", "code"),
    [
        ("1899年4月", "", "month", "month_out_of_range"),
        ("2026年4月", "理" * 20_001, "reasons", "text_too_long"),
    ],
)
def test_a_month_out_of_the_hubs_range_or_a_too_long_reason_is_the_cells_problem(month, reasons, field, code):
    values = {"school_code": "B1", "student_no": "001", "month": month, "school_days": "19", "attended": "19",
              "absent": "0", "absent_without_contact": "0", "reasons": reasons}  # fmt: skip
    parsed = parse_monthly(CsvRow(2, values, dict(values)), HEADERS, TODAY)
    assert parsed.payload is None
    assert [(p.field, p.code) for p in parsed.problems] == [(field, code)]
    assert parsed.problems[0].message_ja
