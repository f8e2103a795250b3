"""A store written before the planners' counts (issue 17, what was left): the hub makes its counts and their
tallies from the log when it opens it (store format 5, ``services.hub.upgrade_counts``), so that its figures equal
the rebuilt ones, nothing is left to correct, and what is published afterwards is counted as on a store that
always kept them. The store is ``tests/fixtures/v1-demo.db``, written by the code of commit f84911f; the check
runs in a process of its own (``check``), since a process opens stores of one stream secret only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import datetime

import pytest

from events.clock import JST
from events.store import STORE_FORMAT, open_store
from services.aggregates.figures import _InMemory, correct, kept, rebuild, resolve_levels
from services.hub import COUNTS_FORMAT, Hub, SettableClock
from services.projections.cases import CaseEntry
from services.projections.municipal_counts import CaseTally, kept_months
from tests.conftest import ROOT

pytestmark = pytest.mark.store


@pytest.fixture
def old_store(tmp_path, monkeypatch):
    shutil.copy(ROOT / "tests" / "fixtures" / "v1-demo.db", tmp_path / "v1-demo.db")
    shutil.copy(ROOT / "tests" / "fixtures" / "v1-demo-keys.json", tmp_path / "keys.json")
    os.chmod(tmp_path / "keys.json", 0o600)
    for name in [k for k in os.environ if k.startswith("TSUNAGU_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TSUNAGU_KEYS_FILE", str(tmp_path / "keys.json"))
    monkeypatch.setenv("TSUNAGU_JOINT_LEDGER", "1")
    return f"sqlite:///{tmp_path / 'v1-demo.db'}"


def test_a_store_written_before_the_counts_gets_them_when_the_hub_opens_it(old_store):
    done = subprocess.run(
        [sys.executable, "-c", f"from tests.aggregates.test_upgrade import check; check({old_store!r})"],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "ok"


def check(old_store: str) -> None:
    """The checks, in this process: the store as written, the hub opening it, a publish after, a second opening."""
    store = open_store(old_store)
    try:
        assert store.format < COUNTS_FORMAT
        municipalities = {o.municipality for o in store.registry().orgs.values() if o.municipality}
        assert municipalities and not any(kept_months(store, m) for m in municipalities)  # no counts at all
    finally:
        store.close()

    hub = Hub(old_store, clock=SettableClock(datetime(2026, 12, 1, 9, tzinfo=JST)))
    try:
        assert hub.store.format == STORE_FORMAT
        work = _InMemory(hub.store.registry().orgs)
        rebuilt = rebuild(hub.store, work)
        assert any(rebuilt.values())
        for municipality in municipalities:
            assert kept(hub.store, municipality) == resolve_levels(rebuilt.get(municipality, {}))
        assert kept(hub.store, "442020")["2026-07"]["cases.open"] == 5  # 別府市: the demo's cases
        assert correct(hub.store) == 0  # counts and tallies alike: nothing left

        # a review of a case registered before the upgrade takes back the overdue count its registration wrote
        # ahead: the tally was made with the counts
        tally = next(t for t in work.aggregates.values() if isinstance(t, CaseTally) and t.state == "open")
        entry = hub.store.peek(CaseEntry.create_id(tally.case))
        result = hub.publish(
            [
                {"id": "after-upgrade-review", "kind": "case.reviewed", "child": entry.child,
                 "source": tally.registrar, "basis": "internal", "at": "2026-11-30T10:00:00+09:00",
                 "payload": {"case": tally.case, "decision": "継続", "next_review": "2027-01-31"}},
            ]
        )  # fmt: skip
        assert [r.outcome for r in result] == ["accepted"], result
        again = rebuild(hub.store)
        assert kept(hub.store, tally.municipality) == resolve_levels(again[tally.municipality])
        assert correct(hub.store) == 0
    finally:
        hub.close()

    reopened = Hub(old_store)  # the upgrade ran once: a second opening changes nothing
    try:
        assert reopened.store.format == STORE_FORMAT and correct(reopened.store) == 0
    finally:
        reopened.close()
    print("ok")
