"""The children's snapshots (``events.snapshots``): a cold read loads a child from its sealed snapshot and the events
after it, and gets exactly what replaying every event gives; an erased child's snapshot opens for nobody and its
read is what it was without snapshots; ``audit verify`` replays events and does not trust a snapshot; a store
without snapshots reads as before. On SQLite and on PostgreSQL."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

import pytest

from bench.prefecture import event_stream, make_prefecture
from consent.model import Settings
from events.model import Recorded
from events.sealing import KeyDestroyed
from events.store import ChildRecord, recorded_from
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
