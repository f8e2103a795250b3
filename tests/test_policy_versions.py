"""Policy versions: a store written under version 1 replays clean after the upgrade, and reads on it are decided
under version 2 from then on (policy.md: "Past access records replay under the version they name").

The store is ``tests/fixtures/v1-demo.db``: the demo, loaded and read by the code before version 2 (see
``tests/fixtures/README.md``). Each test works on a copy of it.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from consent.model import Settings
from consent.policy import POLICY_V1, POLICY_V2
from events.sealing import Keyring
from services.audit import access_records
from services.auditing import Actor, Auditing, Period
from services.facts import ChildFacts
from services.hub import Hub, now_jst

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def v1_store(tmp_path, monkeypatch) -> str:
    """A copy of the version 1 demo store, with its own keys file."""
    shutil.copy(FIXTURES / "v1-demo.db", tmp_path / "v1-demo.db")
    shutil.copy(FIXTURES / "v1-demo-keys.json", tmp_path / "keys.json")
    monkeypatch.setenv("TSUNAGU_KEYS_FILE", str(tmp_path / "keys.json"))
    return f"sqlite:///{tmp_path / 'v1-demo.db'}"


def versions(hub: Hub) -> Counter:
    return Counter(r["policy_version"] for r in access_records(hub.store))


def test_a_version_1_store_replays_clean_after_the_upgrade_and_reads_under_version_2(v1_store):
    hub = Hub(v1_store, settings=Settings(joint_ledger=True), keyring=Keyring.from_config())
    try:
        assert versions(hub) == Counter({POLICY_V1: 72})
        report = hub.verify()
        assert report.ok, [m.describe() for m in report.mismatches]
        assert report.records == 72
        # the upgrade rebuilt the children's facts of version 2 from the log
        assert hub.store.get_or_none(ChildFacts.create_id("child-01")).entries
        # a new read is decided under version 2, and the whole log still verifies
        timeline = hub.timeline(org="beppu-center", role="caseworker", child="child-01", purpose="support")
        assert timeline.policy_version == POLICY_V2 and timeline.entries
        assert versions(hub) == Counter({POLICY_V1: 72, POLICY_V2: 1})
        assert hub.verify().ok
        # publishing onto the upgraded store follows version 2's authority: a school cannot close a case
        [result] = hub.publish([{"id": "x-close", "kind": "case.closed", "child": "child-01",
                                 "source": "beppu-es-hamakaze", "basis": "internal", "at": now_jst().isoformat(),
                                 "payload": {"case": "K-2026-014", "reason": "改善"}}])
        assert result.outcome == "rejected" and result.problems[0].code == "not_case_registrar"
    finally:
        hub.close()


def test_the_same_version_1_reads_give_the_same_decisions_under_version_2_on_the_demo(v1_store):
    """The demo publishes every fact from the organisation with authority, so replaying its reads under version 2
    changes nothing; ``audit policy-impact`` compares the versions over a period."""
    hub = Hub(v1_store, settings=Settings(joint_ledger=True), keyring=Keyring.from_config())
    try:
        auditing = Auditing(hub.store, now_jst)
        impact = auditing.policy_impact(Period(), {}, actor=Actor("beppu-audit", "tester", "cli"), version=POLICY_V2)
        assert impact.policy_version == POLICY_V2
        assert impact.replayed == 72 and impact.changed == []
    finally:
        hub.close()


def test_version_2_counts_a_fact_only_from_its_authority_and_version_1_from_anyone():
    """On events recorded under version 1, a school that assigned itself to the centre's case read the share
    under CASE; replayed under version 1 it still does (the record stays exact), under version 2 it does not."""
    from datetime import datetime

    from consent.model import Org, Reader, Recorded
    from consent.policy import decide_read

    orgs = {o.id: o for o in (Org("fujieda-center", "municipal_center", municipality="222143"),
                              Org("fujieda-es-2", "school", municipality="222143"))}

    def ev(position: int, id: str, kind: str, source: str, basis: str, payload: dict) -> Recorded:
        return Recorded(position, id, kind, "c1", source, basis, datetime.fromisoformat(f"2026-04-0{position}T09:00:00+09:00"),
                        payload, frozenset({source}))

    events = [ev(1, "r1", "child.registered", "fujieda-center", "internal", {"residence": "222143"}),
              ev(2, "k1", "case.registered", "fujieda-center", "internal",
                 {"case": "F-1", "category": "youshien", "case_type": "neglect"}),
              ev(3, "s1", "case.shared", "fujieda-center", "cwa-25-2", {"case": "F-1", "summary": "見守り"}),
              ev(4, "x1", "case.member_assigned", "fujieda-es-2", "internal", {"case": "F-1", "member": "fujieda-es-2"})]
    reader = Reader("fujieda-es-2", "teacher", "meeting", datetime.fromisoformat("2026-04-09T09:00:00+09:00"))
    shown = {v: [d.event for d in decide_read(reader, events, orgs, Settings(), v).events if d.allowed]
             for v in (POLICY_V1, POLICY_V2)}
    assert shown == {POLICY_V1: ["s1", "x1"], POLICY_V2: ["x1"]}
