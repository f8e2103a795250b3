"""The turn's wait, bounded (``HubStore.append_in_turn``, ``TSUNAGU_TURN_LOCK_TIMEOUT``): a writer whose child's
turn is held elsewhere, by another process (the database's advisory lock) or by another thread of its own (the
process's lock, ``_StreamTurns``), gives up with ``Busy`` once the wait is spent, instead of waiting for ever;
nothing of it is stored, its transaction is rolled back and its connection goes back to the pool idle, and the
holder's append goes on and commits."""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID

import psycopg
import pytest

from events.postgres import stream_lock_key
from events.problems import Busy
from events.retry import TURN_WAIT_SECONDS, turn_wait_seconds
from events.store import AccessLog, _StreamTurns
from services.hub import Hub
from tests.events.test_turn_messages import chained_after, server_and_schema, writers

pytestmark = pytest.mark.store


def waiting_for(server: str, schema: str, stream: object) -> int:
    """How many sessions wait for ``stream``'s advisory lock."""
    with psycopg.connect(server, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND "
            "((classid::bigint << 32) | objid::bigint) = %s",
            [stream_lock_key(schema, stream)],  # type: ignore[arg-type]
        ).fetchone()
    assert row is not None
    return int(row[0])


class Writer(threading.Thread):
    """A writer of ``hub``'s process appending to the access logs of ``children`` in its turn, in a thread of its
    own: ``outcome``, None once it saved, or what it raised (``Busy``)."""

    def __init__(self, hub: Hub, children: list[str], name: str):
        super().__init__(daemon=True)
        self.hub, self.children, self.writer = hub, children, name
        self.outcome: list[BaseException | None] = []
        self.start()

    def run(self) -> None:
        logs = {AccessLog.create_id(child): child for child in self.children}
        try:
            with self.hub.store.append_in_turn(list(logs)) as turn:
                turn.save(*(chained_after(s, turn.heads.get(s), child, self.writer) for s, child in logs.items()))
            self.outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - handed to the test's thread
            self.outcome.append(error)

    def ended(self) -> BaseException | None:
        self.join(120)
        assert self.outcome, f"{self.writer} did not end"
        return self.outcome[0]


def held_at_the_database(server: str, schema: str, streams: list[UUID]) -> psycopg.Connection:
    """Another process's transaction holding ``streams``' advisory locks (as its turn does), until it commits."""
    conn = psycopg.connect(server)
    for stream in streams:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [stream_lock_key(schema, stream)])
    return conn


def _until(condition: Any, what: str) -> None:
    for _ in range(1200):
        if condition():
            return
        threading.Event().wait(0.05)
    raise AssertionError(what)


@pytest.mark.postgres
def test_a_writer_whose_child_is_held_by_another_process_gives_up_busy_and_stores_nothing(postgres_url, monkeypatch):
    monkeypatch.setenv("TSUNAGU_TURN_LOCK_TIMEOUT", "2")
    server, schema = server_and_schema(postgres_url)
    holder, waiter = Hub(postgres_url), Hub(postgres_url)
    holder.store.turns = _StreamTurns()  # another process's: it shares no lock of this process with the waiter
    try:
        stream = AccessLog.create_id("c1")
        with holder.store.append_in_turn([stream]) as held:  # the other process's writer, in its turn
            writer = Writer(waiter, ["c1"], "waiter")
            _until(lambda: waiting_for(server, schema, stream) == 1, "the waiter did not wait at the database")
            busy = writer.ended()
            assert isinstance(busy, Busy) and busy.problem.code == "busy" and busy.retry_after > 0
            assert "混み合っている" in busy.problem.message_ja
            assert waiting_for(server, schema, stream) == 0  # given up: not waiting any more
            held.save(chained_after(stream, None, "c1", "holder"))  # the holder's work commits
        assert writers(waiter.store, stream) == ["holder"]
        # The waiter's connection went back idle (rolled back): its next turn appends, chained to the holder's.
        assert Writer(waiter, ["c1"], "waiter").ended() is None
        assert writers(waiter.store, stream) == ["holder", "waiter"]
    finally:
        holder.close()
        waiter.close()


@pytest.mark.postgres
def test_of_a_process_s_writers_of_a_child_held_by_another_process_for_a_while_each_saves_once_it_is_let_go(
    postgres_url, monkeypatch
):
    """Another process's turn on c1 that lasts a while (a ledger page or a CSV view chains and seals its records
    in its turn: 0.7-7 s, ``docs/benchmarks.md``), well within the turn's wait: this process's writers of c1 wait
    for it, the first at the database, the second behind the first here, and both save once it ends. Under the
    rule "one waiter per held child" (taken out after the review of session 7, MEDIUM-1) the second gave up with
    ``Busy`` 0.2 s after the first began to wait at the database. The holder lets go after a second, so that the
    second writer has waited here longer than that rule's 0.2 s."""
    monkeypatch.setenv("TSUNAGU_TURN_LOCK_TIMEOUT", "60")
    server, schema = server_and_schema(postgres_url)
    hub = Hub(postgres_url)
    stream = AccessLog.create_id("c1")
    holder = held_at_the_database(server, schema, [stream])
    try:
        first = Writer(hub, ["c1"], "first")
        _until(lambda: waiting_for(server, schema, stream) == 1, "the first did not wait at the database")
        second = Writer(hub, ["c1"], "second")
        threading.Event().wait(1.0)  # the other process's turn goes on
        holder.commit()
        assert [first.ended(), second.ended()] == [None, None]
        assert writers(hub.store, stream) == ["first", "second"]
    finally:
        holder.close()
        hub.close()


@pytest.mark.postgres
def test_writers_of_a_process_queue_behind_one_that_holds_its_turn_and_appends(postgres_url, monkeypatch):
    """The holder appends: those behind it in the process wait for their turn, not refused."""
    monkeypatch.setenv("TSUNAGU_TURN_LOCK_TIMEOUT", "60")
    hub = Hub(postgres_url)
    try:
        stream = AccessLog.create_id("c1")
        with hub.store.append_in_turn([stream]) as held:
            behind = [Writer(hub, ["c1"], f"behind-{n}") for n in range(2)]
            _until(lambda: hub.store.turns.waiting_for(stream) == 2, "the writers behind did not wait")
            held.save(chained_after(stream, None, "c1", "holder"))
        assert [writer.ended() for writer in behind] == [None, None]
        assert sorted(writers(hub.store, stream)) == ["behind-0", "behind-1", "holder"]
    finally:
        hub.close()


@pytest.mark.postgres
def test_a_turn_on_several_streams_let_go_one_after_another_waits_for_all_of_them_by_one_deadline(
    postgres_url, monkeypatch
):
    """The turn's wait at the database is one deadline for all its locks (``tsunagu_take_turn``), not the
    setting for each: three streams held by three others, each let go three quarters of the setting after the
    turn began to wait for it, so that each lock alone would be granted within the setting (the turn saved,
    having waited more than twice the setting, under a timeout per lock, session 6); by one deadline the turn
    gives up at the second stream, and stores nothing."""
    monkeypatch.setenv("TSUNAGU_TURN_LOCK_TIMEOUT", "1")
    server, schema = server_and_schema(postgres_url)
    hub = Hub(postgres_url)
    children = ["c1", "c2", "c3"]
    streams = sorted((AccessLog.create_id(c) for c in children), key=lambda s: stream_lock_key(schema, s))
    holders = [held_at_the_database(server, schema, [stream]) for stream in streams]
    try:
        writer = Writer(hub, children, "waiter")
        for stream, holder in zip(streams, holders, strict=True):
            _until(lambda: waiting_for(server, schema, stream) == 1 or not writer.is_alive(), "no wait")  # noqa: B023
            if not writer.is_alive():
                break
            threading.Event().wait(0.75)  # within the setting for this lock alone
            holder.commit()
        assert isinstance(writer.ended(), Busy)
        assert all(writers(hub.store, stream) == [] for stream in streams)
    finally:
        for holder in holders:
            holder.close()
        hub.close()


def test_a_thread_whose_child_is_held_by_another_thread_of_its_process_gives_up_busy(tmp_path, monkeypatch):
    """The process's own lock of the stream (``_StreamTurns``) is bounded by the same wait: on SQLite it is the
    whole turn; on PostgreSQL the threads of a process queue there before the database's lock."""
    monkeypatch.setenv("TSUNAGU_TURN_LOCK_TIMEOUT", "0.5")
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = Hub(database)
    try:
        stream = AccessLog.create_id("c1")
        outcome: list[BaseException | None] = []

        def other_thread() -> None:
            try:
                with hub.store.append_in_turn([stream]) as turn:
                    turn.save(chained_after(stream, None, "c1", "waiter"))
                outcome.append(None)
            except BaseException as error:  # noqa: BLE001 - handed to the test's thread
                outcome.append(error)

        with hub.store.append_in_turn([stream]) as held:
            thread = threading.Thread(target=other_thread)
            thread.start()
            thread.join(60)
            assert not thread.is_alive(), "the waiting thread did not give up"
            held.save(chained_after(stream, None, "c1", "holder"))
        assert len(outcome) == 1 and isinstance(outcome[0], Busy), outcome
        assert writers(hub.store, stream) == ["holder"]
    finally:
        hub.close()


@pytest.mark.unit
@pytest.mark.parametrize("value", ["0", "-1", "abc", "nan", "inf", "5s"])
def test_the_turn_wait_setting_must_be_a_positive_number_of_seconds(value):
    with pytest.raises(ValueError, match="TSUNAGU_TURN_LOCK_TIMEOUT") as error:
        turn_wait_seconds(value)
    assert "正の秒数" in str(error.value)


@pytest.mark.unit
def test_the_turn_wait_setting_reads_seconds_and_defaults_to_five():
    assert turn_wait_seconds(None) == turn_wait_seconds("") == TURN_WAIT_SECONDS == 5.0
    assert turn_wait_seconds("0.25") == 0.25


def test_a_hub_is_not_opened_with_a_bad_turn_wait(tmp_path, monkeypatch):
    monkeypatch.setenv("TSUNAGU_TURN_LOCK_TIMEOUT", "0")
    with pytest.raises(ValueError, match="TSUNAGU_TURN_LOCK_TIMEOUT"):
        Hub(f"sqlite:///{tmp_path / 'hub.db'}")
