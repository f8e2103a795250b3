"""The view log (``services.reading.view_log``, review finding M2): a view of many children leaves one record naming
every child it consulted and the access records of those it showed, in its reader's hash chain, appended with the
shown reads; ``audit verify`` checks the chains; the auditor's reads of a child and the family's 開示 report list
the views that counted the child without showing it; an erasure leaves the records (as it leaves access records).
"""

from __future__ import annotations

from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from consent.model import Settings
from events.labels import CONSULTED_FAMILY_JA
from events.store import AccessLog
from services.audit.disclosure import disclosure_html
from services.audit.queries import Period
from services.audit.service import Auditing
from services.audit.trail import Actor
from services.casework.ledger import CaseViews
from services.casework.ledger_query import LedgerQuery
from services.cli.root import app
from services.demo import load_demo
from services.http.app import create_app
from services.hub import Hub
from services.reading import view_log
from services.web.session import SESSION_COOKIE, WebSettings
from tests.web.test_role_scopes import DEMO_TODAY, KEY, session

pytestmark = pytest.mark.store

ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020", "name": "別府市こども家庭センター"},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": "442020"},
    {"id": "oita-audit", "type": "auditor", "prefecture": "44"},
]
CHILDREN = ["c1", "c2", "c3"]
AUDITOR = Actor("oita-audit", "監査 一郎", "cli")


def envelope(child: str, n: int, kind: str, payload: dict, at: str = "2026-04-01T09:00:00+09:00") -> dict:
    return {
        "id": f"{child}-{n}",
        "kind": kind,
        "child": child,
        "source": "beppu-center",
        "basis": "internal",
        "at": at,
        "payload": payload,
    }


@pytest.fixture
def world(hub: Hub) -> Hub:
    hub.load_orgs(ORGS)
    batch = []
    for i, child in enumerate(CHILDREN, start=1):
        batch.append(envelope(child, 1, "child.registered", {"residence": "442020"}))
        batch.append(
            envelope(child, 2, "case.registered", {"case": f"K{i}", "category": "youhogo", "case_type": "parenting"})
        )
    assert all(r.outcome == "accepted" for r in hub.publish(batch))
    return hub


def records(hub: Hub) -> list[dict]:
    return [dict(hub.store.mapper.to_domain_event(s).record) for s in view_log.stored_views(hub.store)]


def ledger_page(hub: Hub, user: str = "田中"):
    """The first page of one row, sorted by case number: K1 (c1) shown, c2 and c3 counted."""
    query = LedgerQuery({"per_page": "1", "sort": "case", "status": "open"})
    return CaseViews(hub).ledger("beppu-center", query, role="caseworker", user=user)


def test_a_view_leaves_one_record_naming_the_children_it_consulted_and_the_reads_it_showed(world):
    page = ledger_page(world)
    assert [r.child for r in page.rows] == ["c1"] and page.total == 3
    (record,) = records(world)
    assert record["view"] == "ledger"
    assert record["reader"] == {"org": "beppu-center", "role": "caseworker", "user": "田中"}
    assert view_log.consulted_ids(world.store, record) == CHILDREN
    assert record["consulted"] == {"digest": view_log.consulted_digest(CHILDREN), "count": 3}
    assert record["registry_version"] == world.store.registry().version
    assert record["policy_version"] == "tsunagu-read-policy/2"
    assert record["settings"] == Settings().to_dict()
    assert record["shown"] == {"c1": page.reads[0]}
    assert record["query"]["status"] == "open" and record["query"]["per_page"] == 1
    assert (record["sequence"], record["prev_hash"]) == (1, "")
    agenda = CaseViews(world).agenda("beppu-center", page_day(world), role="caseworker", user="田中")
    second = records(world)[1]
    assert second["view"] == "agenda" and second["sequence"] == 2 and second["prev_hash"] == record["hash"]
    assert set(second["shown"].values()) == set(agenda.reads)
    ledger_page(world, user="佐藤")  # another person's chain: no contention with 田中's
    third = records(world)[2]
    assert third["sequence"] == 1 and third["prev_hash"] == ""
    assert world.verify().ok


def page_day(hub: Hub):
    return hub.clock().date()


def test_a_forged_view_record_is_caught_by_verify(world):
    ledger_page(world)
    ledger_page(world)
    (stored, _) = list(view_log.stored_views(world.store))
    forged = world.store.mapper.to_domain_event(stored)
    forged.record["consulted"] = {"digest": view_log.consulted_digest(["c1"]), "count": 1}  # hide c2 and c3
    with world.store.recorder.datastore.transaction(commit=True) as cursor:
        cursor.execute(
            "UPDATE stored_events SET state = ? WHERE originator_id = ? AND originator_version = ?",
            (
                world.store.mapper.to_stored_event(forged).state,
                UUID(str(stored.originator_id)).hex,
                stored.originator_version,
            ),
        )
    report = world.verify()
    assert not report.ok
    mismatch, unstored = report.mismatches  # the record edited, and the set it now names was never stored
    assert mismatch.problem == "chain" and mismatch.fault == "edited" and mismatch.child.startswith("(view log")
    assert mismatch.record == forged.record["id"]
    assert (unstored.fault, unstored.record) == ("missing", forged.record["id"]) and "not stored" in unstored.detail


def test_the_auditor_and_the_disclosure_report_list_a_view_that_counted_the_child_without_showing_it(world):
    page = ledger_page(world)
    auditing = Auditing(world.store, world.clock)
    reads = auditing.reads_of_child("c3", Period(), actor=AUDITOR)
    assert reads.reads == []  # no read of c3 was returned
    (view,) = reads.consulted
    assert (view.view, view.view_ja, view.consulted, view.shown) == ("ledger", "進行管理台帳", 3, 1)
    assert view.reader.org == "beppu-center" and view.reader.user == "田中"
    assert auditing.reads_of_child("c1", Period(), actor=AUDITOR).consulted == []  # shown: a read, not a count
    assert [r.record for r in auditing.reads_of_child("c1", Period(), actor=AUDITOR).reads] == page.reads
    report = auditing.disclosure_report("c3", actor=AUDITOR)
    assert report.total_reads == 0 and report.consulted_views == 1
    (org,) = report.organisations
    assert org.name == "別府市こども家庭センター" and org.reads == []
    (line,) = org.consulted
    assert line.result_ja == CONSULTED_FAMILY_JA
    html = disclosure_html(report)
    assert CONSULTED_FAMILY_JA in html and "進行管理台帳" not in html  # the family's words: no view named


def test_an_erasure_leaves_the_view_records_as_it_leaves_access_records(world):
    ledger_page(world)
    erased = envelope("c3", 3, "child.erased", {"reason": "誤登録"}, at="2026-04-01T10:00:00+09:00")
    assert world.publish([erased])[0].outcome == "accepted"
    (record,) = records(world)
    assert "c3" in view_log.consulted_ids(world.store, record)
    assert world.verify().ok
    reads = Auditing(world.store, world.clock).reads_of_child("c3", Period(), actor=AUDITOR)
    assert len(reads.consulted) == 1


def test_the_command_line_lists_the_view_and_verify_counts_the_view_records(make_hub, tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = make_hub(database=url)
    hub.load_orgs(ORGS)
    batch = [envelope(c, 1, "child.registered", {"residence": "442020"}) for c in CHILDREN]
    batch += [
        envelope(c, 2, "case.registered", {"case": f"K{i}", "category": "youhogo", "case_type": "parenting"})
        for i, c in enumerate(CHILDREN, start=1)
    ]
    assert all(r.outcome == "accepted" for r in hub.publish(batch))
    ledger_page(hub)
    hub.close()
    reads = CliRunner().invoke(app, ["audit", "reads", "c3", "--database", url])
    assert reads.exit_code == 0, reads.output
    assert "進行管理台帳（ledger）の件数に含まれた" in reads.output
    verified = CliRunner().invoke(app, ["audit", "verify", "--database", url])
    assert verified.exit_code == 0, verified.output
    assert "1 view records chain-checked" in " ".join(verified.output.split())
    one = CliRunner().invoke(app, ["audit", "verify", "--child", "c3", "--database", url])
    assert one.exit_code == 0, one.output
    assert "1 view records chain-checked" in " ".join(one.output.split())
    hub = make_hub(database=url)
    delete_views(hub, "beppu-center", "田中", 1, 2)
    hub.close()
    caught = CliRunner().invoke(app, ["audit", "verify", "--child", "c1", "--database", url])
    assert caught.exit_code == 1, caught.output
    assert "VIEW" in caught.output and "一覧の閲覧記録" in caught.output


@pytest.mark.http
def test_the_auditors_pages_show_a_view_that_counted_the_child_without_showing_it(make_hub, clock, keys):
    clock.at = DEMO_TODAY
    hub = make_hub(settings=Settings(joint_ledger=True))
    load_demo(hub)
    web = WebSettings(issuer="http://127.0.0.1:9/dev-oidc", client_id="tsunagu-ui", session_key=KEY)
    app = create_app(hub, keys[1], web=web)
    with TestClient(app) as client:
        client.cookies.set(SESSION_COOKIE, session("beppu-center", "caseworker"))
        assert client.get("/ui/ledger", params={"alerts": "any"}).status_code == 200
        (record,) = records(hub)
        hidden = sorted(set(view_log.consulted_ids(hub.store, record) or []) - set(record["shown"]))
        assert hidden  # the filter counted children it did not show
    with TestClient(app) as client:
        client.cookies.set(SESSION_COOKIE, session("beppu-audit", "auditor"))
        reads = client.get(f"/ui/audit/children/{hidden[0]}")
        assert reads.status_code == 200 and "一覧の件数に含まれた閲覧" in reads.text and "進行管理台帳" in reads.text
        report = client.get(f"/ui/audit/children/{hidden[0]}/disclosure")
        assert report.status_code == 200 and CONSULTED_FAMILY_JA in report.text
    with TestClient(app) as client:
        client.cookies.set(SESSION_COOKIE, session("beppu-center", "caseworker"))
        assert client.get("/ui/ledger.csv").status_code == 200
        assert records(hub)[-1]["view"] == "ledger-csv"  # the export, not a page of the ledger


# --- Deleting view records (review finding: not caught by the chain alone) --------------------------------------


def delete_views(hub: Hub, org: str, user: str, *versions: int) -> None:
    """Delete the events of a reader's view log (by stream version: 1 is the log's creation) with SQL."""
    stream = view_log.ViewLog.create_id(org, user)
    with hub.store.recorder.datastore.transaction(commit=True) as cursor:
        for version in versions:
            cursor.execute(
                "DELETE FROM stored_events WHERE originator_id = ? AND originator_version = ?",
                (stream.hex, version),
            )
            cursor.execute("SELECT changes()")
            assert cursor.fetchone()[0] == 1


def test_the_anchor_holds_each_view_logs_head_and_catches_its_last_record_deleted(world, clock):
    from services.audit.anchors import anchor, verify_anchored

    ledger_page(world)
    ledger_page(world)
    ledger_page(world, user="佐藤")
    made = anchor(world.store, at=clock())
    tanaka = str(view_log.ViewLog.create_id("beppu-center", "田中"))
    assert {h["log"]: h["sequence"] for h in made["views"]} == {
        tanaka: 2,
        str(view_log.ViewLog.create_id("beppu-center", "佐藤")): 1,
    }
    assert verify_anchored(world.store, made).ok
    delete_views(world, "beppu-center", "田中", 3)  # the last record of 田中's chain
    report = verify_anchored(world.store, made)
    assert [(m.child, m.sequence, m.fault) for m in report.not_as_anchored] == [
        (f"(view log {tanaka})", 2, "truncated")
    ]
    assert verify_anchored(world.store, {k: v for k, v in made.items() if k != "views"}).not_as_anchored == []


def test_a_whole_view_chain_deleted_is_caught_by_the_anchor(world, clock):
    from services.audit.anchors import anchor, verify_anchored

    ledger_page(world, user="佐藤")
    made = anchor(world.store, at=clock())
    delete_views(world, "beppu-center", "佐藤", 1, 2)
    (m,) = verify_anchored(world.store, made).not_as_anchored
    assert m.fault == "truncated" and "view log has no records" in m.detail


def test_each_access_record_names_its_view_and_verify_catches_the_view_record_deleted(world):
    page = ledger_page(world)
    (record,) = records(world)
    shown = [r for r in access_log(world, "c1") if r["id"] == page.reads[0]]
    assert shown[0]["view"] == record["id"]
    assert world.verify().ok
    delete_views(world, "beppu-center", "田中", 1, 2)  # the whole chain: nothing left for the chain check to see
    report = world.verify()
    (m,) = report.mismatches
    assert (m.problem, m.fault, m.record, m.child) == ("view", "missing", record["id"], "c1")


def test_verify_catches_an_access_record_a_view_names_as_shown_deleted(world):
    page = ledger_page(world)
    (record,) = records(world)
    with world.store.recorder.datastore.transaction(commit=True) as cursor:
        cursor.execute(
            "DELETE FROM stored_events WHERE originator_id = ? AND originator_version = 2",
            (AccessLog.create_id("c1").hex,),
        )
    faults = {(m.problem, m.fault) for m in world.verify().mismatches}
    assert ("view", "missing") in faults
    (m,) = [m for m in world.verify().mismatches if m.problem == "view"]
    assert m.record == record["id"] and page.reads[0] in m.detail


def access_log(hub: Hub, child: str) -> list[dict]:
    from services.audit.replay import load, stored_records

    return [load(hub.store, s).record for s in stored_records(hub.store, child)]


# --- The consulted set stored once (review finding: growth and scans) -------------------------------------------


def test_a_consulted_set_is_stored_once_and_the_view_records_name_it_by_its_digest(world):
    ledger_page(world)
    ledger_page(world)
    ledger_page(world, user="佐藤")
    sets = list(view_log.stored_sets(world.store))
    assert len(sets) == 1  # three views of the same three children: one set
    first, second, third = records(world)
    assert first["consulted"] == second["consulted"] == third["consulted"]
    assert all(view_log.CONSULTED_IDS not in r for r in (first, second, third))
    assert world.verify().ok


def test_a_consulted_set_deleted_or_not_matching_its_digest_is_caught(world):
    ledger_page(world)
    (record,) = records(world)
    stream = view_log.ConsultedSet.create_id(record["consulted"]["digest"])
    with world.store.recorder.datastore.transaction(commit=True) as cursor:
        cursor.execute("DELETE FROM stored_events WHERE originator_id = ?", (stream.hex,))
    faults = [(m.problem, m.fault, m.record) for m in world.verify().mismatches]
    assert faults == [("chain", "missing", record["id"])]


def test_the_disclosure_report_groups_the_views_of_an_organisation_in_a_month_into_one_line(world, clock):
    for day in (3, 5, 5):
        clock.at = clock.at.replace(month=11, day=day)
        ledger_page(world)
    clock.at = clock.at.replace(month=12, day=1)
    ledger_page(world)
    report = Auditing(world.store, world.clock).disclosure_report("c3", actor=AUDITOR)
    (org,) = report.organisations
    assert [(c.month, c.times) for c in org.consulted] == [("2026-11", 3), ("2026-12", 1)]
    assert report.consulted_views == 4
    assert "3 回" in org.consulted[0].at_ja and "〜" in org.consulted[0].at_ja


# --- What the counts were decided under, replayed (review finding: record the versions) ----------------------


def test_a_view_record_names_its_versions_and_verify_replays_a_sample_of_its_consulted_children(world):
    from consent.model import Reader
    from services.reading.kept import KeptReads
    from services.reading.timeline import TimelineReader

    ledger_page(world)
    (record,) = records(world)
    assert sorted(record["sample"]) == view_log.sample(record["id"], CHILDREN) == CHILDREN
    many = [f"k{i:04}" for i in range(5000)]
    picked = view_log.sample(record["id"], many)
    assert len(set(picked)) == 3 and picked == view_log.sample(record["id"], list(reversed(many)))
    assert picked != view_log.sample("another record", many)
    assert set(record["sample"].values()) == {2}  # each child's stream had 2 events when its read was decided
    assert world.verify().ok
    # a view record claiming the prefecture's auditor counted the children: the policy refuses it their reads
    outsider = Reader(org="oita-audit", role="auditor", purpose="support", t=world.clock(), user="監査")
    forged = view_log.view_record(
        outsider,
        "ledger",
        {},
        {c: 2 for c in CHILDREN},
        log_position=world.store.log_position(),
        registry_version=world.store.registry().version,
        settings=Settings(),
    )
    settings = Settings()
    reader = TimelineReader(
        world.store, type("S", (), {"current": lambda self: settings})(), world.clock, KeptReads(world.store)
    )
    reader.record([], log_position=world.store.log_position(), registry_version=1, settings=settings, view=forged)
    refused = [m for m in world.verify().mismatches if m.problem == "view"]
    assert sorted(m.child for m in refused) == CHILDREN
    assert all(m.fault == "differs" and "replays as refused" in m.detail for m in refused)


# --- One child's verify checks the view records that name it (tsunagu audit verify --child) --------------------


def test_verify_of_one_child_checks_the_view_records_that_name_it(world):
    from services.audit.replay import verify

    ledger_page(world)  # 田中: c1 shown, c2 and c3 counted
    ledger_page(world)
    ledger_page(world, user="佐藤")
    for child in CHILDREN:
        report = verify(world.store, child=child)
        assert report.ok and report.view_records == 3  # both readers' chains: each names every child
    first = view_log.stored_views(world.store)
    stored = next(first)
    forged = world.store.mapper.to_domain_event(stored)
    forged.record["query"] = {"per_page": 50}  # altered: its hash no longer matches
    with world.store.recorder.datastore.transaction(commit=True) as cursor:
        cursor.execute(
            "UPDATE stored_events SET state = ? WHERE originator_id = ? AND originator_version = ?",
            (
                world.store.mapper.to_stored_event(forged).state,
                UUID(str(stored.originator_id)).hex,
                stored.originator_version,
            ),
        )
    for child in CHILDREN:  # shown (c1) or only counted (c2, c3): the record is checked for each
        (m,) = verify(world.store, child=child).mismatches
        assert (m.problem, m.fault, m.record, m.sequence) == ("chain", "edited", forged.record["id"], 1)
        assert m.child == f"(view log {view_log.ViewLog.create_id('beppu-center', '田中')})"


def test_verify_of_one_child_catches_a_view_record_naming_it_deleted(world):
    from services.audit.replay import verify

    page = ledger_page(world)
    second = ledger_page(world)
    first_id, second_id = (r["id"] for r in records(world))
    delete_views(world, "beppu-center", "田中", 2)  # the first record (version 1 is the log's creation)
    for child in ("c2", "c3"):  # counted only: the gap in the chain of the view that still names the child
        (m,) = verify(world.store, child=child).mismatches
        assert (m.problem, m.fault, m.sequence) == ("chain", "missing", 1)
    faults = {(m.problem, m.fault, m.record) for m in verify(world.store, child="c1").mismatches}
    assert faults == {("chain", "missing", second_id), ("view", "missing", first_id)}  # c1's read names the view
    assert page.reads[0] != second.reads[0]
    delete_views(world, "beppu-center", "田中", 1, 3)  # the rest of the chain: only c1's reads still name them
    faults = {(m.problem, m.fault, m.record) for m in verify(world.store, child="c1").mismatches}
    assert faults == {("view", "missing", first_id), ("view", "missing", second_id)}
    assert verify(world.store, child="c1").view_records == 0


def test_verify_of_one_child_catches_its_access_record_a_view_names_as_shown_deleted(world):
    from services.audit.replay import verify

    page = ledger_page(world)
    (record,) = records(world)
    with world.store.recorder.datastore.transaction(commit=True) as cursor:
        cursor.execute(
            "DELETE FROM stored_events WHERE originator_id = ? AND originator_version = 2",
            (AccessLog.create_id("c1").hex,),
        )
    (m,) = [m for m in verify(world.store, child="c1").mismatches if m.problem == "view"]
    assert m.record == record["id"] and page.reads[0] in m.detail
    assert verify(world.store, child="c2").ok  # another child's audit: its own records are intact


# --- The audit topic indexes (a child's audit without a scan of the whole log) -----------------------------------


def test_the_view_logs_topics_are_paged_through_their_partial_indexes(world):
    from events.sqlite import INDEXED_TOPICS

    assert set(INDEXED_TOPICS.values()) == {view_log.VIEW_TOPIC, view_log.SET_TOPIC}
    ledger_page(world)
    ledger_page(world, user="佐藤")
    recorder = world.store.recorder
    for name, topic in INDEXED_TOPICS.items():
        scanned = recorder.select_notifications(1, 500, topics=[topic])  # the library's way: a scan by topic
        assert recorder.select_indexed(topic, 1, 500) == scanned and scanned
        assert recorder.select_indexed(topic, scanned[-1].id, 500, stop=scanned[-1].id) == scanned[-1:]
        with recorder.datastore.transaction(commit=False) as cursor:
            quoted = topic.replace("'", "''")
            cursor.execute(
                f"EXPLAIN QUERY PLAN SELECT rowid, * FROM stored_events WHERE topic = '{quoted}' AND rowid >= ? "
                "ORDER BY rowid LIMIT ?",
                (1, 500),
            )
            assert f"USING INDEX {name}" in " ".join(str(row[-1]) for row in cursor.fetchall())
    assert [s.originator_id for s in view_log.stored_views(world.store)] == [
        s.originator_id for s in recorder.select_notifications(1, 500, topics=[view_log.VIEW_TOPIC])
    ]
    with pytest.raises(ValueError):
        recorder.select_indexed("events.store:AccessLog.ReadRecorded", 1, 10)


def test_a_store_written_before_the_audit_topic_indexes_gets_them_when_opened(make_hub, tmp_path):
    from events.sqlite import INDEXED_TOPICS

    url = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = make_hub(database=url)
    hub.load_orgs(ORGS)
    hub.publish([envelope(c, 1, "child.registered", {"residence": "442020"}) for c in CHILDREN])
    hub.publish(
        [
            envelope(c, 2, "case.registered", {"case": f"K{i}", "category": "youhogo", "case_type": "parenting"})
            for i, c in enumerate(CHILDREN, start=1)
        ]
    )
    ledger_page(hub)
    with hub.store.recorder.datastore.transaction(commit=True) as cursor:  # as written by the code before them
        for name in INDEXED_TOPICS:
            cursor.execute(f"DROP INDEX {name}")
    hub.close()
    hub = make_hub(database=url)
    with hub.store.recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        assert set(INDEXED_TOPICS) <= {row[0] for row in cursor.fetchall()}
    assert [v.view for v in Auditing(hub.store, hub.clock).reads_of_child("c3", Period(), actor=AUDITOR).consulted] == [
        "ledger"
    ]
    assert hub.verify().ok


@pytest.mark.postgres
def test_the_audit_topic_indexes_on_postgresql(make_hub, postgres_url):
    import psycopg

    from events.topic_index import INDEXED_TOPICS

    hub = make_hub(database=postgres_url)
    hub.load_orgs(ORGS)
    for n, kind, payload in ((1, "child.registered", {"residence": "442020"}), (2, "case.registered", None)):
        batch = [
            envelope(c, n, kind, payload or {"case": f"K{i}", "category": "youhogo", "case_type": "parenting"})
            for i, c in enumerate(CHILDREN, start=1)
        ]
        assert all(r.outcome == "accepted" for r in hub.publish(batch))
    ledger_page(hub)
    ledger_page(hub, user="佐藤")
    recorder = hub.store.recorder
    for topic in INDEXED_TOPICS.values():
        scanned = recorder.select_notifications(1, 500, topics=[topic])
        assert recorder.select_indexed(topic, 1, 500) == scanned and scanned
        assert recorder.select_indexed(topic, scanned[-1].id, 500, stop=scanned[-1].id) == scanned[-1:]
    schema = postgres_url.split("schema=")[1]
    with psycopg.connect(postgres_url.split("?")[0], autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")  # a table this small is scanned anyway: is the index usable?
        topic = INDEXED_TOPICS["tsunagu_topic_view_records"]
        plan = conn.execute(
            f"EXPLAIN SELECT * FROM {schema}.{recorder.events_table_name} WHERE topic = '{topic}' AND notification_id >= 1 "
            "ORDER BY notification_id LIMIT 500"
        ).fetchall()
        assert "tsunagu_topic_view_records" in " ".join(row[0] for row in plan)
    assert [v.view for v in Auditing(hub.store, hub.clock).reads_of_child("c3", Period(), actor=AUDITOR).consulted] == [
        "ledger",
        "ledger",
    ]
    assert hub.verify().ok
