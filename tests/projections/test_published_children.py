"""Which children each organisation published about (``services.projections.published.PublishedChildren``)
recorded as one event per organisation and publish (``add_children``, staged by ``Batch.stage``, each entry
sealed under its child's key) instead of one event per child (``add_child``, what stores written before hold and
what the rebuild from the log makes): the same index either way, an erased child's entry gone with its key, and
a stream holding both kinds replays."""

from __future__ import annotations

import itertools
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.hub import Hub
from services.projections.published import PublishedChildren, published_children, published_children_from_log
from tests.helpers import daily_attendance, erased, ev, stored_topics

pytestmark = pytest.mark.store

ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020"},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": "442020"},
]
SOURCES = ("beppu-center", "beppu-es-1")
_runs = itertools.count()


def published_by(source: str, id: str, child: str, day: int) -> dict:
    """An event from ``source`` that needs no history: the centre's note, the school's daily attendance."""
    at = f"2026-04-{day:02d}T09:00:00+09:00"
    if source == "beppu-center":
        return ev(id, child=child, at=at)
    return daily_attendance(id, child, f"2026-04-{day:02d}", "present", True)


def registered(child: str) -> dict:
    return ev(
        f"reg-{child}", "child.registered", child=child, at="2026-04-01T09:00:00+09:00", payload={"residence": "442020"}
    )


@pytest.fixture(scope="module")
def hub_database(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('published') / 'hub.db'}"


events = st.lists(
    st.tuples(st.sampled_from(SOURCES), st.integers(min_value=0, max_value=3), st.integers(min_value=2, max_value=28)),
    min_size=1,
    max_size=12,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=events, cuts=st.lists(st.integers(min_value=1, max_value=11), max_size=4))
def test_the_index_staged_per_publish_is_the_index_rebuilt_from_the_log(hub_database, clock, events, cuts):
    """Random events of two organisations about four children, in random batches (a child's registration in the
    first): the index the hub keeps, the index a new process loads and the index rebuilt from the log one
    ``add_child`` each (``published_children_from_log``) name the same children with the same first ``at``."""
    clock.at = datetime.fromisoformat("2026-05-01T09:00:00+09:00")
    run = next(_runs)
    children = [f"r{run}-c{n}" for n in range(4)]
    envelopes = [published_by(source, f"r{run}-e{n}", children[c], day) for n, (source, c, day) in enumerate(events)]
    bounds = sorted({c for c in cuts if c < len(envelopes)})
    batches = [envelopes[a:b] for a, b in zip([0, *bounds], [*bounds, len(envelopes)])]
    batches[0] = [registered(child) for child in children] + batches[0]
    hub = Hub(hub_database, clock=clock)
    try:
        hub.load_orgs(ORGS)
        for batch in batches:
            assert {r.outcome for r in hub.publish(batch)} == {"accepted"}
        kept = {source: published_children(hub.store, source) for source in SOURCES}
    finally:
        hub.close()
    fresh = Hub(hub_database, clock=clock)
    try:
        loaded = {source: published_children(fresh.store, source) for source in SOURCES}
        rebuilt = {
            i.source: dict(i.children) for i in published_children_from_log(fresh.store.recorder, fresh.store.mapper)
        }
    finally:
        fresh.close()
    first: dict[str, dict[str, str]] = {source: {} for source in SOURCES}
    for envelope in [e for batch in batches for e in batch]:
        at = datetime.fromisoformat(envelope["at"]).isoformat()
        first[envelope["source"]].setdefault(envelope["child"], at)
    for source in SOURCES:
        mine = set(children)
        assert {c: a for c, a in kept[source].items() if c in mine} == first[source]
        assert {c: a for c, a in loaded[source].items() if c in mine} == first[source]
        assert {c: a for c, a in rebuilt.get(source, {}).items() if c in mine} == first[source]


def test_one_event_per_publish_and_an_erased_child_leaves_it(tmp_path, clock):
    """Three children in one publish: one ``ChildrenIndexed``; after one child's erasure a new process's index
    names the other two."""
    clock.at = datetime.fromisoformat("2026-05-01T09:00:00+09:00")
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = Hub(database, clock=clock)
    try:
        hub.load_orgs(ORGS)
        batch = [registered(c) for c in ("c1", "c2", "c3")]
        batch += [published_by("beppu-es-1", f"d-{c}", c, 13) for c in ("c1", "c2", "c3")]
        assert {r.outcome for r in hub.publish(batch)} == {"accepted"}
        stream = PublishedChildren.create_id("beppu-es-1")
        topics = stored_topics(hub.store, stream)
        assert topics == ["Created", "ChildrenIndexed"]
        erasure = erased("c2-erased", "c2")
        assert [r.outcome for r in hub.publish([erasure])] == ["accepted"]
    finally:
        hub.close()
    fresh = Hub(database, clock=clock)
    try:
        assert sorted(published_children(fresh.store, "beppu-es-1")) == ["c1", "c3"]
    finally:
        fresh.close()


def test_a_stream_of_one_event_a_child_goes_on_with_one_event_a_publish(tmp_path, clock):
    """An index written the old way (``ChildIndexed`` per child) takes a publish the new way: a child already in
    it keeps its first ``at``, a new one is added, and a new process replays both kinds."""
    clock.at = datetime.fromisoformat("2026-05-01T09:00:00+09:00")
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = Hub(database, clock=clock)
    try:
        hub.load_orgs(ORGS)
        old = PublishedChildren("beppu-es-1")  # as main's code kept it
        old.add_child(child="c1", at="2026-04-02T09:00:00+09:00")
        hub.store.save(old)
        batch = [registered("c1"), registered("c2")]
        batch += [published_by("beppu-es-1", "d-c1", "c1", 13), published_by("beppu-es-1", "d-c2", "c2", 14)]
        assert {r.outcome for r in hub.publish(batch)} == {"accepted"}
    finally:
        hub.close()
    fresh = Hub(database, clock=clock)
    try:
        stream = PublishedChildren.create_id("beppu-es-1")
        topics = stored_topics(fresh.store, stream)
        assert topics == ["Created", "ChildIndexed", "ChildrenIndexed"]
        assert published_children(fresh.store, "beppu-es-1") == {
            "c1": "2026-04-02T09:00:00+09:00",
            "c2": "2026-04-14T09:00:00+09:00",
        }
    finally:
        fresh.close()
