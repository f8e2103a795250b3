"""The aggregate cache (``events.store.WeighedCache``): bounded by the number of aggregates and by their weight,
least recently used first, so that a hub process's memory does not grow with what it reads or imports; the hub's
shared indexes kept apart, never evicted by children's reads (``services.projections.indexes.SHARED_INDEXES``)."""

from __future__ import annotations

from uuid import uuid4

import pytest

from events.store import WeighedCache, cache_weight
from services.hub import Hub

pytestmark = pytest.mark.store


class Held:
    def __init__(self, n: int):
        self.items = list(range(n))
        self.name = "x"


def test_the_weight_of_an_aggregate_is_one_plus_its_entries():
    assert cache_weight(Held(0)) == 1
    assert cache_weight(Held(7)) == 8


def test_the_least_recently_used_aggregates_go_when_the_cache_weighs_too_much():
    cache = WeighedCache(maxsize=100, max_weight=30)
    a, b, c = uuid4(), uuid4(), uuid4()
    cache.put(a, Held(9))  # 10
    cache.put(b, Held(9))  # 20
    assert cache.get(a).items[-1] == 8  # a is now the most recently used
    cache.put(c, Held(14))  # 35 > 30: b goes, not a
    assert set(cache.entries) == {a, c} and cache.weight == 25
    heavy = uuid4()
    cache.put(heavy, Held(99))  # heavier than the bound alone: it stays, everything else goes
    assert list(cache.entries) == [heavy] and cache.weight == 100


def test_the_number_of_aggregates_is_bounded_too_and_eviction_on_request_works():
    cache = WeighedCache(maxsize=2, max_weight=1000)
    ids = [uuid4() for _ in range(3)]
    for i in ids:
        cache.put(i, Held(1))
    assert list(cache.entries) == ids[1:]
    assert cache.get(ids[1], evict=True).name == "x"
    assert list(cache.entries) == [ids[2]] and cache.weight == 2
    try:
        cache.get(ids[0])
    except KeyError:
        pass
    else:
        raise AssertionError("an evicted aggregate was still cached")


def test_an_aggregate_that_grew_in_the_cache_is_weighed_again_when_asked_for():
    cache = WeighedCache(maxsize=10, max_weight=20)
    a, b = uuid4(), uuid4()
    cache.put(a, Held(4))
    grown = Held(4)
    cache.put(b, grown)
    grown.items.extend(range(12))  # fast-forwarded in place by the repository: 17 now
    cache.get(b)
    assert list(cache.entries) == [b] and cache.weight == 17


class Index(Held):
    """Stands for a shared index (a centre's case index) in the unit tests below."""


def test_childrens_reads_past_the_weight_do_not_evict_a_kept_index():
    cache = WeighedCache(maxsize=3, max_weight=30, kept=(Index,))
    index = uuid4()
    cache.put(index, Index(49))  # heavier than the whole bound: held apart, not weighed against it
    assert cache.weight == 0 and cache.index_weight == 50
    children = [uuid4() for _ in range(20)]
    for child in children:
        cache.put(child, Held(9))
        assert cache.weight <= 30 and len(cache.entries) <= 3  # the children's bound still holds
    assert list(cache.entries) == children[-3:]
    assert cache.get(index).items[-1] == 48  # still there, never evicted by the children
    cache.get(index).items.extend(range(50))  # fast-forwarded in place: weighed again, still kept
    assert cache.get(index) is not None and cache.index_weight == 100 and cache.weight == 30
    assert cache.get(index, evict=True).name == "x" and cache.index_weight == 0  # eviction on request works


def test_clear_empties_the_kept_indexes_too_and_refuses_those_loaded_before_it():
    cache = WeighedCache(maxsize=10, max_weight=100, kept=(Index,))
    index, child = uuid4(), uuid4()
    cache.put(index, Index(3))
    cache.put(child, Held(3))
    try:
        cache.get(uuid4())  # this thread looks up (and misses) before the clear …
    except KeyError:
        pass
    cache.clear()
    assert not cache.entries and not cache.indexes and cache.weight == cache.index_weight == 0
    cache.put(index, Index(3))  # … so what it loaded then does not go in, index or not
    assert not cache.indexes
    for key in (index, child):
        with pytest.raises(KeyError):
            cache.get(key)
    cache.put(index, Index(3))  # looked up after the clear: goes in
    assert list(cache.indexes) == [index]


def test_a_hub_keeps_its_shared_indexes_while_children_come_and_go(tmp_path, monkeypatch, clock):
    from services.projections.cases import CenterCases
    from services.projections.indexes import SHARED_INDEXES
    from services.projections.published import PublishedChildren

    monkeypatch.setenv("TSUNAGU_AGGREGATE_CACHE_WEIGHT", "60")
    hub = Hub(f"sqlite:///{tmp_path / 'hub.db'}", clock=clock)
    try:
        cache = hub.store.repository.cache
        assert isinstance(cache, WeighedCache) and cache.kept == frozenset(SHARED_INDEXES)
        hub.load_orgs([{"id": "beppu-center", "type": "municipal_center", "municipality": "442020"}])
        events = [
            {
                "id": f"r{c}",
                "kind": "child.registered",
                "child": f"c{c}",
                "source": "beppu-center",
                "basis": "internal",
                "at": "2026-04-01T09:00:00+09:00",
                "payload": {"residence": "442020"},
            }
            for c in range(40)
        ]
        events += [
            {
                "id": f"case{c}",
                "kind": "case.registered",
                "child": f"c{c}",
                "source": "beppu-center",
                "basis": "internal",
                "at": "2026-04-01T09:30:00+09:00",
                "payload": {"case": f"K{c}", "category": "youhogo", "case_type": "neglect"},
            }
            for c in range(40)
        ]
        results = hub.publish(events)
        assert {r.outcome for r in results} == {"accepted"}, [r.to_dict() for r in results if r.outcome != "accepted"]
        published = PublishedChildren.create_id("beppu-center")
        case_index = CenterCases.create_id("beppu-center")
        assert {published, case_index} <= set(cache.indexes)
        assert cache.index_weight > 60  # together heavier than the children's whole bound, and kept
        held = {key: cache.indexes[key][0] for key in (published, case_index)}
        for c in range(40):
            hub.timeline(org="beppu-center", role="caseworker", child=f"c{c}", purpose="support")
            assert cache.weight <= 60  # the children's bound holds
        assert all(cache.indexes[key][0] is value for key, value in held.items())  # never evicted, never reloaded
        assert len(hub.store.peek(case_index).cases) == 40
        hub.store.shred("c0")  # an erasure empties both
        assert not cache.entries and not cache.indexes and cache.weight == cache.index_weight == 0
    finally:
        hub.close()


def test_a_hub_reading_many_children_keeps_its_cache_within_the_weight(tmp_path, monkeypatch, clock):
    monkeypatch.setenv("TSUNAGU_AGGREGATE_CACHE_WEIGHT", "60")
    hub = Hub(f"sqlite:///{tmp_path / 'hub.db'}", clock=clock)
    try:
        hub.load_orgs([{"id": "beppu-center", "type": "municipal_center", "municipality": "442020"}])
        events = []
        for c in range(20):
            events.append(
                {
                    "id": f"r{c}",
                    "kind": "child.registered",
                    "child": f"c{c}",
                    "source": "beppu-center",
                    "basis": "internal",
                    "at": "2026-04-01T09:00:00+09:00",
                    "payload": {"residence": "442020"},
                }
            )
            events += [
                {
                    "id": f"n{c}-{i}",
                    "kind": "note.recorded",
                    "child": f"c{c}",
                    "source": "beppu-center",
                    "basis": "internal",
                    "at": "2026-04-01T09:00:00+09:00",
                    "payload": {"text": f"記録{i}"},
                }
                for i in range(5)
            ]
        assert {r.outcome for r in hub.publish(events)} == {"accepted"}
        for c in range(20):
            timeline = hub.timeline(org="beppu-center", role="caseworker", child=f"c{c}", purpose="support")
            assert len(timeline.entries) == 6
        cache = hub.store.repository.cache
        assert isinstance(cache, WeighedCache) and cache.max_weight == 60
        assert cache.weight <= 60 and len(cache.entries) < 20
        again = hub.timeline(org="beppu-center", role="caseworker", child="c0", purpose="support")
        assert [e.id for e in again.entries] == ["r0"] + [f"n0-{i}" for i in range(5)]  # reloaded when evicted
    finally:
        hub.close()


def test_published_events_projected_directly_give_what_the_librarys_mutate_gives(tmp_path):
    """``ChildRecord.Published.mutate`` against the library's ``CanMutateAggregate.mutate`` (with the ``@event``
    method's body): a child's stream as stored, replayed both ways, gives the same record; the same errors for an
    event of another stream or out of sequence."""
    from copy import deepcopy

    from eventsourcing.domain import CanMutateAggregate, OriginatorIDError, OriginatorVersionError

    from events.store import ChildRecord

    hub = Hub(f"sqlite:///{tmp_path / 'p.db'}")
    hub.load_orgs(
        [
            {
                "id": "beppu-center",
                "type": "municipal_center",
                "municipality": "442020",
                "name": "別府市こども家庭センター",
            }
        ]
    )
    envelopes = [
        {
            "id": f"n{n}",
            "kind": "child.registered" if n == 0 else "note.recorded",
            "child": "c1",
            "source": "beppu-center",
            "basis": "internal",
            "at": f"2026-04-{n + 1:02d}T09:00:00+09:00",
            "payload": {"residence": "442020"} if n == 0 else {"text": f"記録{n}"},
        }
        for n in range(6)
    ]
    assert all(r.outcome == "accepted" for r in hub.publish(envelopes))
    stream = ChildRecord.create_id("c1")
    events = list(hub.store.events.get(stream))
    created, published = events[0], events[1:]
    assert published and all(type(e) is ChildRecord.Published for e in published)

    direct, library = created.mutate(None), created.mutate(None)
    for e in published:
        direct = e.mutate(direct)
        library = CanMutateAggregate.mutate(e, library)  # the library's, through the @event method
    assert vars(direct) == vars(library)
    assert direct.entries == hub.store.peek(stream).entries

    for aggregate, mutate in [
        (deepcopy(direct), type(published[0]).mutate),
        (deepcopy(library), CanMutateAggregate.mutate),
    ]:
        with pytest.raises(OriginatorVersionError):
            mutate(published[0], aggregate)  # out of sequence
        other = created.mutate(None)
        object.__setattr__(other, "_id", ChildRecord.create_id("c2"))
        with pytest.raises(OriginatorIDError):
            mutate(published[0], other)
    hub.close()
