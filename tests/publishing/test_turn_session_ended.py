"""A publish in its shared indexes' turn (``services.publishing.batch.Batch.save``) that cannot finish there is
``Busy`` (503 with ``Retry-After``) and stores nothing, never an unexpected error (500):

- the turn's session ended while the publish held it (the server's idle-in-transaction limit passed, an
  administrator ended the session): ``events.postgres.turn_session_ended`` (review of session 7, s7-publish
  MEDIUM-2: ``eventsourcing.persistence.InternalError`` before, a 500);
- the turn not granted within its bounded wait (TSUNAGU_TURN_LOCK_TIMEOUT) because another process holds it.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

import services.publishing.batch as batch_module
from events.problems import Busy
from services.projections.published import PublishedChildren
from tests.publishing.test_publishers_in_turn import envelopes, hub_on, prefecture, publish_all


def terminate_turn_sessions(postgres_url: str) -> None:
    """End, as an administrator would, every session holding an advisory lock (a turn's) on the server."""
    server = postgres_url.split("?")[0]
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND pid <> pg_backend_pid()"
        )


@pytest.mark.postgres
@pytest.mark.parametrize("ended_by", ["idle_limit", "terminated"])
def test_a_publish_whose_turn_session_ends_is_busy_and_stores_nothing(postgres_url, monkeypatch, ended_by):
    if ended_by == "idle_limit":  # this test's hub only: its connections' own limit
        monkeypatch.setenv("POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT", "1")
    pref = prefecture()
    hub = hub_on(postgres_url, pref)
    stalled: list[bool] = []
    in_turn = batch_module.Batch.record_staged_on_newest

    def stall_once(self: Any, *args: Any, **kwargs: Any) -> None:
        if not stalled:  # the first publish's turn, taken and idle on the server
            stalled.append(True)
            if ended_by == "idle_limit":
                time.sleep(2.5)  # as a GIL or GC stall would: past the 1 s limit
            else:
                terminate_turn_sessions(postgres_url)
        in_turn(self, *args, **kwargs)

    try:
        publish_all(hub, [envelopes(pref, "a", 1, 1)])
        before = hub.store.log_position()
        monkeypatch.setattr(batch_module.Batch, "record_staged_on_newest", stall_once)
        with pytest.raises(Busy) as busy:
            hub.publish(envelopes(pref, "b", 2, 2))
        assert stalled and busy.value.problem.code == "store_unavailable"
        assert hub.store.log_position() == before  # nothing of the batch stored
        publish_all(hub, [envelopes(pref, "c", 2, 3)])  # the pool replaced the ended session
        assert hub.store.log_position() > before
    finally:
        hub.close()


@pytest.mark.postgres
def test_a_publish_that_waits_past_the_turns_bound_is_busy_and_stores_nothing(postgres_url, monkeypatch):
    monkeypatch.setenv("TSUNAGU_TURN_LOCK_TIMEOUT", "0.5")
    pref = prefecture()
    hub_a, hub_b = hub_on(postgres_url, pref), hub_on(postgres_url, pref, own_turns=True)
    batch = envelopes(pref, "b", 1, 2)
    sources = {PublishedChildren.create_id(e["source"]) for e in batch}  # the turn A's save asks for, in part
    try:
        publish_all(hub_a, [envelopes(pref, "a", 1, 1)])
        before = hub_a.store.log_position()
        with hub_b.store.append_in_turn(sources):  # another process holds those indexes' turn
            with pytest.raises(Busy) as busy:
                hub_a.publish(batch)
        assert busy.value.problem.code == "busy"
        assert hub_a.store.log_position() == before  # nothing of the batch stored
        publish_all(hub_a, [batch])  # once the turn is given back, the same batch is accepted
    finally:
        hub_a.close()
        hub_b.close()
