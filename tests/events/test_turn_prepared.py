"""The turn's transaction control is never prepared by psycopg (``PostgresRecorder.streams_locked``, "Transaction
control is never prepared"): the review of session 7 (HIGH-1) found that turns rolled back, then turns whose append
was refused on a stream's version, left psycopg believing the ``COMMIT`` was prepared on the server when it was
not, and the next ordinary turn on the connection failed with "prepared statement _pg3_N does not exist" (a 500).
Each step is one the product takes: a turn whose block fails, a turn whose append is refused (a stale head, as a
view log saved in another process's turn), then an ordinary turn, in one thread; the pool hands its connections
out in turn, so each step is taken often enough for every pooled connection to see it six times (psycopg
prepares a statement the fifth time it runs it)."""

from __future__ import annotations

import pytest
from eventsourcing.persistence import IntegrityError

from events.store import AccessLog
from services.hub import Hub
from tests.events.test_turn_messages import chained_after, writers

pytestmark = [pytest.mark.store, pytest.mark.postgres]


class _BlockFailed(Exception):
    pass


def test_turns_rolled_back_then_refused_on_a_version_leave_the_next_turn_able_to_commit(postgres_url):
    hub = Hub(postgres_url)
    try:
        stream = AccessLog.create_id("c1")
        often = 6 * hub.store.recorder.datastore.pool.max_size  # type: ignore[attr-defined]
        for _ in range(often):  # turns whose block fails: each rolled back
            with pytest.raises(_BlockFailed), hub.store.append_in_turn([stream]):
                raise _BlockFailed
        with hub.store.append_in_turn([stream]) as turn:  # a turn that commits: its append is prepared
            turn.save(chained_after(stream, None, "c1", "first"))
        for n in range(often):  # turns whose append is refused on the stream's version (a stale head)
            with pytest.raises(IntegrityError), hub.store.append_in_turn([stream]) as turn:
                turn.save(chained_after(stream, None, "c1", f"stale-{n}"))
        with hub.store.append_in_turn([stream]) as turn:  # an ordinary turn: it must commit
            turn.save(chained_after(stream, turn.heads[stream], "c1", "second"))
        assert writers(hub.store, stream) == ["first", "second"]
    finally:
        hub.close()
