"""The turn in two messages (``PostgresRecorder.streams_locked`` with ``insert_events(held=…)``) and the appends in one
statement (``tsunagu_append_events``): a turn's save appends and commits in one message, so that neither the events
table's lock nor the streams' locks are held once the save has returned (they were held until the block ended, while
the API thread went on in Python, waiting for its GIL: ``docs/benchmarks.md``, "The wait of two API processes");
a turn saves once; a block that raises gives everything back and stores nothing; and writers of two processes on
common streams still append one at a time, every record once and chained to the one before."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, ProgrammingError

from events.postgres import stream_lock_key
from events.store import AccessLog, HubStore, _StreamTurns
from services.hub import Hub

pytestmark = [pytest.mark.store, pytest.mark.postgres]


def server_and_schema(url: str) -> tuple[str, str]:
    server, schema = url.split("?schema=")
    return server, schema


def chained_after(stream: Any, head: Any, child: str, writer: str) -> Any:
    """The next record of ``stream`` after ``head`` (None: a new log), carrying the hash of the one before."""
    previous = head.record["hash"] if isinstance(head, AccessLog.ReadRecorded) else ""
    record = {"child": child, "writer": writer, "prev_hash": previous}
    record["hash"] = hashlib.sha256(f"{previous}|{writer}".encode()).hexdigest()
    if head is None:
        log = AccessLog(child)
        log.record(record=record)
        return log
    return AccessLog.ReadRecorded(
        originator_id=stream,
        originator_version=head.originator_version + 1,
        timestamp=AccessLog.ReadRecorded.create_timestamp(),
        record=record,
    )


def locks_held_elsewhere(server: str, schema: str, streams: list[Any]) -> list[str]:
    """The locks another session holds on the events table or on the streams' advisory keys."""
    keys = [stream_lock_key(schema, s) for s in streams]
    with psycopg.connect(server, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT l.locktype, l.mode, coalesce(c.relname, '') FROM pg_locks l LEFT JOIN pg_class c ON c.oid = l.relation "
            "WHERE l.pid <> pg_backend_pid() AND l.granted AND ((l.locktype = 'relation' AND c.relname = "
            "'tsunagu_events' AND l.mode = 'ExclusiveLock') OR (l.locktype = 'advisory' AND "
            "((l.classid::bigint << 32) | l.objid::bigint) = ANY(%s::bigint[])))",
            [keys],
        ).fetchall()
    return [" ".join(map(str, row)) for row in rows]


def versions(store: HubStore, stream: Any) -> list[int]:
    return [e.originator_version for e in store.events.get(stream)]


def writers(store: HubStore, stream: Any) -> list[str]:
    return [e.record["writer"] for e in store.events.get(stream) if isinstance(e, AccessLog.ReadRecorded)]


def test_a_turns_save_commits_and_gives_back_every_lock_before_the_block_goes_on(postgres_url):
    server, schema = server_and_schema(postgres_url)
    hub = Hub(postgres_url)
    try:
        store = hub.store
        streams = [AccessLog.create_id(c) for c in ("c1", "c2")]
        with store.append_in_turn(streams) as turn:
            assert turn.heads == {}
            assert len(locks_held_elsewhere(server, schema, streams)) == 2  # the streams' locks, while chaining
            turn.save(*(chained_after(s, None, c, "w") for s, c in zip(streams, ("c1", "c2"))))
            # stored and visible to every other session, and nothing held, while the block is still open
            assert locks_held_elsewhere(server, schema, streams) == []
            other = Hub(postgres_url)
            try:
                assert [versions(other.store, s) for s in streams] == [
                    [1, 2],
                    [1, 2],
                ]  # each log's creation, its record
            finally:
                other.close()
        with store.append_in_turn(streams) as turn:  # the next turn finds the heads
            assert {s: h.originator_version for s, h in turn.heads.items()} == {s: 2 for s in streams}
    finally:
        hub.close()


def test_a_turn_saves_once_and_a_turn_that_saves_nothing_commits_and_gives_back_its_locks(postgres_url):
    server, schema = server_and_schema(postgres_url)
    hub = Hub(postgres_url)
    try:
        store = hub.store
        stream = AccessLog.create_id("c1")
        with pytest.raises(ProgrammingError, match="saves once"):
            with store.append_in_turn([stream]) as turn:
                turn.save(chained_after(stream, None, "c1", "first"))
                turn.save(chained_after(stream, turn.heads.get(stream), "c1", "second"))
        assert versions(store, stream) == [1, 2]
        with store.append_in_turn([stream]) as turn:
            assert turn.heads[stream].record["writer"] == "first"
        assert locks_held_elsewhere(server, schema, [stream]) == []
    finally:
        hub.close()


def test_a_turn_that_fails_stores_nothing_and_holds_nothing(postgres_url):
    server, schema = server_and_schema(postgres_url)
    hub = Hub(postgres_url)
    try:
        store = hub.store
        stream = AccessLog.create_id("c1")
        with store.append_in_turn([stream]) as turn:
            turn.save(chained_after(stream, None, "c1", "first"))
        with pytest.raises(RuntimeError):
            with store.append_in_turn([stream]) as turn:
                raise RuntimeError("the block fails before its save")
        assert locks_held_elsewhere(server, schema, [stream]) == []
        # a save that loses to a writer that did not take its turn: refused on the version, rolled back
        head = store.events.get(stream, desc=True, limit=1)
        stale = next(iter(head))
        with pytest.raises(IntegrityError):
            with store.append_in_turn([stream]) as turn:
                store.save(chained_after(stream, stale, "c1", "outside the turn"))  # on its own connection
                turn.save(chained_after(stream, stale, "c1", "in the turn, chained to a stale head"))
        assert locks_held_elsewhere(server, schema, [stream]) == []
        assert writers(store, stream) == ["first", "outside the turn"]
        with store.append_in_turn([stream]) as turn:  # the pool's connection came back usable
            turn.save(chained_after(stream, turn.heads[stream], "c1", "after"))
        assert writers(store, stream) == ["first", "outside the turn", "after"]
    finally:
        hub.close()


def test_writers_of_two_processes_on_common_streams_append_each_record_once_in_a_chain(postgres_url):
    """Eight threads on two hubs (the second with turns of its own, as another process has), each appending to an
    overlapping set of children's logs in its turn, 12 times: every log has each writer's records once, versions
    without gap, and each record carries the hash of the one before it."""
    children = [f"c{n}" for n in range(6)]
    hubs = [Hub(postgres_url), Hub(postgres_url)]
    hubs[1].store.turns = _StreamTurns()
    start = threading.Barrier(8)

    def writer(n: int) -> int:
        store = hubs[n % 2].store
        mine = children[n % 3 : n % 3 + 4]  # four children, shared with other writers
        streams = {c: AccessLog.create_id(c) for c in mine}
        start.wait()
        for k in range(12):
            with store.append_in_turn(streams.values()) as turn:
                turn.save(*(chained_after(s, turn.heads.get(s), c, f"w{n}-{k}") for c, s in streams.items()))
        return 12 * len(mine)

    try:
        with ThreadPoolExecutor(8) as pool:
            written = sum(pool.map(writer, range(8)))
        store = hubs[0].store
        stored = 0
        for child in children:
            events = list(store.events.get(AccessLog.create_id(child)))
            stored += len(events)
            assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
            previous = ""
            writers = []
            for event in events:
                record = event.record if isinstance(event, AccessLog.ReadRecorded) else None
                if record is None:
                    continue
                assert record["prev_hash"] == previous
                previous = record["hash"]
                writers.append(record["writer"])
            assert len(writers) == len(set(writers))
        assert stored - len(children) == written  # every record once (each log's first event is its creation)
    finally:
        for hub in hubs:
            hub.close()
