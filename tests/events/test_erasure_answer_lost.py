"""An erasure that is stored always destroys the child's keys, even when its answer was lost.

``HubStore.save`` stores a ``child.erased`` (its insert commits) and only then destroys the child's keys
(``HubStore.shred``). Two ways the destruction can be missed after the commit, each shown here against a fresh
process on the same store (its own keys and cache, as a restarted server):

- the COMMIT reached the database but its answer did not (the connection lost after the commit): the publisher
  gets an error, sends the same envelope again and is answered ``duplicate``;
- the process dies between the commit and the destruction, and nobody sends the erasure again.

Either way the child's content must not open, its keys must be destroyed and in the register of erasures, and its
snapshot gone (``HubStore.destroy_keys_owed``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from eventsourcing.persistence import OperationalError

import events.store as store_module
from events.sealing import DataKeys, child_scope
from events.store import ChildRecord
from services.hub import Hub
from tests.conftest import at
from tests.events.test_erasure import (
    CHILD,
    MARKERS,
    erasure,
    events,
    live_keys_of,
    notes_enough_for_a_snapshot,
    snapshot_rows,
    text_of,
)
from tests.schoolfiles import ORGS

pytestmark = pytest.mark.store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request, tmp_path) -> str:
    """A store two processes can share: a SQLite file, or a schema on the real PostgreSQL."""
    if request.param == "postgres":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'hub.db'}"


NOTES = notes_enough_for_a_snapshot()


def a_child_with_a_snapshot(database: str, clock) -> int:
    """The child published (enough events for a snapshot), read cold once so that its snapshot is taken; the
    register of erasures' position then."""
    clock.at = at("2026-06-10T09:00:00+09:00")
    a = Hub(database, clock=clock)
    try:
        a.load_orgs(ORGS)
        results = a.publish(events() + NOTES)
        assert all(r.outcome == "accepted" for r in results), [r for r in results if r.outcome != "accepted"][:1]
    finally:
        a.close()
    b = Hub(database, clock=clock)
    try:
        assert b.timeline(org="beppu-center", role="caseworker", child=CHILD, purpose="support").entries
        assert len(snapshot_rows(b)) == 1
        return b.store.keys.erasure_position()
    finally:
        b.close()


def assert_erased_for_a_fresh_process(database: str, clock, position_before: int, *, keys_checked: bool = True) -> None:
    """A fresh process on the store: the child's key is destroyed and registered, the snapshot gone, and nothing
    of the child's content opens. (``keys_checked=False``: a batch's first pass made the child's scope a new key,
    which seals nothing stored, after its erasure: see ``test_an_erasure_sent_again_after_it_was_finished…``.)"""
    fresh = Hub(database, clock=clock)
    try:
        if keys_checked:
            assert fresh.store.keys.ensure([child_scope(CHILD)], create=False) == {}
        assert fresh.store.keys.erasure_position() > position_before
        assert snapshot_rows(fresh) == []
        record = fresh.store.get_or_none(ChildRecord.create_id(CHILD))
        assert record is not None and record.entries[-1].kind == "child.erased"
        opened = text_of([entry.payload for entry in record.entries]).encode()
        assert not [marker for marker in MARKERS if marker in opened]
        view = fresh.timeline(org="beppu-center", role="caseworker", child=CHILD, purpose="support")
        assert view.reason == "erased" and not view.entries
    finally:
        fresh.close()


def test_an_erasure_whose_commit_answer_was_lost_destroys_the_keys_when_sent_again(database, clock, monkeypatch):
    """The erasure's insert commits, then the connection is lost (an ``OperationalError``, as psycopg raises it
    when the server's answer to the COMMIT never comes); the publisher's retry is answered ``duplicate``."""
    position = a_child_with_a_snapshot(database, clock)
    hub = Hub(database, clock=clock)
    recorder_class = type(hub.store.recorder)
    original = recorder_class.insert_events
    lost: list[bool] = []

    def commit_then_lose_the_answer(self, stored_events, **kwargs):
        recorded = original(self, stored_events, **kwargs)
        if not lost:
            lost.append(True)
            held = kwargs.get("held")
            if held is not None:  # the turn's connection (PostgreSQL): the server committed, the socket is gone
                held.close()
            raise OperationalError("server closed the connection unexpectedly")
        return recorded

    try:
        monkeypatch.setattr(recorder_class, "insert_events", commit_then_lose_the_answer)
        with pytest.raises(OperationalError):
            hub.publish([erasure()])
        assert lost == [True]
        monkeypatch.setattr(recorder_class, "insert_events", original)
        assert hub.store.stored_envelope(erasure()["id"]) is not None  # the erasure is stored
        assert hub.store.keys.destructions_owed() != []  # the note written before the erasure's commit
        assert [r.outcome for r in hub.publish([erasure()])] == ["duplicate"]
        # the duplicate answer itself destroyed the keys (not the next process's sweep)
        assert hub.store.keys.ensure([child_scope(CHILD)], create=False) == {}
        assert hub.store.keys.destructions_owed() == []
    finally:
        hub.close()
    assert_erased_for_a_fresh_process(database, clock, position)


class ProcessDied(BaseException):
    """The process ending between the erasure's commit and the destruction of the keys (nothing runs after)."""


def die_before_destroying(self, child):
    """In place of ``HubStore.shred``: the process ends where the keys would have been destroyed."""
    raise ProcessDied(child)


def an_erasure_stored_by_a_process_that_dies_before_destroying_the_keys(database: str, clock, monkeypatch) -> None:
    """A process (a hub, closed at the end) stores the erasure and dies where its keys would have been destroyed
    (``die_before_destroying``)."""
    hub = Hub(database, clock=clock)
    try:
        with monkeypatch.context() as dying:
            dying.setattr(store_module.HubStore, "shred", die_before_destroying)
            with pytest.raises(ProcessDied):
                hub.publish([erasure()])
        assert hub.store.stored_envelope(erasure()["id"]) is not None  # the erasure is stored
    finally:
        hub.close()


def test_an_erasure_stored_by_a_process_that_died_before_destroying_the_keys_is_finished_at_the_next_start(
    database, clock, monkeypatch
):
    """Nobody sends the erasure again: the next process to open the store destroys the keys owed."""
    position = a_child_with_a_snapshot(database, clock)
    an_erasure_stored_by_a_process_that_dies_before_destroying_the_keys(database, clock, monkeypatch)
    assert_erased_for_a_fresh_process(database, clock, position)


def test_an_erasure_sent_again_after_it_was_finished_destroys_nothing_and_empties_no_cache(database, clock):
    """The common case: the erasure's keys were destroyed when it was stored; the same erasure sent again is
    answered ``duplicate`` and, no destruction being owed for the child, destroys nothing: the register of erasures
    does not move, so no process empties its cache (review s8, MEDIUM 2: each duplicate emptied every process's
    cache, kept indexes included), and the note its batch's first pass wrote is not left for the sweep (which
    would then destroy). That first pass, which does not look ids up, seals the batch before its insert is
    refused, under the child's key destroyed from the start (``DataKeys.ensure``): it makes no live key, and the
    process that sealed forgets its own cache (``DataKeys.on_sealed_for_erased``; the other processes keep
    theirs)."""
    position = a_child_with_a_snapshot(database, clock)
    hub = Hub(database, clock=clock)
    other = Hub(database, clock=clock)  # another process, running
    try:
        assert [r.outcome for r in hub.publish([erasure()])] == ["accepted"]
        after_erasure = hub.store.keys.erasure_position()
        assert after_erasure > position
        assert hub.store.keys.destructions_owed() == []
        hub.publish(events("c-other-1"))
        for reader in (hub, other):
            assert reader.timeline(org="beppu-center", role="caseworker", child="c-other-1", purpose="support").entries
            reader.store.erasures.check_now()
        generation = other.store.repository.cache.generation
        for _ in range(2):
            assert [r.outcome for r in hub.publish([erasure()])] == ["duplicate"]
        assert hub.store.keys.erasure_position() == after_erasure  # no row: nothing destroyed
        assert hub.store.keys.destructions_owed() == []  # no note left for the sweep
        assert hub.store.destroy_keys_owed() == 0
        assert live_keys_of(hub, child_scope(CHILD)) == 0
        other.store.erasures.check_now()
        assert other.store.repository.cache.generation == generation
        assert hub.store.keys.erasure_position() == after_erasure
    finally:
        other.close()
        hub.close()
    assert_erased_for_a_fresh_process(database, clock, position, keys_checked=False)


def test_a_stale_note_is_refreshed_by_a_new_save_so_a_sweep_meanwhile_keeps_it(database, clock, monkeypatch):
    """A note left by an earlier save of the erasure that failed, 20 minutes ago; the erasure saved again, and
    another process opens (its sweep runs) between the note's write and the erasure's commit; the saving process
    then dies before destroying the keys. The new save refreshed the note's time, and the sweep drops only the note
    it judged old, so the note is still owed and the next process finishes the erasure (review s8, LOW 1: the note
    was dropped and the keys lived on, with nothing left to find them)."""
    position = a_child_with_a_snapshot(database, clock)
    hub = Hub(database, clock=clock)
    stream = ChildRecord.create_id(CHILD).hex
    keys = hub.store.keys
    old = (datetime.now(UTC) - timedelta(minutes=20)).isoformat()
    with keys.datastore.transaction(commit=True) as cursor:  # the note of an attempt that failed, 20 minutes ago
        cursor.execute(keys._sql(f"INSERT INTO {keys.owed} (stream, owed_at) VALUES (?, ?)"), (stream, old))
    save_sealed = store_module.HubStore.save_sealed
    opened: list[Hub] = []

    def another_process_opens_then_record(self, *parts, **kwargs):
        if not opened:
            opened.append(Hub(database, clock=clock))  # its sweep runs now: the erasure is not stored yet
        return save_sealed(self, *parts, **kwargs)

    try:
        with monkeypatch.context() as dying:
            dying.setattr(store_module.HubStore, "save_sealed", another_process_opens_then_record)
            dying.setattr(hub.store, "shred", lambda child: die_before_destroying(hub.store, child))
            with pytest.raises(ProcessDied):
                hub.publish([erasure()])
        assert opened  # its opening swept the notes while the erasure was being saved
        assert [s for s, _ in hub.store.keys.destructions_owed()] == [stream]
    finally:
        for other in opened:
            other.close()
        hub.close()
    assert_erased_for_a_fresh_process(database, clock, position)


def test_a_running_process_finishes_an_erasure_owed_within_the_sweep_interval(database, clock, monkeypatch):
    """Process B is running when process A stores an erasure and dies before destroying its keys, and nobody
    sends the erasure again: B's running sweep (``ERASURE_OWED_SWEEP_SECONDS``, short here) destroys the keys,
    registers the erasure and removes the note, without B opening the store again (review s8, MEDIUM 1: the keys
    lived in every running process until some process opened the store). ``close`` stops B's sweep."""
    position = a_child_with_a_snapshot(database, clock)
    # A, the process that dies, sweeps at the ordinary interval: with the short one its own running sweep could
    # finish the erasure in the moment between its "death" (the patch undone) and its close, and then B, which
    # finds nothing owed, would rightly still hold the key until its erasure watch looks (a flaky failure seen
    # under load in session 9).
    a = Hub(database, clock=clock)
    monkeypatch.setattr(store_module, "ERASURE_OWED_SWEEP_SECONDS", 0.05)
    b = Hub(database, clock=clock)
    try:
        assert b.timeline(org="beppu-center", role="caseworker", child=CHILD, purpose="support").entries
        assert b.store.keys.ensure([child_scope(CHILD)], create=False) != {}  # B holds the child's key
        with monkeypatch.context() as dying:
            dying.setattr(a.store, "shred", lambda child: die_before_destroying(a.store, child))
            with pytest.raises(ProcessDied):
                a.publish([erasure()])
        assert a.store.stored_envelope(erasure()["id"]) is not None  # the erasure is stored, its keys live
        a.close()
        wait_for_sweeps(b, b.store.owed_sweeps + 2)  # a whole sweep begun after the erasure's commit
        assert b.store.keys.ensure([child_scope(CHILD)], create=False) == {}
        assert b.store.keys.destructions_owed() == []
        assert b.store.erasures.position == b.store.keys.erasure_position() > position
        assert b.store.destructions_failed == 0
        view = b.timeline(org="beppu-center", role="caseworker", child=CHILD, purpose="support")
        assert view.reason == "erased" and not view.entries
    finally:
        a.close()
        b.close()
    assert not b.store._owed_sweeper.is_alive()
    assert_erased_for_a_fresh_process(database, clock, position)


def wait_for_sweeps(hub: Hub, sweeps: int) -> None:
    """Wait until ``hub``'s store has made ``sweeps`` sweeps of the destructions owed (at most a minute: a bound
    against a hang, not a measure)."""
    deadline = time.monotonic() + 60
    while hub.store.owed_sweeps < sweeps:
        if time.monotonic() > deadline:
            pytest.fail(f"the running sweep made {hub.store.owed_sweeps} sweeps, not {sweeps}, in a minute")
        time.sleep(0.01)


def test_a_destruction_owed_whose_erasure_was_never_stored_is_dropped_once_old_and_destroys_nothing(
    database, clock, monkeypatch
):
    """A note written before a save that failed (the erasure not stored): the sweep destroys nothing, keeps the
    note while a save may still be under way, and drops it once ``ERASURE_OWED_GRACE_SECONDS`` old."""
    a_child_with_a_snapshot(database, clock)
    hub = Hub(database, clock=clock)
    stream = ChildRecord.create_id(CHILD).hex
    try:
        hub.store.keys.owe_destruction([stream])
        assert hub.store.destroy_keys_owed() == 0
        assert [s for s, _ in hub.store.keys.destructions_owed()] == [stream]  # young: kept
        monkeypatch.setattr(store_module, "ERASURE_OWED_GRACE_SECONDS", -1.0)
        assert hub.store.destroy_keys_owed() == 0
        assert hub.store.keys.destructions_owed() == []  # old: dropped
        assert hub.store.keys.ensure([child_scope(CHILD)], create=False) != {}  # the child's keys live on
        assert hub.timeline(org="beppu-center", role="caseworker", child=CHILD, purpose="support").entries
        assert hub.store.destructions_failed == 0
    finally:
        hub.close()


def test_a_sweep_that_cannot_destroy_the_keys_owed_does_not_fail_the_opening_and_keeps_the_note(
    database, clock, monkeypatch
):
    """The store failing while the opening's sweep destroys the keys owed: the store opens all the same, the
    failure is counted, the note is kept, and the next opening finishes the erasure."""
    position = a_child_with_a_snapshot(database, clock)
    an_erasure_stored_by_a_process_that_dies_before_destroying_the_keys(database, clock, monkeypatch)

    def store_fails(self, scopes):
        raise OperationalError("server closed the connection unexpectedly")

    with monkeypatch.context() as failing:
        failing.setattr(DataKeys, "destroy", store_fails)
        opened = Hub(database, clock=clock)
        try:
            assert opened.store.destructions_failed == 1
            assert [s for s, _ in opened.store.keys.destructions_owed()] == [ChildRecord.create_id(CHILD).hex]
        finally:
            opened.close()
    assert_erased_for_a_fresh_process(database, clock, position)
