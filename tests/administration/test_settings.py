"""The deployment's policy settings kept in the store (services/administration/settings.py): they survive reopening with their
history; the TSUNAGU_* variables only seed a new store; a change made by one process is in force in the others
without a restart (Hub objects on one SQLite file and on PostgreSQL, and a running
``tsunagu serve`` after ``tsunagu settings set`` in another process); the command and the HTTP endpoints, with
their checks; and the same 児相 read of a demo child from two shells with different environments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from consent.model import InvalidSetting, Settings
from services.administration.settings import SETTINGS_ID, settings_from_env, settings_report
from services.audit.replay import access_records
from services.auth.tokens import keys_from_file
from services.cli.root import app
from services.demo import load_demo
from services.http.app import create_app
from services.hub import Hub, SettableClock
from tests.helpers import free_port, wait_until

pytestmark = [pytest.mark.store, pytest.mark.http]

TSUNAGU = Path(sys.executable).with_name("tsunagu")
DEMO_DAY = datetime.fromisoformat("2026-11-23T12:00:00+09:00")  # the demo's last event is that morning
ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020"},
    {"id": "oita-audit", "type": "auditor", "prefecture": "44"},
]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``tsunagu ARGS`` in its own process, with this process's environment and ``env`` on top."""
    return subprocess.run(
        [str(TSUNAGU), *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


# --- Kept in the store, with the history ---------------------------------------------------------------------


def test_settings_survive_reopening_with_who_and_when(tmp_path, clock, monkeypatch):
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    monkeypatch.setenv("TSUNAGU_EMERGENCY_HOURS", "12")
    hub = Hub(database, clock=clock)
    seeded_at = clock()
    clock.at = datetime.fromisoformat("2026-04-02T10:30:00+09:00")
    made = hub.settings_source.change({"joint_ledger": True, "emergency_hours": 12}, by="佐藤", at=clock())
    assert [(c["name"], c["old"], c["new"]) for c in made] == [("joint_ledger", False, True)]  # 12 already was
    hub.close()

    monkeypatch.setenv("TSUNAGU_EMERGENCY_HOURS", "48")  # another shell: the store's settings stay
    monkeypatch.setenv("TSUNAGU_JOINT_LEDGER", "0")
    reopened = Hub(database)
    try:
        assert reopened.settings == Settings(joint_ledger=True, emergency_hours=12)
        report = settings_report(reopened.store)
    finally:
        reopened.close()
    assert report["settings"] == Settings(joint_ledger=True, emergency_hours=12).to_dict()
    assert report["set_by"]["joint_ledger"] == {"by": "佐藤", "org": None, "at": "2026-04-02T10:30:00+09:00"}
    assert report["set_by"]["emergency_hours"] == {"by": "system", "org": None, "at": seeded_at.isoformat()}
    assert [(c["name"], c["old"], c["new"], c["by"]) for c in report["history"]] == [
        ("integrated_center", None, True, "system"),
        ("joint_ledger", None, False, "system"),
        ("emergency_hours", None, 12, "system"),
        ("monthly_report_due_day", None, 10, "system"),
        ("joint_ledger", False, True, "佐藤"),
    ]


def test_settings_stated_by_a_program_are_recorded_as_a_change_by_system(tmp_path, clock):
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    Hub(database, settings=Settings(monthly_report_due_day=5), clock=clock).close()
    hub = Hub(database, settings=Settings(monthly_report_due_day=20), clock=clock)
    try:
        assert hub.settings.monthly_report_due_day == 20
        assert settings_report(hub.store)["history"][-1] == {
            "name": "monthly_report_due_day",
            "old": 5,
            "new": 20,
            "by": "system",
            "org": None,
            "at": clock().isoformat(),
        }
    finally:
        hub.close()
    same = Hub(database, settings=Settings(monthly_report_due_day=20), clock=clock)  # the same again: no change
    try:
        assert len(settings_report(same.store)["history"]) == 5
    finally:
        same.close()


def test_values_are_checked_with_a_japanese_message_naming_the_setting(hub, clock):
    for changes, name in [
        ({"emergency_hours": 0}, "emergency_hours"),
        ({"emergency_hours": 169}, "emergency_hours"),
        ({"emergency_hours": True}, "emergency_hours"),
        ({"emergency_hours": "24"}, "emergency_hours"),
        ({"monthly_report_due_day": 29}, "monthly_report_due_day"),
        ({"joint_ledger": 1}, "joint_ledger"),
        ({"colour": "blue"}, "colour"),
    ]:
        with pytest.raises(InvalidSetting) as raised:
            hub.settings_source.change(changes, by="佐藤", at=clock())
        assert raised.value.name == name and name in raised.value.message_ja
    assert hub.settings_source.change({"emergency_hours": 168, "monthly_report_due_day": 28}, by="佐藤", at=clock())
    with pytest.raises(InvalidSetting) as nobody:
        hub.settings_source.change({"emergency_hours": 1}, by=" ", at=clock())
    assert nobody.value.name == "by"
    assert hub.settings == Settings(emergency_hours=168, monthly_report_due_day=28)
    with pytest.raises(ValueError, match="TSUNAGU_MONTHLY_REPORT_DUE_DAY"):
        settings_from_env({"TSUNAGU_MONTHLY_REPORT_DUE_DAY": "31"})


def test_the_environment_only_seeds_a_new_store_and_reads_record_the_stores_settings(tmp_path):
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    first = cli("settings", "show", "--json", "--database", database, env={"TSUNAGU_EMERGENCY_HOURS": "6"})
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["settings"]["emergency_hours"] == 6  # a new store: seeded from the environment
    second = cli(
        "settings",
        "show",
        "--json",
        "--database",
        database,
        env={"TSUNAGU_EMERGENCY_HOURS": "72", "TSUNAGU_JOINT_LEDGER": "1"},
    )
    assert json.loads(second.stdout)["settings"] == Settings(emergency_hours=6).to_dict()
    shown = CliRunner(env={"TSUNAGU_EMERGENCY_HOURS": "72"}).invoke(app, ["settings", "show", "--database", database])
    assert "TSUNAGU_EMERGENCY_HOURS" in shown.stdout and "使われていません" in shown.stdout  # said, not silent
    hub = Hub(database)
    hub.load_orgs(ORGS)
    hub.close()
    read = cli(
        "timeline",
        "c1",
        "--org",
        "beppu-center",
        "--role",
        "caseworker",
        "--purpose",
        "support",
        "--database",
        database,
        env={"TSUNAGU_EMERGENCY_HOURS": "72", "TSUNAGU_JOINT_LEDGER": "1"},
    )
    assert read.returncode == 0, read.stderr
    hub = Hub(database)
    try:
        [record] = list(access_records(hub.store))
        assert record["settings"] == Settings(emergency_hours=6).to_dict()
    finally:
        hub.close()


# --- A change reaches every process, without a restart -----------------------------------------------------------


def _a_change_is_seen_by_another_hub(database: str, clock) -> None:
    here, there = Hub(database, clock=clock), Hub(database, clock=clock)  # two store objects: two processes
    try:
        assert here.store is not there.store
        assert here.settings.joint_ledger is False and here.reader.settings.joint_ledger is False
        there.settings_source.change({"joint_ledger": True, "emergency_hours": 48}, by="佐藤", at=clock())
        assert there.settings.joint_ledger is True  # at once where it was made
        # Seen without a restart, once this process's copy is older than SettingsSource.MAX_AGE (how long that
        # takes is measured by bench.timings, not asserted here).
        wait_until(lambda: here.settings.joint_ledger, "the change made by another process")
        assert here.reader.settings == here.ingest.settings == Settings(joint_ledger=True, emergency_hours=48)
        here.load_orgs(ORGS)
        here.timeline(org="beppu-center", role="caseworker", child="c1", purpose="support")
        [record] = list(access_records(here.store))
        assert record["settings"] == Settings(joint_ledger=True, emergency_hours=48).to_dict()
    finally:
        here.close()
        there.close()


def test_a_change_by_one_hub_is_seen_by_another_on_the_same_sqlite_file(tmp_path, clock):
    _a_change_is_seen_by_another_hub(f"sqlite:///{tmp_path / 'hub.db'}", clock)


@pytest.mark.postgres
def test_a_change_by_one_hub_is_seen_by_another_on_postgresql(postgres_url, clock):
    _a_change_is_seen_by_another_hub(postgres_url, clock)


def test_a_refresh_reads_nothing_when_nothing_changed(hub, monkeypatch):
    """The cost per request: a cached value; a refresh asks the store once, for the events since the last one."""
    source = hub.settings_source
    source.refresh()
    queries: list[object] = []
    select = hub.store.recorder.select_events
    monkeypatch.setattr(hub.store.recorder, "select_events", lambda *a, **k: queries.append(k) or select(*a, **k))
    for _ in range(1000):
        source.current()
    assert queries == []
    source.refresh()
    assert len(queries) == 1 and queries[0]["gt"] == 5  # the seed: created, then one event per setting


def test_tsunagu_settings_set_reaches_a_running_server(tmp_path):
    database, key_file = f"sqlite:///{tmp_path / 'hub.db'}", tmp_path / "key.pem"
    hub = Hub(database, settings=Settings(joint_ledger=True), clock=SettableClock(DEMO_DAY))
    assert load_demo(hub).ok
    hub.close()
    issuer, _ = keys_from_file(key_file)
    token = issuer.issue(org="chuo-jiso", role="caseworker", user="児相の職員")
    port = free_port()
    server = subprocess.Popen(
        [
            str(TSUNAGU),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--database",
            database,
            "--key-file",
            str(key_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
    )
    base = f"http://127.0.0.1:{port}"

    def rules() -> set[str]:
        response = httpx.get(
            f"{base}/v1/children/child-01/timeline",
            params={"purpose": "support"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return {e["rule"] for e in response.json()["entries"]}

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        assert "LEDGER" in rules()
        changed = cli("settings", "set", "joint_ledger", "false", "--by", "佐藤", "--database", database)
        assert changed.returncode == 0, changed.stderr
        assert "joint_ledger を true から false に変更しました" in changed.stdout
        wait_until(lambda: "LEDGER" not in rules(), "the change made by the command")  # the server was not restarted
    finally:
        server.terminate()
        server.wait(timeout=15)


# --- The command ---------------------------------------------------------------------------------------------------


def test_the_settings_command_shows_and_sets(tmp_path):
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    runner = CliRunner()
    changed = runner.invoke(app, ["settings", "set", "emergency_hours", "48", "--by", "佐藤", "--database", database])
    assert changed.exit_code == 0, changed.output
    assert "emergency_hours を 24 から 48 に変更しました（変更者: 佐藤）" in changed.output.replace("\n", "")
    again = runner.invoke(app, ["settings", "set", "emergency_hours", "48", "--by", "佐藤", "--database", database])
    assert again.exit_code == 0 and "変更はありません" in again.output
    on = runner.invoke(app, ["settings", "set", "joint_ledger", "on", "--by", "beppu-center", "--database", database])
    assert on.exit_code == 0, on.output
    for args, says in [
        (["emergency_hours", "0"], "1 から 168 までの整数"),
        (["emergency_hours", "a day"], "1 から 168 までの整数"),
        (["monthly_report_due_day", "31"], "1 から 28 までの整数"),
        (["joint_ledger", "maybe"], "true か false"),
        (["colour", "1"], "「colour」という設定はありません"),
    ]:
        refused = runner.invoke(app, ["settings", "set", *args, "--database", database])
        assert refused.exit_code == 2 and says in refused.output.replace("\n", ""), (args, refused.output)
    shown = runner.invoke(app, ["settings", "show", "--json", "--database", database])
    report = json.loads(shown.stdout)
    assert report["settings"] == Settings(emergency_hours=48, joint_ledger=True).to_dict()
    assert (
        report["set_by"]["emergency_hours"]["by"] == "佐藤" and report["set_by"]["joint_ledger"]["by"] == "beppu-center"
    )
    assert [(c["name"], c["old"], c["new"]) for c in report["history"][4:]] == [
        ("emergency_hours", 24, 48),
        ("joint_ledger", False, True),
    ]
    table = runner.invoke(app, ["settings", "show", "--database", database])
    assert (
        table.exit_code == 0 and "現在の設定" in table.output and "変更履歴" in table.output and "佐藤" in table.output
    )


# --- HTTP --------------------------------------------------------------------------------------------------------


@pytest.fixture
def api(hub, tmp_path):
    hub.load_orgs(ORGS)
    issuer, verifier = keys_from_file(tmp_path / "key.pem")
    with TestClient(create_app(hub, verifier, issuer=issuer)) as client:
        yield hub, client, issuer


def test_the_settings_endpoints_need_the_admin_scope(api):
    hub, client, issuer = api
    caseworker = {"Authorization": f"Bearer {issuer.issue(org='beppu-center', role='caseworker', user='佐藤')}"}
    auditor = {"Authorization": f"Bearer {issuer.issue(org='oita-audit', role='auditor', user='渡辺')}"}
    for headers in (caseworker, auditor):
        assert client.get("/v1/settings", headers=headers).json()["error"]["code"] == "insufficient_scope"
        refused = client.put("/v1/settings/joint_ledger", json={"value": True}, headers=headers)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"
        assert "admin" in refused.json()["error"]["message_ja"]
    assert client.get("/v1/settings").status_code == 401
    assert client.put("/v1/settings/joint_ledger", json={"value": True}).status_code == 401
    assert hub.settings == Settings() and len(settings_report(hub.store)["history"]) == 4  # nothing changed


def test_an_admin_reads_and_changes_the_settings_over_http(api):
    hub, client, issuer = api
    admin = {
        "Authorization": "Bearer "
        + issuer.issue(org="beppu-center", role="caseworker", user="管理者 佐藤", scopes=["admin"])
    }
    shown = client.get("/v1/settings", headers=admin)
    assert shown.status_code == 200, shown.text
    assert shown.json()["settings"] == Settings().to_dict() and shown.json()["set_by"]["joint_ledger"]["by"] == "system"
    changed = client.put("/v1/settings/emergency_hours", json={"value": 72}, headers=admin)
    assert changed.status_code == 200, changed.text
    assert changed.json()["changed"] is True and changed.json()["settings"]["settings"]["emergency_hours"] == 72
    assert changed.json()["settings"]["history"][-1] | {"at": None} == {
        "name": "emergency_hours",
        "old": 24,
        "new": 72,
        "by": "管理者 佐藤",
        "org": "beppu-center",
        "at": None,
    }
    assert hub.settings.emergency_hours == 72  # in force at once in the process that made it
    same = client.put("/v1/settings/emergency_hours", json={"value": 72}, headers=admin)
    assert same.status_code == 200 and same.json()["changed"] is False

    for path, body, field in [
        ("/v1/settings/emergency_hours", {"value": 0}, "value"),
        ("/v1/settings/emergency_hours", {"value": "72"}, "value"),
        ("/v1/settings/emergency_hours", {"value": 1e9}, "value"),
        ("/v1/settings/joint_ledger", {"value": "yes"}, "value"),
        ("/v1/settings/monthly_report_due_day", {"value": 29}, "value"),
        ("/v1/settings/colour", {"value": True}, "name"),
        ("/v1/settings/joint_ledger", {}, "value"),
        ("/v1/settings/joint_ledger", {"value": True, "by": "x"}, "by"),
    ]:
        refused = client.put(path, json=body, headers=admin)
        assert refused.status_code == 422, (path, body, refused.text)
        error = refused.json()["error"]
        assert error["field"] == field and any("\u3040" <= c <= "\u9fff" for c in error["message_ja"]), error
    assert hub.settings == Settings(emergency_hours=72)

    schema = client.get("/openapi.json").json()
    for method, operation in [
        ("get", schema["paths"]["/v1/settings"]["get"]),
        ("put", schema["paths"]["/v1/settings/{name}"]["put"]),
    ]:
        assert operation["security"] == [{"oauth2": ["admin"]}], method
        assert {"401", "403"} <= set(operation["responses"]), method
    assert "422" in schema["paths"]["/v1/settings/{name}"]["put"]["responses"]


# --- The demo from any shell -------------------------------------------------------------------------------------


def test_the_same_jiso_read_of_a_demo_child_from_two_shells_with_different_environments(tmp_path):
    database = f"sqlite:///{tmp_path / 'demo.db'}"
    loaded = cli("demo", "--database", database)  # no TSUNAGU_JOINT_LEDGER in this shell
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    reads = []
    for env in (
        {"TSUNAGU_JOINT_LEDGER": "0", "TSUNAGU_INTEGRATED_CENTER": "0"},
        {"TSUNAGU_JOINT_LEDGER": "1", "TSUNAGU_EMERGENCY_HOURS": "1"},
    ):
        read = cli(
            "timeline",
            "child-01",
            "--org",
            "chuo-jiso",
            "--role",
            "caseworker",
            "--purpose",
            "support",
            "--json",
            "--database",
            database,
            env=env,
        )
        assert read.returncode == 0, read.stderr
        reads.append([(e["id"], e["rule"], e["redacted"]) for e in json.loads(read.stdout)["entries"]])
    assert reads[0] == reads[1] and "LEDGER" in {rule for _, rule, _ in reads[0]}
    hub = Hub(database)
    try:
        records = [r for r in access_records(hub.store) if r["child"] == "child-01"]
        assert [r["settings"] for r in records] == [Settings(joint_ledger=True).to_dict()] * 2
        assert hub.store.peek(SETTINGS_ID).last_change("joint_ledger")["by"] == "tsunagu demo"
    finally:
        hub.close()


def test_a_scenario_with_a_setting_out_of_range_is_refused_naming_it(tmp_path):
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(
        "scenarios:\n  - name: a week and a day\n    settings: {emergency_hours: 192}\n    orgs: []\n    steps: []\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["scenario", "run", str(scenario)])
    assert result.exit_code == 2 and "emergency_hours" in result.output, result.output
