"""The meeting agenda (実務者会議の議題) as files: CSV for Excel and a printable HTML page.

The agenda itself is built by ``CaseViews.agenda`` from the organisation's own policy-decided reads; this module
only lays it out. The CSV is written by ``services.casework.csv_export`` (UTF-8 with a BOM, CRLF line ends, and no cell that
Excel would take as a formula).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from events.labels import ALERT_JA, CASE_TYPE_JA, CATEGORY_JA, label
from services.casework.csv_export import csv_bytes
from services.casework.ledger import Agenda, CaseRow
from services.templates import render

GROUP_JA = {"attention": "要検討", "confirmation": "確認のみ"}
CSV_HEADER = [
    "議題区分",
    "ケース番号",
    "児童",
    "ふりがな",
    "登録センター",
    "要対協区分",
    "相談種別",
    "前回検討日",
    "前回の方針",
    "次回検討予定日",
    "超過日数",
    "新しい警告",
    "新しい気づき",
    "直近の出欠",
    "児相の評価",
    "一時保護",
    "メンバー",
    "前回検討以降の変化",
    "要検討の理由",
    "事前照会への回答",
]


def attendance_text(row: CaseRow) -> str:
    a = row.attendance
    if not a:
        return ""
    return (
        f"{a.get('month')} 出席{a.get('attended')}/{a.get('school_days')}日 欠席{a.get('absent')}日"
        f"（連絡なし{a.get('absent_without_contact')}日）"
    )


def ledger_text(row: CaseRow) -> str:
    if not row.ledger:
        return ""
    return " ".join(str(v) for v in (row.ledger.get("severity"), row.ledger.get("status")) if v)


def alert_text(row: CaseRow) -> str:
    return "、".join(
        f"{a['at'][:10]} {label(ALERT_JA, a.get('reason'))}" + (f"{a['days']}日" if a.get("days") else "")
        for a in row.open_alerts
    )


def concern_text(row: CaseRow) -> str:
    return "、".join(f"{c['at'][:10]} {c['summary']}" for c in row.concerns)


def scale_text(answer: Mapping[str, Any]) -> str:
    """安全の尺度 and its change from the member's previous answer, e.g. "4（前回 7 から −3）"."""
    scale, previous, change = answer.get("safety_scale"), answer.get("previous_scale"), answer.get("change")
    if scale is None:
        return ""
    if change is None:
        return str(scale)
    return f"{scale}（前回 {previous} から {'±' if change == 0 else f'{change:+d}'.replace('-', '−')}）"


def answer_text(answer: Mapping[str, Any], name: Callable[[str], str] = str) -> str:
    """One answer to a status inquiry in one line: who, when, the scale and its change, what was said."""
    parts = [f"{answer['at'][:10]} {name(answer['by'])}"]
    if answer.get("no_change"):
        parts.append("変わりなし")
    if answer.get("safety_scale") is not None:
        parts.append(f"尺度 {scale_text(answer)}")
    parts += [
        f"{ja}: {answer[k]}"
        for k, ja in (("observations", "様子"), ("actions", "対応"), ("concerns", "心配"))
        if answer.get(k)
    ]
    return " ".join(parts)


def answers_text(row: CaseRow) -> str:
    return " / ".join(answer_text(a) for a in row.answers)


def changes_text(row: CaseRow) -> str:
    return " / ".join(
        f"{c['at'][:10]} {c['kind_ja']}" + (f": {c['summary']}" if c["summary"] else "") for c in row.changes
    )


def agenda_csv(agenda: Agenda) -> bytes:
    """The agenda as a CSV file: one row per case, the cases needing discussion first."""
    on = date.fromisoformat(agenda.date)
    return csv_bytes(
        CSV_HEADER,
        (
            (
                GROUP_JA[group],
                r.case,
                r.child,
                r.name_kana,
                r.center,
                label(CATEGORY_JA, r.category),
                label(CASE_TYPE_JA, r.case_type),
                r.last_review["at"][:10] if r.last_review else "",
                r.last_review["decision"] if r.last_review else "",
                r.next_review,
                r.overdue_days(on),
                alert_text(r),
                concern_text(r),
                attendance_text(r),
                ledger_text(r),
                "一時保護中" if r.protection else "",
                "、".join(r.members),
                changes_text(r),
                "、".join(r.attention_reasons(on)),
                answers_text(r),
            )
            for group, rows in (("attention", agenda.attention), ("confirmation", agenda.confirmation))
            for r in rows
        ),
    )


def agenda_html(agenda: Agenda, names: Mapping[str, str] | None = None) -> str:
    """The agenda as a printable HTML page (Japanese headings, print CSS); ``names``: organisation id -> name,
    to show names instead of ids."""
    names = names or {}
    on = date.fromisoformat(agenda.date)
    return render(
        "agenda.html",
        agenda=agenda,
        org_name=names.get(agenda.org, agenda.org),
        on=on,
        name=lambda o: names.get(o, o),
        groups=[
            (
                "attention",
                "要検討（前回検討以降に警告・気づき・一時保護・評価の変化や照会への心配な回答があるケース）",
                agenda.attention,
            ),
            ("confirmation", "確認のみ（前回検討以降に大きな変化のないケース）", agenda.confirmation),
        ],
        category=lambda c: label(CATEGORY_JA, c),
        case_type=lambda c: label(CASE_TYPE_JA, c),
        alert=lambda a: label(ALERT_JA, a),
        attendance=attendance_text,
        ledger=ledger_text,
        answer=lambda a: answer_text(a, lambda o: names.get(o, o)),
    )
