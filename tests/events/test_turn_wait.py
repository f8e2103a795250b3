"""The turn's wait, bounded (``HubStore.append_in_turn``, ``TSUNAGU_TURN_LOCK_TIMEOUT``): a writer whose child's
turn is held elsewhere, by another process (the database's advisory lock) or by another thread of its own (the
process's lock, ``_StreamTurns``), gives up with ``Busy`` once the wait is spent, instead of waiting for ever;
nothing of it is stored, its transaction is rolled back and its connection goes back to the pool idle, and the
holder's append goes on and commits."""

from __future__ import annotations

import threading

import psycopg
import pytest

from events.postgres import stream_lock_key
from events.problems import Busy
from events.retry import TURN_WAIT_SECONDS, turn_wait_seconds
from events.store import AccessLog
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


@pytest.mark.postgres
def test_a_writer_whose_child_is_held_by_another_process_gives_up_busy_and_stores_nothing(postgres_url, monkeypatch):
    monkeypatch.setenv("TSUNAGU_TURN_LOCK_TIMEOUT", "0.5")
    server, schema = server_and_schema(postgres_url)
    holder, waiter = Hub(postgres_url), Hub(postgres_url)  # two processes' hubs
    try:
        stream = AccessLog.create_id("c1")
        with holder.store.append_in_turn([stream]) as held:  # the other process's writer, in its turn
            with pytest.raises(Busy) as busy:
                with waiter.store.append_in_turn([stream]) as turn:
                    turn.save(chained_after(stream, None, "c1", "waiter"))
            assert busy.value.problem.code == "busy" and busy.value.retry_after > 0
            assert "混み合っている" in busy.value.problem.message_ja
            assert waiting_for(server, schema, stream) == 0  # given up: not waiting any more
            held.save(chained_after(stream, None, "c1", "holder"))  # the holder's work commits
        assert writers(waiter.store, stream) == ["holder"]
        # The waiter's connection went back idle (rolled back): its next turn appends, chained to the holder's.
        with waiter.store.append_in_turn([stream]) as turn:
            turn.save(chained_after(stream, turn.heads[stream], "c1", "waiter"))
        assert writers(waiter.store, stream) == ["holder", "waiter"]
    finally:
        holder.close()
        waiter.close()


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
