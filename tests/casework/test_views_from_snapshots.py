"""The views that decide many children at once (``services.casework.rows``) load the children they decide again
from their snapshots and the events after them (``events.store.HubStore.load_children``,
``events.snapshots.ChildSnapshots.load_many``: one query for all of them), and show and record exactly what they
show and record without snapshots; an erased child's snapshot never opens among many; a tampered snapshot among
many falls back to the events for that child only; the views take the snapshots their loads make due once they
are recorded, and a snapshot that cannot be written fails no view. On SQLite and on PostgreSQL."""

from __future__ import annotations

import itertools
import logging
import random
import tempfile
import threading
import time
from dataclasses import asdict, replace
from datetime import date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.prefecture import event_stream, make_prefecture
from consent.model import Settings
from events.sealing import KeyDestroyed, child_scope
from events.store import ChildRecord
from services.audit.replay import access_records
from services.casework.ledger import CaseViews
from services.casework.ledger_query import LedgerQuery
from services.hub import Hub, SettableClock
from services.reading import view_log
from services.web import casebook
from services.web.session import Person
from tests.events.test_snapshots import erasure, extra_events, snapshot_row

NOW = datetime.fromisoformat("2026-11-23T09:00:00+09:00")
WORLD_NUMBERS = itertools.count()
NEVER = 10**9  # a threshold no load reaches: no snapshot is taken


def prefecture() -> Any:
    """Two municipalities, and a 児童相談所 covering both (the joint ledger has rows)."""
    pref = make_prefecture(municipalities=2, schools_per=3, nurseries_per=2)
    jiso = next(o["id"] for o in pref.orgs if o["type"] == "child_guidance_center")
    orgs = [dict(o, covers=list(pref.municipalities)) if o["id"] == jiso else o for o in pref.orgs]
    return replace(pref, orgs=orgs)


def hub_on(database: str, after: int) -> Hub:
    """A new hub (empty caches: every child it decides is loaded cold) taking snapshots after ``after`` events."""
    hub = Hub(database, settings=Settings(joint_ledger=True), clock=SettableClock(NOW))
    hub.store.child_snapshots.after = hub.store.child_snapshots.view_after = after
    return hub


def publish(hub: Hub, envelopes: list[dict[str, Any]]) -> None:
    results = hub.publish(envelopes)
    assert all(r.outcome == "accepted" for r in results), [r.to_dict() for r in results if r.outcome != "accepted"][:1]


def children_of(hub: Hub, prefix: str, n: int) -> list[str]:
    return [c for i in range(n) if hub.store.get_or_none(ChildRecord.create_id(c := f"{prefix}{i:07d}")) is not None]


def center_of(hub: Hub, child: str) -> str:
    return hub.store.get_or_none(ChildRecord.create_id(child)).entries[0].source


def viewers(hub: Hub) -> tuple[list[str], str]:
    orgs = hub.orgs().values()
    return sorted(o.id for o in orgs if o.type == "municipal_center"), next(
        o.id for o in orgs if o.type == "child_guidance_center"
    )


ACCESS_APART = ("id", "hash", "prev_hash", "sequence", "log_position", "view", "recorded_at")  # differ from run to run
VIEW_APART = ("id", "hash", "prev_hash", "sequence", "log_position", "shown", "sample", "recorded_at")


def run_views(hub: Hub) -> dict[str, Any]:
    """Every view that decides many children, as each centre and the 児童相談所 see it (the ledger's first page,
    the CSV of every row, the agenda, the start page; the joint ledger and its CSV), and what each recorded: the
    rows field for field, the access records and view records without what differs from run to run."""
    centers, jiso = viewers(hub)
    views = CaseViews(hub)
    out: dict[str, Any] = {}
    before_access = {r["id"] for r in access_records(hub.store)}
    before_views = len(list(view_log.stored_views(hub.store)))
    for org in centers:
        page = views.ledger(org, LedgerQuery({"per_page": "5"}))
        out[f"{org} ledger"] = [asdict(r) for r in page.rows] + [page.total]
        every = views.ledger(org, LedgerQuery({}, per_page=None), export=True)
        out[f"{org} csv"] = [asdict(r) for r in every.rows]
        agenda = views.agenda(org, date(2026, 12, 1))
        out[f"{org} agenda"] = [asdict(r) for r in agenda.attention + agenda.confirmation]
        start = casebook.overview(hub, Person("職員", "sub-1", org, "caseworker"), NOW.date(), 3)
        out[f"{org} start"] = {name: asdict(getattr(start, name)) for name in casebook.ITEMS} | {
            "urgent": [repr(u) for u in start.urgent],
            "overdue": start.overdue_by_school,
        }
    joint = views.ledger(jiso, LedgerQuery({"per_page": "5"}), joint=True)
    out["joint ledger"] = [asdict(r) for r in joint.rows] + [joint.total]
    out["joint csv"] = [asdict(r) for r in views.ledger(jiso, LedgerQuery({}, per_page=None), joint=True).rows]
    start = casebook.overview(hub, Person("職員", "sub-2", jiso, "caseworker"), NOW.date(), 3)
    out["joint start"] = {name: asdict(getattr(start, name)) for name in casebook.ITEMS}
    records = [r for r in access_records(hub.store) if r["id"] not in before_access]
    out["access records"] = sorted(
        ({k: v for k, v in r.items() if k not in ACCESS_APART} for r in records), key=lambda r: repr(sorted(r.items()))
    )
    stored = [dict(hub.store.mapper.to_domain_event(s).record) for s in view_log.stored_views(hub.store)]
    out["view records"] = [
        {k: v for k, v in record.items() if k not in VIEW_APART} | {"shown": sorted(record["shown"])}
        for record in stored[before_views:]
    ]
    assert out["access records"] and len(out["view records"]) == 4 * len(centers) + 3
    return out


def check_views_equal_with_and_without_snapshots(database: str, seed: int) -> None:
    """A random world published in random chunks; between chunks, views in new hubs take the snapshots their
    loads make due (at random thresholds: some children get one, some an older one and a tail, some none); then
    events for some children that have a snapshot (each then has a tail). Then every view, in a new hub that has
    loaded nothing before (every child cold: from its snapshot and the events after it), and again in a new hub
    with the snapshots dropped: the same rows, field for field, and the same access and view records. The first
    run must have loaded children from their snapshots, some with a tail, and failed nothing."""
    rng = random.Random(seed)
    prefix = f"v{seed}w{next(WORLD_NUMBERS)}c"  # its own children, should a store hold several worlds
    pref = prefecture()
    hub = hub_on(database, NEVER)
    hub.load_orgs(pref.orgs)
    hub.close()
    n = rng.randrange(6, 11)
    stream = list(event_stream(pref, n, rng.randrange(20, 40), prefix=prefix, seed=seed))
    published = 0
    while published < len(stream):
        chunk = stream[published : published + rng.randrange(20, 120)]
        published += len(chunk)
        hub = hub_on(database, NEVER)
        publish(hub, chunk)
        known = children_of(hub, prefix, n)
        for child in rng.sample(known, k=min(len(known), rng.randrange(0, 3))):
            publish(hub, extra_events(child, center_of(hub, child), rng, rng.randrange(1, 6)))
        hub.close()
        if rng.random() < 0.6:
            hub = hub_on(database, rng.choice([1, 5, 20]))  # the views take the snapshots due
            run_views(hub)
            hub.close()
    hub = hub_on(database, NEVER)  # this hub loads the children; the views run in others
    known = children_of(hub, prefix, n)
    if not any(snapshot_row(hub, c) for c in known):
        hub.close()
        hub = hub_on(database, 1)
        run_views(hub)  # snapshots of every child
        hub.close()
        hub = hub_on(database, NEVER)
    snapshotted = [c for c in known if snapshot_row(hub, c) is not None]
    tailed = rng.sample(snapshotted, k=rng.randrange(1, min(3, len(snapshotted)) + 1))
    for child in tailed:
        publish(hub, extra_events(child, center_of(hub, child), rng, rng.randrange(1, 6)))
    hub.close()
    hub = hub_on(database, NEVER)  # nothing loaded: the views load every child cold
    try:
        from_snapshots = run_views(hub)
        snapshots = hub.store.child_snapshots
        assert snapshots.loaded_from_snapshot >= len(snapshotted), (snapshots.loaded_from_snapshot, snapshotted)
        assert snapshots.loaded_with_tail >= len(tailed), (snapshots.loaded_with_tail, tailed)
        assert snapshots.failures == 0
        snapshots.drop()
    finally:
        hub.close()
    hub = hub_on(database, NEVER)
    try:
        assert run_views(hub) == from_snapshots
        assert hub.store.child_snapshots.loaded_from_snapshot == 0
        assert hub.store.child_snapshots.count() == 0
        assert hub.verify().ok
    finally:
        hub.close()


def a_world_with_snapshots(database: str, prefix: str) -> tuple[list[str], dict[str, tuple[int, bytes]]]:
    """Six children with 30 events each, every one snapshotted by a view; the children and their snapshot rows."""
    pref = prefecture()
    hub = hub_on(database, NEVER)
    hub.load_orgs(pref.orgs)
    publish(hub, list(event_stream(pref, 6, 30, prefix=prefix, seed=11)))
    children = children_of(hub, prefix, 6)
    hub.close()
    hub = hub_on(database, 1)
    try:
        _, due = hub.store.load_children({ChildRecord.create_id(c): c for c in children})
        assert len(due) == len(children) and hub.store.child_snapshots.keep_all(due) == len(children)
        return children, {c: row for c in children if (row := snapshot_row(hub, c)) is not None}
    finally:
        hub.close()


def put_row(hub: Hub, child: str, row: tuple[int, bytes]) -> None:
    snapshots = hub.store.child_snapshots
    with snapshots.datastore.transaction(commit=True) as cursor:
        cursor.execute(
            snapshots._sql(f"DELETE FROM {snapshots.table} WHERE stream = ?"),
            (snapshots._key(ChildRecord.create_id(child)),),
        )
        cursor.execute(
            snapshots._sql(f"INSERT INTO {snapshots.table} (stream, version, state) VALUES (?, ?, ?)"),
            (snapshots._key(ChildRecord.create_id(child)), *row),
        )


def replayed(hub: Hub, children: list[str]) -> dict[Any, Any]:
    """Each child's record from every one of its events (what ``audit verify`` replays), as comparable dicts."""
    return {
        ChildRecord.create_id(c): vars(r) if (r := hub.store.replayed(ChildRecord.create_id(c))) is not None else None
        for c in children
    }


def check_an_erased_childs_snapshot_never_opens_among_many(database: str) -> None:
    """An erased child's snapshot, put back from a copy kept from before the erasure (as a backup would), does not
    open when many children are loaded at once: that child is replayed from its events (its erasure), the others
    come from their snapshots, and the views show and record what they do without snapshots."""
    children, rows = a_world_with_snapshots(database, "ve")
    erased = children[2]
    hub = hub_on(database, NEVER)
    publish(hub, [erasure(erased, center_of(hub, erased))])
    assert snapshot_row(hub, erased) is None  # the erasure deleted the row
    with pytest.raises(KeyDestroyed):
        hub.store.child_snapshots.unseal(ChildRecord.create_id(erased), *rows[erased])
    put_row(hub, erased, rows[erased])  # the backup put back
    hub.close()
    hub = hub_on(database, 1)
    try:
        loaded = hub.store.child_snapshots.load_many(ChildRecord.create_id(c) for c in children)
        for child in children:
            found = loaded[ChildRecord.create_id(child)]
            assert found.from_snapshot == (child != erased), child
            assert found.unopened is None  # the key's destruction is expected: quiet, nothing to replace
        assert {s: vars(found.record) for s, found in loaded.items()} == replayed(hub, children)
        # the view's own load, each child's key fetched with its snapshot: the erased child has no live key, so
        # its snapshot's key is read on its own and found destroyed, as above
        records, _ = hub.store.load_children({ChildRecord.create_id(c): c for c in children})
        assert {s: vars(r) if r is not None else None for s, r in records.items()} == replayed(hub, children)
        _, due = hub.store.load_children({ChildRecord.create_id(c): c for c in children})
        assert not due  # the others replayed nothing after their snapshots; an erased child is never snapshotted
        with_backup = run_views(hub)
        assert snapshot_row(hub, erased) == rows[erased]  # not replaced: an erased child gets no snapshot
        hub.store.child_snapshots.drop()
    finally:
        hub.close()
    hub = hub_on(database, NEVER)
    try:
        assert run_views(hub) == with_backup
        assert hub.verify().ok
    finally:
        hub.close()


def check_a_tampered_snapshot_among_many_falls_back_for_that_child_only(database: str, caplog) -> None:
    children, rows = a_world_with_snapshots(database, "vt")
    tampered = children[1]
    version, state = rows[tampered]
    hub = hub_on(database, NEVER)
    put_row(hub, tampered, (version, state[:-1] + bytes([state[-1] ^ 1])))
    hub.close()
    hub = hub_on(database, 1)
    try:
        with caplog.at_level(logging.WARNING, logger="events.snapshots"):
            loaded = hub.store.child_snapshots.load_many(ChildRecord.create_id(c) for c in children)
        assert [m for m in caplog.messages if "does not open" in m and str(ChildRecord.create_id(tampered)) in m]
        for child in children:
            found = loaded[ChildRecord.create_id(child)]
            assert found.from_snapshot == (child != tampered), child
            assert (found.unopened is not None) == (child == tampered), child
        assert {s: vars(found.record) for s, found in loaded.items()} == replayed(hub, children)
        shown = run_views(hub)  # the views replay that child, and take its snapshot again once recorded
        assert hub.store.child_snapshots.load(ChildRecord.create_id(tampered)).from_snapshot
        hub.store.child_snapshots.drop()
    finally:
        hub.close()
    hub = hub_on(database, NEVER)
    try:
        assert run_views(hub) == shown
    finally:
        hub.close()


def check_a_snapshot_that_cannot_be_written_fails_no_view(database: str) -> None:
    """The views take their snapshots after they are recorded, best-effort: with the snapshots' table gone, every
    view shows and records what it does with it, and the failure is counted."""
    pref = prefecture()
    hub = hub_on(database, NEVER)
    hub.load_orgs(pref.orgs)
    publish(hub, list(event_stream(pref, 5, 25, prefix="vd", seed=13)))
    hub.close()
    hub = hub_on(database, NEVER)
    want = run_views(hub)
    hub.close()
    hub = hub_on(database, 1)
    try:
        snapshots = hub.store.child_snapshots
        with snapshots.datastore.transaction(commit=True) as cursor:
            cursor.execute(f"DROP TABLE {snapshots.table}")
        got = run_views(hub)
        assert snapshots.failures > 0
        # the same rows and records, but for the access records' chain (the first run recorded before)
        assert got == want
    finally:
        hub.close()


WORLDS = settings(max_examples=4, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.mark.store
@WORLDS
@given(seed=st.integers(min_value=0, max_value=10**6))
def test_the_views_show_and_record_the_same_with_and_without_snapshots(seed):
    with tempfile.TemporaryDirectory() as directory:
        check_views_equal_with_and_without_snapshots(f"sqlite:///{directory}/views.db", seed)


def check_a_views_load_fetches_each_childs_key_with_its_snapshot(database: str) -> None:
    """A view's cold load of many children (``HubStore.load_children``) takes each child's key in with its
    snapshot (as the scope's active key, which opening the snapshot alone, ``DataKeys.open``, does not do), so
    that a view of thousands of children does not read their keys one statement at a time, and loads the same
    records as without it."""
    children, _ = a_world_with_snapshots(database, "vk")
    hub = hub_on(database, NEVER)
    try:
        records, _ = hub.store.load_children({ChildRecord.create_id(c): c for c in children})
        keys = hub.store.keys
        with keys._lock:
            taken_in = [c for c in children if keys._cached_active(keys.scope_hash(child_scope(c)), 0.0) is not None]
        assert taken_in == children
        assert hub.store.child_snapshots.loaded_from_snapshot == len(children)
        assert {s: vars(r) if r is not None else None for s, r in records.items()} == replayed(hub, children)
    finally:
        hub.close()


@pytest.mark.store
def test_a_views_load_fetches_each_childs_key_with_its_snapshot(tmp_path):
    check_a_views_load_fetches_each_childs_key_with_its_snapshot(f"sqlite:///{tmp_path / 'keys.db'}")


@pytest.mark.postgres
def test_on_postgres_a_views_load_fetches_each_childs_key_with_its_snapshot(postgres_url):
    check_a_views_load_fetches_each_childs_key_with_its_snapshot(postgres_url)


@pytest.mark.store
def test_an_erased_childs_snapshot_never_opens_among_many(tmp_path):
    check_an_erased_childs_snapshot_never_opens_among_many(f"sqlite:///{tmp_path / 'erased.db'}")


@pytest.mark.store
def test_a_tampered_snapshot_among_many_falls_back_for_that_child_only(tmp_path, caplog):
    check_a_tampered_snapshot_among_many_falls_back_for_that_child_only(f"sqlite:///{tmp_path / 't.db'}", caplog)


@pytest.mark.store
def test_a_snapshot_that_cannot_be_written_fails_no_view(tmp_path):
    check_a_snapshot_that_cannot_be_written_fails_no_view(f"sqlite:///{tmp_path / 'dropped.db'}")


@pytest.mark.postgres
@settings(max_examples=2, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(min_value=0, max_value=10**6))
def test_on_postgres_the_views_show_and_record_the_same_with_and_without_snapshots(postgres_url, seed):
    check_views_equal_with_and_without_snapshots(postgres_url, seed)  # the worlds share a schema


@pytest.mark.postgres
def test_on_postgres_an_erased_childs_snapshot_never_opens_among_many(postgres_url):
    check_an_erased_childs_snapshot_never_opens_among_many(postgres_url)


@pytest.mark.postgres
def test_on_postgres_a_tampered_snapshot_among_many_falls_back_for_that_child_only(postgres_url, caplog):
    check_a_tampered_snapshot_among_many_falls_back_for_that_child_only(postgres_url, caplog)


@pytest.mark.postgres
def test_on_postgres_a_snapshot_that_cannot_be_written_fails_no_view(postgres_url):
    check_a_snapshot_that_cannot_be_written_fails_no_view(postgres_url)


def a_world_loaded(database: str, prefix: str, children: int) -> tuple[list[str], dict[str, str]]:
    """``children`` children with 25 events each, no snapshot; the children and each one's centre."""
    pref = prefecture()
    hub = hub_on(database, NEVER)
    try:
        hub.load_orgs(pref.orgs)
        publish(hub, list(event_stream(pref, children, 25, prefix=prefix, seed=5)))
        known = children_of(hub, prefix, children)
        return known, {c: center_of(hub, c) for c in known}
    finally:
        hub.close()


def live_keys(hub: Hub, child: str) -> int:
    """How many live (not destroyed) data keys the child's scope has."""
    keys = hub.store.keys
    with keys.datastore.transaction(commit=False) as cursor:
        cursor.execute(
            keys._sql(f"SELECT COUNT(*) AS n FROM {keys.table} WHERE scope = ? AND destroyed_at IS NULL"),
            (keys.scope_hash(child_scope(child)),),
        )
        return int(cursor.fetchone()["n"])


def check_an_erasure_between_a_views_load_and_its_snapshots(database: str) -> None:
    """A child erased (by another process) after a view loaded it and before the view takes its snapshots: the
    erased child gets no snapshot and no new data key (the snapshot is sealed only under a live key), and the
    other children's snapshots are written."""
    children, centers = a_world_loaded(database, "er", 4)
    erased = children[0]
    view = hub_on(database, 1)
    try:
        _, due = view.store.load_children({ChildRecord.create_id(c): c for c in children})
        assert len(due) == len(children)
        other = hub_on(database, NEVER)
        publish(other, [erasure(erased, centers[erased])])
        other.close()
        assert live_keys(view, erased) == 0
        assert view.store.child_snapshots.keep_all(due) == len(children) - 1
        assert live_keys(view, erased) == 0, "a snapshot gave an erased child a new data key"
        assert snapshot_row(view, erased) is None
        assert all(snapshot_row(view, c) is not None for c in children[1:])
        assert view.store.child_snapshots.failures == 0  # an erasure is expected: quiet
    finally:
        view.close()


def check_a_batch_that_cannot_be_written_loses_only_its_own(database: str, monkeypatch) -> None:
    """``keep_all`` writes in stream order, ``batch`` snapshots to a transaction: a batch whose write fails (here
    the first stream's row, made to fail) is logged and counted, and the other batches are written."""
    children, _ = a_world_loaded(database, "bt", 5)
    hub = hub_on(database, 1)
    try:
        snapshots = hub.store.child_snapshots
        snapshots.batch = 2
        _, due = hub.store.load_children({ChildRecord.create_id(c): c for c in children})
        first = min(d.stream for d in due)
        real = snapshots._write

        def write(cursor: Any, stream: Any, *args: Any) -> bool:
            if stream == first:
                raise RuntimeError("this row cannot be written")
            return real(cursor, stream, *args)

        monkeypatch.setattr(snapshots, "_write", write)
        assert snapshots.keep_all(reversed(due)) == len(children) - 2  # the first batch (two) only is lost
        assert snapshots.failures == 1
        written = sorted(d.stream for d in due)[2:]
        assert {
            s for s in (ChildRecord.create_id(c) for c in children) if hub.store.child_snapshots.load(s).from_snapshot
        } == set(written)
    finally:
        hub.close()


def check_two_views_snapshots_in_opposite_orders_do_not_deadlock(database: str, monkeypatch) -> None:
    """Two processes' views take the snapshots of the same children, found in opposite orders, at once: both
    write in stream order, so neither waits for a lock the other holds while holding one it wants (on PostgreSQL
    one would be aborted, ``deadlock detected``, and none of its snapshots written). Each row's write is followed by
    a pause only to make the two transactions overlap, as a view of thousands of children's do."""
    children, _ = a_world_loaded(database, "dl", 4)
    ids = {ChildRecord.create_id(c): c for c in children}
    a, b = hub_on(database, 1), hub_on(database, 1)
    try:
        _, due_a = a.store.load_children(ids)
        _, due_b = b.store.load_children(dict(reversed(ids.items())))
        assert [d.stream for d in due_a] == list(reversed([d.stream for d in due_b]))
        for hub in (a, b):
            snapshots = hub.store.child_snapshots
            monkeypatch.setattr(snapshots, "_write", paused(snapshots._write))
        written: dict[str, int] = {}
        threads = [
            threading.Thread(
                target=lambda n, h, d: written.__setitem__(n, h.store.child_snapshots.keep_all(d)), args=args
            )
            for args in (("a", a, due_a), ("b", b, due_b))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert a.store.child_snapshots.failures == b.store.child_snapshots.failures == 0
        assert written["a"] + written["b"] >= len(children)
        assert a.store.child_snapshots.count() == len(children)
    finally:
        a.close()
        b.close()


def paused(write: Any) -> Any:
    def after_a_pause(*args: Any) -> bool:
        done = write(*args)
        time.sleep(0.3)
        return bool(done)

    return after_a_pause


@pytest.mark.store
def test_an_erasure_between_a_views_load_and_its_snapshots(tmp_path):
    check_an_erasure_between_a_views_load_and_its_snapshots(f"sqlite:///{tmp_path / 'erasure.db'}")


@pytest.mark.postgres
def test_on_postgres_an_erasure_between_a_views_load_and_its_snapshots(postgres_url):
    check_an_erasure_between_a_views_load_and_its_snapshots(postgres_url)


@pytest.mark.store
def test_a_batch_of_snapshots_that_cannot_be_written_loses_only_its_own(tmp_path, monkeypatch):
    check_a_batch_that_cannot_be_written_loses_only_its_own(f"sqlite:///{tmp_path / 'batch.db'}", monkeypatch)


@pytest.mark.postgres
def test_on_postgres_two_views_snapshots_in_opposite_orders_do_not_deadlock(postgres_url, monkeypatch):
    check_two_views_snapshots_in_opposite_orders_do_not_deadlock(postgres_url, monkeypatch)
