"""The proof that rows decided ahead (``services.casework.rows``) show what a timeline read would (issue 16 item 1).

On random small worlds over time (the generators and oracle of ``tests/consent/test_policy_properties.py``), with
publishes between views and the clock moved back and forth across the events' times, consent expiries and the ends
of emergency windows, every ledger page (progress or joint, random filters, sort and page) and every agenda must:

- show exactly the rows that a ``Hub.timeline`` read of every child at that moment, ``build_row`` and the same
  query would show, equal field by field, with the same ``total``;
- leave exactly one new access record per child shown and none for any other child, each with the decision,
  content digest, child position, registry version and settings that the timeline read at that moment recorded;

and ``audit verify`` replays every record exactly. The start page's counts (``services.web.casebook.overview``, on
reads decided ahead for purpose ``support``) are checked the same way: every count and every child listed under it
equal what ``Hub.timeline`` reads of every child at that moment give (the first children of each count named, the
others counted), and one new access record per child the page names (equal to that read's), none for any other. A clock set back before a kept decision's ``t`` decides again
(``test_a_clock_set_back_decides_again``). ``decision_valid_until`` is checked on its own too: a decision
holds, unchanged, from its ``t`` up to (not including) the instant it names.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from consent.model import Reader
from consent.policy import decide_read, decision_valid_until
from events.clock import JST
from events.store import ChildRecord
from services.audit.replay import access_records
from services.casework.ledger import CaseViews, build_row
from services.casework.ledger_query import ALERTS_JA, REVIEW_JA, SORTS, LedgerQuery
from services.hub import Hub, SettableClock
from services.reading import view_log
from services.web import casebook
from services.web.session import Person
from tests.consent.test_policy_properties import (
    BASE_ORGS,
    FOCUS,
    PROPERTY_SETTINGS,
    ROLES,
    SLOTS,
    T0,
    TARGET_LIST_KINDS,
    Oracle,
    Run,
    draw_event,
    hub_settings,
    moment,
    time_of,
    worlds,
)

pytestmark = pytest.mark.store

KINDS = (
    FOCUS["CASE"]
    | FOCUS["LEDGER"]
    | FOCUS["CONSENT"]
    | FOCUS["EMERGENCY"]
    | TARGET_LIST_KINDS  # target lists and monthly reports: the start page's overdue counts (kept per school)
    | {"case.reviewed", "absence.alert", "attendance.monthly"}
)


def moments(run: Run) -> list[datetime]:
    """The instants where a decision may change: every event's at, consent expiries, emergency window ends."""
    hours = timedelta(hours=run.oracle.emergency_hours)
    out = {T0}
    for events in run.oracle.events.values():
        for e in events:
            out.add(e.at)
            if e.kind == "emergency.declared":
                out |= {e.at + hours, e.at + hours - timedelta(seconds=1)}
            if e.kind == "consent.granted" and "valid_until" in e.payload:
                out.add(moment(e.payload["valid_until"]))
    return sorted(out)


def draw_query(data) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, choices in (
        ("status", [""] * 6 + ["open", "closed", "transferred"]),
        ("review", [""] * 6 + [*REVIEW_JA]),
        ("alerts", [""] * 6 + [*ALERTS_JA]),
        ("member", [""] * 6 + ["cA", "cB", "jA"]),
        ("sort", ["", *SORTS]),
        ("order", ["", "asc", "desc"]),
    ):
        value = data.draw(st.sampled_from(choices), label=name)
        if value:
            params[name] = value
    params["per_page"] = str(data.draw(st.integers(1, 3), label="per page"))
    params["page"] = str(data.draw(st.sampled_from([1, 1, 1, 2, 3]), label="page"))
    return params


def reference(hub: Hub, org: str, role: str, cases: dict[str, str], t: datetime) -> tuple[list, dict[str, Any]]:
    """The rows of ``cases`` from ``Hub.timeline`` reads at ``t`` (recorded), and each child's access record."""
    orgs = hub.orgs()
    rows, records = [], {}
    by_child: dict[str, list[str]] = {}
    for case, child in cases.items():
        by_child.setdefault(child, []).append(case)
    stored = None
    for child, child_cases in by_child.items():
        timeline = hub.timeline(org=org, role=role, child=child, purpose="meeting")
        stored = stored or {r["id"]: r for r in access_records(hub.store)}
        records[child] = timeline.access_record
        if timeline.allowed:
            rows += [r for case in child_cases if (r := build_row(case, child, timeline.entries, orgs, t)) is not None]
    rows.sort(key=lambda r: (r.center, r.registered_at, r.case))
    everything = {r["id"]: r for r in access_records(hub.store)}
    return rows, {child: everything[record] for child, record in records.items()}


def view_records(hub: Hub) -> list[dict[str, Any]]:
    return [dict(hub.store.mapper.to_domain_event(s).record) for s in view_log.stored_views(hub.store)]


def check_view_record(
    hub: Hub, before: int, org: str, role: str, view: str, consulted: set[str], reads: list[str], records: list
) -> None:
    """The view left exactly one view record, in its reader's chain, naming exactly the ``consulted`` children and
    the access records of those shown (``records``: the view's new access records)."""
    new = view_records(hub)[before:]
    assert len(new) == 1, new
    (record,) = new
    assert record["view"] == view and record["reader"]["org"] == org and record["reader"]["role"] == role
    ids = view_log.consulted_ids(hub.store, record)
    assert ids == sorted(consulted) and record["consulted"]["count"] == len(consulted)
    assert record["shown"] == {r["child"]: r["id"] for r in records}
    assert set(record["shown"].values()) == set(reads)
    assert set(record["shown"]) <= set(ids)
    assert all(r["view"] == record["id"] for r in records)


SAME = ("child", "decision", "content_digest", "child_position", "registry_version", "settings", "policy_version", "t")


def check_view(hub: Hub, clock: SettableClock, data) -> None:
    joint = hub.settings.joint_ledger and data.draw(st.integers(0, 2), label="joint") > 0
    org = data.draw(st.sampled_from(["jA", "jB"] if joint else ["cA", "cB", "cC"]), label="viewer")
    role = data.draw(st.sampled_from(ROLES), label="role")
    views = CaseViews(hub)
    before = {r["id"] for r in access_records(hub.store)}
    views_before = len(view_records(hub))
    agenda = data.draw(st.integers(0, 3), label="agenda") == 0
    t = clock()
    if agenda:
        on = date(2026, 4, 1) + timedelta(days=data.draw(st.integers(0, 200), label="meeting day"))
        got = views.agenda(org, on, role=role)
        shown, reads = got.attention + got.confirmation, got.reads
        cases = views._cases(org, joint, {"open"})
    else:
        query = LedgerQuery(draw_query(data))
        page = views.ledger(org, query, joint=joint, role=role)
        shown, reads = page.rows, page.reads
        cases = views._cases(org, joint, None)
    new = [r for r in access_records(hub.store) if r["id"] not in before]
    event(f"{'agenda' if agenda else 'joint' if joint else 'ledger'} shows {min(len(shown), 3)}+ rows")
    # one new record per child shown, no other
    assert sorted(r["child"] for r in new) == sorted({r.child for r in shown})
    assert {r["id"] for r in new} == set(reads)
    want, recorded = reference(hub, org, role, cases, t)
    allowed = {child for child, record in recorded.items() if record["decision"]["allowed"]}
    name = "agenda" if agenda else "joint-ledger" if joint else "ledger"
    check_view_record(hub, views_before, org, role, name, allowed, reads, new)
    if agenda:
        due = [r for r in want if r.status == "open" and date.fromisoformat(r.next_review) <= on]
        # 要検討 as the agenda decides it on the meeting day (a review overdue by more than 30 days is one of its own)
        attention = sorted(
            (r for r in due if r.attention_reasons(on)), key=lambda r: (not r.open_alerts, r.next_review, r.case)
        )
        confirmation = sorted((r for r in due if not r.attention_reasons(on)), key=lambda r: (r.next_review, r.case))
        assert shown == attention + confirmation
    else:
        again = LedgerQuery(draw_query_again(query))
        kept = again.apply(want, t.astimezone(JST).date())
        assert page.total == len(kept)
        assert shown == again.window(kept)
    for r in new:  # the same record a timeline read at that moment made
        expected = recorded[r["child"]]
        assert {k: r[k] for k in SAME} == {k: expected[k] for k in SAME}, r["child"]


ITEMS = casebook.ITEMS


def reference_overview(hub: Hub, person: Person, today: date) -> tuple[dict[str, Any], dict[str, str]]:
    """The start page's lists and overdue counts as ``Hub.timeline`` reads (purpose support) of every child it
    covers give them at this moment (the start page as it was before it was decided ahead), and each child's
    access record id."""
    org = hub.orgs()[person.org]
    jiso = org.type == casebook.JISO
    if jiso:
        children = list(casebook.joint_cases(hub, person.org).values())
        overdue = []
    else:
        index = casebook.center_cases(hub.store, person.org)
        children = [v["child"] for v in index.cases.values() if v["state"] == "open"]
        children += [*index.plans.values(), *casebook.listed_children(hub, person.org)]
        overdue = casebook.overdue_reports(hub.store, hub.settings, reader=person.org, today=today)
        children += [r.child for r in overdue]
        event(f"start page has {min(len(overdue), 2)}+ overdue lines before reads")
    want: dict[str, Any] = {name: {} for name in ITEMS}
    records, visible = {}, {}
    year_start, month_end = casebook.fiscal_year_start(today), casebook._month_end(today)
    for child in dict.fromkeys(children):
        timeline = casebook.read(hub, person, child)
        records[child] = timeline.access_record
        if not timeline.allowed:
            continue
        visible[child] = {e.id for e in timeline.entries}
        rows = [r for r in casebook.case_rows(timeline, hub) if r.status == "open" and (jiso or r.center == org.id)]

        def add(name: str, note: str, child: str = child) -> None:
            want[name].setdefault(child, []).append(note)

        for e in timeline.entries:
            if e.source != org.id and casebook.day_of(datetime.fromisoformat(e.at)) >= year_start:
                if e.kind == "absence.alert":
                    add("alerts_year", e.at[:10])
                elif e.kind in casebook.CONCERN_KINDS:
                    add("concerns_year", e.at[:10])
        for r in rows:
            [add("alerts_open", str(a["at"])[:10]) for a in r.open_alerts]
            [add("concerns_open", str(c["at"])[:10]) for c in r.concerns if c["source"] != org.id]
            if date.fromisoformat(r.next_review) <= month_end:
                add("reviews_due", f"{r.case}（{r.next_review}）")
        if not rows:
            for e in timeline.entries:
                if e.source != org.id and casebook.day_of(datetime.fromisoformat(e.at)) >= year_start:
                    if e.kind == "absence.alert":
                        add("alerts_open", e.at[:10])
                    elif e.kind in casebook.CONCERN_KINDS:
                        add("concerns_open", e.at[:10])
        for plan in casebook.plans_of(timeline):
            if plan.author == org.id and plan.review_due and date.fromisoformat(plan.review_due) <= month_end:
                add("plans_due", f"{plan.plan}（{plan.review_due}）")
    by_school: dict[str, int] = {}
    for report in overdue:
        if report.listing in visible.get(report.child, set()):
            by_school[report.school] = by_school.get(report.school, 0) + 1
    want["overdue_by_school"] = by_school
    return want, records


def check_start_page(hub: Hub, clock: SettableClock, data) -> None:
    org = data.draw(st.sampled_from(["cA", "cB", "cC", "jA", "jB"]), label="start page of")
    role = data.draw(st.sampled_from(ROLES), label="role")
    person = Person("職員", "sub-1", org, role)
    listed = data.draw(st.sampled_from([1, 2, casebook.LISTED]), label="children named per count")
    later = data.draw(st.sampled_from([0, 0, 45, 75]), label="days later")  # so that monthly reports are overdue
    clock.at = clock() + timedelta(days=later)
    today = clock().astimezone(JST).date()
    before = {r["id"] for r in access_records(hub.store)}
    views_before = len(view_records(hub))
    got = casebook.overview(hub, person, today, listed)
    new = [r for r in access_records(hub.store) if r["id"] not in before]
    named = {child for name in ITEMS for child in getattr(got, name).children} | {r.child for r in got.urgent}
    event(f"start page names {min(len(named), 2)}+ children")
    assert sorted(r["child"] for r in new) == sorted(named)  # one record per child named, no other
    assert {r["id"] for r in new} == set(got.reads)
    want, recorded = reference_overview(hub, person, today)
    for name in ITEMS:
        item = getattr(got, name)
        assert item.children == dict(list(want[name].items())[:listed]), name  # the first ones named
        assert item.more == max(0, len(want[name]) - listed), name
        assert item.count == sum(len(notes) for notes in want[name].values()), name  # all counted
    assert got.overdue_by_school == want["overdue_by_school"]
    event(f"start page counts {min(got.overdue_total, 2)}+ overdue reports")
    everything = {r["id"]: r for r in access_records(hub.store)}
    allowed = {child for child, record in recorded.items() if everything[record]["decision"]["allowed"]}
    check_view_record(hub, views_before, org, role, "start-page", allowed, got.reads, new)
    for r in new:
        expected = everything[recorded[r["child"]]]
        assert {k: r[k] for k in SAME} == {k: expected[k] for k in SAME}, r["child"]


def draw_query_again(query: LedgerQuery) -> dict[str, str]:
    return {
        "status": query.status,
        "review": query.review,
        "alerts": query.alerts,
        "member": query.member,
        "sort": query.sort,
        "order": query.order,
        "per_page": str(query.per_page),
        "page": str(query.page),
    }


@settings(max_examples=40, **PROPERTY_SETTINGS)
@given(world=worlds(), data=st.data())
def test_every_row_shown_is_the_row_of_a_timeline_read_at_that_moment_and_recorded_once(world, data):
    if data.draw(st.booleans(), label="jA covers every centre"):  # so that the joint ledger often has rows
        world["orgs"] = [
            dict(o, covers=["100001", "100002", "100003"]) if o["id"] == "jA" else o for o in world["orgs"]
        ]
    oracle = Oracle(
        {o["id"]: o for o in world["orgs"]}, world["integrated_center"], world["joint_ledger"], world["emergency_hours"]
    )
    clock = SettableClock(T0)
    hub = Hub("sqlite:///:memory:", clock=clock, settings=hub_settings(world))
    run = Run(hub, clock, oracle)
    try:
        hub.load_orgs(world["orgs"])
        children = world["children"]
        listed: list[tuple[str, str]] = []  # (child, centre) on s1's target list
        n = 0
        for i, child in enumerate(children):  # registered by a centre, with a case (abuse or not) of that centre
            center = data.draw(st.sampled_from(["cA", "cB", "cC"]), label="registering centre")
            case_type = data.draw(st.sampled_from(["abuse_physical", "abuse_neglect", "parenting"]), label="type")
            first = [
                ("child.registered", {"residence": oracle.orgs[center]["municipality"]}),
                ("case.registered", {"case": f"K{i + 1}", "category": "youhogo", "case_type": case_type}),
            ]
            if data.draw(st.booleans(), label="review due this month"):  # so that the start page names children
                first.append(("case.reviewed", {"case": f"K{i + 1}", "decision": "継続", "next_review": "2026-04-20"}))
            if data.draw(st.booleans(), label="on s1's target list"):  # so that monthly reports fall overdue
                first.append(("target_list.assigned", {"school": "s1", "student_no": f"S{i}", "from_month": "2026-04"}))
                listed.append((child, center))
            for kind, payload in first:
                n += 1
                raw = {
                    "id": f"e{n}",
                    "kind": kind,
                    "child": child,
                    "source": center,
                    "basis": "cwa-25-3" if kind == "target_list.assigned" else "internal",
                    "at": T0.isoformat(),
                    "payload": payload,
                } | ({"to": "s1"} if kind == "target_list.assigned" else {})
                run.publish([(raw, True)])
        for step in range(data.draw(st.integers(4, 12), label="steps")):
            if step < 2 or data.draw(st.integers(0, 2), label="action") < 1:
                batch = []
                for _ in range(data.draw(st.integers(1, 3), label="batch size")):
                    n += 1
                    batch.append(draw_event(data.draw, oracle, children, n, run.history, KINDS))
                run.publish(batch)
            if listed and data.draw(st.integers(0, 2), label="monthly report") == 0:  # s1 reports on a listed child
                child, center = data.draw(st.sampled_from(listed), label="reported")
                n += 1
                report = {
                    "id": f"e{n}",
                    "kind": "attendance.monthly",
                    "child": child,
                    "source": "s1",
                    "basis": "cwa-25-3",
                    "to": center,
                    "at": clock().isoformat(),
                    "payload": {
                        "month": data.draw(st.sampled_from(["2026-04", "2026-05"]), label="month"),
                        "school_days": 19,
                        "attended": 15,
                        "absent": 4,
                        "absent_without_contact": 2,
                    },
                }
                run.publish([(report, True)])
            for _ in range(data.draw(st.integers(1, 3), label="views")):  # the clock moves, back or forth
                clock.at = data.draw(
                    st.sampled_from(moments(run))
                    if data.draw(st.booleans())
                    else st.builds(time_of, st.integers(0, SLOTS)),
                    label="t",
                )
                if data.draw(st.integers(0, 3), label="start page") == 0:
                    check_start_page(hub, clock, data)
                else:
                    check_view(hub, clock, data)
        report = hub.verify()
        assert report.ok, [m.to_dict() for m in report.mismatches]
    finally:
        hub.close()


def test_a_clock_set_back_decides_again() -> None:
    """A decision kept at ``t2`` is not taken for a view at an earlier ``t1`` (a clock set back): a case closed at
    a time between them is closed on the page at ``t2`` and open, as a timeline read shows it, at ``t1``."""
    world = {"orgs": [*BASE_ORGS[:1], {"id": "jA", "type": casebook.JISO, "prefecture": "10", "covers": ["100001"]}]}
    world["orgs"] += BASE_ORGS[1:]
    clock = SettableClock(T0)
    hub = Hub("sqlite:///:memory:", clock=clock)
    try:
        hub.load_orgs(world["orgs"])
        base = {"child": "c1", "source": "cA", "basis": "internal"}
        batch = [
            {**base, "id": "e1", "kind": "child.registered", "at": T0.isoformat(), "payload": {"residence": "100001"}},
            {
                **base,
                "id": "e2",
                "kind": "case.registered",
                "at": T0.isoformat(),
                "payload": {"case": "K1", "category": "youhogo", "case_type": "abuse_physical"},
            },
        ]
        assert all(r.outcome == "accepted" for r in hub.publish(batch))
        clock.at = T0 + timedelta(hours=10)
        closed = {**base, "id": "e3", "kind": "case.closed", "at": (T0 + timedelta(hours=5)).isoformat()}
        assert hub.publish([{**closed, "payload": {"case": "K1", "reason": "終結"}}])[0].outcome == "accepted"
        views = CaseViews(hub)
        assert [r.status for r in views.ledger("cA", LedgerQuery({})).rows] == ["closed"]
        clock.at = T0 + timedelta(hours=1)  # set back, before the closure
        want, _ = reference(hub, "cA", "caseworker", {"K1": "c1"}, clock())
        assert [r.status for r in want] == ["open"]
        assert views.ledger("cA", LedgerQuery({})).rows == want
    finally:
        hub.close()


@settings(max_examples=25, **PROPERTY_SETTINGS)
@given(world=worlds(), data=st.data())
def test_a_decision_holds_until_its_valid_until(world, data):
    """``decision_valid_until``: from ``t`` up to the instant it names, every reader's decision is the same."""
    oracle = Oracle(
        {o["id"]: o for o in world["orgs"]}, world["integrated_center"], world["joint_ledger"], world["emergency_hours"]
    )
    clock = SettableClock(T0)
    hub = Hub("sqlite:///:memory:", clock=clock, settings=hub_settings(world))
    run = Run(hub, clock, oracle)
    try:
        hub.load_orgs(world["orgs"])
        for n in range(1, data.draw(st.integers(3, 14), label="events") + 1):
            run.publish([draw_event(data.draw, oracle, world["children"], n, run.history)])
        child = world["children"][0]
        record = hub.store.get_or_none(ChildRecord.create_id(child))
        events = list(record.entries) if record is not None else []
        orgs, current = hub.orgs(), hub.settings
        t = data.draw(st.sampled_from(moments(run)) | st.builds(time_of, st.integers(0, SLOTS)), label="t")
        until = decision_valid_until(events, current, t)
        assert until is None or until > t
        end = until or t + timedelta(days=30)
        later = [x for x in moments(run) if t <= x < end] + [end - timedelta(microseconds=1)]
        for org in ("cA", "cB", "jA", "s1", "p1"):
            for purpose in ("meeting", "emergency", "support"):
                role = data.draw(st.sampled_from(ROLES), label="role")
                first = decide_read(Reader(org, role, purpose, t), events, orgs, current)
                for t2 in later:
                    assert decide_read(Reader(org, role, purpose, t2), events, orgs, current) == first, (org, t2)
    finally:
        hub.close()


@pytest.mark.unit
def test_valid_until_is_the_next_instant_a_time_bound_fact_names() -> None:
    from consent.model import Settings
    from events.model import Recorded

    def ev(n: int, kind: str, hours: int, **payload: Any) -> Recorded:
        return Recorded(n, f"e{n}", kind, "c1", "cA", "internal", T0 + timedelta(hours=hours), payload, frozenset())

    events = [
        ev(1, "child.registered", 0, residence="100001"),
        ev(
            2,
            "consent.granted",
            1,
            plan="P1",
            version=1,
            recipients=["p1"],
            valid_until=(T0 + timedelta(hours=30)).isoformat(),
        ),
        ev(3, "emergency.declared", 2),
        ev(4, "note.recorded", 50, text="dated ahead"),
    ]
    hours3 = Settings(emergency_hours=3)
    assert decision_valid_until(events, hours3, T0) == T0 + timedelta(hours=1)
    assert decision_valid_until(events, hours3, T0 + timedelta(hours=2)) == T0 + timedelta(hours=5)  # window ends
    assert decision_valid_until(events, hours3, T0 + timedelta(hours=5)) == T0 + timedelta(hours=30)  # consent
    assert decision_valid_until(events, hours3, T0 + timedelta(hours=30)) == T0 + timedelta(hours=50)
    assert decision_valid_until(events, hours3, T0 + timedelta(hours=50)) is None


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dates()
    ),
    max_leaves=12,
)


@pytest.mark.unit
@settings(max_examples=200, deadline=None)
@given(values=st.lists(_JSON, min_size=8, max_size=8))
def test_a_row_as_json_is_what_asdict_gives_and_a_copy(values) -> None:
    """``CaseRow.to_dict`` (``plain_copy`` field by field) equals ``dataclasses.asdict`` plus the labels, for any
    JSON values in the fields (and tuples and dates, left to asdict's rule), and shares no container with the
    row (a caller changing the answer does not change a row decided ahead)."""
    import copy
    from dataclasses import asdict

    from services.casework.ledger import CaseRow

    history, members, review, attendance, alerts, concerns, ledger, changes = values
    row = CaseRow(
        case="K-1", child="c1", center="beppu-center", status="open", category="youhogo", case_type="neglect",
        case_type_history=[{"at": "2026-01-01", "to": history}], registered_at="2026-01-01", members=[members],
        last_review={"at": "2026-02-01", "decision": review}, next_review="2026-05-01", next_review_default=False,
        attendance={"m": attendance}, open_alerts=[alerts], concerns=[{"x": concerns}], ledger={"l": ledger},
        protection=False, changes=[changes], answers=[{"a": values}], reasons=["alert"],
    )  # fmt: skip
    before = copy.deepcopy(values)
    made = row.to_dict()
    expected = asdict(row) | {k: made[k] for k in ("category_ja", "case_type_ja", "status_ja")}
    assert made == expected and list(made) == list(expected)
    made["last_review"]["decision"] = "changed"
    made["answers"][0]["a"].append("changed")
    assert row.last_review["decision"] == before[2] and row.answers[0]["a"] == before
