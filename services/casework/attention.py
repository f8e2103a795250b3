"""What the agenda says about a case before the meeting (meetings-and-services.md §1, "The agenda").

Two things, both from the entries the reader received (never from the child's stream):

- ``inquiry_answers``: the answers to the centre's status inquiries (事前照会) about a case, each with who answered,
  when, the safety scale and its change from that member's previous answer (a later answer to the same inquiry
  supersedes the earlier one; the log keeps both);
- ``attention_reasons``: why a case **needs discussion** (要検討), exactly as the spec lists: since its last review a
  new absence alert, a new concern or notification, a protection started or ended, a ledger severity change, an
  answer with concerns, a safety scale of 3 or less or a fall of 2 or more from that member's previous answer; or
  its review overdue by more than 30 days on the meeting's day. A due case with no reason is **for confirmation**
  (確認のみ).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from events.model import JISO, Org
from services.reading.timeline import TimelineEntry

LOW_SCALE = 3  # a safety scale of 3 or less needs discussion
SCALE_FALL = 2  # a fall of 2 or more from the member's previous answer needs discussion
OVERDUE_DAYS = 30  # a review overdue by more than 30 days needs discussion


def _at(e: TimelineEntry) -> datetime:
    return datetime.fromisoformat(e.at)


def _scale(payload: Mapping[str, Any]) -> int | None:
    value = payload.get("safety_scale")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def inquiry_answers(entries: Sequence[TimelineEntry], case: str, registrar: str) -> list[dict[str, Any]]:
    """Every current answer to an inquiry the registrar sent about ``case``, in timeline order: the latest answer
    per inquiry from the member asked, with ``previous_scale`` (that member's previous answer with a scale about the
    case) and ``change`` (the scale minus it)."""
    sent = {
        str(e.payload.get("inquiry")): e
        for e in entries
        if e.kind == "inquiry.sent" and e.source == registrar and str(e.payload.get("case")) == case
    }
    latest: dict[str, TimelineEntry] = {}
    for e in entries:
        inquiry = str(e.payload.get("inquiry"))
        if e.kind == "inquiry.answered" and inquiry in sent and e.source == sent[inquiry].to:
            latest.pop(inquiry, None)  # a later answer supersedes: it takes the earlier one's place in the order
            latest[inquiry] = e
    answers: list[dict[str, Any]] = []
    last_scale: dict[str, int] = {}
    for inquiry, e in sorted(latest.items(), key=lambda item: _at(item[1])):
        p, question = e.payload, sent[inquiry]
        scale, previous = _scale(p), last_scale.get(e.source)
        answers.append(
            {
                "event": e.id,
                "inquiry": inquiry,
                "by": e.source,
                "at": e.at,
                "meeting_date": question.payload.get("meeting_date"),
                "no_change": bool(p.get("no_change")),
                "observations": p.get("observations") or "",
                "actions": p.get("actions") or "",
                "concerns": p.get("concerns") or "",
                "attendance": p.get("attendance"),
                "checklist": list(p.get("checklist") or []),
                "safety_scale": scale,
                "previous_scale": previous,
                "change": scale - previous if scale is not None and previous is not None else None,
            }
        )
        if scale is not None:
            last_scale[e.source] = scale
    return answers


def answers_since(answers: Sequence[Mapping[str, Any]], since: datetime) -> list[dict[str, Any]]:
    return [dict(a) for a in answers if datetime.fromisoformat(a["at"]) > since]


def _ledger_severity_changes(
    entries: Sequence[TimelineEntry], case: str, orgs: Mapping[str, Org], since: datetime
) -> list[TimelineEntry]:
    """The 児童相談所's joint-ledger updates of ``case`` after ``since`` that changed the severity."""
    severity: Any = None
    changed = []
    for e in entries:
        if (
            e.kind == "ledger.updated"
            and str(e.payload.get("case")) == case
            and e.basis == "joint-ledger"
            and getattr(orgs.get(e.source), "type", None) == JISO
            and e.payload.get("severity")
        ):
            if e.payload["severity"] != severity and _at(e) > since:
                changed.append(e)
            severity = e.payload["severity"]
    return changed


def standing_reasons(
    entries: Sequence[TimelineEntry],
    case: str,
    orgs: Mapping[str, Org],
    since: datetime,
    *,
    alerts: Sequence[Any],
    concerns: Sequence[Any],
    answers: Sequence[Mapping[str, Any]],
) -> list[str]:
    """The reasons to discuss the case that do not depend on the meeting's day, in Japanese, in the spec's order.
    ``alerts``, ``concerns`` and ``answers`` are those since the last review (``since``)."""
    reasons = []
    if alerts:
        reasons.append("新しい欠席等の警告")
    if concerns:
        reasons.append("新しい気づき・通告")
    protection = [
        e
        for e in entries
        if e.kind in ("protection.started", "protection.ended")
        and str(e.payload.get("case")) == case
        and e.basis == "joint-ledger"
        and _at(e) > since
    ]
    if any(e.kind == "protection.started" for e in protection):
        reasons.append("一時保護の開始")
    if any(e.kind == "protection.ended" for e in protection):
        reasons.append("一時保護の解除")
    if _ledger_severity_changes(entries, case, orgs, since):
        reasons.append("共同管理台帳の重症度の変更")
    if any(a["concerns"] for a in answers):
        reasons.append("照会への回答に心配なこと")
    if any(a["safety_scale"] is not None and a["safety_scale"] <= LOW_SCALE for a in answers):
        reasons.append(f"安全の尺度が{LOW_SCALE}以下")
    if any(a["change"] is not None and a["change"] <= -SCALE_FALL for a in answers):
        reasons.append(f"安全の尺度が前回の回答から{SCALE_FALL}以上低下")
    return reasons


def attention_reasons(standing: Sequence[str], next_review: date, on: date) -> list[str]:
    """All the reasons to discuss a case at the meeting on ``on``: ``standing`` and a review overdue by more than
    30 days."""
    overdue = (on - next_review).days
    return [*standing, *([f"検討が{overdue}日超過"] if overdue > OVERDUE_DAYS else [])]
