"""Many staff opening the same ledger page at once (found by the load run, ``bench/load.py``): each page records
one read per child shown, appended to 30 children's access logs in one transaction, and with optimistic
concurrency alone nearly every such append lost a race to another page and retried until its budget ran out (503
``busy``). Each child's log is now appended in its turn across the hub's processes (``HubStore.append_in_turn``):
every page is answered, every child shown has one record per page, and the chains verify; and pages showing other
children do not wait for each other (one lock for every view made 2 API processes slower than one)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest

import events.retry
from events.clock import JST
from events.store import AccessLog
from services.audit.replay import access_records
from services.casework.ledger import CaseViews
from services.casework.ledger_query import LedgerQuery
from services.hub import Hub

pytestmark = pytest.mark.store

CHILDREN = [f"c{n:02d}" for n in range(30)]


def world(database: str) -> None:
    hub = Hub(database)
    try:
        hub.load_orgs([{"id": "beppu-center", "type": "municipal_center", "municipality": "442020"}])
        at = (datetime.now(JST) - timedelta(days=3)).isoformat()
        batch = []
        for child in CHILDREN:
            common = {"child": child, "source": "beppu-center", "basis": "internal", "at": at}
            batch.append(
                {"id": f"reg-{child}", "kind": "child.registered", "payload": {"residence": "442020"}, **common}
            )
            batch.append(
                {
                    "id": f"case-{child}",
                    "kind": "case.registered",
                    "payload": {"case": f"K-{child}", "category": "youhogo", "case_type": "neglect"},
                    **common,
                }
            )
        assert {r.outcome for r in hub.publish(batch)} == {"accepted"}
    finally:
        hub.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    return request.getfixturevalue("postgres_url")


def test_many_staff_opening_the_same_ledger_page_at_once_are_all_answered_and_recorded(database, monkeypatch):
    world(database)
    monkeypatch.setattr(events.retry, "CONFLICT_BUDGET_SECONDS", 0.5)  # a small budget: races must not happen
    hubs = [Hub(database), Hub(database)]  # two processes' hubs on one store
    try:

        def pages(n: int) -> list[int]:
            views = CaseViews(hubs[n % 2])
            return [len(views.ledger("beppu-center", LedgerQuery({}), user=f"職員{n}").rows) for _ in range(4)]

        with ThreadPoolExecutor(8) as pool:
            shown = [rows for per_thread in pool.map(pages, range(8)) for rows in per_thread]
        assert shown == [30] * 32
        records = list(access_records(hubs[0].store))
        for child in CHILDREN:
            sequences = sorted(r["sequence"] for r in records if r["child"] == child)
            assert sequences == list(range(1, 33)), child  # one record per page, chained without a gap
        assert len({r["id"] for r in records}) == len(records) == 30 * 32
        assert hubs[0].verify().ok
    finally:
        for hub in hubs:
            hub.close()


def test_views_of_other_children_go_on_while_a_child_s_log_is_held_and_views_of_it_wait(database, monkeypatch):
    """One writer holds the logs of the first page's children (as a view appending its records): the second page,
    other children, is answered meanwhile; the first page waits for its turn, and is answered, chained after the
    holder's head, once the turn is given back. On PostgreSQL the holder takes only the database's locks, as a
    writer in another process does; on SQLite, the process's."""
    # This is about queueing, not about the turn's bound (tests/events/test_turn_wait.py): the first page waits
    # for as long as the second takes, which on a loaded runner may be longer than the default 5 s.
    monkeypatch.setenv("TSUNAGU_TURN_LOCK_TIMEOUT", "120")
    world(database)
    hubs = [Hub(database), Hub(database)]  # the holder's process, and the views' process
    try:
        first, second = (
            LedgerQuery({"sort": "child", "per_page": "15"}),
            LedgerQuery({"sort": "child", "page": "2", "per_page": "15"}),
        )
        views = CaseViews(hubs[1])
        done: dict[str, threading.Event] = {"first": threading.Event(), "second": threading.Event()}
        shown: dict[str, list[str]] = {}
        failed: dict[str, BaseException] = {}  # what a page raised, reported here rather than lost in its thread

        def page(name: str, query: LedgerQuery) -> None:
            try:
                shown[name] = [row.child for row in views.ledger("beppu-center", query, user=f"職員-{name}").rows]
            except BaseException as error:  # noqa: BLE001 - handed to the test's thread
                failed[name] = error
            finally:
                done[name].set()

        held = [AccessLog.create_id(c) for c in CHILDREN[:15]]
        store = hubs[0].store
        holding = store.recorder.streams_locked(held) if database.startswith("postgres") else store.append_in_turn(held)
        with holding:
            threads = [threading.Thread(target=page, args=("first", first))]
            threads[0].start()
            threads.append(threading.Thread(target=page, args=("second", second)))
            threads[1].start()
            assert done["second"].wait(60), "a page of other children waited for the held logs"
            assert "second" not in failed, failed
            assert not done["first"].wait(1.0), f"a page of the held children did not wait for its turn {failed}"
        assert done["first"].wait(60)
        for thread in threads:
            thread.join()
        assert failed == {}
        assert shown == {"first": CHILDREN[:15], "second": CHILDREN[15:]}
        records = list(access_records(hubs[0].store))
        assert sorted(r["child"] for r in records) == CHILDREN
        assert hubs[0].verify().ok
    finally:
        for hub in hubs:
            hub.close()
