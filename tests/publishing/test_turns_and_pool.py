"""Many publishes of one process in their indexes' turns at once, on PostgreSQL, with the hub's own pool.

A turn holds one pooled connection for its block, and a publish's block asks the pool for one more when an index
moved (``Batch.reload_staged``, ``reapply_on_newest``). With every pooled connection held by such a turn, the
process stalled for the pool's connect timeout and every request of it failed (review of s8-publish, MEDIUM 1).
``events.store.TurnConnections`` keeps the turns holding a connection at once below the pool, and a publish's
turns to half the pool less one, so that reads' turns do not wait behind them.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
import uuid
from typing import Any

import pytest

import services.publishing.batch as batch_module
from bench.prefecture import Prefecture, event_stream, make_prefecture
from events.problems import Busy
from events.store import TurnConnections
from events.streams import stream_versions
from tests.publishing.test_publishers_in_turn import hub_on, moved_indexes, publish_all

MUNICIPALITIES = 22  # more than the hub's pool (10 + 10): each publish's turn on its own municipality's indexes


def one_child_per_municipality(pref: Prefecture, prefix: str, seed: int) -> dict[str, list[dict[str, Any]]]:
    """By municipality, the events of one child of ``prefix…`` whose every event comes from that municipality (no
    児相 event: the child's indexes are its municipality's only, so that publishes of different municipalities
    take disjoint turns)."""
    orgs = {o["id"]: o for o in pref.orgs}
    by_child: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for e in event_stream(pref, 6 * MUNICIPALITIES, 20, prefix=prefix, seed=seed):
        by_child[e["child"]].append(e)
    out: dict[str, list[dict[str, Any]]] = {}
    for events in by_child.values():
        municipalities = {orgs[e["source"]].get("municipality") for e in events}
        if len(municipalities) == 1 and None not in municipalities:
            out.setdefault(municipalities.pop(), events)
    return out


@pytest.mark.postgres
def test_publishes_on_moved_indexes_in_more_turns_than_the_pool_holds_are_all_accepted(postgres_url, monkeypatch):
    """22 request threads of process A each publish one child in its own municipality; after they loaded their
    batches, process B publishes in each of those municipalities (every A's indexes moved), then A's saves go on
    together, each loading its moved indexes again in its turn. All are accepted, and a query of A made while
    turns, holding their connections, wait for it is answered (before ``TurnConnections``: 22 turns held the pool's 20 connections, each waiting for one
    more, and every publish and the query failed after the pool's 30 s; the review's ``pool_drain_default.py``)."""
    pref = make_prefecture(municipalities=MUNICIPALITIES, schools_per=1, nurseries_per=1)
    hub_b = hub_on(postgres_url, pref, own_turns=True)  # another process (own stream turns, own pool)
    hub_a = hub_on(postgres_url, pref)
    try:
        publish_all(hub_b, list(one_child_per_municipality(pref, "s", 1).values()))
        mine, theirs = one_child_per_municipality(pref, "a", 2), one_child_per_municipality(pref, "b", 3)
        municipalities = [m for m in mine if m in theirs]
        assert len(municipalities) > 20, len(municipalities)  # more than the pool's connections
        counts: dict[str, int] = {}
        moved_indexes(counts, monkeypatch)
        loaded = threading.Barrier(len(municipalities) + 1)
        moved, in_turn, answered = threading.Event(), threading.Event(), threading.Event()
        saw_the_query: list[bool] = []
        original_save, original_record = batch_module.Batch.save, batch_module.Batch.record_staged_on_newest
        waited: set[str] = set()

        def save_after_b(self: Any) -> None:  # A's first save of each thread after B's publishes
            name = threading.current_thread().name
            if self.store is hub_a.store and name not in waited:
                waited.add(name)
                loaded.wait(60)
                assert moved.wait(60), "B did not publish"
            original_save(self)

        def noted_in_turn(self: Any, *args: Any, **kwargs: Any) -> None:  # the first thing of a publish's turn
            if self.store is hub_a.store:  # held here, with the turn's connection, until A's query is answered
                in_turn.set()
                saw_the_query.append(answered.wait(60))
            original_record(self, *args, **kwargs)

        monkeypatch.setattr(batch_module.Batch, "save", save_after_b)
        monkeypatch.setattr(batch_module.Batch, "record_staged_on_newest", noted_in_turn)
        outcomes: collections.Counter[str] = collections.Counter()

        def publish(events: list[dict[str, Any]]) -> None:
            try:
                outcomes[",".join(sorted({r.outcome for r in hub_a.publish(events)}))] += 1
            except BaseException as error:  # noqa: BLE001 (counted, asserted below)
                outcomes[f"{type(error).__name__}: {error}"[:120]] += 1

        threads = [
            threading.Thread(target=publish, name=f"A{i}", args=(mine[m],)) for i, m in enumerate(municipalities)
        ]
        for thread in threads:
            thread.start()
        try:
            loaded.wait(60)
            publish_all(hub_b, [theirs[m] for m in municipalities])
            moved.set()
            assert in_turn.wait(60), "no publish of A reached its turn"
            stream_versions(hub_a.store, [uuid.uuid4()])  # another request's first query, while turns wait for it
            answered.set()
        finally:
            moved.set()
            answered.set()
            for thread in threads:
                thread.join()
        assert all(saw_the_query), saw_the_query  # every turn that waited for the query saw it answered
        assert outcomes == {"accepted": len(municipalities)}, outcomes
        assert counts.get("reloaded", 0) + counts.get("reapplied", 0) >= len(municipalities), counts  # all moved
    finally:
        hub_a.close()
        hub_b.close()


@pytest.mark.postgres
def test_a_turn_waits_for_a_slot_within_its_own_deadline(postgres_url):
    """With every slot of ``TurnConnections`` taken (the pool less one: here by the test itself), a turn waits no
    longer than its turn's wait (TSUNAGU_TURN_LOCK_TIMEOUT) and is ``Busy``, having held nothing; once a slot is
    free it is taken."""
    pref = make_prefecture(municipalities=1, schools_per=1, nurseries_per=1)
    hub = hub_on(postgres_url, pref)
    store = hub.store
    stream = uuid.uuid4()
    try:
        assert store.turn_connections.limit == store.recorder.datastore.pool.max_size - 1
        store.turn_wait = 0.2
        with contextlib.ExitStack() as taken:
            for _ in range(store.turn_connections.limit):
                taken.enter_context(store.turn_connections.held(time.monotonic() + 1))
            with pytest.raises(Busy), store.append_in_turn([stream]):
                pytest.fail("a turn was given without a slot")
            assert not store.turns.holders  # the process's locks given back
        with store.append_in_turn([stream]) as turn:
            assert turn.versions == {}
    finally:
        hub.close()


@pytest.mark.unit
def test_a_pool_of_one_connection_is_refused():
    """A turn needs its connection and, at times, one more: a pool of one could never give both."""
    with pytest.raises(ValueError, match="at least 2"):
        TurnConnections(1)
    assert (TurnConnections(2).limit, TurnConnections(2).publish_limit) == (1, 1)
    assert (TurnConnections(20).limit, TurnConnections(20).publish_limit) == (19, 9)


@pytest.mark.postgres
def test_an_access_records_turn_does_not_wait_behind_publishes_turns(postgres_url):
    """With every publish's slot taken (publishes waiting in their turns for another process's), an access
    record's turn (a timeline read) still gets its slot at once, and one more publish's turn is ``Busy`` within its
    wait (review of s8-publish, LOW 1a: one bound for every turn made reads wait 2.6-4.4 s behind ten publishes)."""
    pref = make_prefecture(municipalities=1, schools_per=1, nurseries_per=1)
    hub = hub_on(postgres_url, pref)
    store = hub.store
    try:
        store.turn_wait = 0.2
        with contextlib.ExitStack() as taken:
            for _ in range(store.turn_connections.publish_limit):
                taken.enter_context(store.turn_connections.held(time.monotonic() + 1, publish=True))
            with store.append_in_turn([uuid.uuid4()]) as turn:  # an access record's turn
                assert turn.versions == {}
            with pytest.raises(Busy), store.append_in_turn([uuid.uuid4()], read_heads=False, publish=True):
                pytest.fail("a publish's turn was given past the publishes' bound")
            assert not store.turns.holders
    finally:
        hub.close()
