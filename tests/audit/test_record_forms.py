"""Access records of both stored forms in one store (``services.reading.record_form``): a child's log whose first
records are form 1 (as the code before session 10 wrote them: the decision as dicts) and whose later ones are
form 2 (the decision in columns) chains across the change, verifies and replays; the audit queries read both
alike. Any change to a form-2 record (a decision, the order of the events, its hash, its sequence, its form) is
caught by ``audit verify``. A store written by main's code before form 2 (``tests/fixtures/access-records-main.db``)
reads, verifies and is audited as main's code read it, and goes on in form 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from typing import Any

import pytest

from events.store import AccessLog
from services.audit.queries import Period
from services.audit.replay import ACCESS_TOPIC, access_records, verify
from services.audit.service import Auditing
from services.audit.trail import Actor
from services.hub import Hub, SettableClock
from services.reading.timeline import chain_hash
from tests.audit.test_tamper import READERS, _overwrite, _resave, populate
from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures"

pytestmark = pytest.mark.store


def stored_forms(hub, child: str) -> list[Any]:
    """The ``format`` of each stored record of ``child``'s log, in order (None: form 1)."""
    return [
        hub.store.mapper.to_domain_event(s).record.get("format")
        for s in hub.store.recorder.select_events(AccessLog.create_id(child))
        if s.topic == ACCESS_TOPIC
    ]


def rewrite_in_form_1(hub, child: str) -> None:
    """Every record of ``child``'s log rewritten as the code before form 2 wrote it (no ``format``; the decision
    as ``ReadDecision.to_dict`` writes it, written out here) and chained again with ``chain_hash``, through the
    store's own mapper: the log as a store written by that code holds it."""
    previous = ""
    for stored in hub.store.recorder.select_events(AccessLog.create_id(child)):
        if stored.topic != ACCESS_TOPIC:
            continue
        event = hub.store.mapper.to_domain_event(stored)
        record = event.record
        del record["format"]
        columns = record.pop("decisions")
        record["decision"] = {
            "allowed": columns["allowed"],
            "reason": columns["reason"],
            "policy_version": record["policy_version"],
            "events": [
                {"event": e, "allowed": a, "rule": r, "redacted": x}
                for e, a, r, x in zip(
                    columns["event"], columns["event_allowed"], columns["rule"], columns["redacted"], strict=True
                )
            ],
        }
        record["prev_hash"] = previous
        record["hash"] = previous = chain_hash(previous, record)
        _overwrite(hub, stored, hub.store.mapper.to_stored_event(event).state)


def test_a_log_of_form_1_records_then_form_2_ones_chains_verifies_and_replays(hub, clock):
    ids = populate(hub, clock)  # c1 read four times, c2 twice: form 2
    rewrite_in_form_1(hub, "c1")
    assert stored_forms(hub, "c1") == [None] * 4 and stored_forms(hub, "c2") == [2, 2]
    before = {r["id"]: r for r in access_records(hub.store)}
    assert all("decision" in r and "decisions" not in r and "format" not in r for r in before.values())
    report = verify(hub.store)
    assert report.ok and report.records == 6, report.to_dict()

    for org, role in READERS[:2]:  # the log goes on in form 2, chained to the last form-1 record
        ids["c1"].append(hub.timeline(org=org, role=role, child="c1", purpose="support", user="u").access_record)
    assert stored_forms(hub, "c1") == [None, None, None, None, 2, 2]
    records = [r for r in access_records(hub.store) if r["child"] == "c1"]
    assert [r["id"] for r in records] == ids["c1"] and records[4]["prev_hash"] == records[3]["hash"]
    assert records[4]["decision"] == records[0]["decision"]  # the same reader, nothing published since
    report = verify(hub.store)
    assert report.ok and report.records == 8 and not report.unreplayable, report.to_dict()

    reads = Auditing(hub.store, clock).reads_of_child("c1", Period(), actor=Actor("oita-audit", "a", "cli"))
    assert [r.record for r in reads.reads] == ids["c1"] and not reads.unreadable
    assert [r.allowed for r in reads.reads][4:] == [r.allowed for r in reads.reads][:2]


def _swap_first_two_events(record: dict) -> None:
    for column in ("event", "event_allowed", "rule", "redacted"):
        values = record["decisions"][column]
        values[0], values[1] = values[1], values[0]


@pytest.mark.parametrize(
    "change, fault",
    [
        (lambda r: r["decisions"]["redacted"][0].append("summary"), "edited"),  # a field said to be redacted
        (lambda r: r["decisions"].update(allowed=False), "edited"),  # the read said refused as a whole
        (_swap_first_two_events, "edited"),  # the order of the events considered
        (lambda r: r.update(hash="0" * 64), "edited"),  # the head's hash
        (lambda r: r.update(sequence=7), "edited"),  # the head's sequence
        (lambda r: r.pop("format"), "edited"),  # read as form 1, which it is not
        (lambda r: r["decisions"]["rule"].pop(), "unreadable"),  # columns of different lengths
    ],
)
def test_any_change_to_a_form_2_record_fails_audit_verify(hub, clock, change, fault):
    ids = populate(hub, clock)
    assert stored_forms(hub, "c1") == [2, 2, 2, 2]
    _resave(hub, "c1", 4, change)  # the head of c1's log, the record the next read chains to
    report = verify(hub.store)
    (broken,) = report.broken_chains
    assert (broken.child, broken.sequence, broken.fault) == ("c1", 4, fault), report.to_dict()
    assert broken.record == (ids["c1"][3] if fault == "edited" else None)


def continue_main_store(url: str) -> None:
    """The store main's code wrote (``tests/fixtures/make_access_records_main.py``) read by this code: every access
    record, ``audit verify``'s report and the audit queries' rows as main's code gave them (``.json``); then
    new reads, stored in form 2, chained to main's records; prints ``ok``."""
    expected = json.loads((FIXTURES / "access-records-main.json").read_text())
    clock = SettableClock(datetime.fromisoformat("2026-05-12T09:00:00+09:00"))
    hub = Hub(url, clock=clock)
    assert list(access_records(hub.store)) == expected["records"]
    assert verify(hub.store).to_dict() == expected["verify"]
    auditing = Auditing(hub.store, clock)
    for child, reads in expected["reads_of_child"].items():
        assert auditing.reads_of_child(child, Period(), actor=AUDITOR).model_dump(mode="json") == reads, child

    assert set(stored_forms(hub, "c2")) == {None}
    hub.timeline(org="beppu-center", role="caseworker", child="c2", purpose="support", user="u")
    clock.at = datetime.fromisoformat("2026-05-10T23:30:00+09:00")  # inside the emergency window again
    hub.timeline(org="chuo-jiso", role="caseworker", child="c2", purpose="emergency", user="夜間")
    assert stored_forms(hub, "c2") == [None] * 4 + [2, 2]  # two by populate, the emergency read, the ledger
    clear = [hub.store.mapper.clear_head(s) for s in hub.store.recorder.select_events(AccessLog.create_id("c2"))]
    assert [c is not None for c in clear[1:]] == [False] * 4 + [True, True]  # events.sealing.CLEAR_HEAD
    records = [r for r in access_records(hub.store) if r["child"] == "c2"]
    assert records[4]["prev_hash"] == records[3]["hash"] and records[5]["prev_hash"] == records[4]["hash"]
    emergency = [r for r in records if r["purpose"] == "emergency"]
    assert emergency[1]["decision"] == emergency[0]["decision"]  # redactions included
    assert any(e["redacted"] == ["detail"] for e in emergency[1]["decision"]["events"])
    report = verify(hub.store)
    assert report.ok and report.records == expected["verify"]["records"] + 2, report.to_dict()
    hub.close()
    print("ok")


AUDITOR = Actor("oita-audit", "監査 一郎", "cli")


def test_a_store_written_by_main_reads_verifies_and_goes_on_in_form_2(tmp_path, monkeypatch):
    """Run in a process of its own (a process opens stores of one stream secret only): ``continue_main_store``."""
    shutil.copy(FIXTURES / "access-records-main.db", tmp_path / "main.db")
    shutil.copy(FIXTURES / "access-records-main-keys.json", tmp_path / "keys.json")
    os.chmod(tmp_path / "keys.json", 0o600)
    for name in [k for k in os.environ if k.startswith("TSUNAGU_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TSUNAGU_KEYS_FILE", str(tmp_path / "keys.json"))
    url = f"sqlite:///{tmp_path / 'main.db'}"
    done = subprocess.run(
        [sys.executable, "-c",
         f"from tests.audit.test_record_forms import continue_main_store; continue_main_store({url!r})"],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "ok"


def test_an_edited_form_1_decision_fails_audit_verify(hub, clock):
    """Every record of a store written before this change is form 1: a decision changed in one (re-sealed with the
    keys) fails ``audit verify`` at it, as in form 2 (s10-record review, LOW-1: no test tampered with form 1)."""
    ids = populate(hub, clock)
    rewrite_in_form_1(hub, "c1")
    assert verify(hub.store).ok and stored_forms(hub, "c1") == [None] * 4

    def show_everything(record: dict) -> None:  # the school's read (#2) now claims it was shown the centre's note
        (decided,) = [d for d in record["decision"]["events"] if d["event"] == "c1-n1"]
        assert decided["allowed"] is False
        decided["allowed"], decided["rule"] = True, "DIRECT"

    _resave(hub, "c1", 2, show_everything)
    chain = [(m.fault, m.child, m.sequence, m.record) for m in verify(hub.store).mismatches if m.problem == "chain"]
    assert chain == [("edited", "c1", 2, ids["c1"][1])]


def _restore_with_clear_head(hub, child: str, sequence: int, head: dict) -> None:
    """Store the record at ``sequence`` again with ``head`` in the clear, sealed and bound as the hub seals a record
    (what only a writer holding the keys can do, or a fault of the code)."""
    from events.sealing import _HEAD, CLEAR_HEAD, SealingMapper
    from tests.audit.test_tamper import _stored

    mapper = hub.store.mapper
    stored = _stored(hub, child, sequence)
    event = mapper.to_domain_event(stored)
    encoded = mapper.transcoder.encode(head)
    aad = SealingMapper._aad(stored.originator_id, stored.originator_version, stored.topic)
    sealed = mapper.keys.seal("hub", mapper.transcoder.encode({"timestamp": event.timestamp, "record": event.record}),
                              aad + _HEAD + encoded)  # fmt: skip
    _overwrite(hub, stored, CLEAR_HEAD + len(encoded).to_bytes(2, "big") + encoded + sealed)


def test_a_clear_head_that_is_not_the_records_own_fails_audit_verify_before_any_read_chains_to_it(hub, clock):
    """The head kept in the clear is what the next read chains to: ``audit verify`` requires it to be the record's own
    hash and sequence (s10-record review, LOW-3: before, such a record verified until the next read chained to it)."""
    ids = populate(hub, clock)
    last = stored_forms(hub, "c1")
    _restore_with_clear_head(hub, "c1", len(last), {"hash": "f" * 64, "sequence": len(last)})
    mismatches = [(m.fault, m.child, m.sequence, m.record) for m in verify(hub.store).mismatches]
    assert mismatches == [("edited", "c1", len(last), ids["c1"][-1])]


def test_a_clear_head_that_is_not_a_chain_head_is_not_trusted_the_record_is_opened_and_reads_go_on(hub, clock):
    """A head that is not a text hash and a whole sequence (written wrong) is not taken as the log's head: the next
    read opens the record instead (before: a KeyError or TypeError, a 500), and ``audit verify`` names it."""
    populate(hub, clock)
    last = len(stored_forms(hub, "c1"))
    _restore_with_clear_head(hub, "c1", last, {"hash": 5, "sequence": "x"})
    clock.at = datetime.fromisoformat("2026-05-10T11:00:00+09:00")
    assert hub.timeline(org="beppu-center", role="caseworker", child="c1", purpose="support", user="u").entries
    faults = [(m.fault, m.sequence) for m in verify(hub.store).mismatches]
    assert faults == [("edited", last)]  # the read after it chained to the record's own hash, so only it is named
