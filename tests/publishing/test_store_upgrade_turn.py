"""One store upgrade at a time (``HubStore.one_upgrade_at_a_time``): processes that open an older store at once (API
and ingest workers at a deploy) run its format step once, the others waiting for it and then finding the format it
reached (s9-import review L2: each ran the whole step, each reading the whole log)."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import pytest

import services.hub as hub_module
from events.clock import JST
from events.store import STORE_FORMAT
from services.hub import Hub, SettableClock

pytestmark = pytest.mark.postgres

ORGS = [{"id": "beppu-center", "type": "municipal_center", "municipality": "442020"}]


def test_two_processes_opening_an_older_store_at_once_run_its_step_once(postgres_url, monkeypatch):
    clock = SettableClock(datetime(2026, 9, 1, 9, tzinfo=JST))
    first = Hub(postgres_url, clock=clock)
    try:
        first.load_orgs(ORGS)
        datastore = first.store.recorder.datastore
        with datastore.transaction(commit=True) as cursor:  # as a store written by the code before format 6
            cursor.execute(f'DELETE FROM "{datastore.schema}".tsunagu_store_format')
            cursor.execute(f'INSERT INTO "{datastore.schema}".tsunagu_store_format (format) VALUES (5)')
    finally:
        first.close()

    steps: list[int] = []
    moving = hub_module.upgrade_report_lines

    def a_slow_step(store: Any, was: int) -> None:  # the step, made long enough for the other to come meanwhile
        steps.append(was)
        time.sleep(1.0)
        moving(store, was)

    monkeypatch.setattr(hub_module, "upgrade_report_lines", a_slow_step)
    opened: list[Hub] = []
    failed: list[BaseException] = []

    def open_hub() -> None:
        try:
            opened.append(Hub(postgres_url, clock=clock))
        except BaseException as error:  # reported below
            failed.append(error)

    threads = [threading.Thread(target=open_hub) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert not failed, failed
        assert steps == [5]  # once, from format 5; the other process found format 6 when its turn came
        assert [hub.store.format for hub in opened] == [STORE_FORMAT, STORE_FORMAT]
    finally:
        for hub in opened:
            hub.close()
