"""What the centre's pages know about children, from one recorded read per child (ui.md, "The same paths as
everything else"): the start page's counts and a child's cases, plans and consents.

Nothing here reads a child's stream: each child is read once through ``Hub.timeline`` as the signed-in person
(decided by the policy and recorded with their name), and the case rows, plans and counts are built from the
entries that read returned, with the ledger's own functions (``services.casework.ledger.build_row``,
``plan_states``). The indexes (which cases, plans, listings and transfers an organisation has) say only which
children to read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from events.clock import JST
from services.casework.commands import Actor
from services.casework.households import ChildHouseholds, Households
from services.casework.ledger import CENTER, CONCERN_KINDS, JISO, CaseRow, PlanState, build_row, day_of, plan_states
from services.family_support.work import Report, urgent_in, urgent_waiting
from services.projections.cases import center_cases
from services.projections.rosters import CenterLists, SchoolRoster, peek
from services.publishing.linking import waiting
from services.reading.timeline import Timeline, TimelineEntry
from services.schools.overdue import overdue_reports

if TYPE_CHECKING:
    from services.hub import Hub
    from services.web.session import Person


def fiscal_year_start(today: date) -> date:
    """The first day of the 年度 (April to March) that ``today`` is in."""
    return date(today.year if today.month >= 4 else today.year - 1, 4, 1)


def read(hub: Hub, person: Person, child: str, purpose: str = "support") -> Timeline:
    """The one recorded read of ``child`` as the signed-in person."""
    return hub.timeline(org=person.org, role=person.role, child=child, purpose=purpose, user=person.user)


def case_rows(timeline: Timeline, hub: Hub) -> list[CaseRow]:
    """The cases of the child the reader sees registered, as ledger rows, from the read's entries only."""
    cases = dict.fromkeys(
        str(e.payload["case"]) for e in timeline.entries if e.kind == "case.registered" and e.payload.get("case")
    )
    at = datetime.fromisoformat(timeline.t)
    rows = [build_row(case, timeline.child, timeline.entries, hub.orgs(), at) for case in cases]
    return [r for r in rows if r is not None]


def plans_of(timeline: Timeline) -> list[PlanState]:
    """The support plans of the child, each as its author wrote it (versions, consents, refusals), from the read's
    entries only: the reader's own plans, and those other centres' plans the reader was given."""
    authors = dict.fromkeys(e.source for e in timeline.entries if e.kind in ("plan.created", "plan.revised"))
    out: list[PlanState] = []
    for author in authors:
        out += plan_states(timeline.entries, author, timeline.child).values()
    return out


@dataclass
class Item:
    """One line of the start page: a count, a link, and the children behind it (with a short note each)."""

    count: int = 0
    children: dict[str, list[str]] = field(default_factory=dict)

    def add(self, child: str, note: str) -> None:
        self.count += 1
        self.children.setdefault(child, []).append(note)


@dataclass
class Overview:
    """The start page of a centre or 児童相談所: what there is to do, with how many."""

    today: date
    year_start: date
    alerts_open: Item = field(default_factory=Item)  # not yet taken up at a review of the child's case
    alerts_year: Item = field(default_factory=Item)  # received this 年度
    concerns_open: Item = field(default_factory=Item)
    concerns_year: Item = field(default_factory=Item)
    reviews_due: Item = field(default_factory=Item)  # open cases whose next review is this month or earlier
    plans_due: Item = field(default_factory=Item)
    queue_link: int = 0
    queue_residence: int = 0
    transfers_to_acknowledge: Item = field(default_factory=Item)
    overdue_by_school: dict[str, int] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)
    urgent: list[Report] = field(default_factory=list)  # 家庭支援事業: urgent reports not acknowledged, oldest first

    @property
    def overdue_total(self) -> int:
        return sum(self.overdue_by_school.values())


def _month_end(today: date) -> date:
    following = date(today.year + (today.month == 12), today.month % 12 + 1, 1)
    return date.fromordinal(following.toordinal() - 1)


def _alert_note(e: TimelineEntry | dict[str, Any]) -> str:
    at = e.at if isinstance(e, TimelineEntry) else e["at"]
    return str(at)[:10]


def listed_children(hub: Hub, centre: str) -> list[str]:
    """The children ``centre`` put on schools' target lists (the index, no content)."""
    children: list[str] = []
    for school in peek(hub.store, CenterLists, centre).schools:
        children += [
            listing.child
            for listing in peek(hub.store, SchoolRoster, school).all()
            if listing.centre == centre and listing.removed_at is None
        ]
    return list(dict.fromkeys(children))


def overview(hub: Hub, person: Person, today: date) -> Overview:
    """The counts of the start page, each child read once (recorded) and counted from what that read returned."""
    org = hub.orgs()[person.org]
    out = Overview(today, fiscal_year_start(today))
    out.queue_link = sum(1 for w in waiting(hub.store, person.org) if w.reason == "waiting_for_link")
    out.queue_residence = sum(1 for w in waiting(hub.store, person.org) if w.reason != "waiting_for_link")
    children: list[str] = []
    overdue = []
    urgent: dict[str, set[str]] = {}
    if org.type == JISO:
        children += joint_cases(hub, person.org).values()
    else:
        index = center_cases(hub.store, person.org)
        children += [v["child"] for v in index.cases.values() if v["state"] == "open"]
        children += index.plans.values()
        children += listed_children(hub, person.org)
        overdue = overdue_reports(hub.store, hub.settings, reader=person.org, today=today)
        children += [r.child for r in overdue]
        for t in index.transfers.values():
            if t["to"] == person.org and not t["acknowledged_at"]:
                out.transfers_to_acknowledge.add(t["child"], t["case"])
        urgent = urgent_waiting(hub.store, person.org)  # the urgent inbox: read with the others, once per child
        children += urgent
    month_end = _month_end(today)
    visible: dict[str, set[str]] = {}
    for child in dict.fromkeys(children):
        timeline = read(hub, person, child)
        out.reads.append(timeline.access_record)
        if not timeline.allowed:
            continue
        visible[child] = {e.id for e in timeline.entries}
        if org.type != JISO and child in urgent:
            out.urgent += urgent_in(child, timeline.entries, urgent[child], person.org, hub.clock())
        rows = [r for r in case_rows(timeline, hub) if r.status == "open"]
        if org.type != JISO:
            rows = [r for r in rows if r.center == person.org]
        for e in timeline.entries:
            if e.source == person.org or day_of(datetime.fromisoformat(e.at)) < out.year_start:
                continue
            if e.kind == "absence.alert":
                out.alerts_year.add(child, _alert_note(e))
            elif e.kind in CONCERN_KINDS:
                out.concerns_year.add(child, _alert_note(e))
        if rows:
            for r in rows:
                for a in r.open_alerts:
                    out.alerts_open.add(child, _alert_note(a))
                for c in r.concerns:
                    if c["source"] != person.org:
                        out.concerns_open.add(child, _alert_note(c))
                if date.fromisoformat(r.next_review) <= month_end:
                    out.reviews_due.add(child, f"{r.case}（{r.next_review}）")
        else:  # no open case: nothing was taken up at a review yet
            for kind, item in ((("absence.alert",), out.alerts_open), (CONCERN_KINDS, out.concerns_open)):
                for e in timeline.entries:
                    if (
                        e.kind in kind
                        and e.source != person.org
                        and day_of(datetime.fromisoformat(e.at)) >= out.year_start
                    ):
                        item.add(child, _alert_note(e))
        for plan in plans_of(timeline):
            if plan.author == person.org and plan.review_due and date.fromisoformat(plan.review_due) <= month_end:
                out.plans_due.add(child, f"{plan.plan}（{plan.review_due}）")
    out.urgent.sort(key=lambda r: r.at)
    for report in overdue:
        if report.listing in visible.get(report.child, set()):
            out.overdue_by_school[report.school] = out.overdue_by_school.get(report.school, 0) + 1
    return out


def joint_cases(hub: Hub, jiso: str) -> dict[str, str]:
    """The open abuse cases of the municipalities ``jiso`` covers (case -> child), by the index the joint ledger
    uses (``CaseViews.joint_ledger``); nothing when the joint ledger is off."""
    org = hub.orgs()[jiso]
    if not hub.settings.joint_ledger:
        return {}
    cases: dict[str, str] = {}
    for centre in sorted(o.id for o in hub.orgs().values() if o.type == CENTER and o.municipality in org.covers):
        for case, entry in center_cases(hub.store, centre).cases.items():
            if entry["abuse"] and entry["state"] == "open":
                cases[case] = entry["child"]
    return cases


def household_section(hub: Hub, person: Person, timeline: Timeline) -> ChildHouseholds:
    """The child's households (世帯) as ``person`` may see them, from the page's own read of the child
    (``timeline``) and one recorded read per sibling shown; nothing, and no read, for an organisation that is not
    a centre or a 児童相談所 (``services.casework.households``)."""
    return Households(hub).view(
        Actor(person.org, person.role, person.user),
        timeline.child,
        timeline=timeline,
        overdue=lambda: overdue_reports(
            hub.store, hub.settings, reader=person.org, today=hub.clock().astimezone(JST).date()
        ),
    )
