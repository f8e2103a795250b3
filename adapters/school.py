"""The files schools and nurseries send (school-reports.md): the monthly report (定期的な情報提供 月次) and
daily attendance (日次出欠), parsed into ``attendance.monthly`` / ``attendance.daily`` envelopes, and the
``absence.alert`` the hub raises on the school's behalf.

This module reads and words; it never looks anything up and never decides who may read anything. Which child
a 児童生徒番号 is, and whether the row is on the school's target list, is the services' question
(``services.schools.imports``), answered from the log.

Event ids are deterministic, so that sending the same file again changes nothing: they are derived from the
school, the child's listing, the period, a digest of the normalised content, and the report it corrects.
"""

from __future__ import annotations

import functools
from calendar import monthrange
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from adapters.csvfile import CellError, Cells, Column, CsvRow, to_choice, to_date, to_int, to_month
from events.clock import JST
from events.envelope import content_digest
from events.kinds import normalise_payload
from events.limits import MAX_TEXT_CHARS
from events.problems import Problem

BASIS = "cwa-25-3"  # 児童福祉法第25条の3: provided at the 要対協's request, to the centre that asked

SCHOOL_CODE = Column("school_code", "学校コード", aliases=("施設コード", "園コード"))
STUDENT_NO = Column("student_no", "児童生徒番号", aliases=("児童番号", "生徒番号", "園児番号"))

MONTHLY_COLUMNS = (  # 定期的な情報提供（月次）の様式
    SCHOOL_CODE,
    STUDENT_NO,
    Column("month", "対象年月", aliases=("年月", "報告年月")),
    Column("school_days", "授業日数", aliases=("開所日数",)),
    Column("attended", "出席日数", aliases=("登園日数",)),
    Column("absent", "欠席日数"),
    Column("absent_without_contact", "うち連絡なし欠席日数", aliases=("連絡なし欠席日数", "うち連絡なし")),
    Column("late", "遅刻日数", required=False),
    Column("early_leave", "早退日数", required=False),
    Column("reasons", "欠席理由", required=False),
    Column("notes", "特記事項", required=False),
)

DAILY_COLUMNS = (  # 日次出欠の様式
    SCHOOL_CODE,
    STUDENT_NO,
    Column("date", "日付", aliases=("年月日",)),
    Column("status", "出欠", aliases=("出欠区分",)),
    Column("contacted", "連絡有無", aliases=("連絡",)),
    Column("reason", "理由", required=False, aliases=("欠席理由",)),
)

STATUS = {  # 出欠 → attendance.daily status
    "出席": "present",
    "欠席": "absent",
    "遅刻": "late",
    "早退": "early_leave",
    "出席停止": "suspended",
    "忌引": "bereavement",
    "忌引き": "bereavement",
}
CONTACT = {"有": True, "あり": True, "有り": True, "○": True, "無": False, "なし": False, "無し": False, "×": False}


@dataclass
class ParsedRow:
    """One row as read: who it is about (as the school names them), the period, and either the payload or the
    problems found. ``school_code`` / ``student_no`` are "" when blank."""

    line: int
    school_code: str
    student_no: str
    period: str | None  # "YYYY-MM" (monthly) or "YYYY-MM-DD" (daily), when readable
    payload: dict[str, Any] | None
    problems: list[Problem] = field(default_factory=list)
    raw: dict[str, str] = field(default_factory=dict)


_Cells = Cells  # the old name, still imported by adapters.feed: import adapters.csvfile.Cells instead


@functools.lru_cache(maxsize=256)
def _days_in(month: str) -> int:
    year, m = map(int, month.split("-"))
    return monthrange(year, m)[1]


MONTHLY_TEXTS = ("reasons", "notes")  # 欠席理由 (at most ``MAX_TEXT_CHARS``, the kind's bound), 特記事項: free text


def monthly_payload(
    month: str, counts: Mapping[str, int], optional: Mapping[str, int | None], student_no: str, texts: Mapping[str, str]
) -> dict[str, Any]:
    """**Explicit mechanism: a checked monthly row's payload built in its normal form** (what
    ``events.kinds.normalise_payload("attendance.monthly", …)`` returns for it), not passed through the kind's
    model. ``parse_monthly`` has checked, cell by cell, everything ``AttendanceMonthly`` checks (a month
    ``YYYY-MM`` in the hub's range, whole numbers not negative, 出席 + 欠席 ≤ 授業日数, うち連絡なし ≤ 欠席,
    欠席理由 of 1 to ``MAX_TEXT_CHARS`` characters; 特記事項 has no bound in the model, the hub's envelope limit
    refuses a longer one when published, as before), and every value already has the type the model dumps (the month
    and texts ``str``, the counts ``int``); so the model would only copy the dict, in its fields' order (then
    the 児童生徒番号, an extra field). It replaces that call, about a tenth of the import's reading thread (one
    model validation and dump a row). The hub checks every envelope's payload again when it is published
    (``services.publishing``): a difference could not store a bad payload, only reject a row later. Test:
    ``tests/adapters/test_school_monthly_payload.py`` (hypothesis: for any row, the payload equals the model's
    normal form, keys in the same order, and the model refuses no payload built here)."""
    payload: dict[str, Any] = {"month": month, **counts}
    payload.update((key, value) for key, value in optional.items() if value is not None)
    payload.update((key, texts[key]) for key in MONTHLY_TEXTS if texts.get(key))
    payload["student_no"] = student_no
    return payload


def parse_monthly(row: CsvRow, headers: Mapping[str, str], today: date) -> ParsedRow:
    """A monthly report row, checked: numbers are whole and not negative, the month is readable and not in the
    future, 出席日数 + 欠席日数 ≤ 授業日数, うち連絡なし ≤ 欠席日数, no count exceeds the days of the month."""
    cells = Cells(row, headers)
    school_code, student_no = cells.ident("school_code"), cells.ident("student_no")
    month = cells.read("month", to_month)
    if month is not None and month > f"{today.year:04d}-{today.month:02d}":
        cells.fail(
            "month",
            CellError(
                f"{month} is in the future",
                f"{month[:4]}年{int(month[5:])}月はまだ来ていません（未来の年月です）",
                "future_month",
            ),
        )
        month = None
    limit = _days_in(month) if month else 31
    counts = {
        key: cells.read(key, to_int, maximum=limit)
        for key in ("school_days", "attended", "absent", "absent_without_contact")
    }
    optional = {key: cells.optional(key, to_int, maximum=limit) for key in ("late", "early_leave")}
    school_days, attended, absent, no_contact = (counts[k] for k in counts)
    if None not in (school_days, attended, absent) and attended + absent > school_days:
        cells.fail(
            "attended",
            CellError(
                f"attended {attended} + absent {absent} > school days {school_days}",
                f"出席日数（{attended}）と欠席日数（{absent}）の合計が授業日数（{school_days}）を超えています",
                "days_exceed_school_days",
            ),
        )
    if None not in (absent, no_contact) and no_contact > absent:
        cells.fail(
            "absent_without_contact",
            CellError(
                f"absences without contact {no_contact} > absences {absent}",
                f"うち連絡なし（{no_contact}）が欠席日数（{absent}）を超えています",
                "no_contact_exceeds_absent",
            ),
        )
    if len(row.get("reasons")) > MAX_TEXT_CHARS:  # the kind's bound (a longer 特記事項 is the hub's to refuse)
        cells.fail(
            "reasons",
            CellError(
                f"{len(row.get('reasons'))} characters, more than {MAX_TEXT_CHARS}",
                f"{MAX_TEXT_CHARS:,} 文字以内で入力してください（{len(row.get('reasons')):,} 文字あります）",
                "text_too_long",
            ),
        )
    for key, value in optional.items():
        if value is not None and school_days is not None and value > school_days:
            cells.fail(
                key,
                CellError(
                    f"{key} {value} > school days {school_days}",
                    f"{value} が授業日数（{school_days}）を超えています",
                    "out_of_range",
                ),
            )
    payload = None
    if not cells.problems:
        assert month is not None  # a month that could not be read is a problem of the row
        texts = {key: row.get(key) for key in MONTHLY_TEXTS}
        payload = monthly_payload(month, counts, optional, student_no, texts)
    return ParsedRow(row.line, school_code, student_no, month, payload, cells.problems, row.raw)


def parse_daily(row: CsvRow, headers: Mapping[str, str], today: date) -> ParsedRow:
    """A daily attendance row, checked: a readable date not in the future, a known 出欠, and 連絡有無 (有／無)
    given for every 欠席 (without it the hub cannot tell an absence without contact)."""
    cells = Cells(row, headers)
    school_code, student_no = cells.ident("school_code"), cells.ident("student_no")
    day = cells.read("date", to_date)
    if day is not None and day > today:
        cells.fail("date", CellError(f"{day} is in the future", f"{day.isoformat()} は未来の日付です", "future_date"))
        day = None
    status = cells.read("status", to_choice, STATUS)
    contacted = None
    if row.get("contacted"):
        contacted = cells.read("contacted", to_choice, CONTACT)
    elif status == "absent":
        cells.fail(
            "contacted",
            CellError(
                "contact missing for an absence", "欠席の日は連絡有無（有／無）を入力してください", "missing_value"
            ),
        )
    payload = None
    if not cells.problems:
        payload = {"date": day.isoformat(), "status": status, "student_no": student_no}
        if contacted is not None:
            payload["contacted"] = contacted
        if row.get("reason"):
            payload["reason"] = row.get("reason")
        payload = normalise_payload("attendance.daily", payload)
    return ParsedRow(
        row.line, school_code, student_no, day.isoformat() if day else None, payload, cells.problems, row.raw
    )


# --- Envelopes --------------------------------------------------------------------------------------------

CONTENT_EXCLUDED = ("supersedes",)


def content_of(payload: Mapping[str, Any]) -> str:
    """The digest of a report's content (what a correction changes), leaving out what it corrects."""
    return content_digest({k: v for k, v in payload.items() if k not in CONTENT_EXCLUDED})[:32]


def _start_of(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=JST)


def _event_id(prefix: str, school: str, period: str, *parts: str | None) -> str:
    digest = content_digest([school, period, *[p or "" for p in parts]])[:24]
    return f"{prefix}:{school}:{period}:{digest}"


def monthly_envelope(
    payload: Mapping[str, Any],
    *,
    school: str,
    child: str,
    centre: str,
    today: date,
    supersedes: str | None,
    content: str,
) -> dict[str, Any]:
    """The ``attendance.monthly`` event for one listed child: from the school to the centre that assigned the
    list, at the month's close (or today, for the current month). ``supersedes``: the report it corrects;
    ``content``: ``content_of(payload)``."""
    month = str(payload["month"])
    year, m = map(int, month.split("-"))
    close = date(year + (m == 12), m % 12 + 1, 1)
    body = dict(payload)
    if supersedes:
        body["supersedes"] = supersedes
    return {
        "id": _event_id("att-m", school, month, str(payload.get("student_no")), child, centre, content, supersedes),
        "kind": "attendance.monthly",
        "child": child,
        "source": school,
        "basis": BASIS,
        "to": centre,
        "at": _start_of(min(close, today)).isoformat(),
        "payload": body,
    }


def daily_envelope(
    payload: Mapping[str, Any], *, school: str, child: str, centre: str, supersedes: str | None, content: str
) -> dict[str, Any]:
    """The ``attendance.daily`` event for one listed child, at the start of the day (``content``: as in
    ``monthly_envelope``)."""
    day = str(payload["date"])
    body = dict(payload)
    if supersedes:
        body["supersedes"] = supersedes
    return {
        "id": _event_id("att-d", school, day, str(payload.get("student_no")), child, centre, content, supersedes),
        "kind": "attendance.daily",
        "child": child,
        "source": school,
        "basis": BASIS,
        "to": centre,
        "at": _start_of(date.fromisoformat(day)).isoformat(),
        "payload": body,
    }


def alert_envelope(
    *, school: str, child: str, centre: str, reason: str, since: date, days: int, reached: date, student_no: str
) -> dict[str, Any]:
    """The ``absence.alert`` the school owes the centre without waiting for the monthly report (domain.md,
    flow 2: 7 consecutive school days absent whatever the reason, or absences without contact), raised by the
    hub from the daily rows. One per streak: the id is the child's listing, the streak's first day and the
    reason. ``at`` is the school day on which the streak reached the threshold."""
    return {
        "id": _event_id("alert", school, since.isoformat(), reason, child, centre),
        "kind": "absence.alert",
        "child": child,
        "source": school,
        "basis": BASIS,
        "to": centre,
        "at": _start_of(reached).isoformat(),
        "payload": {"reason": reason, "days": days, "since": since.isoformat(), "student_no": student_no},
    }
