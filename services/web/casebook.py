"""What the centre's pages know about children, from policy-decided reads (ui.md, "The same paths as everything
else"): the start page's counts and a child's cases, plans and consents.

Nothing here reads a child's stream: a child's page reads the child once through ``Hub.timeline`` as the
signed-in person (decided by the policy and recorded with their name); the start page's counts come from reads
decided ahead (``services.casework.rows``) and record one read per child the page names (``overview``). The case
rows, plans and counts are built from the entries those reads return, with the ledger's own functions
(``services.casework.ledger.build_row``, ``plan_states``). The indexes (which cases, plans, listings and transfers
an organisation has) say only which children to read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from events.clock import JST
from events.model import Org
from services.casework.commands import Actor
from services.casework.households import ChildHouseholds, Households
from services.casework.ledger import CENTER, CONCERN_KINDS, JISO, CaseRow, PlanState, build_row, day_of, plan_states
from services.family_support.work import Report, urgent_in, urgent_waiting
from services.projections.cases import center_cases
from services.projections.rosters import CenterLists, SchoolRoster, peek
from services.publishing.linking import waiting
from services.reading.kept import KeptRead
from services.reading.timeline import Timeline, TimelineEntry
from services.schools.overdue import entry_ids, overdue_counts, overdue_reports, peek_many

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


LISTED = 10  # the children named under each count of the start page; the ledger's filters list the rest
ITEMS = ("alerts_open", "alerts_year", "concerns_open", "concerns_year", "reviews_due", "plans_due")


@dataclass
class Item:
    """One line of the start page: a count, a link, and the children behind it (with a short note each)."""

    count: int = 0
    children: dict[str, list[str]] = field(default_factory=dict)
    more: int = 0  # children counted but not named (beyond ``LISTED``)

    def add(self, child: str, note: str) -> None:
        self.count += 1
        self.children.setdefault(child, []).append(note)

    def name_first(self, listed: int) -> None:
        """Name only the first ``listed`` children; the others stay in ``count`` and ``more``."""
        self.more = max(0, len(self.children) - listed)
        self.children = dict(list(self.children.items())[:listed])


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
    rosters = peek_many(hub.store, SchoolRoster, [(school,) for school in peek(hub.store, CenterLists, centre).schools])
    for roster in rosters.values():
        children += [
            listing.child for listing in roster.all() if listing.centre == centre and listing.removed_at is None
        ]
    return list(dict.fromkeys(children))


def _counted(
    kept: KeptRead, org: str, jiso: bool, year_start: date, month_end: date, orgs: Mapping[str, Org]
) -> list[tuple[str, str]]:
    """What one child adds to the start page's lists (the item's name, the note shown), from the child's read as
    it was decided (its entries, its case rows at the time decided), for the reading organisation ``org``."""
    entries = kept.decided.entries
    child = kept.decided.child
    out: list[tuple[str, str]] = []
    cases = dict.fromkeys(
        str(e.payload["case"]) for e in entries if e.kind == "case.registered" and e.payload.get("case")
    )
    rows = [r for case in cases if (r := build_row(case, child, entries, orgs, kept.decided_at)) is not None]
    rows = [r for r in rows if r.status == "open" and (jiso or r.center == org)]
    for e in entries:
        if e.source == org or day_of(datetime.fromisoformat(e.at)) < year_start:
            continue
        if e.kind == "absence.alert":
            out.append(("alerts_year", _alert_note(e)))
        elif e.kind in CONCERN_KINDS:
            out.append(("concerns_year", _alert_note(e)))
    if rows:
        for r in rows:
            out += [("alerts_open", _alert_note(a)) for a in r.open_alerts]
            out += [("concerns_open", _alert_note(c)) for c in r.concerns if c["source"] != org]
            if date.fromisoformat(r.next_review) <= month_end:
                out.append(("reviews_due", f"{r.case}（{r.next_review}）"))
    else:  # no open case: nothing was taken up at a review yet
        for kind, name in ((("absence.alert",), "alerts_open"), (CONCERN_KINDS, "concerns_open")):
            out += [
                (name, _alert_note(e))
                for e in entries
                if e.kind in kind and e.source != org and day_of(datetime.fromisoformat(e.at)) >= year_start
            ]
    authors = dict.fromkeys(e.source for e in entries if e.kind in ("plan.created", "plan.revised"))
    for author in authors:
        for plan in plan_states(entries, author, child).values():
            if plan.author == org and plan.review_due and date.fromisoformat(plan.review_due) <= month_end:
                out.append(("plans_due", f"{plan.plan}（{plan.review_due}）"))
    return out


def overview(hub: Hub, person: Person, today: date, listed: int = LISTED) -> Overview:
    """The counts of the start page, from each child's read decided for purpose ``support`` as the signed-in
    person (``services.casework.rows``: decided ahead, kept while nothing it depends on changed, as the ledgers
    are), with what each read adds to the page kept with it.

    What is recorded: one read (at the page's time, with the kept decision) of each child the page names, that is
    each child listed under a count (alerts, concerns, reviews and plans due: the first ``listed`` children of
    each) or in the urgent inbox, all in one transaction, with the page's record in the person's view log naming
    every child whose decided read went into a count (``services.reading.view_log``). A child the page does not name is not recorded: the
    counts include the children not named (``Item.more``: the ledger's filters list them, each read recorded
    there), from their decided reads; the overdue monthly reports per school are counted, without naming a child,
    from the decided reads of the children they are about (a report is counted when the centre's read shows its
    listing; the lines, per school, child and listing, from the hub's ``OverdueLines``); the transfers to
    acknowledge and the queues come from the indexes (identifiers and dates, no read)."""
    org = hub.orgs()[person.org]
    jiso = org.type == JISO
    out = Overview(today, fiscal_year_start(today))
    queue = waiting(hub.store, person.org)
    out.queue_link = sum(1 for w in queue if w.reason == "waiting_for_link")
    out.queue_residence = len(queue) - out.queue_link
    children: list[str] = []
    overdue: list[tuple[str, str, str, int]] = []
    urgent: dict[str, set[str]] = {}
    if jiso:
        children += joint_cases(hub, person.org).values()
    else:
        index = center_cases(hub.store, person.org)
        children += [v["child"] for v in index.cases.values() if v["state"] == "open"]
        children += index.plans.values()
        overdue, listed_now = overdue_counts(hub.store, hub.settings, hub.overdue_lines, reader=person.org, today=today)
        children += listed_now  # as listed_children gives them, from the rosters kept with the overdue lines
        children += [child for _, child, _, _ in overdue]
        for t in index.transfers.values():
            if t["to"] == person.org and not t["acknowledged_at"]:
                out.transfers_to_acknowledge.add(t["child"], t["case"])
        urgent = urgent_waiting(hub.store, person.org)  # the urgent inbox: decided with the others, once per child
        children += urgent
    children = list(dict.fromkeys(children))
    registry = hub.store.registry()
    ahead = hub.ledger_rows.ahead(
        person.org,
        person.role,
        {},
        children=children,
        purpose="support",
        t=hub.clock(),
        orgs=registry.orgs,
        registry_version=registry.version or 0,
        settings=hub.settings,
        user=person.user,
    )
    month_end = _month_end(today)
    named: list[str] = []
    for child in children:
        decided = ahead.kept[child].decided
        if not decided.decision.allowed:
            continue
        if not jiso and child in urgent:
            found = urgent_in(child, decided.entries, urgent[child], person.org, ahead.reader.t)
            out.urgent += found
            if found:
                named.append(child)
        key = ("start page", person.org, jiso, out.year_start, month_end)
        lines = ahead.derive(
            child, key, lambda kept: _counted(kept, person.org, jiso, out.year_start, month_end, registry.orgs)
        )
        for name, note in lines:
            item: Item = getattr(out, name)
            item.add(child, note)
    out.urgent.sort(key=lambda r: r.at)
    for school, child, listing, n in overdue:  # counted, no child named: from the decided reads, not recorded
        if listing in ahead.derive(child, "entry ids", entry_ids):
            out.overdue_by_school[school] = out.overdue_by_school.get(school, 0) + n
    for name in ITEMS:
        getattr(out, name).name_first(listed)
        named += getattr(out, name).children
    out.reads = ahead.record_children(named, "start-page", {"today": today.isoformat()})
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
            hub.store,
            hub.settings,
            reader=person.org,
            today=hub.clock().astimezone(JST).date(),
            kept=hub.overdue_lines,
        ),
    )
