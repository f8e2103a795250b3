"""The tamper-evident access log: each child's access records form a hash chain, and ``tsunagu audit verify`` names
the first broken record of each child: edited, missing (a sequence gap), reordered, or unreadable.

Tampering is done the way an intruder with database access would: rows of the real stored-events table are
changed with SQL (PostgreSQL), whatever the stored state looks like (plain or encrypted); and a record is re-saved
with a changed decision through the store's own mapper (SQLite), so that it opens cleanly and only the chain and
the replay can tell.
"""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import parse_qs, urlparse
from uuid import UUID

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from consent.model import Settings
from events.store import AccessLog, ChildRecord
from services.audit.queries import Period
from services.audit.replay import ACCESS_TOPIC, verify
from services.audit.service import Auditing
from services.audit.trail import Actor
from services.cli.root import app
from services.hub import Hub
from services.reading.timeline import chain_hash

pytestmark = pytest.mark.store

ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020", "name": "別府市こども家庭センター"},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": "442020"},
    {"id": "chuo-jiso", "type": "child_guidance_center", "prefecture": "44", "covers": ["442020"]},
]


def events(child: str) -> list[dict]:
    return [
        {
            "id": f"{child}-r1",
            "kind": "child.registered",
            "child": child,
            "source": "beppu-center",
            "basis": "internal",
            "at": "2026-04-01T09:00:00+09:00",
            "payload": {"residence": "442020"},
        },
        {
            "id": f"{child}-e1",
            "kind": "concern.reported",
            "child": child,
            "source": "beppu-es-1",
            "basis": "cwa-21-10-5",
            "at": "2026-05-08T10:00:00+09:00",
            "payload": {"summary": "連絡なしの欠席が続く"},
        },
        {
            "id": f"{child}-n1",
            "kind": "note.recorded",
            "child": child,
            "source": "beppu-center",
            "basis": "internal",
            "at": "2026-05-09T10:00:00+09:00",
            "payload": {"text": "家庭訪問の予定"},
        },
    ]


READERS = [
    ("beppu-center", "caseworker"),
    ("beppu-es-1", "teacher"),
    ("chuo-jiso", "caseworker"),
    ("beppu-center", "supervisor"),
]


def populate(hub: Hub, clock) -> dict[str, list[str]]:
    """c1 read four times, c2 twice; the record ids of each child, in sequence order."""
    clock.at = datetime.fromisoformat("2026-05-10T09:00:00+09:00")
    hub.load_orgs(ORGS)
    assert {r.outcome for r in hub.publish(events("c1") + events("c2"))} == {"accepted"}
    ids: dict[str, list[str]] = {"c1": [], "c2": []}
    for child, readers in (("c1", READERS), ("c2", READERS[:2])):
        for minute, (org, role) in enumerate(readers):
            clock.at = datetime.fromisoformat(f"2026-05-10T10:{minute:02d}:00+09:00")
            ids[child].append(hub.timeline(org=org, role=role, child=child, purpose="support", user="u").access_record)
    report = verify(hub.store)
    assert report.ok and report.records == 6, report.to_dict()
    return ids


# --- PostgreSQL: rows changed with SQL ------------------------------------------------------------------------


class Table:
    """The real stored-events table of the hub's schema, reached as an intruder would: with SQL."""

    def __init__(self, url: str):
        parsed = urlparse(url)
        self.dsn = parsed._replace(query="").geturl()
        self.name = sql.Identifier(parse_qs(parsed.query)["schema"][0], "tsunagu_events")

    def state(self, child: str, sequence: int) -> bytes:
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute(
                sql.SQL("SELECT state, topic FROM {} WHERE originator_id = %s AND originator_version = %s").format(
                    self.name
                ),
                (AccessLog.create_id(child), sequence + 1),
            ).fetchone()
        assert row is not None and row[1] == ACCESS_TOPIC, row
        return bytes(row[0])

    def set_state(self, child: str, sequence: int, state: bytes) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            changed = conn.execute(
                sql.SQL("UPDATE {} SET state = %s WHERE originator_id = %s AND originator_version = %s").format(
                    self.name
                ),
                (state, AccessLog.create_id(child), sequence + 1),
            )
            assert changed.rowcount == 1

    def delete(self, child: str, sequence: int) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            deleted = conn.execute(
                sql.SQL("DELETE FROM {} WHERE originator_id = %s AND originator_version = %s").format(self.name),
                (AccessLog.create_id(child), sequence + 1),
            )
            assert deleted.rowcount == 1


@pytest.fixture
def pg_hub(postgres_url, clock):
    hub = Hub(postgres_url, settings=Settings(), clock=clock)
    yield hub
    hub.close()


def cli_verify(url: str, *extra: str):
    return CliRunner().invoke(app, ["audit", "verify", "--database", url, *extra])


@pytest.mark.postgres
def test_swapping_two_access_records_in_postgresql_is_named_at_the_first_of_them(pg_hub, postgres_url, clock):
    ids = populate(pg_hub, clock)
    table = Table(postgres_url)
    second, third = table.state("c1", 2), table.state("c1", 3)
    table.set_state("c1", 2, third)
    table.set_state("c1", 3, second)

    report = verify(pg_hub.store)
    assert not report.ok and report.records == 6
    (broken,) = report.broken_chains  # c2's chain is intact
    assert (broken.child, broken.sequence, broken.problem) == ("c1", 2, "chain")
    # Plain states are genuine records in the wrong place; sealed ones (bound to their row) no longer open.
    assert broken.fault in ("reordered", "unreadable"), broken
    if broken.fault == "reordered":
        assert broken.record == ids["c1"][2] and "position #2 holds record #3" in broken.detail
    assert not [m for m in report.mismatches if m.problem != "chain"]  # the records themselves still replay

    result = cli_verify(postgres_url)
    assert result.exit_code == 1, result.output
    assert "BROKEN CHAIN" in result.output and "child c1 #2" in result.output and "改ざん" in result.output
    assert "child c2" not in result.output
    alone = json.loads(cli_verify(postgres_url, "--child", "c2", "--json").stdout)
    assert alone["ok"] is True and alone["records"] == 2  # one child's chain checks alone


@pytest.mark.postgres
def test_a_deleted_and_a_corrupted_access_record_are_named_and_do_not_stop_the_check(pg_hub, postgres_url, clock):
    ids = populate(pg_hub, clock)
    table = Table(postgres_url)
    table.delete("c1", 2)  # a read removed from the record
    state = bytearray(table.state("c2", 2))
    state[0] ^= 0xFF  # one byte flipped: neither plain JSON nor authenticated ciphertext opens any more
    table.set_state("c2", 2, bytes(state))

    report = verify(pg_hub.store)
    by_child = {m.child: m for m in report.broken_chains}
    assert set(by_child) == {"c1", "c2"} and report.records == 5
    missing, unreadable = by_child["c1"], by_child["c2"]
    assert (missing.fault, missing.sequence, missing.record) == ("missing", 2, None)
    assert f"next stored record is #3 (id {ids['c1'][2]})" in missing.detail
    assert (unreadable.fault, unreadable.sequence, unreadable.record) == ("unreadable", 2, None)

    output = cli_verify(postgres_url).output
    assert "child c1 #2" in output and "記録の欠落" in output and "child c2 #2" in output and "読み取り不能" in output

    # The auditors' tools keep working, and say which records do not open.
    reads = Auditing(pg_hub.store, clock).reads_of_child("c2", Period(), actor=Actor("oita-audit", "a", "cli"))
    assert [r.record for r in reads.reads] == ids["c2"][:1] and reads.unreadable == [2]


# --- SQLite: a record re-saved with a changed decision --------------------------------------------------------


def _stored(hub: Hub, child: str, sequence: int):
    (stored,) = hub.store.recorder.select_events(AccessLog.create_id(child), gt=sequence, lte=sequence + 1)
    return stored


def _resave(hub: Hub, child: str, sequence: int, change) -> dict:
    """Re-save the record at ``sequence`` with ``change`` applied, through the store's own mapper (so it opens)."""
    stored = _stored(hub, child, sequence)
    domain_event = hub.store.mapper.to_domain_event(stored)
    change(domain_event.record)
    _overwrite(hub, stored, hub.store.mapper.to_stored_event(domain_event).state)
    return domain_event.record


def _overwrite(hub: Hub, stored, state: bytes) -> None:
    with hub.store.recorder.datastore.transaction(commit=True) as cursor:
        cursor.execute(
            "UPDATE stored_events SET state = ? WHERE originator_id = ? AND originator_version = ?",
            (state, UUID(str(stored.originator_id)).hex, stored.originator_version),
        )
        cursor.execute("SELECT changes()")
        assert cursor.fetchone()[0] == 1


def test_an_edited_decision_is_caught_by_the_chain_and_by_the_replay(hub, clock):
    ids = populate(hub, clock)

    def show_everything(record: dict) -> None:  # the school's read (#2) now claims it was shown the centre's note
        columns = record["decisions"]  # the record's stored form 2 (services.reading.record_form)
        n = columns["event"].index("c1-n1")
        assert columns["event_allowed"][n] is False
        columns["event_allowed"][n], columns["rule"][n] = True, "DIRECT"

    _resave(hub, "c1", 2, show_everything)
    report = verify(hub.store)
    assert [(m.problem, m.fault, m.child, m.sequence, m.record) for m in report.mismatches] == [
        ("chain", "edited", "c1", 2, ids["c1"][1]),
        ("decision", "differs", "c1", 2, ids["c1"][1]),
    ]
    assert "c1-n1: recorded True/DIRECT" in report.mismatches[1].detail
    assert "does not match its hash" in report.mismatches[0].detail


def test_a_record_edited_and_rehashed_is_named_by_the_next_link(hub, clock):
    ids = populate(hub, clock)

    def disguise(record: dict) -> None:  # who read is changed, and the record's own hash made to match again
        record["reader"]["user"] = "someone-else"
        record["hash"] = chain_hash(record["prev_hash"], record)

    _resave(hub, "c1", 1, disguise)
    report = verify(hub.store)
    (broken,) = report.mismatches  # the record opens and replays (the user plays no part in the decision)
    assert (broken.fault, broken.sequence, broken.record) == ("edited", 1, ids["c1"][0])
    assert f"record #2 (id {ids['c1'][1]}) was chained to it" in broken.detail
    assert verify(hub.store, child="c2").ok


def test_a_changed_event_shows_as_content_no_longer_matching_what_was_returned(make_hub, clock, tmp_path):
    """The content digest in each record ties it to what was returned: if the log no longer gives that content
    (here: the centre's note rewritten in place), verify says so, although every decision still replays."""
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = make_hub(settings=Settings(), database=database)
    populate(hub, clock)
    (stored,) = [
        s
        for s in hub.store.recorder.select_events(ChildRecord.create_id("c1"))
        if s.topic.endswith("Published") and hub.store.mapper.to_domain_event(s).envelope["id"] == "c1-n1"
    ]
    published = hub.store.mapper.to_domain_event(stored)
    published.envelope["payload"]["text"] = "書き換えられたメモ"
    _overwrite(hub, stored, hub.store.mapper.to_stored_event(published).state)

    report = verify(make_hub(settings=Settings(), database=database).store)  # a fresh process's view
    # The centre's two reads returned the note; the school's and the 児相's did not, and still match.
    assert [(m.problem, m.sequence) for m in report.mismatches] == [("content", 1), ("content", 4)]


def test_a_genuine_record_copied_into_another_place_is_reordered(hub, clock):
    ids = populate(hub, clock)
    third = hub.store.mapper.to_domain_event(_stored(hub, "c1", 3))
    object.__setattr__(third, "originator_version", 3)  # record #3, sealed for the place of #2 and put there
    _overwrite(hub, _stored(hub, "c1", 2), hub.store.mapper.to_stored_event(third).state)

    report = verify(hub.store)
    assert [(m.problem, m.fault, m.sequence, m.record) for m in report.mismatches] == [
        ("chain", "reordered", 2, ids["c1"][2])
    ]
    assert "position #2 holds record #3" in report.mismatches[0].detail


def test_a_read_opens_only_the_head_of_the_access_log(tmp_path, clock, monkeypatch):
    """Appending an access record reads the chain's last record, not every record before it, so a child read a
    thousand times costs no more to read than one read once; readers in two processes (two hubs on one file)
    still make one unbroken chain. Of the last record only its clear chain head is read (``events.sealing.CLEAR_HEAD``:
    since session 10 the record is not opened at all)."""
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    clock.at = datetime.fromisoformat("2026-05-10T09:00:00+09:00")
    first, second = Hub(database, clock=clock), Hub(database, clock=clock)
    try:
        first.load_orgs(ORGS)
        assert {r.outcome for r in first.publish(events("c1"))} == {"accepted"}
        for n in range(30):
            hub = (first, second)[n % 2]
            hub.timeline(org="beppu-center", role="caseworker", child="c1", purpose="support")
        third = Hub(database, clock=clock)  # a process that has read nothing yet
        opened: list[str] = []
        real = third.store.mapper.to_domain_events

        def counting(stored):
            opened.extend(s.topic for s in stored)
            return real(stored)

        monkeypatch.setattr(third.store.mapper, "to_domain_events", counting)
        third.timeline(org="beppu-center", role="caseworker", child="c1", purpose="support")
        third.close()
        assert opened.count(ACCESS_TOPIC) == 0  # not even the head: its hash and sequence are read in the clear
        report = verify(first.store)
        assert report.ok and report.records == 31
        records = [
            first.store.mapper.to_domain_event(e).record
            for e in first.store.recorder.select_events(AccessLog.create_id("c1"))[1:]
        ]
        assert [r["sequence"] for r in records] == list(range(1, 32))
    finally:
        first.close()
        second.close()
