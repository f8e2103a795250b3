"""Policy versions: a store written under version 1 replays clean after the upgrade, and reads on it are decided
under version 2 from then on (policy.md: "Past access records replay under the version they name").

The store is ``tests/fixtures/v1-demo.db``: the demo, loaded and read by the code before version 2 (see
``tests/fixtures/README.md``), with its own keys file. Each test works on a copy of it through the real
``tsunagu`` command in processes of their own (a process opens stores of one stream secret only).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from consent.model import Settings
from consent.policy import POLICY_V1, POLICY_V2
from tests.conftest import ROOT

pytestmark = pytest.mark.store

FIXTURES = ROOT / "tests" / "fixtures"
TSUNAGU = str(Path(sys.executable).parent / "tsunagu")


@pytest.fixture
def v1_store(tmp_path):
    """A copy of the version 1 demo store, and a function that runs ``tsunagu`` on it."""
    shutil.copy(FIXTURES / "v1-demo.db", tmp_path / "v1-demo.db")
    shutil.copy(FIXTURES / "v1-demo-keys.json", tmp_path / "keys.json")
    os.chmod(tmp_path / "keys.json", 0o600)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TSUNAGU_")},
        "TSUNAGU_KEYS_FILE": str(tmp_path / "keys.json"),
        "TSUNAGU_JOINT_LEDGER": "1",
    }
    database = f"sqlite:///{tmp_path / 'v1-demo.db'}"

    def tsunagu(*args: str, ok: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [TSUNAGU, *args, "--database", database],
            env=env,
            cwd=tmp_path,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if ok:
            assert done.returncode == 0, done.stdout + done.stderr
        return done

    return tsunagu


def test_a_version_1_store_replays_clean_after_the_upgrade_and_reads_under_version_2(v1_store, tmp_path):
    verified = json.loads(v1_store("audit", "verify", "--json").stdout)
    assert verified["records"] == 72 and verified["mismatches"] == [], verified
    # a new read is decided under version 2, and the whole log still verifies, old records under version 1
    read = json.loads(
        v1_store(
            "timeline", "child-01", "--org", "beppu-center", "--role", "caseworker", "--purpose", "support", "--json"
        ).stdout
    )
    assert read["policy_version"] == POLICY_V2 and read["entries"]
    verified = json.loads(v1_store("audit", "verify", "--json").stdout)
    assert verified["records"] == 73 and verified["mismatches"] == [], verified
    reads = json.loads(v1_store("audit", "reads", "child-01", "--json").stdout)["reads"]
    assert Counter(r["policy_version"] for r in reads) == Counter({POLICY_V1: 6, POLICY_V2: 1})
    # publishing onto the upgraded store follows version 2's authority: a school cannot close the centre's case
    (tmp_path / "close.jsonl").write_text(
        json.dumps(
            {
                "id": "x-close",
                "kind": "case.closed",
                "child": "child-01",
                "source": "beppu-es-hamakaze",
                "basis": "internal",
                "at": "2026-11-30T09:00:00+09:00",
                "payload": {"case": "K-2026-014", "reason": "改善"},
            },
            ensure_ascii=False,
        )
        + "\n",
        encoding="utf-8",
    )
    published = json.loads(v1_store("publish", str(tmp_path / "close.jsonl"), "--json", ok=False).stdout)
    [refused] = published["rejected"]
    assert refused["problems"][0]["code"] == "not_case_registrar"


def test_the_demo_reads_give_the_same_decisions_under_version_2_as_under_version_1(v1_store):
    """The demo publishes every fact from the organisation with authority, so replaying its version 1 reads under
    version 2 changes nothing; ``audit policy-impact --policy`` compares the versions over a period."""
    impact = json.loads(v1_store("audit", "policy-impact", "--policy", POLICY_V2, "--json").stdout)
    assert impact["policy_version"] == POLICY_V2
    assert impact["replayed"] == 72 and impact["changed"] == []
    refused = v1_store("audit", "policy-impact", "--policy", "tsunagu-read-policy/9", ok=False)
    assert refused.returncode == 2 and "--policy" in refused.stderr


def test_version_2_counts_a_fact_only_from_its_authority_and_version_1_from_anyone():
    """On events recorded under version 1, a school that assigned itself to the centre's case read the share
    under CASE; replayed under version 1 it still does (the record stays exact), under version 2 it does not."""
    from datetime import datetime

    from consent.model import Reader
    from consent.policy import decide_read
    from events.model import Org, Recorded

    orgs = {
        o.id: o
        for o in (
            Org("fujieda-center", "municipal_center", municipality="222143"),
            Org("fujieda-es-2", "school", municipality="222143"),
        )
    }

    def ev(position: int, id: str, kind: str, source: str, basis: str, payload: dict) -> Recorded:
        return Recorded(
            position,
            id,
            kind,
            "c1",
            source,
            basis,
            datetime.fromisoformat(f"2026-04-0{position}T09:00:00+09:00"),
            payload,
            frozenset({source}),
        )

    events = [
        ev(1, "r1", "child.registered", "fujieda-center", "internal", {"residence": "222143"}),
        ev(
            2,
            "k1",
            "case.registered",
            "fujieda-center",
            "internal",
            {"case": "F-1", "category": "youshien", "case_type": "neglect"},
        ),
        ev(3, "s1", "case.shared", "fujieda-center", "cwa-25-2", {"case": "F-1", "summary": "見守り"}),
        ev(4, "x1", "case.member_assigned", "fujieda-es-2", "internal", {"case": "F-1", "member": "fujieda-es-2"}),
    ]
    reader = Reader("fujieda-es-2", "teacher", "meeting", datetime.fromisoformat("2026-04-09T09:00:00+09:00"))
    shown = {
        v: [d.event for d in decide_read(reader, events, orgs, Settings(), v).events if d.allowed]
        for v in (POLICY_V1, POLICY_V2)
    }
    assert shown == {POLICY_V1: ["s1", "x1"], POLICY_V2: ["x1"]}
