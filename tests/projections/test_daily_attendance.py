"""A child's daily attendance (``services.projections.rosters.DailyAttendance``) recorded as one event per child
and publish (``record_days``, staged by ``Batch.stage``) instead of one event per day (``record_day``, what
stores written before hold): the same days either way, from the hub's own index, from a new process, and from
the published events replayed one ``record_day`` each; a stream that holds both kinds replays; and an erased child's
days go with its key."""

from __future__ import annotations

import itertools
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.school import content_of
from events.sealing import Shredded
from services.hub import Hub
from services.projections.rosters import DailyAttendance, peek
from tests.helpers import daily_attendance, erased, ev, stored_topics

pytestmark = pytest.mark.store

ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020"},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": "442020"},
]
DAYS = ["2026-04-13", "2026-04-14", "2026-04-15", "2026-04-16"]
KEY = ("beppu-es-1", "beppu-center")  # school, centre
_children = itertools.count()


def registered(child: str) -> dict:
    return ev(
        f"reg-{child}",
        "child.registered",
        child=child,
        at="2026-04-01T09:00:00+09:00",
        payload={"residence": "442020"},
    )


def replayed_one_a_day(child: str, published: list[dict]) -> DailyAttendance:
    """What the code before ``record_days`` kept: one ``record_day`` per published ``attendance.daily``."""
    index = DailyAttendance("beppu-es-1", child, "beppu-center")
    for envelope in published:
        payload = envelope["payload"]
        index.record_day(
            day=str(payload["date"]),
            event_id=envelope["id"],
            content=content_of(payload),
            status=str(payload["status"]),
            contacted=payload.get("contacted"),
            child=envelope["child"],
        )
    return index


@pytest.fixture(scope="module")
def hub_database(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('daily') / 'hub.db'}"


rows = st.lists(
    st.tuples(st.sampled_from(DAYS), st.sampled_from(["present", "absent", "late"]), st.booleans()),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows, cuts=st.lists(st.integers(min_value=1, max_value=11), max_size=4))
def test_a_child_s_days_are_the_same_staged_per_publish_as_one_event_a_day(hub_database, clock, rows, cuts):
    """Random days (a day sent again with other content: a correction) published in random batches: the index
    the hub keeps, the index a new process loads, and the published events replayed one ``record_day`` each
    (the old events) hold the same days, the latest per day."""
    clock.at = datetime.fromisoformat("2026-05-01T09:00:00+09:00")
    child = f"c{next(_children)}"
    envelopes = [daily_attendance(f"{child}-d{n}", child, *row) for n, row in enumerate(rows)]
    bounds = sorted({c for c in cuts if c < len(envelopes)})
    batches = [envelopes[a:b] for a, b in zip([0, *bounds], [*bounds, len(envelopes)])]
    hub = Hub(hub_database, clock=clock)
    try:
        hub.load_orgs(ORGS)
        assert [r.outcome for r in hub.publish([registered(child)])] == ["accepted"]
        for batch in batches:
            assert {r.outcome for r in hub.publish(batch)} == {"accepted"}
        kept = peek(hub.store, DailyAttendance, KEY[0], child, KEY[1]).days
    finally:
        hub.close()
    fresh = Hub(hub_database, clock=clock)
    try:
        stream = DailyAttendance.create_id(KEY[0], child, KEY[1])
        topics = stored_topics(fresh.store, stream)
        assert topics == ["Created"] + ["DaysRecorded"] * len(batches)  # one event per publish
        loaded = fresh.store.replayed(stream).days
    finally:
        fresh.close()
    latest = {day: envelope for envelope in envelopes for day in [envelope["payload"]["date"]]}
    assert sorted(kept) == sorted(latest)
    assert {d: r.id for d, r in kept.items()} == {d: e["id"] for d, e in latest.items()}
    assert kept == loaded == replayed_one_a_day(child, envelopes).days


def test_a_stream_of_one_event_a_day_goes_on_with_one_event_a_publish(tmp_path, clock):
    """A child's index written the old way (``DayRecorded`` per day, as the code before ``record_days`` stored
    it) takes a publish the new way, and replays both kinds in a new process: the latest per day."""
    clock.at = datetime.fromisoformat("2026-05-01T09:00:00+09:00")
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    old = [
        daily_attendance("old-1", "c1", DAYS[0], "absent", False),
        daily_attendance("old-2", "c1", DAYS[1], "present", True),
    ]
    new = [
        daily_attendance("new-1", "c1", DAYS[1], "late", True),
        daily_attendance("new-2", "c1", DAYS[2], "absent", True),
    ]
    hub = Hub(database, clock=clock)
    try:
        hub.load_orgs(ORGS)
        hub.store.save(replayed_one_a_day("c1", old))  # the index as main's code kept it
        assert [r.outcome for r in hub.publish([registered("c1"), *new])] == ["accepted"] * 3
    finally:
        hub.close()
    fresh = Hub(database, clock=clock)
    try:
        stream = DailyAttendance.create_id(KEY[0], "c1", KEY[1])
        topics = stored_topics(fresh.store, stream)
        assert topics == ["Created", "DayRecorded", "DayRecorded", "DaysRecorded"]
        days = fresh.store.replayed(stream).days
    finally:
        fresh.close()
    assert {d: r.id for d, r in days.items()} == {DAYS[0]: "old-1", DAYS[1]: "new-1", DAYS[2]: "new-2"}
    assert days == replayed_one_a_day("c1", [*old, *new]).days


def test_an_erased_child_s_days_go_with_its_key(tmp_path, clock):
    """Days published for two children, one erased: in a new process the erased child's stored ``DaysRecorded``
    loads as ``Shredded`` and its days are gone, and the other child's days are as published. ``DaysRecorded`` is
    sealed under the child's key only because ``record_days`` takes ``child`` (``events.sealing.key_scope``):
    without it the days would be sealed under the hub's key and outlive the erasure."""
    clock.at = datetime.fromisoformat("2026-05-01T09:00:00+09:00")
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    c1 = [
        daily_attendance("c1-d0", "c1", DAYS[0], "absent", False),
        daily_attendance("c1-d1", "c1", DAYS[1], "late", True),
    ]
    c2 = [
        daily_attendance("c2-d0", "c2", DAYS[0], "present", True),
        daily_attendance("c2-d1", "c2", DAYS[1], "absent", False),
    ]
    erasure = erased("c1-erased", "c1")
    hub = Hub(database, clock=clock)
    try:
        hub.load_orgs(ORGS)
        assert {r.outcome for r in hub.publish([registered("c1"), registered("c2"), *c1, *c2])} == {"accepted"}
        assert sorted(peek(hub.store, DailyAttendance, KEY[0], "c1", KEY[1]).days) == DAYS[:2]
        assert [r.outcome for r in hub.publish([erasure])] == ["accepted"]
    finally:
        hub.close()
    fresh = Hub(database, clock=clock)
    try:
        erased_stream = DailyAttendance.create_id(KEY[0], "c1", KEY[1])
        stored = fresh.store.recorder.select_events(erased_stream)
        [days_recorded] = [e for e in stored if e.topic.endswith(".DaysRecorded")]
        assert isinstance(fresh.store.mapper.to_domain_event(days_recorded), Shredded)
        assert fresh.store.replayed(erased_stream).days == {}
        assert peek(fresh.store, DailyAttendance, KEY[0], "c1", KEY[1]).days == {}
        other = fresh.store.replayed(DailyAttendance.create_id(KEY[0], "c2", KEY[1])).days
    finally:
        fresh.close()
    assert other == replayed_one_a_day("c2", c2).days
    assert {d: r.id for d, r in other.items()} == {DAYS[0]: "c2-d0", DAYS[1]: "c2-d1"}
