"""Status inquiries before a meeting (事前照会, meetings-and-services.md §1): the centre's round, what is outstanding
per member, a member's inbox and its answer. The application service behind ``tsunagu inquiries …``,
``/v1/inquiries…`` and the pages ``/ui/rounds/new`` and ``/ui/inquiries``.

- A *round* for a centre and a meeting date sends, in one publish, one ``inquiry.sent`` (basis ``cwa-25-3``, ``to``
  the member) per (case due for review on or before the meeting date, member), with a due date. The cases are
  those of the centre's agenda for that day, read as the centre like the agenda itself (one recorded read per
  child); a pair already asked for the same meeting is not asked again.
- *Outstanding* per member comes from the inquiry index (identifiers and dates only, no child's content, so no
  read), like the overdue monthly reports.
- A member's *inbox* lists the inquiries addressed to it, due first; each child shown is read once as the member
  (purpose ``meeting``), and the question and the member's own answer are taken from that read.
- An *answer* is published by the member asked, ``to`` the centre that asked; a later answer supersedes.

An inquiry that does not exist and one addressed to someone else get the same refusal (policy.md, "Rejections
leak nothing").
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from events.labels import CHECKLIST_JA
from events.model import CENTER
from events.problems import Problem, Rejected
from services.casework.commands import Actor, _blank, _day
from services.casework.ledger import CaseViews, day_of, refuse
from services.projections.inquiries import inquiry_entry, org_inquiries
from services.reading.timeline import TimelineEntry

if TYPE_CHECKING:
    from services.hub import Hub


@dataclass
class Round:
    """What a round sent: one inquiry per (case, member); ``skipped`` pairs were asked for this meeting already."""

    center: str
    meeting_date: str
    due: str
    sent: list[dict[str, Any]] = field(default_factory=list)  # {inquiry, event, case, child, member}
    skipped: list[dict[str, Any]] = field(default_factory=list)  # {case, member, inquiry}
    access_records: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class InboxItem:
    """An inquiry in a member's inbox, with the question and the member's own latest answer as it reads them."""

    inquiry: str
    case: str
    child: str
    center: str
    meeting_date: str
    due: str
    sent_at: str
    overdue: bool
    questions: str = ""
    answer: dict[str, Any] | None = None  # the latest answer's payload, with its event and at

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _problem(code: str, message: str, message_ja: str, field: str) -> Problem:
    return Problem(code, message, message_ja, field)


def checked_answer(
    *,
    no_change: bool = False,
    observations: str = "",
    actions: str = "",
    concerns: str = "",
    safety_scale: int | str | None = None,
    attendance: Mapping[str, Any] | None = None,
    checklist: Sequence[str] = (),
) -> dict[str, Any]:
    """The answer's payload (without ``inquiry``), or ``Rejected`` naming every field at fault in Japanese."""
    problems: list[Problem] = []
    payload: dict[str, Any] = {"no_change": bool(no_change)}
    if not no_change and _blank(observations):
        problems.append(
            _problem(
                "missing_observations",
                "observations are required unless no_change",
                "「変わりなし」でなければ、様子を入力してください",
                "observations",
            )
        )
    for name, value in (("observations", observations), ("actions", actions)):
        payload[name] = (value or "").strip()
    if not _blank(concerns):
        payload["concerns"] = concerns.strip()
    if safety_scale is not None and str(safety_scale).strip() != "":
        try:
            scale = int(str(safety_scale).strip())
        except ValueError:
            scale = -1
        if not 0 <= scale <= 10:
            problems.append(
                _problem(
                    "invalid_safety_scale",
                    "safety_scale is an integer from 0 to 10",
                    "安全の尺度は 0 から 10 までの整数で入力してください",
                    "safety_scale",
                )
            )
        else:
            payload["safety_scale"] = scale
    if attendance and any(str(v).strip() for v in attendance.values() if v is not None):
        numbers: dict[str, int] = {}
        for key, ja in (("days", "日数"), ("absent", "欠席日数"), ("absent_without_contact", "うち連絡なし")):
            raw = str(attendance.get(key) if attendance.get(key) is not None else "").strip()
            if not raw.isdigit():
                problems.append(
                    _problem(
                        "invalid_attendance",
                        f"attendance.{key} is a whole number",
                        f"出欠の{ja}を 0 以上の整数で入力してください",
                        f"attendance.{key}",
                    )
                )
            else:
                numbers[key] = int(raw)
        if len(numbers) == 3:
            if numbers["absent"] > numbers["days"]:
                problems.append(
                    _problem(
                        "invalid_attendance",
                        "absent exceeds days",
                        "欠席日数が日数を超えています",
                        "attendance.absent",
                    )
                )
            elif numbers["absent_without_contact"] > numbers["absent"]:
                problems.append(
                    _problem(
                        "invalid_attendance",
                        "absent_without_contact exceeds absent",
                        "うち連絡なしが欠席日数を超えています",
                        "attendance.absent_without_contact",
                    )
                )
            else:
                payload["attendance"] = numbers
    unknown = [c for c in checklist if c not in CHECKLIST_JA]
    if unknown:
        problems.append(
            _problem(
                "unknown_checklist_item",
                f"unknown checklist items: {', '.join(unknown)}",
                f"チェック項目「{'」「'.join(unknown)}」はありません",
                "checklist",
            )
        )
    elif checklist:
        payload["checklist"] = list(dict.fromkeys(checklist))
    if problems:
        raise Rejected(problems)
    return payload


class Inquiries:
    def __init__(self, hub: Hub):
        self.hub = hub

    def _center(self, by: Actor) -> None:
        org = self.hub.orgs().get(by.org)
        if org is None or org.type != CENTER:
            raise refuse(
                "not_a_center",
                "an inquiry round is sent by a municipal_center (the 要対協's coordinating body)",
                "事前照会を送れるのは市町村のこども家庭センター（要対協の調整機関）だけです",
                "org",
            )

    # --- The centre's round ----------------------------------------------------------------------------------

    def send_round(self, by: Actor, meeting_date: date | str | None, due: date | str | None) -> Round:
        """One inquiry per (case due for review on or before ``meeting_date``, member), all in one publish."""
        self._center(by)
        meeting = _day(meeting_date, "meeting_date")
        deadline = _day(due, "due")
        today = day_of(self.hub.clock())
        problems = []
        if meeting is None:
            problems.append(
                _problem(
                    "missing_meeting_date", "meeting_date is required", "会議の日付を入力してください", "meeting_date"
                )
            )
        elif meeting < today:
            problems.append(
                _problem(
                    "meeting_date_past",
                    "the meeting is today or later",
                    f"会議の日付は今日（{today}）以降にしてください",
                    "meeting_date",
                )
            )
        if deadline is None:
            problems.append(_problem("missing_due", "due is required", "回答期限を入力してください", "due"))
        elif deadline < today or (meeting is not None and deadline > meeting):
            problems.append(
                _problem(
                    "invalid_due",
                    "the due date is between today and the meeting",
                    "回答期限は今日から会議の日付までの間にしてください",
                    "due",
                )
            )
        if problems:
            raise Rejected(problems)
        assert meeting is not None and deadline is not None
        agenda = CaseViews(self.hub).agenda(by.org, meeting, role=by.role, user=by.user)
        result = Round(by.org, meeting.isoformat(), deadline.isoformat(), access_records=list(agenda.reads))
        asked = {
            (i["case"], i["member"]): i["inquiry"]
            for i in org_inquiries(self.hub.store, by.org).inquiries.values()
            if i["center"] == by.org and i["meeting_date"] == meeting.isoformat()
        }
        at = self.hub.clock().isoformat()
        envelopes: list[dict[str, Any]] = []
        for row in agenda.attention + agenda.confirmation:
            for member in row.members:
                if (row.case, member) in asked:
                    result.skipped.append({"case": row.case, "member": member, "inquiry": asked[(row.case, member)]})
                    continue
                inquiry = f"Q-{uuid.uuid4().hex[:12]}"
                envelopes.append(
                    {
                        "id": f"inquiry-sent-{uuid.uuid4().hex}",
                        "kind": "inquiry.sent",
                        "child": row.child,
                        "source": by.org,
                        "basis": "cwa-25-3",
                        "to": member,
                        "at": at,
                        "payload": {
                            "inquiry": inquiry,
                            "case": row.case,
                            "meeting_date": meeting.isoformat(),
                            "due": deadline.isoformat(),
                        },
                    }
                )
        if envelopes:
            results = self.hub.publish(envelopes, publisher=by.org)
            problems = [p for r in results if r.outcome == "rejected" for p in r.problems]
            if problems:
                raise Rejected(problems)
        for env in envelopes:
            result.sent.append(
                {
                    "inquiry": env["payload"]["inquiry"],
                    "event": env["id"],
                    "case": env["payload"]["case"],
                    "child": env["child"],
                    "member": env["to"],
                }
            )
        return result

    def outstanding(self, center: str, on: date | None = None) -> list[dict[str, Any]]:
        """The centre's unanswered inquiries per member (identifiers and dates only), members with overdue ones
        first: ``{member, count, overdue, inquiries: [{inquiry, case, meeting_date, due, overdue_days}]}``."""
        self._center(Actor(center))
        on = on or day_of(self.hub.clock())
        per_member: dict[str, list[dict[str, Any]]] = {}
        for i in org_inquiries(self.hub.store, center).inquiries.values():
            if i["center"] != center or i["answered_at"] is not None:
                continue
            late = (on - date.fromisoformat(i["due"])).days
            per_member.setdefault(i["member"], []).append(
                {k: i[k] for k in ("inquiry", "case", "meeting_date", "due", "sent_at")}
                | {"overdue_days": max(late, 0)}
            )
        out: list[dict[str, Any]] = []
        for member, items in per_member.items():
            items.sort(key=lambda i: (i["due"], i["case"]))
            overdue = sum(1 for i in items if i["overdue_days"] > 0)
            out.append({"member": member, "count": len(items), "overdue": overdue, "inquiries": items})
        out.sort(key=lambda m: (-int(m["overdue"]), str(m["member"])))
        return out

    def overdue_count(self, center: str, on: date | None = None) -> int:
        return sum(m["overdue"] for m in self.outstanding(center, on))

    # --- The member's side -----------------------------------------------------------------------------------

    def inbox(self, by: Actor, *, answered: bool = False, only: str | None = None) -> tuple[list[InboxItem], list[str]]:
        """The inquiries addressed to ``by.org`` (unanswered ones; with ``answered`` all; with ``only``, that one
        inquiry), due first; each child shown read once as the member, and no other."""
        on = day_of(self.hub.clock())
        mine = [
            i
            for i in org_inquiries(self.hub.store, by.org).inquiries.values()
            if i["member"] == by.org
            and (answered or i["answered_at"] is None)
            and (only is None or i["inquiry"] == only)
        ]
        mine.sort(key=lambda i: (i["due"], i["meeting_date"], i["case"]))
        reads: list[str] = []
        entries_of: dict[str, list[TimelineEntry]] = {}
        items: list[InboxItem] = []
        for i in mine:
            if i["child"] not in entries_of:
                timeline = self.hub.timeline(
                    org=by.org, role=by.role, child=i["child"], purpose="meeting", user=by.user
                )
                reads.append(timeline.access_record)
                entries_of[i["child"]] = timeline.entries if timeline.allowed else []
            entries = entries_of[i["child"]]
            question = next((e for e in entries if e.id == i["event"]), None)
            if question is None:  # the policy did not let the member read it (e.g. the child was erased)
                continue
            answers = [
                e
                for e in entries
                if e.kind == "inquiry.answered" and e.source == by.org and str(e.payload.get("inquiry")) == i["inquiry"]
            ]
            latest = answers[-1] if answers else None
            items.append(
                InboxItem(
                    inquiry=i["inquiry"],
                    case=i["case"],
                    child=i["child"],
                    center=i["center"],
                    meeting_date=i["meeting_date"],
                    due=i["due"],
                    sent_at=i["sent_at"],
                    overdue=latest is None and date.fromisoformat(i["due"]) < on,
                    questions=str(question.payload.get("questions") or ""),
                    answer=(dict(latest.payload) | {"event": latest.id, "at": latest.at}) if latest else None,
                )
            )
        return items, reads

    def _addressed(self, by: Actor, inquiry: str) -> dict[str, Any]:
        entry = inquiry_entry(self.hub.store, inquiry)
        if entry is None or entry.member != by.org:
            raise refuse(
                "unknown_inquiry",
                f"inquiry {inquiry!r} is not addressed to this organisation",
                f"照会「{inquiry}」はこの機関あての照会ではありません",
                "inquiry",
            )
        return org_inquiries(self.hub.store, by.org).inquiries[inquiry]

    def item(self, by: Actor, inquiry: str) -> tuple[InboxItem, list[str]]:
        """One inquiry of the member's inbox (answered or not), read as the member."""
        self._addressed(by, inquiry)
        items, reads = self.inbox(by, answered=True, only=inquiry)
        found = items[0] if items else None
        if found is None:
            raise refuse(
                "unknown_inquiry",
                f"inquiry {inquiry!r} is not addressed to this organisation",
                f"照会「{inquiry}」はこの機関あての照会ではありません",
                "inquiry",
            )
        return found, reads

    def answer(self, by: Actor, inquiry: str, **answer: Any) -> dict[str, Any]:
        """回答: the member asked answers, ``to`` the centre that asked (a later answer supersedes)."""
        entry = self._addressed(by, inquiry)
        payload = {"inquiry": inquiry} | checked_answer(**answer)
        event_id = f"inquiry-answered-{uuid.uuid4().hex}"
        [result] = self.hub.publish(
            [
                {
                    "id": event_id,
                    "kind": "inquiry.answered",
                    "child": entry["child"],
                    "source": by.org,
                    "basis": "cwa-25-3",
                    "to": entry["center"],
                    "at": self.hub.clock().isoformat(),
                    "payload": payload,
                }
            ],
            publisher=by.org,
        )
        if result.outcome == "rejected":
            raise Rejected(result.problems)
        return {"event": event_id, "inquiry": inquiry, "case": entry["case"], "child": entry["child"]}
