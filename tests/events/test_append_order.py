"""Notification ids are committed in the order they are given, on both paths of ``tsunagu_append_events`` (the turn's
save, ``insert_events(held=…)``, and an append in a transaction of its own): a reader that tails the log by
notification id (``select_notifications(position + 1, …)``, as ``services.casework.rows.VersionWatch`` and the
audit's topic indexes do) never passes an id that commits later. What keeps it is the events table's lock taken in
the function before the insert takes its ids (``LOCK TABLE … IN EXCLUSIVE MODE``, the library's ``_lock_table``
on main): these tests fail without it."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from psycopg.sql import SQL, Identifier

from events.store import AccessLog, HubStore, _StreamTurns
from services.hub import Hub
from tests.events.test_turn_messages import chained_after, server_and_schema

pytestmark = [pytest.mark.store, pytest.mark.postgres]


def append_without_committing(conn: psycopg.Connection[Any], store: HubStore, schema: str) -> int:
    """Append one event to a new stream through ``tsunagu_append_events`` in ``conn``'s open transaction, as a
    writer in a transaction of its own does before its commit: its notification id is taken, not yet committed."""
    id_type = store.recorder.datastore.originator_id_type
    row = conn.execute(
        SQL(
            "SELECT notification_id FROM {append}(%s::{id_type}[], %s::integer[], %s::text[], %s::bytea[], %s::text)"
        ).format(append=Identifier(schema, "tsunagu_append_events"), id_type=Identifier(id_type)),
        [[uuid4()], [1], ["tests:LateCommit"], [b"late"], "0s"],
    ).fetchone()
    assert row is not None
    return int(row[0])


def stored_ids(server: str, schema: str) -> list[int]:
    with psycopg.connect(server, autocommit=True) as conn:
        statement = SQL("SELECT notification_id FROM {} ORDER BY 1").format(Identifier(schema, "tsunagu_events"))
        return [row[0] for row in conn.execute(statement)]


def waiting_for_the_events_table(server: str, schema: str) -> bool:
    """Whether a session waits for a lock on this schema's events table."""
    with psycopg.connect(server, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = %s::regclass",
            [f'"{schema}".tsunagu_events'],
        ).fetchone()
    assert row is not None
    return bool(row[0])


def tail(store: HubStore, position: int) -> list[int]:
    """The ids stored after ``position``, as a reader of the log takes them (its next position: the last)."""
    return [n.id for n in store.recorder.select_notifications(position + 1, 10_000)]


@pytest.mark.parametrize("path", ["turn", "own transaction"])
def test_a_save_waits_for_an_id_taken_before_it_so_a_tail_of_the_log_misses_neither(postgres_url, path):
    """A writer has taken its id and not committed; a save meanwhile (a turn's, or one in its own transaction) must
    wait for it, not commit a higher id that a reader of the log could pass the first one by."""
    server, schema = server_and_schema(postgres_url)
    hub = Hub(postgres_url)
    try:
        store = hub.store
        start = store.recorder.max_notification_id() or 0
        stream = AccessLog.create_id("c1")

        def save() -> None:
            if path == "turn":
                with store.append_in_turn([stream]) as turn:
                    turn.save(chained_after(stream, None, "c1", "w"))
            else:
                store.save(chained_after(stream, None, "c1", "w"))

        with psycopg.connect(server) as late, ThreadPoolExecutor(1) as pool:  # late: its transaction stays open
            late_id = append_without_committing(late, store, schema)
            saved = pool.submit(save)
            for _ in range(3000):  # until the save has returned or waits for the table
                if saved.done() or waiting_for_the_events_table(server, schema):
                    break
                time.sleep(0.01)
            else:
                pytest.fail("the save neither returned nor waited for the events table")
            seen = tail(store, start)
            late.commit()
            saved.result()
        seen += tail(store, max(seen, default=start))
        assert late_id in seen
        assert sorted(seen) == [i for i in stored_ids(server, schema) if i > start]
    finally:
        hub.close()


def test_writers_of_two_processes_on_both_paths_never_commit_an_id_below_one_a_tail_has_read(postgres_url):
    """Six threads on two hubs (the second with turns of its own, as another process has) append 20 times each,
    two in three through turns on common children's logs and one in three in a transaction of its own, while a
    seventh commits a taken id late (after a pause on the server) ten times and a reader tails the log by
    notification id: the reader sees every stored id."""
    server, schema = server_and_schema(postgres_url)
    hubs = [Hub(postgres_url), Hub(postgres_url)]
    hubs[1].store.turns = _StreamTurns()
    start = hubs[0].store.recorder.max_notification_id() or 0
    writing = threading.Event()
    writing.set()
    seen: list[int] = []

    def reader() -> None:
        position = start
        while writing.is_set():
            for id in tail(hubs[0].store, position):
                seen.append(id)
                position = id
        seen.extend(tail(hubs[0].store, position))

    def writer(n: int) -> None:
        store = hubs[n % 2].store
        for k in range(20):
            if k % 3 == 0:  # in a transaction of its own, a new log each
                child = f"own{n}-{k}"
                store.save(chained_after(AccessLog.create_id(child), None, child, "x"))
            else:
                streams = {c: AccessLog.create_id(c) for c in (f"c{(n + j) % 5}" for j in range(3))}
                with store.append_in_turn(streams.values()) as turn:
                    turn.save(*(chained_after(s, turn.heads.get(s), c, f"w{n}-{k}") for c, s in streams.items()))

    def late_writer() -> None:
        with psycopg.connect(server) as conn:
            for _ in range(10):
                append_without_committing(conn, hubs[0].store, schema)
                conn.execute("SELECT pg_sleep(0.05)")  # the id taken, the commit late
                conn.commit()

    tail_thread = threading.Thread(target=reader)
    tail_thread.start()
    try:
        with ThreadPoolExecutor(7) as pool:
            done = [pool.submit(writer, n) for n in range(6)] + [pool.submit(late_writer)]
            for future in done:
                future.result()
    finally:
        writing.clear()
        tail_thread.join()
        for hub in hubs:
            hub.close()
    stored = [i for i in stored_ids(server, schema) if i > start]
    assert sorted(set(stored) - set(seen)) == []
    assert sorted(seen) == stored
