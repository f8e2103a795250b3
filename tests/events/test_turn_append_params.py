"""The turn's append goes with binary parameters, its ``COMMIT`` in the same pipeline
(``PostgresRecorder.insert_events(held=…)``): it stores the same rows, byte for byte, as an append in a
transaction of its own, whatever the states' bytes and the topics' characters; a larger save than
``TURN_PIPELINE_LIMIT`` too; and a refused turn append leaves no sealed state in PostgreSQL's server log (the
statement that failed is logged, ``log_min_error_statement``: it was once the whole message with every state as a
literal)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.sql import SQL, Composable, Identifier

from events.postgres import TURN_PIPELINE_LIMIT, PostgresRecorder
from services.hub import Hub
from tests.events.test_turn_messages import server_and_schema

pytestmark = [pytest.mark.store, pytest.mark.postgres]

HOSTILE_TOPICS = ["a''); DROP TABLE x; --", "$BODY$ $$", "{a,b}", "NULL", '""', "\\", "日本語:トピック", ""]
topics = st.one_of(
    st.sampled_from(HOSTILE_TOPICS),
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40),  # no NUL in text
)
states = st.binary(max_size=3000).map(lambda b: b + b"\x00'\\")


def events_of(stream: UUID, saved: list[tuple[str, bytes]]) -> list[StoredEvent]:
    return [
        StoredEvent(originator_id=stream, originator_version=n, topic=topic, state=state)
        for n, (topic, state) in enumerate(saved, start=1)
    ]


def events_table(schema: str) -> Composable:
    return Identifier(schema, "tsunagu_events")


def rows(recorder: PostgresRecorder, stream: UUID) -> list[tuple[int, str, bytes]]:
    return [(e.originator_version, e.topic, bytes(e.state)) for e in recorder.select_events(stream)]


def saved_both_ways(recorder: PostgresRecorder, saved: list[tuple[str, bytes]]) -> None:
    in_turn, own = uuid4(), uuid4()
    with recorder.streams_locked([in_turn]) as (conn, heads):
        assert heads == []
        recorder.insert_events(events_of(in_turn, saved), held=conn)
    recorder.insert_events(events_of(own, saved))
    assert rows(recorder, in_turn) == rows(recorder, own) == [(n, t, s) for n, (t, s) in enumerate(saved, start=1)]


@pytest.fixture
def hub(postgres_url: str) -> Any:
    hub = Hub(postgres_url)
    yield hub
    hub.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(saved=st.lists(st.tuples(topics, states), min_size=1, max_size=6))
def test_a_turns_append_stores_the_rows_an_append_of_its_own_stores(hub, saved):
    saved_both_ways(hub.store.recorder, saved)  # new streams each example


def test_a_turns_append_larger_than_the_pipeline_limit_stores_the_same_rows(hub):
    big = bytes(range(256)) * (TURN_PIPELINE_LIMIT // 256 // 2 + 1)
    saved_both_ways(hub.store.recorder, [("t:big", big), ("t:big", big[::-1])])


def test_a_refused_turn_append_leaves_no_sealed_state_in_the_server_log(postgres_url, hub):
    server, _ = server_and_schema(postgres_url)
    with psycopg.connect(server, autocommit=True) as conn:
        row = conn.execute("SELECT current_setting('data_directory'), current_setting('log_min_error_statement')")
        data_directory, log_min_error_statement = row.fetchone() or ("", "")
    assert log_min_error_statement == "error"  # the default: the failed statement is logged
    log = Path(data_directory).parent / "server.log"  # deploy/local-postgres.sh's log
    recorder = hub.store.recorder
    stream, marker = uuid4(), uuid4()
    recorder.insert_events(events_of(stream, [("t:first", b"first")]))
    with pytest.raises(IntegrityError):
        with recorder.streams_locked([stream]) as (conn, _):
            recorder.insert_events(events_of(stream, [("t:stale", marker.bytes)]), held=conn)  # version 1 again
    refused = f"({stream}, 1) already exists"  # the refusal's DETAIL line, then its STATEMENT line
    for _ in range(200):  # until the server has written the refusal
        text = log.read_text(errors="replace")
        at = text.find(refused)
        if at >= 0 and "STATEMENT:" in text[at:]:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the refusal is not in {log}")
    statement = text[at:].split("STATEMENT:", 1)[1].splitlines()[0]
    assert 'tsunagu_append_events"($1::' in statement  # the append's statement, its values as parameters
    assert marker.hex not in text


def test_each_process_waits_for_the_events_table_as_long_as_its_own_lock_timeout_says(postgres_url, monkeypatch):
    """The lock timeout is the appending process's (``POSTGRES_LOCK_TIMEOUT``), not that of the last process to
    open the store (which replaces the function): a process opened with a limit still gives up when another
    process opened afterwards without one."""
    server, schema = server_and_schema(postgres_url)
    monkeypatch.setenv("POSTGRES_LOCK_TIMEOUT", "1")
    limited = Hub(postgres_url)
    monkeypatch.delenv("POSTGRES_LOCK_TIMEOUT")
    unlimited = Hub(postgres_url)  # opened last: replaces the store's functions
    try:
        recorder = limited.store.recorder
        stream = uuid4()
        with psycopg.connect(server) as blocker, ThreadPoolExecutor(1) as pool:
            blocker.execute(SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(events_table(schema)))

            def append_in_turn() -> None:
                with recorder.streams_locked([stream]) as (conn, _):
                    recorder.insert_events(events_of(stream, [("t:waits", b"w")]), held=conn)

            appended = pool.submit(append_in_turn)
            try:
                wait((appended,), timeout=60)  # the bound of a wait without a limit
            finally:
                blocker.rollback()
            with pytest.raises(OperationalError, match="lock timeout"):
                appended.result()
        assert rows(recorder, stream) == []
    finally:
        limited.close()
        unlimited.close()
