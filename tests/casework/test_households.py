"""Households (世帯, meetings-and-services.md §3) through their real paths: the authority row of household.joined /
household.left, the index of each centre's households over time (kept in the publish transaction, rebuilt from the
log, emptied by an erasure), the household view with one recorded read per sibling shown, and the API and CLI."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from consent.model import Settings
from events.problems import Rejected
from services.audit.replay import access_records
from services.casework.commands import Actor, CaseWork
from services.casework.households import Households
from services.cli.root import app as cli_app
from services.http.app import create_app
from services.hub import Hub
from services.projections.households import (
    ChildHouseholds,
    Household,
    household,
    households_from_log,
    households_of,
)

pytestmark = [pytest.mark.store]

ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020", "name": "別府市こども家庭センター"},
    {"id": "oita-center", "type": "municipal_center", "municipality": "442011", "name": "大分市こども家庭センター"},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": "442020"},
    {"id": "beppu-es-2", "type": "school", "regime": "public", "municipality": "442020"},
    {"id": "chuo-jiso", "type": "child_guidance_center", "prefecture": "44", "covers": ["442011", "442020"]},
]
BEPPU = Actor("beppu-center", "caseworker", "sato")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text if "T" in text else f"{text}T09:00:00+09:00")


def publish(hub: Hub, **envelope) -> str:
    envelope.setdefault("basis", "internal")
    [result] = hub.publish([envelope])
    return result.outcome


def register(hub: Hub, child: str, residence: str = "442020", source: str = "beppu-center") -> None:
    assert (
        publish(
            hub,
            id=f"reg-{child}",
            kind="child.registered",
            child=child,
            source=source,
            at="2026-04-01T09:00:00+09:00",
            payload={"residence": residence, "name_kana": f"ナカムラ {child}"},
        )
        == "accepted"
    )


@pytest.fixture
def family(make_hub, clock):
    """Three children of 別府市 (c1 at school 1, c2 at school 2, c3 with no school) and one of 大分市 (o1); c2 has
    an open abuse case on the joint ledger with a school's absence alert, c1 a concern from its school."""
    hub = make_hub(settings=Settings(joint_ledger=True))
    hub.load_orgs(ORGS)
    clock.at = at("2026-04-01")
    for c in ("c1", "c2", "c3"):
        register(hub, c)
    register(hub, "o1", residence="442011", source="oita-center")
    clock.at = at("2026-05-01")
    CaseWork(hub).register(BEPPU, child="c2", category="youhogo", case_type="abuse_neglect", case="K2")
    clock.at = at("2026-05-20")
    assert (
        publish(
            hub,
            id="alert-c2",
            kind="absence.alert",
            child="c2",
            source="beppu-es-2",
            basis="cwa-21-10-5",
            at="2026-05-10T09:00:00+09:00",
            payload={"reason": "consecutive_absence", "days": 5},
        )
        == "accepted"
    )
    assert (
        publish(
            hub,
            id="concern-c1",
            kind="concern.reported",
            child="c1",
            source="beppu-es-1",
            basis="cwa-21-10-5",
            at="2026-05-11T09:00:00+09:00",
            payload={"summary": "朝食をとっていない様子"},
        )
        == "accepted"
    )
    clock.at = at("2026-05-20")
    return hub


def joined(child: str, household_id: str, *, at_: str, source: str = "beppu-center", **more) -> dict:
    return {
        "id": f"join-{child}-{household_id}-{at_}",
        "kind": "household.joined",
        "child": child,
        "source": source,
        "basis": more.pop("basis", "internal"),
        "at": at_,
        "payload": {"household": household_id, **more},
    }


# --- Authority (policy.md / meetings-and-services.md §3) ------------------------------------------------------


def test_only_the_centre_of_residence_links_a_child_to_a_household_and_only_internally(family):
    hub = family
    ok = joined("c1", "H1", at_="2026-05-20T09:00:00+09:00", relation="sibling")
    assert [r.outcome for r in hub.publish([ok])] == ["accepted"]
    refused = {
        "another centre": joined("c1", "H1", at_="2026-05-20T08:00:00+09:00", source="oita-center"),
        "a school": joined("c1", "H1", at_="2026-05-20T08:01:00+09:00", source="beppu-es-1"),
        "a 児相": joined("c1", "H1", at_="2026-05-20T08:02:00+09:00", source="chuo-jiso"),
        "before the child lived here": joined("c1", "H1", at_="2026-03-01T10:00:00+09:00"),
        "a child nobody registered": joined("ghost", "H1", at_="2026-05-20T08:03:00+09:00"),
        "not internal": joined("c1", "H1", at_="2026-05-20T08:04:00+09:00", basis="cwa-25-3"),
        "no household": {**joined("c1", "H1", at_="2026-05-20T08:05:00+09:00"), "payload": {"relation": "sibling"}},
    }
    results = hub.publish(list(refused.values()))
    assert [r.outcome for r in results] == ["rejected"] * len(refused), results
    # a made-up child and another centre's child get the same answer (rejections leak nothing)
    by_name = dict(zip(refused, results, strict=True))
    assert (
        by_name["another centre"].problems[0].message_ja == by_name["a child nobody registered"].problems[0].message_ja
    )
    assert by_name["not internal"].problems[0].field == "basis"


# --- The index ----------------------------------------------------------------------------------------------


def test_the_index_keeps_members_over_time_by_at_and_each_centre_its_own_households(family, clock):
    hub = family
    events = [
        joined("c1", "H1", at_="2026-05-01T09:00:00+09:00", relation="sibling"),
        joined("c2", "H1", at_="2026-05-02T09:00:00+09:00", relation="sibling"),
        {**joined("c1", "H1", at_="2026-05-10T09:00:00+09:00"), "kind": "household.left", "id": "left-c1"},
        # arrives later but happened before the leave: the leave still holds
        {**joined("c1", "H1", at_="2026-05-05T09:00:00+09:00"), "id": "late-join-c1"},
        joined("o1", "H1", at_="2026-05-03T09:00:00+09:00", source="oita-center"),  # 大分市's own H1
    ]
    assert [r.outcome for r in hub.publish(events)] == ["accepted"] * 5
    h1 = household(hub.store, "beppu-center", "H1")
    assert [m.child for m in h1.members(at("2026-05-03"))] == ["c1", "c2"]
    assert [m.child for m in h1.members(at("2026-05-20"))] == ["c2"]
    assert [m.child for m in household(hub.store, "oita-center", "H1").members(at("2026-05-20"))] == ["o1"]
    assert households_of(hub.store, "c1", at("2026-05-20")) == []
    assert [h.household for h in households_of(hub.store, "c2", at("2026-05-20"), centre="beppu-center")] == ["H1"]
    # rebuilt from the log, the index says the same
    rebuilt = {a.id: a for a in households_from_log(hub.store.recorder, hub.store.mapper)}
    again = rebuilt[Household.create_id("beppu-center", "H1")]
    assert sorted(again.changes, key=str) == sorted(h1.changes, key=str)
    assert [m.child for m in again.members(at("2026-05-03"))] == ["c1", "c2"]
    assert rebuilt[ChildHouseholds.create_id("c2")].households == (("beppu-center", "H1"),)


def test_an_erased_child_leaves_every_household(family, clock):
    hub = family
    hub.publish([joined(c, "H1", at_="2026-05-20T09:00:00+09:00") for c in ("c1", "c2")])
    assert [m.child for m in household(hub.store, "beppu-center", "H1").members(at("2026-05-21"))] == ["c1", "c2"]
    clock.at = at("2026-06-01")
    erased = {
        "id": "erase-c1",
        "kind": "child.erased",
        "child": "c1",
        "source": "beppu-center",
        "basis": "internal",
        "at": "2026-06-01T09:00:00+09:00",
        "payload": {"reason": "開示請求に基づく消去"},
    }
    assert [r.outcome for r in hub.publish([erased])] == ["accepted"]
    assert [m.child for m in household(hub.store, "beppu-center", "H1").members(at("2026-06-02"))] == ["c2"]
    rebuilt = {a.id: a for a in households_from_log(hub.store.recorder, hub.store.mapper)}
    assert [c["child"] for c in rebuilt[Household.create_id("beppu-center", "H1")].changes] == ["c2"]


# --- The commands and the view ---------------------------------------------------------------------------------


def reads_of(hub: Hub, org: str) -> list[dict]:
    return [r for r in access_records(hub.store) if r["reader"]["org"] == org]


def test_a_centre_sees_each_sibling_through_its_own_recorded_read(family):
    hub = family
    homes = Households(hub)
    homes.join(BEPPU, "c1", "H1", "sibling")
    homes.join(BEPPU, "c2", "H1", "sibling")
    homes.join(BEPPU, "c3", "H1", "newborn")
    before = len(reads_of(hub, "beppu-center"))
    view = homes.view(BEPPU, "c1")
    records = reads_of(hub, "beppu-center")[before:]
    assert [r["child"] for r in records] == ["c1", "c2", "c3"]  # the child, then one read per sibling shown
    assert all(r["reader"]["user"] == "sato" for r in records)
    [h] = view.households
    assert (h.household, h.relation) == ("H1", "sibling")
    c2, c3 = h.siblings
    assert [r.case for r in c2.cases] == ["K2"] and [a["reason"] for a in c2.alerts] == ["consecutive_absence"]
    assert c3.relation == "newborn" and c3.cases == [] and c3.alerts == []
    assert view.access_records == [r["id"] for r in records]


def test_a_school_and_another_centre_gain_nothing_from_a_household(family):
    hub = family
    homes = Households(hub)
    homes.join(BEPPU, "c1", "H1", "sibling")
    homes.join(BEPPU, "c2", "H1", "sibling")
    before = len(list(access_records(hub.store)))
    for org in ("beppu-es-1", "oita-center"):
        view = homes.view(Actor(org, "teacher" if org.startswith("beppu-es") else "caseworker"), "c1")
        assert view.households == []
    made = list(access_records(hub.store))[before:]
    assert {r["child"] for r in made} <= {"c1"}  # never a read of the sibling
    assert not [r for r in made if r["reader"]["org"] == "beppu-es-1"]  # the school: no read at all


def test_a_jiso_sees_no_household_even_of_a_child_on_the_joint_ledger(family):
    """The link is the centre's internal record, which no read rule gives a 児相 (see the module's docstring)."""
    hub = family
    homes = Households(hub)
    homes.join(BEPPU, "c1", "H1", "sibling")
    homes.join(BEPPU, "c2", "H1", "sibling")
    jiso = Actor("chuo-jiso", "caseworker", "kato")
    before = len(reads_of(hub, "chuo-jiso"))
    assert homes.view(jiso, "c1").households == [] and homes.view(jiso, "c2").households == []
    assert len(reads_of(hub, "chuo-jiso")) == before  # and no read is made for it


def test_the_commands_name_the_field_in_japanese(family):
    homes = Households(family)
    with pytest.raises(Rejected) as refused:
        homes.join(BEPPU, "", " ")
    assert {p.field for p in refused.value.problems} == {"child", "household"}
    with pytest.raises(Rejected) as refused:
        homes.join(BEPPU, "o1", "H1")  # a 大分市 child: the same answer as an unknown one
    unknown = pytest.raises(Rejected)
    with unknown as unknown_refused:
        homes.join(BEPPU, "nobody", "H1")
    assert refused.value.problems[0].message_ja == unknown_refused.value.problems[0].message_ja
    assert refused.value.problems[0].field == "child"
    homes.join(BEPPU, "c1", "H1")
    with pytest.raises(Rejected) as refused:
        homes.join(BEPPU, "c1", "H1")
    assert refused.value.problems[0].code == "already_member"
    with pytest.raises(Rejected) as refused:
        homes.leave(BEPPU, "c2", "H1")
    assert refused.value.problems[0].code == "not_a_member"
    with pytest.raises(Rejected) as refused:
        homes.join(Actor("beppu-es-1", "teacher"), "c1", "H2")
    assert refused.value.problems[0].code == "not_a_center"
    homes.leave(BEPPU, "c1", "H1")
    assert household(family.store, "beppu-center", "H1").members(family.clock()) == []


# --- HTTP and the command line -----------------------------------------------------------------------------------


@pytest.mark.http
def test_households_over_http(family, keys):
    hub = family
    issuer, verifier = keys

    def auth(org: str, role: str = "caseworker") -> dict[str, str]:
        return {"Authorization": f"Bearer {issuer.issue(org=org, role=role, user='tester')}"}

    with TestClient(create_app(hub, verifier)) as client:
        for c in ("c1", "c2"):
            response = client.post(
                "/v1/households/H1/members", json={"child": c, "relation": "sibling"}, headers=auth("beppu-center")
            )
            assert response.status_code == 201, response.text
            assert response.json()["kind"] == "household.joined"
        again = client.post("/v1/households/H1/members", json={"child": "c1"}, headers=auth("beppu-center"))
        assert again.status_code == 409 and again.json()["error"]["code"] == "already_member"
        other = client.post("/v1/households/H1/members", json={"child": "c1"}, headers=auth("oita-center"))
        ghost = client.post("/v1/households/H1/members", json={"child": "ghost"}, headers=auth("oita-center"))
        assert other.status_code == ghost.status_code == 403
        assert other.json()["error"]["message_ja"] == ghost.json()["error"]["message_ja"]
        view = client.get("/v1/children/c1/household", headers=auth("beppu-center"))
        assert view.status_code == 200, view.text
        [h] = view.json()["households"]
        [sibling] = h["members"]
        assert sibling["child"] == "c2" and [c["case"] for c in sibling["open_cases"]] == ["K2"]
        assert len(view.json()["access_records"]) == 2
        school = client.get("/v1/children/c1/household", headers=auth("beppu-es-1", "teacher"))
        assert school.status_code == 200 and school.json() == {"child": "c1", "households": [], "access_records": []}
        left = client.delete("/v1/households/H1/members/c2", headers=auth("beppu-center"))
        assert left.status_code == 200 and left.json()["kind"] == "household.left"
        assert (
            client.get("/v1/children/c1/household", headers=auth("beppu-center")).json()["households"][0]["members"]
            == []
        )
        assert "/v1/households/{household}/members" in client.get("/openapi.json").json()["paths"]


def test_households_on_the_command_line(tmp_path):
    runner = CliRunner()
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    orgs_file = tmp_path / "orgs.json"
    orgs_file.write_text(json.dumps(ORGS), encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"r-{c}",
                    "kind": "child.registered",
                    "child": c,
                    "source": "beppu-center",
                    "basis": "internal",
                    "at": "2025-04-01T09:00:00+09:00",
                    "payload": {"residence": "442020"},
                }
            )
            + "\n"
            for c in ("c1", "c2")
        ),
        encoding="utf-8",
    )

    def cli(*args: str):
        return runner.invoke(cli_app, [*args, "--database", database])

    assert cli("orgs", "load", str(orgs_file)).exit_code == 0
    assert cli("publish", str(events)).exit_code == 0
    for c in ("c1", "c2"):
        result = cli("household", "join", c, "H1", "--center", "beppu-center", "--relation", "sibling", "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["kind"] == "household.joined"
    refused = cli("household", "join", "c1", "H1", "--center", "beppu-center")
    assert refused.exit_code == 1 and "すでに" in refused.output
    shown = cli("household", "show", "c1", "--org", "beppu-center", "--json")
    assert shown.exit_code == 0, shown.output
    assert [m["child"] for m in json.loads(shown.output)["households"][0]["members"]] == ["c2"]
    table = cli("household", "show", "c1", "--org", "beppu-center")
    assert "世帯 H1" in table.output and "c2" in table.output
    assert cli("household", "leave", "c2", "H1", "--center", "beppu-center").exit_code == 0
    school = cli("household", "show", "c1", "--org", "beppu-es-1", "--role", "teacher", "--json")
    assert json.loads(school.output)["households"] == []
