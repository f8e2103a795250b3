"""An organisation's family-support index (``services.projections.family_support.ServiceDesk``) recorded as one
event per desk and publish (``change``, staged by ``Batch.stage``, each entry sealed under its child's key)
instead of one event per change (``note_child``, ``add_report``, ``acknowledge``: what stores written before
hold): the same desks either way, acknowledgements of reports in the same publish included, an erased child's
entries gone with its key, and a stream holding both kinds replays."""

from __future__ import annotations

import itertools
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.model import Recorded
from services.hub import Hub
from services.projections.family_support import BETWEEN_KINDS, CENTRE_KINDS, REPORT_KINDS, ServiceDesk, service_desk
from tests.helpers import erased, ev, stored_topics

pytestmark = pytest.mark.store

ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020"},
    {"id": "visit-a", "type": "service_provider", "municipality": "442020"},
    {"id": "visit-b", "type": "service_provider", "municipality": "442020"},
]
DESKS = ("beppu-center", "visit-a", "visit-b")
_runs = itertools.count()


def registered(child: str) -> dict:
    return ev(
        f"reg-{child}", "child.registered", child=child, at="2026-04-01T09:00:00+09:00", payload={"residence": "442020"}
    )


def report(id: str, child: str, provider: str, day: int, urgent: bool) -> dict:
    payload: dict = {"date": f"2026-04-{day:02d}", "observations": "訪問時の様子"}
    if urgent:
        payload |= {"urgent": True, "urgent_reason": "親から叩かれていると話した"}
    return ev(
        id,
        "visit.report",
        child=child,
        source=provider,
        basis="commissioned",
        to="beppu-center",
        at=f"2026-04-{day:02d}T10:00:00+09:00",
        payload=payload,
    )


def acknowledgement(id: str, child: str, provider: str, report: str, day: int) -> dict:
    return ev(
        id,
        "report.acknowledged",
        child=child,
        source="beppu-center",
        basis="commissioned",
        to=provider,
        at=f"2026-04-{day:02d}T15:00:00+09:00",
        payload={"report": report},
    )


def referred(id: str, child: str, provider: str, day: int) -> dict:
    """The centre's referral of ``child`` to ``provider`` (事業者への依頼): a child noted in both desks."""
    return ev(
        id,
        "service.referred",
        child=child,
        source="beppu-center",
        basis="commissioned",
        to=provider,
        at=f"2026-04-{day:02d}T11:00:00+09:00",
        payload={"referral": f"F-{id}", "service": "養育支援訪問事業", "start": "2026-05-15", "summary": "育児不安"},
    )


def recommended(id: str, child: str, day: int) -> dict:
    """The centre's recommendation (利用勧奨) for ``child``: a child noted in the centre's desk only."""
    return ev(
        id,
        "service.recommended",
        child=child,
        source="beppu-center",
        basis="internal",
        at=f"2026-04-{day:02d}T11:00:00+09:00",
        payload={"recommendation": f"R-{id}", "service": "養育支援訪問事業", "form": "written", "reason": "育児負担"},
    )


def sides(e: dict) -> list[str]:
    """The desks an event names, as ``keep_service_desk`` before ``ServiceDesk.change`` saw them: both sides of a
    ``commissioned`` report, referral, monitoring or end and of an acknowledgement; the centre alone for its
    recommendations, their results and its orders."""
    if e["basis"] == "commissioned" and e.get("to") and (e["kind"] in REPORT_KINDS or e["kind"] in BETWEEN_KINDS):
        return [e["source"], e["to"]]
    if e["kind"] == "report.acknowledged" and e.get("to"):
        return [e["source"], e["to"]]
    if e["kind"] in CENTRE_KINDS:
        return [e["source"]]
    return []


def indexed_one_event_each(org: str, published: list[dict]) -> ServiceDesk:
    """What the code before ``ServiceDesk.change`` kept for ``org``: one ``note_child``, ``add_report`` or
    ``acknowledge`` per published event that names the desk, as its ``keep_service_desk`` did."""
    desk = ServiceDesk(org)
    for e in published:
        if org not in sides(e):
            continue
        at = datetime.fromisoformat(e["at"]).isoformat()
        if e["kind"] in REPORT_KINDS:
            desk.add_report(
                report=e["id"],
                child=e["child"],
                kind=e["kind"],
                source=e["source"],
                to=str(e["to"]),
                at=at,
                urgent=bool(e["payload"].get("urgent")),
            )
        elif e["kind"] == "report.acknowledged":
            found = desk.reports.get(str(e["payload"]["report"]))
            if found is not None and found["child"] == e["child"]:
                desk.acknowledge(report=found["report"], acknowledgement=e["id"], at=at, child=e["child"])
        else:
            desk.note_child(child=e["child"], at=at)
    return desk


@pytest.fixture(scope="module")
def hub_database(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('desk') / 'hub.db'}"


steps = st.lists(
    st.tuples(
        st.sampled_from(["report", "acknowledgement", "referral", "recommendation"]),
        st.integers(min_value=0, max_value=2),  # the child
        st.sampled_from(["visit-a", "visit-b"]),
        st.integers(min_value=0, max_value=11),  # which earlier report an acknowledgement names
        st.booleans(),  # urgent
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps, cuts=st.lists(st.integers(min_value=1, max_value=11), max_size=4))
def test_the_desks_staged_per_publish_are_the_desks_of_one_event_a_change(hub_database, clock, steps, cuts):
    """Random reports of two providers about three children, acknowledgements of earlier ones (sometimes of
    another child's report, sometimes again), and the centre's referrals and recommendations (a child noted), in
    random batches: every desk the hub keeps, and every desk a new process loads, is the desk of one event per
    change built from the events the hub accepted, in order."""
    clock.at = datetime.fromisoformat("2026-05-01T09:00:00+09:00")
    run = next(_runs)
    children = [f"r{run}-c{n}" for n in range(3)]
    envelopes: list[dict] = []
    reports: list[dict] = []
    for n, (step, c, provider, which, urgent) in enumerate(steps):
        if step == "referral":
            envelopes.append(referred(f"r{run}-f{n}", children[c], provider, 2 + n))
        elif step == "recommendation":
            envelopes.append(recommended(f"r{run}-s{n}", children[c], 2 + n))
        elif step == "report" or not reports:
            envelopes.append(report(f"r{run}-v{n}", children[c], provider, 2 + n, urgent))
            reports.append(envelopes[-1])
        else:
            named = reports[which % len(reports)]
            child = children[c] if urgent else named["child"]  # now and then another child's report
            envelopes.append(acknowledgement(f"r{run}-a{n}", child, named["source"], named["id"], 2 + n))
    bounds = sorted({c for c in cuts if c < len(envelopes)})
    batches = [envelopes[a:b] for a, b in zip([0, *bounds], [*bounds, len(envelopes)])]
    accepted: list[dict] = []
    hub = Hub(hub_database, clock=clock)
    try:
        hub.load_orgs(ORGS)
        assert {r.outcome for r in hub.publish([registered(c) for c in children])} == {"accepted"}
        for batch in batches:
            for envelope, result in zip(batch, hub.publish(batch)):
                if result.outcome == "accepted":
                    accepted.append(envelope)
                else:  # referrals and recommendations (a child noted) all count: the path is exercised
                    assert envelope["kind"] in REPORT_KINDS | {"report.acknowledged"}
        kept = {org: service_desk(hub.store, org) for org in DESKS}
    finally:
        hub.close()
    fresh = Hub(hub_database, clock=clock)
    try:
        loaded = {org: service_desk(fresh.store, org) for org in DESKS}
    finally:
        fresh.close()
    mine = set(children)
    for org in DESKS:
        expected = indexed_one_event_each(org, accepted)
        for desk in (kept[org], loaded[org]):
            assert {c: at for c, at in desk.children.items() if c in mine} == expected.children
            assert {r: v for r, v in desk.reports.items() if v["child"] in mine} == expected.reports


def test_one_event_per_desk_and_publish_and_an_erased_child_leaves_it(tmp_path, clock):
    """Two children's reports and the acknowledgement of one, in one publish: one ``DeskChanged`` in each desk;
    after one child's erasure a new process's desks hold the other child's report only."""
    clock.at = datetime.fromisoformat("2026-05-01T09:00:00+09:00")
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = Hub(database, clock=clock)
    try:
        hub.load_orgs(ORGS)
        batch = [registered("c1"), registered("c2")]
        batch += [report("v1", "c1", "visit-a", 2, True), report("v2", "c2", "visit-a", 3, False)]
        batch += [acknowledgement("a1", "c1", "visit-a", "v1", 4)]
        assert {r.outcome for r in hub.publish(batch)} == {"accepted"}
        for org in ("beppu-center", "visit-a"):
            stream = ServiceDesk.create_id(org)
            topics = stored_topics(hub.store, stream)
            assert topics == ["Created", "DeskChanged"]
        desk = service_desk(hub.store, "beppu-center")
        assert desk.reports["v1"]["acknowledgement"] == "a1" and desk.reports["v2"]["acknowledgement"] is None
        erasure = erased("c1-erased", "c1")
        assert [r.outcome for r in hub.publish([erasure])] == ["accepted"]
    finally:
        hub.close()
    fresh = Hub(database, clock=clock)
    try:
        for org in ("beppu-center", "visit-a"):
            desk = service_desk(fresh.store, org)
            assert sorted(desk.reports) == ["v2"] and sorted(desk.children) == ["c2"]
    finally:
        fresh.close()


def test_a_desk_of_one_event_a_change_goes_on_with_one_event_a_publish(tmp_path, clock):
    """A desk written the old way (``ServiceReportIndexed``) takes, the new way, the acknowledgement of its report
    and one naming another child's report (not recorded), and a new process replays both kinds."""
    clock.at = datetime.fromisoformat("2026-05-01T09:00:00+09:00")
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = Hub(database, clock=clock)
    try:
        desk = indexed_one_event_each("beppu-center", [report("v1", "c1", "visit-a", 2, True)])  # as main's code
        hub.store.save(desk)
        staged = [
            acknowledgement("a0", "c2", "visit-a", "v1", 3),  # another child's report: not recorded
            acknowledgement("a1", "c1", "visit-a", "v1", 4),
            acknowledgement("a2", "c1", "visit-a", "v1", 5),  # the first acknowledgement counts
        ]
        desk.record_staged([recorded(e) for e in staged])
        hub.store.save(desk)
    finally:
        hub.close()
    fresh = Hub(database, clock=clock)
    try:
        stream = ServiceDesk.create_id("beppu-center")
        stored = fresh.store.recorder.select_events(stream)
        assert [e.topic.rsplit(".", 1)[-1] for e in stored] == ["Created", "ServiceReportIndexed", "DeskChanged"]
        [changed] = [e for e in fresh.store.mapper.to_domain_events(stored) if type(e).__name__ == "DeskChanged"]
        assert [entry["acknowledgement"] for entry in changed.per_child] == ["a1", "a2"]
        entry = service_desk(fresh.store, "beppu-center").reports["v1"]
        assert entry["acknowledgement"] == "a1" and entry["acknowledged_at"] == "2026-04-04T15:00:00+09:00"
    finally:
        fresh.close()


def recorded(envelope: dict) -> Recorded:
    """The event as the hub records it (what a publish stages), from its envelope."""
    return Recorded(
        position=1,
        id=envelope["id"],
        kind=envelope["kind"],
        child=envelope["child"],
        source=envelope["source"],
        basis=envelope["basis"],
        at=datetime.fromisoformat(envelope["at"]),
        payload=envelope["payload"],
        audience=frozenset(),
        to=envelope.get("to"),
    )
