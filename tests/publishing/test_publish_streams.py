"""Publishing without loading a child's stream (``services.publishing.ingest``: the stream versions of a batch in one query,
the history loaded only when an admission rule reads it) and the store-level helpers behind it
(``events.streams``), on SQLite and on PostgreSQL: every read after such a publish sees every event, in order,
with consecutive child positions, whether the child's aggregate was cached before or not, in this process or in
another one; a writer that got there first is caught by the (stream, version) key and the batch is retried."""

from __future__ import annotations

import random
import threading
from datetime import datetime
from typing import Any
from uuid import UUID

import pytest

import events.streams as streams
import services.publishing.ingest as ingest
from consent.model import Settings
from events.store import STORE_FORMAT, ChildRecord, HubStore, ensure_postgres_schema, open_store, store_env
from events.streams import load_many, stream_versions
from services.hub import Hub
from services.projections.admission_facts import ChildFacts, facts_from_log
from services.projections.rosters import DailyAttendance
from tests.helpers import daily_attendance, ev

pytestmark = pytest.mark.store

ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020"},
    {"id": "oita-center", "type": "municipal_center", "municipality": "442011"},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": "442020"},
    {"id": "chuo-jiso", "type": "child_guidance_center", "prefecture": "44", "covers": ["442011", "442020"]},
]
SETTINGS = Settings(joint_ledger=True)


def registered(child: str = "c1", residence: str = "442020") -> dict:
    """The child registered by the centre of ``residence`` (policy version 2: that centre has the authority)."""
    centre = {"442020": "beppu-center", "442011": "oita-center"}[residence]
    return ev(
        f"reg-{child}",
        "child.registered",
        child=child,
        source=centre,
        at="2026-04-01T09:00:00+09:00",
        payload={"residence": residence},
    )


def concern(id: str, child: str = "c1") -> dict:  # cwa-21-10-5: admission reads the child's residence
    return ev(
        id,
        "concern.reported",
        child=child,
        source="beppu-es-1",
        basis="cwa-21-10-5",
        payload={"summary": "欠席が続いている"},
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def open_hub(database, clock):
    clock.at = datetime.fromisoformat("2026-05-01T09:00:00+09:00")
    hubs: list[Hub] = []

    def build(store: HubStore | None = None) -> Hub:
        hub = Hub(database, settings=SETTINGS, clock=clock, store=store)
        hubs.append(hub)
        return hub

    yield build
    for hub in hubs:
        hub.close()


def accepted(results) -> bool:
    return all(r.outcome == "accepted" for r in results)


def timeline(hub: Hub, child: str = "c1") -> list[str]:
    return [e.id for e in hub.timeline(org="beppu-center", role="caseworker", child=child, purpose="support").entries]


def stored(hub: Hub, child: str = "c1") -> list[tuple[int, str]]:
    record = hub.store.get_or_none(ChildRecord.create_id(child))
    return [(e.position, e.id) for e in record.entries]


def loaded_streams(hub: Hub, monkeypatch) -> list[UUID]:
    """Records the streams whose stored events the hub reads from now on (one by one, or for many at once)."""
    calls: list[UUID] = []
    real_get, real_after = hub.store.events.get, streams.events_after
    real_stored_after = hub.store.index_snapshots.stored_after

    def get(originator_id, **kwargs):
        calls.append(originator_id)
        return real_get(originator_id, **kwargs)

    def events_after(store, after):
        calls.extend(after)
        return real_after(store, after)

    def stored_after(after):  # ``load_many``'s query (``events.index_snapshots``)
        calls.extend(after)
        return real_stored_after(after)

    monkeypatch.setattr(hub.store.events, "get", get)
    monkeypatch.setattr(streams, "events_after", events_after)
    monkeypatch.setattr(hub.store.index_snapshots, "stored_after", stored_after)
    return calls


def test_a_read_after_a_publish_without_loading_sees_the_new_events(open_hub, monkeypatch):
    hub = open_hub()
    hub.load_orgs(ORGS)
    assert accepted(hub.publish([registered()]))
    assert timeline(hub) == ["reg-c1"]  # the child's aggregate is now in this hub's cache
    loads = loaded_streams(hub, monkeypatch)
    assert accepted(hub.publish([ev("n1"), daily_attendance("d1", "c1", "2026-04-13"), ev("n2")]))
    assert ChildRecord.create_id("c1") not in loads  # appended at the next versions: the stream was not loaded
    assert timeline(hub) == ["reg-c1", "n1", "n2", "d1"]  # shown in the order of `at`
    assert stored(hub) == [(1, "reg-c1"), (2, "n1"), (3, "d1"), (4, "n2")]
    fresh = open_hub()  # nothing cached: everything comes from the database
    assert stored(fresh) == [(1, "reg-c1"), (2, "n1"), (3, "d1"), (4, "n2")]
    assert timeline(fresh) == ["reg-c1", "n1", "n2", "d1"]
    assert fresh.store.stored_envelope("d1").position == 3
    days = fresh.store.peek(DailyAttendance.create_id("beppu-es-1", "c1", "beppu-center")).days
    assert list(days) == ["2026-04-13"]  # the index was kept in the same transaction


def test_a_process_whose_cache_holds_the_child_sees_what_another_process_published(open_hub):
    reader, writer = open_hub(), open_hub()
    reader.load_orgs(ORGS)
    assert accepted(writer.publish([registered()]))
    assert timeline(reader) == ["reg-c1"]  # cached in the reader's process
    assert accepted(writer.publish([ev("n1"), ev("n2")]))
    assert timeline(reader) == ["reg-c1", "n1", "n2"]
    assert stored(reader) == [(1, "reg-c1"), (2, "n1"), (3, "n2")]


def test_a_cache_that_is_not_fast_forwarded_forgets_the_streams_appended_to(open_hub, database):
    env = {**store_env(database), "AGGREGATE_CACHE_FASTFORWARD": "n"}
    ensure_postgres_schema(env)
    store = HubStore(env=env)
    hub = open_hub(store)
    hub.load_orgs(ORGS)
    assert accepted(hub.publish([registered()]))
    assert timeline(hub) == ["reg-c1"]
    assert accepted(hub.publish([ev("n1")]))
    assert timeline(hub) == ["reg-c1", "n1"]
    assert accepted(hub.publish([concern("e1"), ev("n2")]))  # reads the child's facts, appends to the stream
    assert timeline(hub) == ["reg-c1", "n1", "e1", "n2"]


def test_a_cache_that_is_not_fast_forwarded_is_not_trusted_for_what_admission_reads(open_hub, database):
    """A process whose cache is not fast-forwarded holds the child's facts as it last saved them; another
    process moves the child; a concern under 21-10-5 from the first goes to the centre of the new residence."""
    env = {**store_env(database), "AGGREGATE_CACHE_FASTFORWARD": "n"}
    ensure_postgres_schema(env)
    first, other = open_hub(HubStore(env=env)), open_hub()
    first.load_orgs(ORGS)
    assert accepted(first.publish([registered()]))  # residence 442020, in the first process's cache
    assert accepted(
        other.publish(
            [ev("moved", "residence.changed", at="2026-04-05T09:00:00+09:00", payload={"residence": "442011"})]
        )
    )
    assert accepted(first.publish([concern("e1")]))  # at 04-10: the child lives in 442011
    e1 = [e for e in open_hub().store.get_or_none(ChildRecord.create_id("c1")).entries if e.id == "e1"][0]
    assert e1.audience == frozenset({"beppu-es-1", "oita-center"})


def test_a_publish_reads_the_facts_the_rules_need_never_the_childs_stream_and_sees_the_batch_so_far(
    open_hub, monkeypatch
):
    hub = open_hub()
    hub.load_orgs(ORGS)
    assert accepted(hub.publish([registered("c1"), registered("c2", residence="442011")]))
    hub.store.repository.cache.clear()  # as in a process that has not seen these children
    loads = loaded_streams(hub, monkeypatch)
    results = hub.publish(
        [ev("n1"), daily_attendance("d1", "c1", "2026-04-13"), concern("e1"), ev("n2"), ev("m1", child="c2")]
    )
    assert accepted(results)
    # the concern's audience needs c1's residence, read from c1's facts; nothing needed c2's, and no child's stream
    assert set(loads) & {ChildRecord.create_id("c1"), ChildRecord.create_id("c2"), ChildFacts.create_id("c2")} == set()
    assert ChildFacts.create_id("c1") in loads
    assert stored(hub) == [(1, "reg-c1"), (2, "n1"), (3, "d1"), (4, "e1"), (5, "n2")]
    assert stored(hub, "c2") == [(1, "reg-c2"), (2, "m1")]
    fresh = open_hub()
    record = fresh.store.get_or_none(ChildRecord.create_id("c1"))
    e1 = record.entries[3]
    assert e1.id == "e1" and e1.audience == frozenset({"beppu-es-1", "beppu-center"})
    # the same rule, without a residence on record, makes it wait (the history is read, not assumed)
    assert [r.outcome for r in hub.publish([concern("e9", child="c3")])] == ["waiting"]


@pytest.mark.parametrize(
    "batch", [[ev("n1"), ev("n2")], [concern("n1"), ev("n2")]], ids=["appended without loading", "history loaded"]
)
def test_a_writer_that_appends_between_the_version_query_and_the_insert_is_caught_and_the_batch_retried(
    open_hub, monkeypatch, batch
):
    hub, other = open_hub(), open_hub()
    hub.load_orgs(ORGS)
    assert accepted(hub.publish([registered()]))
    real_versions, real_once = ingest.stream_versions, ingest.Ingest._publish_once
    attempts: list[bool] = []

    def versions_then_another_writer(store, ids):
        found = real_versions(store, ids)
        if store is hub.store and len(attempts) == 1:  # the other process publishes right after the first ask
            assert accepted(other.publish([ev("other-1")]))
        return found

    def publish_once(self, *args, **kwargs):
        if self is hub.ingest:
            attempts.append(kwargs["look_up"])
        return real_once(self, *args, **kwargs)

    monkeypatch.setattr(ingest, "stream_versions", versions_then_another_writer)
    monkeypatch.setattr(ingest.Ingest, "_publish_once", publish_once)
    assert accepted(hub.publish(batch))
    assert attempts == [False, True]  # the stale versions failed the first attempt; the second one stored it
    assert stored(open_hub()) == [(1, "reg-c1"), (2, "other-1"), (3, "n1"), (4, "n2")]


def test_a_resent_batch_is_recognised_event_by_event(open_hub):
    hub = open_hub()
    hub.load_orgs(ORGS)
    batch = [registered()] + [ev(f"n{i}") for i in range(20)]
    assert accepted(hub.publish(batch))
    changed = dict(batch[5], payload={"text": "別の内容"})
    again = hub.publish(batch[:5] + [changed] + batch[6:] + [ev("new")])
    assert [r.outcome for r in again] == ["duplicate"] * 5 + ["rejected"] + ["duplicate"] * 15 + ["accepted"]
    assert again[5].problems[0].code == "id_conflict"
    assert [i for _, i in stored(open_hub())] == ["reg-c1"] + [f"n{i}" for i in range(20)] + ["new"]


def test_stream_versions_and_load_many_answer_for_many_streams_at_once(open_hub):
    hub = open_hub()
    hub.load_orgs(ORGS)
    assert accepted(hub.publish([registered("c1"), ev("n1"), registered("c2")]))
    c1, c2, c3 = (ChildRecord.create_id(c) for c in ("c1", "c2", "c3"))
    assert stream_versions(hub.store, [c1, c2, c3]) == {c1: 3, c2: 2}  # Created, then one version per event
    assert stream_versions(hub.store, []) == {}
    fresh = open_hub()
    assert timeline(fresh) == ["reg-c1", "n1"]  # c1 cached at version 3, c2 not cached
    assert accepted(hub.publish([ev("n2")]))  # c1 moves on in the database only
    loaded = load_many(fresh.store, [c1, c2, c3])
    assert loaded[c3] is None
    assert [e.id for e in loaded[c1].entries] == ["reg-c1", "n1", "n2"] and loaded[c1].version == 4
    assert [e.id for e in loaded[c2].entries] == ["reg-c2"] and loaded[c2].version == 2
    loaded[c1].entries.append("changed by a writer")  # a copy: the cache is not changed through it
    assert timeline(fresh) == ["reg-c1", "n1", "n2"]


def test_load_many_without_keep_leaves_the_cache_as_it_was(open_hub):
    """``keep=False`` (the rows decided ahead: a view of thousands of children must not push the indexes out)."""
    hub = open_hub()
    hub.load_orgs(ORGS)
    assert accepted(hub.publish([registered("c1"), ev("n1"), registered("c2")]))
    fresh = open_hub()
    c1, c2 = (ChildRecord.create_id(c) for c in ("c1", "c2"))
    loaded = load_many(fresh.store, [c1, c2], keep=False)
    assert [e.id for e in loaded[c1].entries] == ["reg-c1", "n1"] and loaded[c2].version == 2
    cache = fresh.store.repository.cache
    for stream in (c1, c2):
        with pytest.raises(KeyError):
            cache.get(stream)
    load_many(fresh.store, [c1])
    assert cache.get(c1).version == 3  # kept by default


def test_load_many_copes_with_a_cached_aggregate_fast_forwarded_by_another_thread_meanwhile(open_hub, monkeypatch):
    """The repository fast-forwards a cached aggregate in place (a timeline read in another request thread of the
    same process). Found by the load run (``bench/load.py``: a ledger page answered 500 with
    ``OriginatorVersionError``): ``load_many`` took the cached object, asked for the events after its version,
    and meanwhile another thread brought that same object forward; the copy then met events it already had."""
    hub = open_hub()
    hub.load_orgs(ORGS)
    assert accepted(hub.publish([registered("c1"), ev("n1")]))
    c1 = ChildRecord.create_id("c1")
    fresh = open_hub()
    assert timeline(fresh) == ["reg-c1", "n1"]  # c1 cached in this process at version 3
    assert accepted(hub.publish([ev("n2")]))  # stored by another process: version 4 in the database only
    query = fresh.store.index_snapshots.stored_after  # ``load_many``'s query

    def another_thread_reads_first(after):
        fresh.store.repository.get(c1, deepcopy_from_cache=False)  # brings the cached object itself to version 4
        return query(after)

    monkeypatch.setattr(fresh.store.index_snapshots, "stored_after", another_thread_reads_first)
    loaded = load_many(fresh.store, [c1])
    assert [e.id for e in loaded[c1].entries] == ["reg-c1", "n1", "n2"] and loaded[c1].version == 4


def test_a_batch_of_more_than_ten_megabytes_is_stored_in_one_transaction(open_hub):
    """1,000 new children with a long note each (the API's largest batch; a Kafka worker's poll or an import chunk
    is the same): about 16 MB of stored events in one insert. With the library's pipelined insert psycopg never
    finished sending such an insert and the publish hung (``events.postgres``); the publish runs in a thread so
    that a hang fails the test instead of stopping the suite."""
    hub = open_hub()
    hub.load_orgs(ORGS)
    rng = random.Random(7)  # text that does not compress (stored events are compressed before they are sealed)
    notes = ["".join(chr(rng.randrange(0x4E00, 0x9FA0)) for _ in range(16_000)) for _ in range(1000)]
    batch = [ev(f"note-{n}", child=f"new-{n}", payload={"text": notes[n]}) for n in range(1000)]
    results: list = []
    publishing = threading.Thread(target=lambda: results.extend(hub.publish(batch)), daemon=True)
    publishing.start()
    publishing.join(timeout=60)
    assert not publishing.is_alive(), "the publish of the batch did not finish"
    assert len(results) == 1000 and accepted(results)
    assert open_hub().timeline(org="beppu-center", role="caseworker", child="new-999", purpose="support").entries[
        0
    ].payload == {"text": notes[999]}


def test_an_id_published_by_another_writer_meanwhile_is_caught_by_the_register_and_stored_once(open_hub, monkeypatch):
    """The register of envelope ids (``events.envelope_ids``) is written with the events: when another writer
    stores the same id between this batch's checks and its insert, the insert fails on the register's key and
    the retry finds the id stored: a duplicate for the same content, an id conflict for another."""
    hub, other = open_hub(), open_hub()
    hub.load_orgs(ORGS)
    assert accepted(hub.publish([registered("c1"), registered("c2")]))
    real_versions = ingest.stream_versions
    asked: list[int] = []

    def versions_then_another_writer(store, ids):
        found = real_versions(store, ids)
        if store is hub.store and not asked:
            asked.append(1)
            assert accepted(other.publish([ev("same"), ev("taken", child="c2")]))
        return found

    monkeypatch.setattr(ingest, "stream_versions", versions_then_another_writer)
    results = hub.publish([ev("same"), ev("taken", payload={"text": "別の内容"}), ev("n1")])
    assert [r.outcome for r in results] == ["duplicate", "rejected", "accepted"]
    assert results[1].problems[0].code == "id_conflict"
    fresh = open_hub()
    assert stored(fresh) == [(1, "reg-c1"), (2, "same"), (3, "n1")]
    assert stored(fresh, "c2") == [(1, "reg-c2"), (2, "taken")]
    assert fresh.store.stored_envelope("taken").stream == ChildRecord.create_id("c2")


def test_a_store_written_before_the_register_of_envelope_ids_gets_it_rebuilt_from_the_log(open_hub, database):
    """A store from before the register (simulated by dropping its table and the store's format) gets every
    stored id back from the children's events when it is opened, erased children's included: a resend is still
    a duplicate, another event under a stored id still a conflict."""
    hub = open_hub()
    hub.load_orgs(ORGS)
    batch = [
        registered("c1"),
        ev("n1"),
        daily_attendance("d1", "c1", "2026-04-13"),
        registered("c2"),
        ev("m1", child="c2"),
    ]
    assert accepted(hub.publish(batch))
    assert accepted(hub.publish([ev("gone", "child.erased", child="c2", payload={"reason": "保存期間の満了"})]))
    datastore = hub.store.recorder.datastore
    prefix = "" if database.startswith("sqlite") else f'"{datastore.schema}".'
    with datastore.transaction(commit=True) as cursor:  # neither the register nor the store's format yet
        cursor.execute(f"DROP TABLE {prefix}tsunagu_envelope_ids")
        cursor.execute(f"DROP TABLE {prefix}tsunagu_store_format")
    reopened = open_hub()
    assert set(reopened.store.stored_envelopes([e["id"] for e in batch] + ["gone", "never"])) == {
        "reg-c1",
        "n1",
        "d1",
        "reg-c2",
        "m1",
        "gone",
    }
    assert reopened.store.stored_envelope("d1").position == 3
    again = reopened.publish(batch[:3] + [dict(ev("m1", child="c2"), payload={"text": "別の内容"})])
    assert [r.outcome for r in again] == ["duplicate", "duplicate", "duplicate", "rejected"]
    assert again[3].problems[0].code == "id_conflict"
    assert stored(open_hub()) == [(1, "reg-c1"), (2, "n1"), (3, "d1")]
    assert reopened.store.format == STORE_FORMAT


def test_the_facts_kept_for_the_publish_rules_are_those_the_log_gives(open_hub):
    """``services.projections.admission_facts``: what is kept while publishing equals what a store written before the facts existed
    gets from its log, erased children included (the facts name the residence and the cases, no content)."""
    hub = open_hub()
    hub.load_orgs(ORGS)
    case = {"case": "k1", "category": "youhogo", "case_type": "abuse.neglect"}
    assert accepted(
        hub.publish(
            [
                registered("c1"),
                ev("n1"),
                concern("e1"),
                registered("c2", residence="442011"),
                ev("k1", "case.registered", payload=case, at="2026-04-12T09:00:00+09:00"),
                ev(
                    "moved",
                    "residence.changed",
                    child="c2",
                    source="oita-center",
                    payload={"residence": "442020"},
                    at="2026-04-20T09:00:00+09:00",
                ),
            ]
        )
    )
    assert accepted(
        hub.publish(
            [
                ev(
                    "gone",
                    "child.erased",
                    child="c2",
                    source="beppu-center",
                    payload={"reason": "保存期間の満了"},
                    at="2026-04-25T09:00:00+09:00",
                )
            ]
        )
    )
    kept = {c: hub.store.get_or_none(ChildFacts.create_id(c)).entries for c in ("c1", "c2")}
    assert [(e.id, e.position, dict(e.payload)) for e in kept["c1"]] == [
        ("reg-c1", 1, {"residence": "442020"}),
        ("k1", 4, {"case": "k1", "case_type": "abuse.neglect"}),
    ]
    assert [(e.id, e.kind, dict(e.payload)) for e in kept["c2"]] == [
        ("reg-c2", "child.registered", {"residence": "442011"}),
        ("moved", "residence.changed", {"residence": "442020"}),
        ("gone", "child.erased", {}),
    ]
    rebuilt = {
        f.child: f.entries
        for f in facts_from_log(hub.store.recorder, hub.store.mapper, hub.store.registry().orgs, hub.settings)
    }
    assert rebuilt == kept


def test_a_store_written_before_reports_were_facts_gets_them_and_they_can_be_acknowledged(open_hub, database):
    """Store format 5 (``admission_facts.report_facts_from_log``): a store of format 4 held providers' reports
    that its children's facts lacked (they became facts with the meeting cycle), so ``report.acknowledged`` was
    refused for them. Simulated by deleting the report's fact, publishing a later fact, and setting the format back
    to 4: opened again, the report's fact is back at its place in the stream order, and the centre's
    acknowledgement is accepted."""
    hub = open_hub()
    hub.load_orgs(ORGS + [{"id": "visit-a", "type": "service_provider", "municipality": "442020"}])
    report = ev(
        "v1",
        "visit.report",
        source="visit-a",
        basis="commissioned",
        to="beppu-center",
        payload={"date": "2026-04-20", "observations": "訪問時の様子"},
    )
    assert accepted(hub.publish([registered("c1")]))
    assert accepted(hub.publish([report]))  # its own publish: its fact is the facts' event at version 3
    stream = ChildFacts.create_id("c1")
    assert [e.id for e in hub.store.get_or_none(stream).entries] == ["reg-c1", "v1"]

    datastore = hub.store.recorder.datastore
    sqlite = database.startswith("sqlite")
    prefix = "" if sqlite else f'"{datastore.schema}".'
    mark = "?" if sqlite else "%s"
    events = hub.store.recorder.events_table_name

    def sql(statement: str, *args: Any) -> None:
        with datastore.transaction(commit=True) as cursor:
            cursor.execute(statement.replace("?", mark).replace("TABLE.", prefix).replace("EVENTS", events), args)

    sql(
        "DELETE FROM TABLE.EVENTS WHERE originator_id = ? AND originator_version = 3",
        stream.hex if sqlite else stream,
    )
    between = open_hub(open_store(database))  # as format 4 kept them: a later fact, none of the report
    assert accepted(between.publish([ev("moved", "residence.changed", payload={"residence": "442020"})]))
    assert [e.id for e in between.store.get_or_none(stream).entries] == ["reg-c1", "moved"]
    sql("DELETE FROM TABLE.tsunagu_store_format")
    sql("INSERT INTO TABLE.tsunagu_store_format (format) VALUES (4)")

    old = open_hub(open_store(database))
    assert old.store.format == STORE_FORMAT
    assert [e.id for e in old.store.get_or_none(stream).entries] == ["reg-c1", "v1", "moved"]
    acknowledgement = ev(
        "ack",
        "report.acknowledged",
        source="beppu-center",
        basis="commissioned",
        to="visit-a",
        payload={"report": "v1", "note": "本日訪問します"},
    )
    assert accepted(old.publish([acknowledgement]))
    assert stored(open_hub(open_store(database)))[-1] == (4, "ack")
