"""Many staff opening the same ledger page at once (found by the load run, ``bench/load.py``): each page records
one read per child shown, appended to 30 children's access logs in one transaction, and with optimistic
concurrency alone nearly every such append lost a race to another page and retried until its budget ran out (503
``busy``). Those appends now run one at a time across the hub's processes (``HubStore.one_writer_at_a_time``):
every page is answered, every child shown has one record per page, and the chains verify."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest

import events.retry
from events.clock import JST
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
