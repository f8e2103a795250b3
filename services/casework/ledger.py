"""Views over 要対協 case work: the progress ledger (進行管理台帳), the joint ledger (共同管理台帳), the agenda of the
practitioners' meeting (実務者会議), the support plans due for review, and the case transfers (ケース移管).

Every view is a projection rebuilt on demand from what the requesting organisation may read: the case index
(``services.projections.cases``) says which children to look at, and each child's timeline is read through the read
service as that organisation, so each read is decided by the policy and leaves an access record. Rows are built
from the returned entries only (``build_row``, ``plan_states``), never from the child's stream.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from consent.policy import cases_seen
from events.clock import JST
from events.kinds import as_datetime
from events.labels import ALERT_JA, CASE_TYPE_JA, CATEGORY_JA, KIND_JA, ORG_TYPE_JA, STATUS_JA, label
from events.model import CENTER, JISO, Org, Recorded
from events.problems import Problem, Rejected
from services.casework.attention import answers_since, attention_reasons, inquiry_answers, standing_reasons
from services.projections.cases import center_cases, next_review_day
from services.reading.timeline import Timeline, TimelineEntry

if TYPE_CHECKING:
    from services.casework.ledger_query import LedgerQuery
    from services.casework.rows import Ahead
    from services.hub import Hub

TRANSFER_ACK_DAYS = 14  # ケース移管の受理期限

CONCERN_KINDS = ("concern.reported", "notification.filed")


def refuse(code: str, message: str, message_ja: str, field: str | None = None) -> Rejected:
    return Rejected([Problem(code, message, message_ja, field)])


def entry_at(e: TimelineEntry) -> datetime:
    return datetime.fromisoformat(e.at)


def day_of(value: datetime) -> date:
    """The calendar day in Japan."""
    return value.astimezone(JST).date()


def _case_of(e: TimelineEntry) -> str | None:
    value = e.payload.get("case")
    return str(value) if value is not None else None


def _attendance_line(p: Mapping[str, Any]) -> str:
    text = (
        f"{p.get('month')} 授業{p.get('school_days')}日 出席{p.get('attended')}日 欠席{p.get('absent')}日"
        f"（うち連絡なし{p.get('absent_without_contact')}日）"
    )
    if p.get("supersedes"):
        text += "［訂正］"
    return text + (f" {p['notes']}" if p.get("notes") else "")


def _alert_line(p: Mapping[str, Any]) -> str:
    days = f" {p['days']}日" if p.get("days") is not None else ""
    return f"{label(ALERT_JA, p.get('reason'))}{days}" + (f"（{p['since']}から）" if p.get("since") else "")


def _review_line(p: Mapping[str, Any]) -> str:
    return str(p.get("decision", "")) + (f"（次回 {str(p['next_review'])[:10]}）" if p.get("next_review") else "")


def _closure_line(p: Mapping[str, Any]) -> str:
    return f"{p.get('reason', '')}" + (f"（{p['meeting']}）" if p.get("meeting") else "")


def _joint_ledger_line(p: Mapping[str, Any]) -> str:
    return " ".join(f"{ja}: {p[k]}" for k, ja in (("severity", "重症度"), ("status", "状況")) if p.get(k))


def _field(name: str) -> Callable[[Mapping[str, Any]], str]:
    """The summary that is one payload field, as text ("" when absent)."""
    return lambda p: str(p.get(name, ""))


def _plan_line(p: Mapping[str, Any]) -> str:
    return f"プラン {p.get('plan')} 第{p.get('version')}版"


SUMMARIES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "attendance.monthly": _attendance_line,
    "absence.alert": _alert_line,
    "concern.reported": _field("summary"),
    "notification.filed": _field("summary"),
    "case.shared": _field("summary"),
    "case.registered": lambda p: f"{label(CATEGORY_JA, p.get('category'))} / {label(CASE_TYPE_JA, p.get('case_type'))}",
    "case.member_assigned": _field("member"),
    "case.member_removed": _field("member"),
    "case.reviewed": _review_line,
    "case.type_changed": lambda p: label(CASE_TYPE_JA, p.get("case_type")),
    "case.closed": _closure_line,
    "case.transferred": lambda p: f"移管先 {p.get('to')}",
    "case.transfer_acknowledged": lambda p: f"移管元 {p.get('from')}",
    "ledger.updated": _joint_ledger_line,
    "plan.created": _plan_line,
    "plan.revised": _plan_line,
    "consent.granted": lambda p: f"{_plan_line(p)} → {', '.join(map(str, p.get('recipients') or []))}",
    "consent.refused": lambda p: f"プラン {p.get('plan')}",
    "visit.report": _field("observations"),
    "note.recorded": _field("text"),
    "health.checkup": _field("checkup"),
    "service.usage": _field("service"),
    "residence.changed": _field("residence"),
}
"""Kind -> the one line in Japanese that summarises its payload; kinds not listed have none."""


def summarise(e: TimelineEntry) -> str:
    """One line in Japanese for an entry as the reader received it (redacted fields stay redacted)."""
    line = SUMMARIES.get(e.kind)
    return line(e.payload) if line is not None else ""


def change(e: TimelineEntry) -> dict[str, Any]:
    return {
        "event": e.id,
        "at": e.at,
        "kind": e.kind,
        "kind_ja": label(KIND_JA, e.kind),
        "source": e.source,
        "rule": e.rule,
        "summary": summarise(e),
    }


# --- One case, from the entries a reader received ------------------------------------------------------------


@dataclass
class CaseRow:
    """One row of a progress ledger (進行管理台帳) or of the joint ledger (共同管理台帳)."""

    case: str
    child: str
    center: str  # the registering centre (調整機関)
    status: str  # open | closed | transferred
    category: str  # 要保護児童 / 要支援児童 / 特定妊婦
    case_type: str  # 相談種別, current
    case_type_history: list[dict[str, Any]]
    registered_at: str
    members: list[str]
    last_review: dict[str, Any] | None  # {event, at, decision, next_review}
    next_review: str  # YYYY-MM-DD
    next_review_default: bool  # True: no date was decided; registration or last review + about 3 months
    attendance: dict[str, Any] | None  # the latest monthly report (a correction replaces what it supersedes)
    open_alerts: list[dict[str, Any]]  # absence alerts not yet taken up at a review
    concerns: list[dict[str, Any]]  # concerns and notifications since the last review
    ledger: dict[str, Any] | None  # the 児童相談所's latest severity and status on the joint ledger
    protection: bool  # 一時保護中
    changes: list[dict[str, Any]]  # everything the reader sees that happened since the last review
    closed: dict[str, Any] | None = None  # {at, reason, meeting}
    transferred: dict[str, Any] | None = None  # {at, to}
    name_kana: str | None = None
    answers: list[dict[str, Any]] = field(default_factory=list)  # answers to status inquiries since the last review
    reasons: list[str] = field(default_factory=list)  # why to discuss it, whatever the meeting's day (attention.py)

    @property
    def since(self) -> str:
        return self.last_review["at"] if self.last_review else self.registered_at

    @property
    def needs_attention(self) -> bool:
        """Something since the last review the meeting should discuss (要検討; the review's delay aside)."""
        return bool(self.reasons)

    def attention_reasons(self, on: date) -> list[str]:
        """Why to discuss the case at the meeting on ``on`` (要検討), in the spec's order; none: 確認のみ."""
        return attention_reasons(self.reasons, date.fromisoformat(self.next_review), on)

    def overdue_days(self, on: date) -> int:
        return (on - date.fromisoformat(self.next_review)).days

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON values, each field a copy (``plain_copy``: what ``dataclasses.asdict`` gives, a fifth
        of the API's CPU when it made the rows of ledger pages under load), with the labels."""
        out = {name: plain_copy(getattr(self, name)) for name in _ROW_FIELDS}
        out["category_ja"] = label(CATEGORY_JA, self.category)
        out["case_type_ja"] = label(CASE_TYPE_JA, self.case_type)
        out["status_ja"] = label(STATUS_JA, self.status)
        return out


_ROW_FIELDS = tuple(f.name for f in fields(CaseRow))


def plain_copy(value: Any) -> Any:
    """A named mechanism: a copy of ``value`` equal to what ``dataclasses.asdict`` makes of a field, made
    cheaply for JSON values. ``asdict`` copies every leaf with ``copy.deepcopy`` (its memo, its dispatch), which
    made serialising a ledger page of 50 rows a fifth of the API's CPU under the saturating load
    (``bench/http_saturate.py``); the rows' fields are JSON values (str, int, float, bool, None in dicts and
    lists), which are copied here by their containers alone, the scalars being immutable. Anything else is
    left to ``asdict``'s own rule (a dataclass to a dict, a tuple's items, ``deepcopy`` for the rest), so the
    result is the same (``tests/casework/test_ledger_rows.py`` compares them)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or kind is float or value is None:
        return value
    if kind is dict:
        return {k: plain_copy(v) for k, v in value.items()}
    if kind is list:
        return [plain_copy(v) for v in value]
    if kind is tuple:
        return tuple(plain_copy(v) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return copy.deepcopy(value)


def latest_attendance(entries: Iterable[TimelineEntry]) -> dict[str, Any] | None:
    """The latest month's report; a report named in a later report's ``supersedes`` (a correction) no longer
    counts, and of several reports for the month the latest is used."""
    reports = [e for e in entries if e.kind == "attendance.monthly"]
    superseded: set[str] = set()
    for e in reports:
        value = e.payload.get("supersedes")
        superseded.update([str(value)] if isinstance(value, str) else map(str, value or []))
    current = [e for e in reports if e.id not in superseded]
    if not current:
        return None
    month = max(str(e.payload.get("month")) for e in current)
    latest = [e for e in current if str(e.payload.get("month")) == month][-1]  # entries are in timeline order
    keys = (
        "month",
        "school_days",
        "attended",
        "absent",
        "absent_without_contact",
        "late",
        "early_leave",
        "reasons",
        "notes",
        "supersedes",
    )
    return {
        "event": latest.id,
        "source": latest.source,
        "at": latest.at,
        **{k: latest.payload[k] for k in keys if k in latest.payload},
    }


def as_recorded(entries: Sequence[TimelineEntry], child: str) -> list[Recorded]:
    """A timeline's entries as the policy's events (``events.model.Recorded``), in the order returned, so that the
    policy's own derivations (``consent.policy.cases_seen``) can be asked about what the reader received."""
    return [
        Recorded(
            position=n,
            id=e.id,
            kind=e.kind,
            child=child,
            source=e.source,
            basis=e.basis,
            at=entry_at(e),
            payload=e.payload,
            audience=frozenset(),
            function=e.function,
            to=e.to,
            sensitive=tuple(e.sensitive),
        )
        for n, e in enumerate(entries, start=1)
    ]


def _registration(entries: Sequence[TimelineEntry], case: str, registrar: str) -> TimelineEntry:
    """The registrar's ``case.registered`` of ``case`` (the policy has seen it: it is there)."""
    return next(e for e in entries if e.kind == "case.registered" and _case_of(e) == case and e.source == registrar)


def _type_history(registered: TimelineEntry, own: Sequence[TimelineEntry]) -> list[dict[str, Any]]:
    """相談種別 over time: the one registered, then each ``case.type_changed`` of the registrar."""
    return [
        {"at": e.at, "case_type": str(e.payload.get("case_type")), "event": e.id}
        for e in [registered, *(e for e in own if e.kind == "case.type_changed")]
    ]


def _closure(own: Sequence[TimelineEntry], closed_at: datetime | None) -> dict[str, Any] | None:
    """The ``case.closed`` that closed the case as the policy counts it (at ``closed_at``), or ``None``."""
    e = next((e for e in own if e.kind == "case.closed" and entry_at(e) == closed_at), None)
    if e is None:
        return None
    return {"event": e.id, "at": e.at, "reason": e.payload.get("reason"), "meeting": e.payload.get("meeting")}


def _transfer(own: Sequence[TimelineEntry]) -> dict[str, Any] | None:
    """The first ``case.transferred`` of the case, or ``None``."""
    e = next((e for e in own if e.kind == "case.transferred"), None)
    return {"event": e.id, "at": e.at, "to": e.payload.get("to")} if e is not None else None


def _last_review(own: Sequence[TimelineEntry]) -> TimelineEntry | None:
    reviews = [e for e in own if e.kind == "case.reviewed"]
    return reviews[-1] if reviews else None


def _review(last_review: TimelineEntry | None) -> dict[str, Any] | None:
    """The last review as a row shows it."""
    if last_review is None:
        return None
    p = last_review.payload
    return {
        "event": last_review.id,
        "at": last_review.at,
        "decision": p.get("decision"),
        "next_review": p.get("next_review"),
    }


def _next_review_due(last_review: TimelineEntry | None, since: datetime) -> tuple[date, bool]:
    """The next review's day, and whether it is the default (no day was decided: ``since`` + about 3 months)."""
    decided = last_review.payload.get("next_review") if last_review is not None else None
    return next_review_day(decided, since), not decided


def _alerts(later: Sequence[TimelineEntry]) -> list[dict[str, Any]]:
    """The absence alerts among ``later`` (not yet taken up at a review)."""
    return [
        change(e) | {"reason": e.payload.get("reason"), "days": e.payload.get("days")}
        for e in later
        if e.kind == "absence.alert"
    ]


def _joint_ledger(entries: Sequence[TimelineEntry], case: str, orgs: Mapping[str, Org]) -> dict[str, Any] | None:
    """The latest severity and status a 児童相談所 put on the joint ledger for ``case`` (each its latest value)."""
    updates = [
        e
        for e in entries
        if e.kind == "ledger.updated"
        and _case_of(e) == case
        and e.basis == "joint-ledger"
        and getattr(orgs.get(e.source), "type", None) == JISO
    ]
    if not updates:
        return None
    ledger: dict[str, Any] = {"at": updates[-1].at, "by": updates[-1].source, "severity": None, "status": None}
    for e in updates:
        ledger |= {key: e.payload[key] for key in ("severity", "status") if e.payload.get(key)}
    return ledger


def _in_protection(entries: Sequence[TimelineEntry], case: str) -> bool:
    """一時保護中: the latest joint-ledger ``protection.*`` of ``case`` started it."""
    marks = [
        e
        for e in entries
        if e.kind in ("protection.started", "protection.ended") and _case_of(e) == case and e.basis == "joint-ledger"
    ]
    return bool(marks) and marks[-1].kind == "protection.started"


def _name_kana(entries: Sequence[TimelineEntry]) -> str | None:
    return next(
        (e.payload.get("name_kana") for e in entries if e.kind == "child.registered" and e.payload.get("name_kana")),
        None,
    )


def build_row(
    case: str, child: str, entries: Sequence[TimelineEntry], orgs: Mapping[str, Org], t: datetime
) -> CaseRow | None:
    """The row of ``case`` at ``t`` from a timeline's entries, or ``None`` when the reader does not see its
    registration.

    Who registered the case, its members at ``t`` and whether it is closed are what the policy says
    (``consent.policy.cases_seen``: counted only from the registrar, as rule CASE counts them); reviews,
    相談種別 and transfer are the registrar's own events. The joint-ledger events count as the reader receives
    them: the latest severity and status put on the ledger by a 児童相談所, and 一時保護.
    """
    known = cases_seen(as_recorded(entries, child)).get(case)
    if known is None:
        return None
    registrar = known.registrar
    registered = _registration(entries, case, registrar)
    own = [e for e in entries if e.kind.startswith("case.") and _case_of(e) == case and e.source == registrar]
    history = _type_history(registered, own)
    closed, transferred = _closure(own, known.closed_at(t)), _transfer(own)
    last_review = _last_review(own)
    since = entry_at(last_review) if last_review else entry_at(registered)
    next_review, default = _next_review_due(last_review, since)
    later = [e for e in entries if entry_at(e) > since and _case_of(e) in (None, case)]
    alerts, concerns = _alerts(later), [change(e) for e in later if e.kind in CONCERN_KINDS]
    answers = answers_since(inquiry_answers(entries, case, registrar), since)
    reasons = standing_reasons(entries, case, orgs, since, alerts=alerts, concerns=concerns, answers=answers)
    return CaseRow(
        case=case,
        child=child,
        center=registrar,
        status="transferred" if transferred else "closed" if closed else "open",
        category=str(registered.payload.get("category")),
        case_type=history[-1]["case_type"],
        case_type_history=history,
        registered_at=registered.at,
        members=known.members_at(t),
        last_review=_review(last_review),
        next_review=next_review.isoformat(),
        next_review_default=default,
        attendance=latest_attendance(entries),
        open_alerts=alerts,
        concerns=concerns,
        ledger=_joint_ledger(entries, case, orgs),
        protection=_in_protection(entries, case),
        changes=[change(e) for e in later],
        closed=closed,
        transferred=transferred,
        name_kana=_name_kana(entries),
        answers=answers,
        reasons=reasons,
    )


# --- Support plans, from the entries a reader received ---------------------------------------------------------


@dataclass
class PlanState:
    """A support plan (サポートプラン) as its author sees it: versions, consents, refusals."""

    plan: str
    child: str
    author: str
    versions: list[dict[str, Any]]  # {event, version, at, review_due, kind}
    consents: list[dict[str, Any]]  # {event, version, recipients, signed_by, at, valid_until, withdrawn_at}
    refusals: list[str]  # at of each consent.refused

    @property
    def latest_version(self) -> int:
        return max(v["version"] for v in self.versions)

    @property
    def review_due(self) -> str | None:
        latest = max(self.versions, key=lambda v: v["version"])
        return str(latest["review_due"])[:10] if latest.get("review_due") else None

    def active_consents(self, t: datetime) -> list[dict[str, Any]]:
        return [
            c
            for c in self.consents
            if c["withdrawn_at"] is None and (c["valid_until"] is None or t < as_datetime(c["valid_until"]))
        ]

    def shared_version(self, t: datetime) -> int | None:
        """The highest version some recipient may read under an active consent (None: nothing is shared)."""
        active = self.active_consents(t)
        return max(c["version"] for c in active) if active else None

    def to_dict(self, t: datetime | None = None) -> dict[str, Any]:
        out = asdict(self)
        out["latest_version"] = self.latest_version
        out["review_due"] = self.review_due
        if t is not None:
            out["shared_version"] = self.shared_version(t)
        return out


def plan_states(entries: Sequence[TimelineEntry], author: str, child: str) -> dict[str, PlanState]:
    """The plans ``author`` wrote for the child, from the entries of the author's own read."""
    plans: dict[str, PlanState] = {}
    consents: dict[str, dict[str, Any]] = {}
    for e in entries:
        if e.source != author:
            continue
        p = e.payload
        if e.kind in ("plan.created", "plan.revised"):
            state = plans.setdefault(str(p["plan"]), PlanState(str(p["plan"]), child, author, [], [], []))
            state.versions.append(
                {
                    "event": e.id,
                    "version": int(p["version"]),
                    "at": e.at,
                    "review_due": p.get("review_due"),
                    "kind": e.kind,
                }
            )
        elif e.kind == "consent.granted" and str(p.get("plan")) in plans:
            consent = {
                "event": e.id,
                "version": int(p["version"]),
                "recipients": list(p["recipients"]),
                "signed_by": p.get("signed_by"),
                "at": e.at,
                "valid_until": p.get("valid_until"),
                "withdrawn_at": None,
            }
            consents[e.id] = consent
            plans[str(p["plan"])].consents.append(consent)
        elif e.kind == "consent.withdrawn" and str(p.get("consent")) in consents:
            consent = consents[str(p["consent"])]
            consent["withdrawn_at"] = consent["withdrawn_at"] or e.at
        elif e.kind == "consent.refused" and str(p.get("plan")) in plans:
            plans[str(p["plan"])].refusals.append(e.at)
    return plans


# --- The views ---------------------------------------------------------------------------------------------


@dataclass
class Ledger:
    """A ledger as built for ``org`` at ``t``: ``reads`` access records were made to build it."""

    org: str
    kind: str  # progress (進行管理台帳) | joint (共同管理台帳)
    t: str
    rows: list[CaseRow]
    reads: list[str] = field(default_factory=list)  # the access records of the reads

    def to_dict(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "kind": self.kind,
            "t": self.t,
            "rows": [r.to_dict() for r in self.rows],
            "access_records": self.reads,
        }


@dataclass
class LedgerPage:
    """A page of a ledger as built for ``org`` at ``t``: ``rows`` shown of ``total`` kept by the filters (of
    ``all_rows``); one access record per child shown (``reads``)."""

    org: str
    kind: str  # progress | joint
    t: str
    rows: list[CaseRow]
    total: int
    all_rows: int
    page: int
    per_page: int | None  # None: every row
    pages: int
    reads: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "kind": self.kind,
            "t": self.t,
            "rows": [r.to_dict() for r in self.rows],
            "total": self.total,
            "page": self.page,
            "per_page": self.per_page,
            "pages": self.pages,
            "access_records": self.reads,
        }


@dataclass
class Agenda:
    """実務者会議の議題: the cases due for review on ``date``, those with new alerts or concerns first."""

    org: str
    date: str
    t: str
    attention: list[CaseRow]  # 要検討: CaseRow.attention_reasons on the meeting's day
    confirmation: list[CaseRow]  # 確認のみ: stable
    reads: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        on = date.fromisoformat(self.date)

        def item(row: CaseRow) -> dict[str, Any]:
            return row.to_dict() | {
                "overdue_days": row.overdue_days(on),
                "attention_reasons": row.attention_reasons(on),
            }

        return {
            "org": self.org,
            "date": self.date,
            "t": self.t,
            "attention": [item(r) for r in self.attention],
            "confirmation": [item(r) for r in self.confirmation],
            "access_records": self.reads,
        }


class CaseViews:
    """Builds the views for an organisation, reading as that organisation (``role``, ``user``)."""

    def __init__(self, hub: Hub):
        self.hub = hub

    def _org(self, org_id: str, types: tuple[str, ...], what_ja: str) -> Org:
        org = self.hub.orgs().get(org_id)
        if org is None:
            raise refuse(
                "unknown_organisation",
                f"{org_id} is not a registered organisation",
                f"「{org_id}」はハブに登録された機関ではありません",
                "org",
            )
        if org.type not in types:
            raise refuse(
                "not_allowed_for_type",
                f"{org_id} ({org.type}) cannot use this view",
                f"{what_ja}を使えるのは{'・'.join(ORG_TYPE_JA[t] for t in types)}だけです",
                "org",
            )
        return org

    def _read(self, org: str, child: str, purpose: str, role: str, user: str | None, reads: list[str]) -> Timeline:
        timeline = self.hub.timeline(org=org, role=role, child=child, purpose=purpose, user=user)
        reads.append(timeline.access_record)
        return timeline

    def _cases(self, org: str, joint: bool, states: Iterable[str] | None) -> dict[str, str]:
        """The cases a ledger covers (case -> child), by the case index: the centre's own, or for a 児童相談所 the
        abuse cases of the centres of the municipalities it covers (``states``: only cases in these states by
        the index, e.g. ``{"open"}`` for a meeting, so closed cases are not decided without need)."""
        wanted = set(states) if states is not None else None
        if not joint:
            self._org(org, (CENTER,), "進行管理台帳")
            index = center_cases(self.hub.store, org)
            return {k: v["child"] for k, v in index.cases.items() if wanted is None or v["state"] in wanted}
        jiso = self._org(org, (JISO,), "共同管理台帳")
        if not self.hub.settings.joint_ledger:
            raise refuse(
                "joint_ledger_off",
                "the joint ledger is not enabled (setting joint_ledger)",
                "この環境では共同管理台帳（joint_ledger）が有効になっていません",
            )
        cases: dict[str, str] = {}
        for center in sorted(
            o.id for o in self.hub.orgs().values() if o.type == CENTER and o.municipality in jiso.covers
        ):
            for case, entry in center_cases(self.hub.store, center).cases.items():
                if entry["abuse"] and (wanted is None or entry["state"] in wanted):
                    cases[case] = entry["child"]
        return cases

    def _ahead(self, org: str, cases: Mapping[str, str], role: str, user: str | None) -> Ahead:
        """The rows of ``cases`` as ``org`` reads them now, decided ahead (``services.casework.rows``)."""
        registry = self.hub.store.registry()
        return self.hub.ledger_rows.ahead(
            org,
            role,
            cases,
            t=self.hub.clock(),
            orgs=registry.orgs,
            registry_version=registry.version if registry.version else 0,
            settings=self.hub.settings,
            user=user,
        )

    def ledger(
        self,
        org: str,
        query: LedgerQuery,
        *,
        joint: bool = False,
        role: str = "caseworker",
        user: str | None = None,
        export: bool = False,
    ) -> LedgerPage:
        """A page of the centre's 進行管理台帳 (``joint``: of a 児童相談所's 共同管理台帳, the abuse cases of the
        municipalities it covers, as rule LEDGER lets it read them): filtered, sorted and paged by ``query`` on
        the rows decided ahead, and one read recorded per child shown. ``export``: for a CSV file (its view
        record says ``ledger-csv`` or ``joint-ledger-csv``)."""
        ahead = self._ahead(org, self._cases(org, joint, None), role, user)
        on = day_of(ahead.reader.t)
        kept = query.apply(ahead.rows, on)
        shown = query.window(kept)
        view = ("joint-ledger" if joint else "ledger") + ("-csv" if export else "")
        reads = ahead.record(shown, view, query.to_dict())
        return LedgerPage(
            org,
            "joint" if joint else "progress",
            ahead.reader.t.isoformat(),
            shown,
            len(kept),
            len(ahead.rows),
            query.page,
            query.per_page,
            query.pages(len(kept)),
            reads,
        )

    def _whole(self, org: str, joint: bool, role: str, user: str | None, states: Iterable[str] | None) -> Ledger:
        ahead = self._ahead(org, self._cases(org, joint, states), role, user)
        return Ledger(
            org,
            "joint" if joint else "progress",
            ahead.reader.t.isoformat(),
            ahead.rows,
            ahead.record(ahead.rows, "joint-ledger" if joint else "ledger", {"states": sorted(states or ())}),
        )

    def progress_ledger(
        self, center: str, *, role: str = "caseworker", user: str | None = None, states: Iterable[str] | None = None
    ) -> Ledger:
        """The centre's whole 進行管理台帳, every row recorded (the CLI's listing): ``ledger`` pages it."""
        return self._whole(center, False, role, user, states)

    def joint_ledger(
        self, jiso: str, *, role: str = "caseworker", user: str | None = None, states: Iterable[str] | None = None
    ) -> Ledger:
        """The 児童相談所's whole 共同管理台帳, every row recorded (the CLI's listing): ``ledger`` pages it."""
        return self._whole(jiso, True, role, user, states)

    def agenda(self, org: str, on: date, *, role: str = "caseworker", user: str | None = None) -> Agenda:
        """The agenda for the meeting on ``on``: open cases whose next review is on or before that day. Cases with
        new alerts or concerns since their last review come first (alerts before concerns, then the most overdue);
        the stable ones follow, grouped for confirmation only. One read is recorded per child on the agenda."""
        found = self.hub.orgs().get(org)
        joint = found is not None and found.type == JISO
        ahead = self._ahead(org, self._cases(org, joint, {"open"}), role, user)
        due = [r for r in ahead.rows if r.status == "open" and date.fromisoformat(r.next_review) <= on]
        attention = sorted(
            (r for r in due if r.attention_reasons(on)), key=lambda r: (not r.open_alerts, r.next_review, r.case)
        )
        confirmation = sorted((r for r in due if not r.attention_reasons(on)), key=lambda r: (r.next_review, r.case))
        reads = ahead.record(attention + confirmation, "agenda", {"date": on.isoformat()})
        return Agenda(org, on.isoformat(), ahead.reader.t.isoformat(), attention, confirmation, reads)

    def plans(
        self, center: str, *, role: str = "caseworker", user: str | None = None
    ) -> tuple[list[PlanState], list[str]]:
        """The centre's support plans, from its own reads (purpose support)."""
        self._org(center, (CENTER,), "サポートプラン")
        by_child: dict[str, list[str]] = {}
        for plan, child in center_cases(self.hub.store, center).plans.items():
            by_child.setdefault(child, []).append(plan)
        out: list[PlanState] = []
        reads: list[str] = []
        for child, plans in by_child.items():
            timeline = self._read(center, child, "support", role, user, reads)
            states = plan_states(timeline.entries, center, child)
            out += [states[p] for p in plans if p in states]
        out.sort(key=lambda s: (s.review_due or "9999", s.plan))
        return out, reads

    def plans_due(
        self, center: str, on: date, *, role: str = "caseworker", user: str | None = None
    ) -> tuple[list[PlanState], list[str]]:
        """The plans whose review date (of the latest version) is on or before ``on``."""
        plans, reads = self.plans(center, role=role, user=user)
        return [p for p in plans if p.review_due and date.fromisoformat(p.review_due) <= on], reads

    def transfers(self, center: str, *, overdue_only: bool = True) -> list[dict[str, Any]]:
        """The case transfers the centre is party to (sent or received), from the case index: identifiers and
        dates only, no content. With ``overdue_only``, those not acknowledged within 14 days."""
        self._org(center, (CENTER,), "ケース移管の一覧")
        now = self.hub.clock()
        out = []
        for t in center_cases(self.hub.store, center).transfers.values():
            sent = datetime.fromisoformat(t["at"])
            acknowledged = datetime.fromisoformat(t["acknowledged_at"]) if t["acknowledged_at"] else None
            waited = (acknowledged or now) - sent
            item = dict(
                t,
                direction="out" if t["from"] == center else "in",
                days_waiting=waited.days,
                overdue=acknowledged is None and waited > timedelta(days=TRANSFER_ACK_DAYS),
                acknowledged_late=acknowledged is not None and waited > timedelta(days=TRANSFER_ACK_DAYS),
            )
            if not overdue_only or item["overdue"]:
                out.append(item)
        out.sort(key=lambda t: (t["at"], t["case"]))
        return out
