"""Households (世帯, meetings-and-services.md §3): the centre links a child to a household and removes it, and the
centre sees on a child's page the household's other children.

**Not for the 児童相談所 yet.** meetings-and-services.md lets a 児相 see the household of a joint-ledger child too,
but the link itself is the centre's ``internal`` record, which no read rule gives the 児相 (rule LEDGER covers
``case.*`` and ``joint-ledger`` events): showing it would disclose what the 児相's own access records say it was not
given, and an auditor could not see it. Until policy.md says which rule gives a 児相 ``household.*`` events, a 児相
sees no household here (a reading taken on review; the rule is the policy's to add, not this view's).

Commands: ``join`` and ``leave`` publish ``household.joined`` / ``household.left`` (basis ``internal``) through
``Hub.publish`` as the acting centre, the same path as the API's publish; the publish rule (``consent.authority``:
the centre of residence at ``at``) stays as written, the checks here only name the field in Japanese.

The view (``view``): which households hold the child comes from the index (``services.projections.households``):
for a centre, its own households. Anyone else gets nothing, and no read is made. Each other child of those households is then read once through the read service as the reader (decided
by the policy, recorded), and what is shown of it (open cases, open alerts, overdue monthly reports) comes from
that read only: a sibling the reader may read nothing of shows as such, without anything of its record.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from events.labels import RELATION_JA, label
from events.model import CENTER, Org
from events.problems import Problem, Rejected
from services.casework.commands import Actor, Done
from services.casework.ledger import CaseRow, build_row, refuse
from services.projections.households import Household, households_of
from services.projections.households import household as household_of
from services.reading.timeline import Timeline

if TYPE_CHECKING:
    from services.hub import Hub


class OverdueLike(Protocol):
    """An overdue monthly report as ``services.schools.overdue.OverdueReport`` gives it (casework does not import
    the schools' package: the caller hands the reader's overdue reports in)."""

    @property
    def child(self) -> str: ...

    @property
    def school(self) -> str: ...

    @property
    def month(self) -> str: ...

    @property
    def listing(self) -> str: ...


@dataclass
class Sibling:
    """Another child of the household, as the reader's own recorded read of it shows it."""

    child: str
    relation: str | None
    since: str
    access_record: str
    readable: bool  # the read returned anything at all
    cases: list[CaseRow] = field(default_factory=list)  # open cases the reader sees registered
    alerts: list[dict[str, Any]] = field(default_factory=list)  # absence alerts not yet taken up at a review
    overdue: list[dict[str, str]] = field(default_factory=list)  # {school, month}
    name_kana: str | None = None

    @property
    def relation_ja(self) -> str:
        return label(RELATION_JA, self.relation) if self.relation else "―"

    def to_dict(self) -> dict[str, Any]:
        return {
            "child": self.child,
            "relation": self.relation,
            "relation_ja": self.relation_ja if self.relation else None,
            "since": self.since,
            "access_record": self.access_record,
            "readable": self.readable,
            "name_kana": self.name_kana,
            "open_cases": [
                {
                    "case": r.case,
                    "center": r.center,
                    "category": r.category,
                    "case_type": r.case_type,
                    "next_review": r.next_review,
                    "protection": r.protection,
                }
                for r in self.cases
            ],
            "open_alerts": self.alerts,
            "overdue_reports": self.overdue,
        }


@dataclass
class HouseholdView:
    """One household of the child, with its other children."""

    centre: str
    household: str
    relation: str | None  # the child's own relation in it
    since: str
    siblings: list[Sibling]

    @property
    def relation_ja(self) -> str:
        return label(RELATION_JA, self.relation) if self.relation else "―"

    def to_dict(self) -> dict[str, Any]:
        return {
            "centre": self.centre,
            "household": self.household,
            "relation": self.relation,
            "since": self.since,
            "members": [s.to_dict() for s in self.siblings],
        }


@dataclass
class ChildHouseholds:
    """What a child's page shows of its households, and the reads made to show it."""

    child: str
    households: list[HouseholdView]
    access_records: list[str]
    may_edit: bool  # the reader is a centre (it links and removes its own households' children)

    def to_dict(self) -> dict[str, Any]:
        return {
            "child": self.child,
            "households": [h.to_dict() for h in self.households],
            "access_records": self.access_records,
        }


def _blank(value: Any) -> bool:
    return value is None or not str(value).strip()


class Households:
    def __init__(self, hub: Hub):
        self.hub = hub

    def _centre(self, by: Actor) -> Org:
        org = self.hub.orgs().get(by.org)
        if org is None or org.type != CENTER:
            raise refuse(
                "not_a_center",
                "households are kept by a municipal_center",
                "世帯の登録は市町村のこども家庭センターだけが行えます",
                "org",
            )
        return org

    def _publish(self, by: Actor, kind: str, child: str, payload: dict[str, Any]) -> Done:
        envelope: dict[str, Any] = {
            "id": f"{kind.replace('.', '-')}-{uuid.uuid4().hex}",
            "kind": kind,
            "child": child,
            "source": by.org,
            "basis": "internal",
            "at": self.hub.clock().isoformat(),
            "payload": payload,
        }
        if by.role == "health_nurse":
            envelope["function"] = "maternal_health"
        [result] = self.hub.publish([envelope], publisher=by.org)
        if result.outcome == "rejected":
            raise Rejected([_in_words(p) for p in result.problems])
        return Done(envelope["id"], kind, child)

    def _checked(self, by: Actor, child: str, household: str) -> tuple[str, str]:
        self._centre(by)
        problems = []
        if _blank(child):
            problems.append(Problem("missing", "child is required", "児童を入力してください", "child"))
        if _blank(household):
            problems.append(Problem("missing", "household is required", "世帯番号を入力してください", "household"))
        if problems:
            raise Rejected(problems)
        return child.strip(), household.strip()

    def join(self, by: Actor, child: str, household: str, relation: str | None = None) -> Done:
        """Link ``child`` to the centre's ``household`` (``household.joined``)."""
        child, household = self._checked(by, child, household)
        if household_of(self.hub.store, by.org, household).is_member(child, self.hub.clock()):
            raise refuse(
                "already_member",
                f"child {child!r} is in household {household!r} already",
                f"児童「{child}」はすでに世帯「{household}」に登録されています",
                "child",
            )
        payload: dict[str, Any] = {"household": household}
        if not _blank(relation):
            payload["relation"] = str(relation).strip()
        return self._publish(by, "household.joined", child, payload)

    def leave(self, by: Actor, child: str, household: str) -> Done:
        """Remove ``child`` from the centre's ``household`` (``household.left``)."""
        child, household = self._checked(by, child, household)
        if not household_of(self.hub.store, by.org, household).is_member(child, self.hub.clock()):
            raise refuse(
                "not_a_member",
                f"child {child!r} is not in household {household!r} of this centre",
                f"児童「{child}」はこのセンターの世帯「{household}」に登録されていません",
                "child",
            )
        return self._publish(by, "household.left", child, {"household": household})

    def view(
        self,
        by: Actor,
        child: str,
        timeline: Timeline | None = None,
        overdue: Callable[[], Sequence[OverdueLike]] | None = None,
    ) -> ChildHouseholds:
        """The child's households and their other children as ``by`` may see them. ``timeline``: the reader's
        read of the child already made (a child's page), else one is made here; ``overdue``: the reader's overdue
        monthly reports (``services.schools.overdue.overdue_reports``), asked for only when there is a sibling."""
        org = self.hub.orgs().get(by.org)
        reads: list[str] = []
        if org is None or org.type != CENTER:
            return ChildHouseholds(child, [], reads, False)  # others (a 児相 too: see the docstring) gain nothing
        now = self.hub.clock()
        if timeline is None:
            timeline = self._read(by, child, reads)
        if not timeline.allowed:
            return ChildHouseholds(child, [], reads, False)
        t = datetime.fromisoformat(timeline.t)
        found: list[Household] = households_of(self.hub.store, child, now, centre=by.org)
        views: list[HouseholdView] = []
        overdue_reports: Sequence[OverdueLike] | None = None
        for h in found:
            members = h.members(now)
            me = next(m for m in members if m.child == child)
            siblings = []
            for m in members:
                if m.child == child:
                    continue
                if overdue_reports is None:
                    overdue_reports = overdue() if overdue is not None else []
                siblings.append(self._sibling(by, m.child, m.relation, m.since, t, overdue_reports, reads))
            views.append(HouseholdView(h.centre, h.household, me.relation, me.since, siblings))
        return ChildHouseholds(child, views, reads, org.type == CENTER)

    def _read(self, by: Actor, child: str, reads: list[str]) -> Timeline:
        timeline = self.hub.timeline(org=by.org, role=by.role, child=child, purpose="support", user=by.user)
        reads.append(timeline.access_record)
        return timeline

    def _sibling(
        self,
        by: Actor,
        child: str,
        relation: str | None,
        since: str,
        t: datetime,
        overdue: Sequence[OverdueLike],
        reads: list[str],
    ) -> Sibling:
        timeline = self._read(by, child, reads)
        sibling = Sibling(child, relation, since, timeline.access_record, bool(timeline.allowed and timeline.entries))
        if not sibling.readable:
            return sibling
        orgs = self.hub.orgs()
        registered = dict.fromkeys(
            str(e.payload["case"]) for e in timeline.entries if e.kind == "case.registered" and e.payload.get("case")
        )
        at = datetime.fromisoformat(timeline.t)
        rows = [build_row(case, child, timeline.entries, orgs, at) for case in registered]
        sibling.cases = [r for r in rows if r is not None and r.status == "open"]
        if sibling.cases:
            sibling.alerts = [a for r in sibling.cases for a in r.open_alerts]
            sibling.name_kana = next((r.name_kana for r in sibling.cases if r.name_kana), None)
        else:  # no open case: no alert was taken up at a review yet
            sibling.alerts = [
                {"event": e.id, "at": e.at, "reason": e.payload.get("reason"), "days": e.payload.get("days")}
                for e in timeline.entries
                if e.kind == "absence.alert"
            ]
        seen = {e.id for e in timeline.entries}
        sibling.overdue = [
            {"school": r.school, "month": r.month} for r in overdue if r.child == child and r.listing in seen
        ]
        if sibling.name_kana is None:
            sibling.name_kana = next(
                (str(e.payload["name_kana"]) for e in timeline.entries if e.payload.get("name_kana")), None
            )
        return sibling


def _in_words(problem: Problem) -> Problem:
    """A publish refusal of a household event, with the form's field named: the source's authority is about the
    child (where it lives), so it is shown next to the child."""
    if problem.field == "source":
        return Problem(
            problem.code,
            problem.message,
            "世帯に登録できるのは、その時点で児童が住んでいる市町村のセンターだけです。児童の番号を確かめてください",
            "child",
        )
    if problem.field == "payload.household":
        return Problem(problem.code, problem.message, problem.message_ja, "household")
    if problem.field == "payload.relation":
        return Problem(problem.code, problem.message, problem.message_ja, "relation")
    return problem
