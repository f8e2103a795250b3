"""The children's snapshots (``events.snapshots``): a cold read loads a child from its sealed snapshot and the events
after it, and gets exactly what replaying every event gives; an erased child's snapshot opens for nobody and its
read is what it was without snapshots; ``audit verify`` replays events and does not trust a snapshot; a store
without snapshots reads as before. On SQLite and on PostgreSQL."""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from datetime import datetime
from typing import Any

import psycopg
import pytest

from bench.prefecture import event_stream, make_prefecture
from consent.model import Settings
from events.model import Recorded
from events.sealing import HUB_SCOPE, KeyDestroyed, child_scope
from events.snapshots import SNAPSHOT_AFTER
from events.store import AccessLog, ChildRecord, recorded_from
from services.hub import Hub

SETTINGS = Settings(joint_ledger=True)
NOW = datetime.fromisoformat("2026-11-23T09:00:00+09:00")


def hub_on(database: str, after: int = 1) -> Hub:
    """A new hub (an empty aggregate cache: every read of a child is cold) taking snapshots after ``after`` events."""
    hub = Hub(database, settings=SETTINGS, clock=lambda: NOW)
    hub.store.child_snapshots.after = after
    return hub


def publish(hub: Hub, envelopes: list[dict[str, Any]]) -> None:
    results = hub.publish(envelopes)
    assert all(r.outcome == "accepted" for r in results), [r for r in results if r.outcome != "accepted"][:1]


def center_of(hub: Hub, child: str) -> str:
    return hub.store.get_or_none(ChildRecord.create_id(child)).entries[0].source


def extra_events(child: str, center: str, rng: random.Random, n: int) -> list[dict[str, Any]]:
    """Events the prefecture's streams do not have: changes of residence, and notes whose text the fast decoder
    leaves to the library's (an escape, 19 digits in a row), so that snapshots hold them too."""
    out = []
    for i in range(n):
        tag = f"{child}-x{rng.randrange(10**9)}-{i}"
        if rng.random() < 0.3:
            out.append(
                {
                    "id": tag,
                    "kind": "residence.changed",
                    "child": child,
                    "source": center,
                    "basis": "internal",
                    "at": "2026-10-01T09:00:00+09:00",
                    "payload": {"residence": center.rsplit("-", 1)[-1]},
                }
            )
        else:
            out.append(
                {
                    "id": tag,
                    "kind": "note.recorded",
                    "child": child,
                    "source": center,
                    "basis": "internal",
                    "at": "2026-10-02T09:00:00+09:00",
                    "payload": {"text": rng.choice(["a \\u0041 b", "番号 12345678901234567890", "面談 🙂", "x"])},
                }
            )
    return out


def erasure(child: str, center: str) -> dict[str, Any]:
    return {
        "id": f"{child}-erased",
        "kind": "child.erased",
        "child": child,
        "source": center,
        "basis": "internal",
        "at": "2026-11-01T09:00:00+09:00",
        "payload": {"reason": "保存期間の満了"},
    }


def same_record(hub: Hub, child: str, database: str) -> ChildRecord | None:
    """The child's record through the read path (snapshot and tail) in ``hub``, checked against every event
    replayed in another hub on ``database`` (the library's replay, which ``audit verify`` uses)."""
    record, due = hub.store.read_child(child)
    if due is not None:  # as the read path keeps it, once the read is recorded
        assert hub.store.child_snapshots.keep(due)
    replayer = hub_on(database)
    try:
        replayed = replayer.store.get_or_none(ChildRecord.create_id(child))
    finally:
        replayer.close()
    assert (vars(record) if record is not None else None) == (vars(replayed) if replayed is not None else None)
    return record


def timeline_of(hub: Hub, child: str, center: str) -> dict[str, Any]:
    """What a read returns, without what differs from read to read (the access record's id)."""
    out = hub.timeline(org=center, role="caseworker", child=child, purpose="support").to_dict()
    out.pop("access_record")
    return out


def check_equal_over_random_worlds(database: str, seed: int) -> None:
    """Random small worlds: children's streams published in random chunks, each chunk followed by cold reads in
    new hubs that take and use snapshots at random thresholds; every record loaded from a snapshot and its tail
    equals the record from all the events, and the reads return the same as from all events."""
    rng = random.Random(seed)
    pref = make_prefecture()
    hub = hub_on(database)
    hub.load_orgs(pref.orgs)
    children = [f"s{seed}c{i:07d}" for i in range(3)]
    stream = list(event_stream(pref, 3, 60, prefix=f"s{seed}c", seed=seed))
    hub.close()
    published = 0
    while published < len(stream):
        chunk = stream[published : published + rng.randrange(5, 40)]
        published += len(chunk)
        hub = hub_on(database)
        publish(hub, chunk)
        known = [c for c in children if hub.store.get_or_none(ChildRecord.create_id(c)) is not None]
        if known and rng.random() < 0.5:
            child = rng.choice(known)
            publish(hub, extra_events(child, center_of(hub, child), rng, rng.randrange(1, 6)))
        hub.close()
        for child in known:
            reader = hub_on(database, after=rng.choice([1, 5, 20]))
            try:
                same_record(reader, child, database)
            finally:
                reader.close()
    # the reads as a whole, from snapshots (a new hub) and from every event (a store whose snapshots were dropped)
    hub = hub_on(database)
    centers = {child: center_of(hub, child) for child in children}
    assert hub.store.child_snapshots.count() == len(children)
    from_snapshots = {child: timeline_of(hub, child, centers[child]) for child in children}
    hub.store.child_snapshots.drop()
    hub.close()
    hub = hub_on(database, after=10**9)
    try:
        assert {child: timeline_of(hub, child, centers[child]) for child in children} == from_snapshots
        assert hub.store.child_snapshots.count() == 0
        assert hub.verify().ok
    finally:
        hub.close()


def check_erasure(database: str) -> None:
    """An erased child's snapshot opens for nobody (a copy kept from before, as a backup would have it, included),
    and the erased child's read is what it is on a store that never had snapshots."""
    pref = make_prefecture()
    hub = hub_on(database)
    hub.load_orgs(pref.orgs)
    publish(hub, list(event_stream(pref, 2, 40, prefix="e", seed=3)))
    child, other = "e0000000", "e0000001"
    center, other_center = center_of(hub, child), center_of(hub, other)
    hub.close()
    hub = hub_on(database)
    timeline_of(hub, child, center)  # cold reads: they take the snapshots
    timeline_of(hub, other, other_center)
    stream = ChildRecord.create_id(child)
    snapshots = hub.store.child_snapshots
    with snapshots.datastore.transaction(commit=False) as cursor:
        cursor.execute(
            snapshots._sql(f"SELECT version, state FROM {snapshots.table} WHERE stream = ?"), (snapshots._key(stream),)
        )
        row = cursor.fetchone()
    kept = (int(row["version"]), bytes(row["state"]))  # a backup of the snapshot, taken before the erasure
    assert snapshots._opened(stream, *kept)[0] is not None
    publish(hub, [erasure(child, center)])
    assert not snapshots.load(stream)[2]  # the row is gone
    with pytest.raises(KeyDestroyed):
        snapshots.unseal(stream, *kept)
    hub.close()
    # the backup put back: it does not open, and the read replays the events as without snapshots
    hub = hub_on(database)
    with hub.store.child_snapshots.datastore.transaction(commit=True) as cursor:
        cursor.execute(
            snapshots._sql(f"INSERT INTO {snapshots.table} (stream, version, state) VALUES (?, ?, ?)"),
            (snapshots._key(stream), kept[0], kept[1]),
        )
    assert not hub.store.child_snapshots.load(stream)[2]
    read = timeline_of(hub, child, center)
    assert same_record(hub, child, database) is not None
    assert not hub.store.child_snapshots.load(stream)[2]  # an erased child is not snapshotted again
    assert hub.store.child_snapshots.load(ChildRecord.create_id(other))[2]  # the other child's still opens
    hub.store.child_snapshots.drop()
    hub.close()
    hub = hub_on(database, after=10**9)
    try:
        assert timeline_of(hub, child, center) == read
        assert hub.verify().ok
    finally:
        hub.close()


def check_verify_does_not_trust_snapshots(database: str) -> None:
    """A snapshot that says something the events do not (sealed properly: as if the code that took it were
    wrong) is what a cold read shows, and ``audit verify``, which replays the events, finds that read wrong."""
    pref = make_prefecture()
    hub = hub_on(database)
    hub.load_orgs(pref.orgs)
    publish(hub, list(event_stream(pref, 1, 30, prefix="f", seed=5)))
    child = "f0000000"
    center = center_of(hub, child)
    record = hub.store.get_or_none(ChildRecord.create_id(child))
    state = hub.store.child_snapshots.state_of(record)
    assert state is not None
    envelope = state["published"][-1][0]
    state["published"][-1][0] = dict(envelope, payload=dict(envelope.get("payload") or {}, forged="yes"))
    assert hub.store.child_snapshots.take(ChildRecord.create_id(child), state)
    hub.close()
    hub = hub_on(database)
    try:
        shown = hub.timeline(org=center, role="caseworker", child=child, purpose="support")
        assert any(e.payload.get("forged") == "yes" for e in shown.entries)
        assert not hub.verify().ok
    finally:
        hub.close()


@pytest.mark.unit
def test_recorded_built_directly_is_what_the_constructor_builds():
    rng = random.Random(11)
    for envelope in event_stream(make_prefecture(), 5, 40, seed=11):
        envelope = dict(envelope, function=rng.choice([None, "x"]), to=rng.choice([None, "y"]))
        if rng.random() < 0.3:
            envelope.pop("payload", None)
        audience = rng.sample(["a", "b", "c"], rng.randrange(4))
        fast = recorded_from(envelope, audience, 7)
        slow = Recorded(
            position=7,
            id=envelope["id"],
            kind=envelope["kind"],
            child=envelope["child"],
            source=envelope["source"],
            basis=envelope["basis"],
            at=datetime.fromisoformat(envelope["at"]),
            payload=envelope.get("payload") or {},
            audience=frozenset(audience),
            function=envelope.get("function"),
            to=envelope.get("to"),
            sensitive=tuple(envelope.get("sensitive") or ()),
        )
        assert fast == slow and vars(fast) == vars(slow) and hash(fast.audience) == hash(slow.audience)


@pytest.mark.store
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_record_from_its_snapshot_and_tail_equals_the_record_from_all_events(tmp_path, seed):
    check_equal_over_random_worlds(f"sqlite:///{tmp_path / 'hub.db'}", seed)


@pytest.mark.store
def test_an_erased_childs_snapshot_gives_nothing_and_its_read_is_as_before(tmp_path):
    check_erasure(f"sqlite:///{tmp_path / 'hub.db'}")


@pytest.mark.store
def test_audit_verify_replays_events_and_does_not_trust_snapshots(tmp_path):
    check_verify_does_not_trust_snapshots(f"sqlite:///{tmp_path / 'hub.db'}")


@pytest.mark.postgres
def test_on_postgres_a_record_from_its_snapshot_equals_the_record_from_all_events(postgres_url):
    check_equal_over_random_worlds(postgres_url, 4)


@pytest.mark.postgres
def test_on_postgres_an_erased_childs_snapshot_gives_nothing(postgres_url):
    check_erasure(postgres_url)


@pytest.mark.postgres
def test_on_postgres_audit_verify_does_not_trust_snapshots(postgres_url):
    check_verify_does_not_trust_snapshots(postgres_url)


# --- the security review's findings (M1, M2, L1, L3, L4) -----------------------------------------------------------


def a_child_of(database: str, events: int, prefix: str) -> tuple[str, str]:
    """A store holding one child with ``events`` events (a cold read of it replays them all); the child, its centre."""
    pref = make_prefecture()
    hub = hub_on(database)
    try:
        hub.load_orgs(pref.orgs)
        publish(hub, list(event_stream(pref, 1, events, prefix=prefix, seed=9)))
        child = f"{prefix}0000000"
        return child, center_of(hub, child)
    finally:
        hub.close()


def recorded(hub: Hub, child: str) -> list[str]:
    """The ids of the access records in the child's access log, from its events."""
    return [e.record["id"] for e in hub.store.events.get(AccessLog.create_id(child)) if hasattr(e, "record")]


def read_and_check_recorded(hub: Hub, child: str, center: str) -> None:
    """A timeline read returns the child's content and its access record is in the child's log."""
    shown = hub.timeline(org=center, role="caseworker", child=child, purpose="support")
    assert shown.entries
    assert recorded(hub, child)[-1] == shown.to_dict()["access_record"]


def snapshot_row(hub: Hub, child: str) -> tuple[int, bytes] | None:
    snapshots = hub.store.child_snapshots
    with snapshots.datastore.transaction(commit=False) as cursor:
        cursor.execute(
            snapshots._sql(f"SELECT version, state FROM {snapshots.table} WHERE stream = ?"),
            (snapshots._key(ChildRecord.create_id(child)),),
        )
        row = cursor.fetchone()
    return (int(row["version"]), bytes(row["state"])) if row is not None else None


@pytest.mark.store
def test_a_write_lock_held_elsewhere_does_not_fail_a_cold_read_which_is_recorded(tmp_path):
    """M1: another connection holds the write lock while a cold read of a child of 120 events runs (its snapshot
    due): the read waits for the lock only to record itself, returns the content, and the snapshot follows."""
    path = tmp_path / "hub.db"
    database = f"sqlite:///{path}"
    child, center = a_child_of(database, 120, "m")
    hub = hub_on(database, after=SNAPSHOT_AFTER)
    held, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            held.set()
            release.wait(10)
            time.sleep(1.5)  # released while the read waits to record itself (the busy timeout is 5 s)
            conn.execute("COMMIT")
        finally:
            conn.close()

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    try:
        assert held.wait(10)
        release.set()
        read_and_check_recorded(hub, child, center)
        assert snapshot_row(hub, child) is not None  # taken after the read was recorded
        assert hub.store.child_snapshots.failures == 0
    finally:
        release.set()
        holder.join()
        hub.close()


def check_a_dropped_table_fails_no_read(database: str) -> None:
    """M1: the snapshots' table dropped under a running store: cold reads still return and are recorded (the
    snapshot query's error logged and counted); the first store opened afterwards makes the table again."""
    child, center = a_child_of(database, 20, "d")
    hub = hub_on(database)
    try:
        with hub.store.child_snapshots.datastore.transaction(commit=True) as cursor:
            cursor.execute(f"DROP TABLE {hub.store.child_snapshots.table}")
        read_and_check_recorded(hub, child, center)
        hub.store._forget_cached()  # cold again
        read_and_check_recorded(hub, child, center)
        assert hub.store.child_snapshots.failures >= 2
        assert hub.verify().ok
    finally:
        hub.close()
    hub = hub_on(database)
    try:
        read_and_check_recorded(hub, child, center)
        assert snapshot_row(hub, child) is not None
    finally:
        hub.close()


@pytest.mark.store
def test_a_dropped_snapshot_table_fails_no_read(tmp_path):
    check_a_dropped_table_fails_no_read(f"sqlite:///{tmp_path / 'hub.db'}")


@pytest.mark.postgres
def test_on_postgres_a_dropped_snapshot_table_fails_no_read(postgres_url):
    check_a_dropped_table_fails_no_read(postgres_url)


@pytest.mark.store
def test_a_snapshot_row_does_not_show_the_childs_key_id(tmp_path):
    """M2: only the hub key's id is in clear in a snapshot row, never the child's (which projection rows show)."""
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    child, center = a_child_of(database, 20, "k")
    hub = hub_on(database)
    try:
        read_and_check_recorded(hub, child, center)
        row = snapshot_row(hub, child)
        assert row is not None
        keys = hub.store.keys
        child_key = keys.ensure([child_scope(child)])[child_scope(child)][0]
        hub_key = keys.ensure([HUB_SCOPE])[HUB_SCOPE][0]
        assert child_key not in row[1] and child_key.hex().encode() not in row[1]
        assert row[1][1:17] == hub_key
    finally:
        hub.close()


def check_a_snapshot_of_a_destroyed_key_is_not_written(database: str) -> None:
    """L1: a snapshot sealed, then the child's key destroyed before it is written: nothing is written."""
    child, _ = a_child_of(database, 20, "r")
    hub = hub_on(database)
    try:
        snapshots = hub.store.child_snapshots
        stream = ChildRecord.create_id(child)
        state = snapshots.state_of(hub.store.get_or_none(stream))
        assert state is not None
        sealed, child_key = snapshots.seal(stream, state)
        hub.store.keys.destroy([child_scope(child)])
        assert not snapshots.write(stream, state["version"], sealed, child_key)
        assert snapshot_row(hub, child) is None
    finally:
        hub.close()


@pytest.mark.store
def test_a_snapshot_of_a_destroyed_key_is_not_written(tmp_path):
    check_a_snapshot_of_a_destroyed_key_is_not_written(f"sqlite:///{tmp_path / 'hub.db'}")


@pytest.mark.postgres
def test_on_postgres_a_snapshot_of_a_destroyed_key_is_not_written(postgres_url):
    check_a_snapshot_of_a_destroyed_key_is_not_written(postgres_url)


@pytest.mark.postgres
def test_on_postgres_a_snapshot_written_while_its_key_is_being_destroyed_waits_and_is_not_written(postgres_url):
    """L1: the destruction of the child's key in progress (not committed) when a snapshot is written: the write
    waits for it (the key's row locked FOR SHARE), then sees the key destroyed and writes nothing."""
    child, _ = a_child_of(postgres_url, 20, "p")
    hub = hub_on(postgres_url)
    try:
        snapshots = hub.store.child_snapshots
        stream = ChildRecord.create_id(child)
        state = snapshots.state_of(hub.store.get_or_none(stream))
        assert state is not None
        sealed, child_key = snapshots.seal(stream, state)
        written: list[bool] = []
        with psycopg.connect(postgres_url.split("?")[0]) as destroying:
            destroying.execute(
                f"UPDATE {hub.store.keys.table} SET wrapped = NULL, master_key = NULL, destroyed_at = 'now' "
                "WHERE key_id = %s",
                (child_key,),
            )
            writer = threading.Thread(
                target=lambda: written.append(snapshots.write(stream, state["version"], sealed, child_key))
            )
            writer.start()
            writer.join(1.0)
            assert writer.is_alive()  # waiting for the destruction
            destroying.commit()
        writer.join(10)
        assert written == [False]
        assert snapshot_row(hub, child) is None
    finally:
        hub.close()


def check_forget_never_stops_the_destruction_of_a_batch(database: str) -> None:
    """L1: two children erased in one batch with the snapshots' table gone (``forget`` fails): both children's
    keys are destroyed and the publish is accepted."""
    pref = make_prefecture()
    hub = hub_on(database)
    try:
        hub.load_orgs(pref.orgs)
        publish(hub, list(event_stream(pref, 2, 20, prefix="b", seed=4)))
        children = ["b0000000", "b0000001"]
        with hub.store.child_snapshots.datastore.transaction(commit=True) as cursor:
            cursor.execute(f"DROP TABLE {hub.store.child_snapshots.table}")
        publish(hub, [erasure(child, center_of(hub, child)) for child in children])
        keys = hub.store.keys
        with keys.datastore.transaction(commit=False) as cursor:
            for child in children:
                cursor.execute(
                    keys._sql(f"SELECT COUNT(*) AS n FROM {keys.table} WHERE scope = ? AND destroyed_at IS NULL"),
                    (keys.scope_hash(child_scope(child)),),
                )
                assert cursor.fetchone()["n"] == 0, child
        assert hub.store.child_snapshots.failures == 2
    finally:
        hub.close()


@pytest.mark.store
def test_forget_never_stops_the_destruction_of_a_batch(tmp_path):
    check_forget_never_stops_the_destruction_of_a_batch(f"sqlite:///{tmp_path / 'hub.db'}")


@pytest.mark.postgres
def test_on_postgres_forget_never_stops_the_destruction_of_a_batch(postgres_url):
    check_forget_never_stops_the_destruction_of_a_batch(postgres_url)


@pytest.mark.store
def test_a_snapshot_that_does_not_open_is_logged_and_replaced(tmp_path, caplog):
    """L3: a forged snapshot row (another child's snapshot at a huge version) does not open: it is logged as
    such (not as an erasure), the read replays the events, and the next snapshot overwrites it."""
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    pref = make_prefecture()
    hub = hub_on(database)
    hub.load_orgs(pref.orgs)
    publish(hub, list(event_stream(pref, 2, 20, prefix="t", seed=6)))
    child, other = "t0000000", "t0000001"
    center, other_center = center_of(hub, child), center_of(hub, other)
    hub.close()
    hub = hub_on(database)
    try:
        timeline_of(hub, other, other_center)  # a cold read: the other child's snapshot
        snapshots = hub.store.child_snapshots
        row = snapshot_row(hub, other)
        assert row is not None
        with snapshots.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                snapshots._sql(f"INSERT INTO {snapshots.table} (stream, version, state) VALUES (?, ?, ?)"),
                (snapshots._key(ChildRecord.create_id(child)), 10**12, row[1]),
            )
        with caplog.at_level(logging.WARNING, logger="events.snapshots"):
            read_and_check_recorded(hub, child, center)
        assert any("does not open" in r.getMessage() for r in caplog.records)
        replaced = snapshot_row(hub, child)
        assert replaced is not None and replaced[0] < 10**12
        hub.store._forget_cached()
        assert snapshots.load(ChildRecord.create_id(child)).from_snapshot
    finally:
        hub.close()


@pytest.mark.store
def test_an_upcaster_of_the_childs_events_makes_older_snapshots_not_open(tmp_path, monkeypatch):
    """L4: ``ChildRecord.Published.class_version`` is in the snapshot's associated data: raised (a new upcaster),
    the older snapshot does not open and the events are replayed."""
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    child, center = a_child_of(database, 20, "u")
    hub = hub_on(database)
    try:
        read_and_check_recorded(hub, child, center)
        stream = ChildRecord.create_id(child)
        assert hub.store.child_snapshots.load(stream).from_snapshot
        monkeypatch.setattr(ChildRecord.Published, "class_version", 2, raising=False)
        monkeypatch.setattr(ChildRecord.Published, "upcast_v1_v2", staticmethod(lambda state: None), raising=False)
        loaded = hub.store.child_snapshots.load(stream)
        assert not loaded.from_snapshot and loaded.unopened is not None
    finally:
        hub.close()


@pytest.mark.store
def test_a_snapshot_is_written_only_while_the_stream_is_at_its_version(tmp_path):
    """What keeps a snapshot from being sealed under a key made after an erasure it does not hold: ``take`` writes
    only while the child's stream is still at the snapshot's version (and never a record holding ``child.erased``),
    and never replaces a newer snapshot by an older one."""
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    pref = make_prefecture()
    hub = hub_on(database)
    try:
        hub.load_orgs(pref.orgs)
        publish(hub, list(event_stream(pref, 1, 30, prefix="v", seed=9)))
        child = "v0000000"
        stream = ChildRecord.create_id(child)
        snapshots = hub.store.child_snapshots
        old = snapshots.state_of(hub.store.replayed(stream))
        assert old is not None
        publish(hub, extra_events(child, center_of(hub, child), random.Random(1), 2))
        assert not snapshots.take(stream, old)  # the stream moved on: not written
        assert not snapshots.load(stream).from_snapshot
        new = snapshots.state_of(hub.store.replayed(stream))
        assert new is not None and snapshots.take(stream, new)
        assert not snapshots.take(stream, old)  # never an older one over a newer one
        loaded = snapshots.load(stream)
        assert loaded.from_snapshot and loaded.replayed == 0
        publish(hub, [erasure(child, center_of(hub, child))])
        assert snapshots.state_of(hub.store.replayed(stream)) is None  # an erased child's record: no snapshot
    finally:
        hub.close()
