"""The demo municipality (services/demo.py): it loads through the real publish path with nothing rejected, loading
it again changes nothing, and the views it offers are the lawful ones. Also the settings from the environment."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime

import pytest
from typer.testing import CliRunner

from consent.model import Settings
from consent.policy import REDACTED
from events.store import ChildRecord
from services.cli import demo as cli_demo
from services.cli.root import app
from services.demo import ORGS, background_events, demo_children, demo_events, load_demo
from services.hub import Hub, SettableClock, settings_from_env

pytestmark = pytest.mark.store

TODAY = datetime.fromisoformat("2026-11-23T12:00:00+09:00")
SETTING_VARS = [f"TSUNAGU_{f.name.upper()}" for f in fields(Settings)]


@pytest.fixture(autouse=True)
def _no_settings_from_the_shell(monkeypatch):
    """A developer who tried the demo may have TSUNAGU_JOINT_LEDGER=1 exported; these tests set their own."""
    for name in SETTING_VARS + ["TSUNAGU_DATABASE_URL"]:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def demo_hub(make_hub, clock) -> Hub:
    clock.at = TODAY
    hub = make_hub(settings=Settings(joint_ledger=True))
    result = load_demo(hub)
    assert result.rejected == [], [(e["id"], [p.message for p in r.problems]) for e, r in result.rejected]
    return hub


def read(hub: Hub, child: str, org: str, role: str, purpose: str = "support"):
    return hub.timeline(org=org, role=role, child=child, purpose=purpose)


def by_id(timeline) -> dict:
    return {e.id: e for e in timeline.entries}


EVENTS = {e["id"]: e for e in demo_events()}
ALL = len(EVENTS) + len(background_events())  # with the prefecture's background cases (services.demo)


def ids_of(child: str, **match) -> set[str]:
    """The demo's event ids for ``child`` whose envelope fields equal ``match``."""
    return {i for i, e in EVENTS.items() if e["child"] == child and all(e.get(k) == v for k, v in match.items())}


# --- Loading -------------------------------------------------------------------------------------------------


def test_the_demo_loads_everything_with_no_rejection(make_hub, clock):
    clock.at = TODAY
    hub = make_hub(settings=Settings(joint_ledger=True))
    result = load_demo(hub)
    assert result.rejected == []
    # the stories' events, and the prefecture's background cases for the planners' aggregates (not stories)
    background = background_events()
    assert result.accepted == ALL == len(EVENTS) + len(background) and result.duplicate == 0
    assert not {e["child"] for e in background} & set(demo_children())
    assert max(datetime.fromisoformat(e["at"]) for e in background) <= TODAY
    assert sorted(result.orgs.registered) == sorted(o["id"] for o in ORGS)
    assert set(hub.orgs()) == {o["id"] for o in ORGS}
    assert 8 <= len(demo_children()) <= 20
    assert {e["child"] for e in EVENTS.values()} == set(demo_children())
    # Every event was stored: each child's stream holds exactly the demo's events for that child, in order.
    for child in demo_children():
        stored = hub.store.peek(ChildRecord.create_id(child))
        assert [e.id for e in stored.entries] == [i for i, e in EVENTS.items() if e["child"] == child]
    times = [datetime.fromisoformat(e["at"]) for e in EVENTS.values()]
    assert min(times) >= datetime.fromisoformat("2026-04-01T00:00:00+09:00")
    assert max(times) <= TODAY


def test_the_demo_covers_the_flows_the_hub_carries():
    kinds = {e["kind"] for e in EVENTS.values()}
    assert {
        "child.registered",
        "residence.changed",
        "concern.reported",
        "notification.filed",
        "attendance.monthly",
        "target_list.assigned",
        "absence.alert",
        "case.registered",
        "case.member_assigned",
        "case.shared",
        "case.reviewed",
        "case.closed",
        "ledger.updated",
        "plan.created",
        "plan.revised",
        "consent.granted",
        "consent.refused",
        "consent.withdrawn",
        "case.transferred",
        "emergency.declared",
        "note.recorded",
    } <= kinds
    assert {e["basis"] for e in EVENTS.values()} == {
        "internal",
        "cwa-21-10-5",
        "cwa-25",
        "cwa-25-3",
        "cwa-25-2",
        "joint-ledger",
        "commissioned",
    }
    assert {e.get("function", "child_welfare") for e in EVENTS.values() if e["source"] == "beppu-center"} == {
        "child_welfare",
        "maternal_health",
    }
    assert any(e["kind"] == "note.recorded" and e.get("sensitive") for e in EVENTS.values())
    assert all(e["source"] == "chuo-jiso" for e in EVENTS.values() if e["kind"] == "emergency.declared")
    concern_sources = {e["source"] for e in EVENTS.values() if e["kind"] == "concern.reported"}
    types = {o["id"]: o["type"] for o in ORGS}
    assert {"school", "nursery", "medical", "health_center"} <= {types[s] for s in concern_sources}


def test_loading_the_demo_again_changes_nothing(demo_hub):
    position = demo_hub.store.log_position()
    again = load_demo(demo_hub)
    assert again.accepted == 0 and again.rejected == []
    assert again.duplicate == ALL
    assert again.orgs.registered == [] and again.orgs.updated == []
    assert demo_hub.store.log_position() == position


def test_the_demo_refuses_to_load_without_the_joint_ledger(make_hub, clock):
    clock.at = TODAY
    hub = make_hub(settings=Settings(joint_ledger=False))
    before = hub.store.log_position()  # the store's settings only
    with pytest.raises(ValueError, match="joint ledger"):
        load_demo(hub)
    assert hub.store.log_position() == before


# --- The lawful views --------------------------------------------------------------------------------------


def test_a_school_sees_only_its_own_records(demo_hub):
    own = read(demo_hub, "child-10", "beppu-es-yamanami", "teacher")
    assert set(by_id(own)) == ids_of("child-10", source="beppu-es-yamanami") != set()
    assert {e.rule for e in own.entries} == {"OWN"}
    assert own.withheld is None  # a school learns nothing of what it may not read
    # another school of the same town sees nothing of that child
    assert read(demo_hub, "child-10", "beppu-es-hamakaze", "teacher").entries == []


def test_a_listed_case_member_school_gets_its_list_and_what_the_case_shared_and_nothing_more(demo_hub):
    timeline = read(demo_hub, "child-01", "beppu-es-hamakaze", "teacher")
    entries = by_id(timeline)
    others = {i: e for i, e in entries.items() if e.source != "beppu-es-hamakaze"}
    assert {(e.kind, e.rule) for e in others.values()} == {("target_list.assigned", "DIRECT"), ("case.shared", "CASE")}
    assert set(entries) - set(others) == ids_of("child-01", source="beppu-es-hamakaze")
    # not the centre's home visits, not the 児相's ledger entries
    assert not {"visit.report", "ledger.updated", "case.reviewed"} & {e.kind for e in timeline.entries}


def test_a_closed_case_is_no_longer_shared_with_its_members(demo_hub):
    timeline = read(demo_hub, "child-08", "beppu-es-hamakaze", "teacher")
    assert ids_of("child-08", kind="case.shared") and not ids_of("child-08", kind="case.shared") & set(by_id(timeline))
    assert set(by_id(timeline)) == ids_of("child-08", source="beppu-es-hamakaze")


def test_the_centre_sees_the_schools_concern_and_the_ledger(demo_hub):
    timeline = read(demo_hub, "child-01", "beppu-center", "caseworker")
    entries = by_id(timeline)
    [concern] = ids_of("child-01", kind="concern.reported")
    assert entries[concern].source == "beppu-es-hamakaze" and entries[concern].rule == "DIRECT"
    assert "給食" in entries[concern].payload["summary"]
    assert {entries[i].rule for i in ids_of("child-01", kind="ledger.updated")} == {"LEDGER"}
    # everything about the child reaches the centre but the school's own enrolment record, which it learns exists
    enrolment = ids_of("child-01", kind="enrollment.started")
    assert set(entries) == ids_of("child-01") - enrolment and timeline.withheld == len(enrolment) == 1


def test_the_nursery_sees_the_consented_plan_version_not_the_later_one(demo_hub):
    timeline = read(demo_hub, "child-02", "sakura-kodomoen", "nursery_staff")
    plans = [e for e in timeline.entries if e.kind.startswith("plan.")]
    assert [(e.kind, e.payload["version"], e.rule) for e in plans] == [("plan.created", 1, "CONSENT")]
    assert plans[0].redacted == ["disclosures"] and plans[0].payload["disclosures"] == REDACTED
    assert ids_of("child-02", kind="plan.revised")  # the later version exists, and stays with the centre
    centre = read(demo_hub, "child-02", "beppu-center", "health_nurse")
    assert [e.payload["version"] for e in centre.entries if e.kind.startswith("plan.")] == [1, 2]


def test_a_refused_or_withdrawn_consent_shares_no_plan(demo_hub):
    refused = read(demo_hub, "child-06", "beppu-hoikusho-kitahama", "nursery_staff")
    withdrawn = read(demo_hub, "child-07", "himawari-hoikuen", "nursery_staff")
    assert refused.entries and withdrawn.entries  # they do see their own records
    assert not [e for e in refused.entries + withdrawn.entries if e.kind.startswith("plan.")]


def test_the_jiso_reads_the_ledger_case_from_its_registration(demo_hub):
    entries = by_id(read(demo_hub, "child-01", "chuo-jiso", "caseworker"))
    assert ids_of("child-01", kind="attendance.monthly") <= set(entries)
    assert ids_of("child-01", kind="case.registered") <= set(entries)
    # the school's concern came before the case was put on the ledger; home visits are the centre's own
    assert not (ids_of("child-01", kind="concern.reported") | ids_of("child-01", kind="visit.report")) & set(entries)
    # 大分市's cases are not the 別府市 children's: the 児相 sees nothing of a child with no ledger case
    assert read(demo_hub, "child-10", "chuo-jiso", "caseworker").entries == []


def test_the_jiso_emergency_window(demo_hub, clock):
    inside = read(demo_hub, "child-03", "chuo-jiso", "caseworker", "emergency")
    assert set(by_id(inside)) == ids_of("child-03")
    assert by_id(inside)[min(ids_of("child-03", kind="notification.filed"))].rule == "EMERGENCY"
    clock.at = datetime.fromisoformat("2026-11-23T22:40:00+09:00")  # 24 hours after the declaration
    assert read(demo_hub, "child-03", "chuo-jiso", "caseworker", "emergency").allowed is False


def test_the_new_municipality_receives_the_transferred_case(demo_hub):
    oita = by_id(read(demo_hub, "child-05", "oita-center", "caseworker"))
    [note] = ids_of("child-05", kind="note.recorded", source="beppu-center")
    assert oita[note].rule == "TRANSFER" and oita[note].redacted == ["dv_history"]
    assert oita[note].payload["dv_history"] == REDACTED and "転居" in oita[note].payload["text"]
    # what the new school told 大分市 after the move does not go back to 別府市
    beppu = by_id(read(demo_hub, "child-05", "beppu-center", "caseworker"))
    assert ids_of("child-05", source="oita-es-wakaba", kind="concern.reported") & set(oita)
    assert not ids_of("child-05", source="oita-es-wakaba") & set(beppu)


def test_the_auditor_is_refused_and_every_read_replays(demo_hub):
    refused = read(demo_hub, "child-01", "beppu-audit", "auditor")
    assert refused.allowed is False and refused.entries == []
    read(demo_hub, "child-02", "sakura-kodomoen", "nursery_staff")
    read(demo_hub, "child-01", "chuo-jiso", "caseworker")
    report = demo_hub.verify()
    assert report.ok, report.to_dict()
    assert report.records == 3


# --- The command -------------------------------------------------------------------------------------------


def test_the_demo_command_loads_once_and_prints_how_to_try_it(tmp_path, monkeypatch):
    monkeypatch.setattr(cli_demo, "now_jst", lambda: TODAY)
    database = f"sqlite:///{tmp_path / 'demo.db'}"
    first = CliRunner().invoke(app, ["demo", "--database", database])
    assert first.exit_code == 0, first.output
    assert f"{ALL} new events" in first.output
    assert "tsunagu timeline child-01 --org beppu-center --role caseworker --purpose support" in first.output
    assert "--org beppu-audit --role auditor" in first.output and "token issue" in first.output
    assert "serve" in first.output and "settings show" in first.output
    assert "TSUNAGU_JOINT_LEDGER" not in first.output  # the setting is in the store: nothing to export
    second = CliRunner().invoke(app, ["demo", "--database", database])
    assert second.exit_code == 0, second.output
    assert f"0 new events, {ALL} already there" in second.output
    hub = Hub(database, clock=SettableClock(TODAY))  # no settings given, none in the environment
    try:
        assert hub.settings.joint_ledger is True  # the demo recorded it in its store
        assert read(hub, "child-01", "chuo-jiso", "caseworker").entries  # the ledger case is there
        assert hub.verify().ok
    finally:
        hub.close()


def test_the_demo_command_reports_rejections_and_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(cli_demo, "now_jst", lambda: datetime.fromisoformat("2026-06-01T12:00:00+09:00"))
    result = CliRunner().invoke(app, ["demo", "--database", f"sqlite:///{tmp_path / 'early.db'}"])
    assert result.exit_code == 1
    assert "is in the future" in result.output and "未来の日時です" in result.output  # both languages
    assert "new events" not in result.output  # no success summary, no instructions


@pytest.mark.postgres
def test_the_demo_loads_on_postgresql_too(postgres_url, clock):
    clock.at = TODAY
    hub = Hub(postgres_url, settings=Settings(joint_ledger=True), clock=clock)
    try:
        first, again = load_demo(hub), load_demo(hub)
        assert first.rejected == [] and first.accepted == ALL
        assert again.accepted == 0 and again.duplicate == ALL
        nursery = read(hub, "child-02", "sakura-kodomoen", "nursery_staff")
        assert [(e.kind, e.rule) for e in nursery.entries if e.kind.startswith("plan.")] == [
            ("plan.created", "CONSENT")
        ]
        assert hub.verify().ok
    finally:
        hub.close()


# --- Settings from the environment ---------------------------------------------------------------------------


def test_settings_come_from_the_environment(monkeypatch):
    assert settings_from_env({}) == Settings()
    assert settings_from_env(
        {
            "TSUNAGU_JOINT_LEDGER": "1",
            "TSUNAGU_INTEGRATED_CENTER": "off",
            "TSUNAGU_EMERGENCY_HOURS": "12",
            "TSUNAGU_MONTHLY_REPORT_DUE_DAY": "",
        }
    ) == Settings(joint_ledger=True, integrated_center=False, emergency_hours=12)
    with pytest.raises(ValueError, match="TSUNAGU_JOINT_LEDGER"):
        settings_from_env({"TSUNAGU_JOINT_LEDGER": "maybe"})
    with pytest.raises(ValueError, match="TSUNAGU_EMERGENCY_HOURS"):
        settings_from_env({"TSUNAGU_EMERGENCY_HOURS": "a day"})
    for name, value in [
        ("TSUNAGU_EMERGENCY_HOURS", str(10**30)),
        ("TSUNAGU_EMERGENCY_HOURS", "0"),
        ("TSUNAGU_MONTHLY_REPORT_DUE_DAY", "32"),
    ]:
        with pytest.raises(ValueError, match=name):  # a window no date can end, or a day no month has
            settings_from_env({name: value})
    monkeypatch.setenv("TSUNAGU_JOINT_LEDGER", "true")
    hub = Hub("sqlite:///:memory:")
    try:
        assert hub.settings.joint_ledger is True
    finally:
        hub.close()
    explicit = Hub("sqlite:///:memory:", settings=Settings())  # explicit settings win over the environment
    try:
        assert explicit.settings.joint_ledger is False
    finally:
        explicit.close()
