"""Identity linking (紐付け) and the linking queue (紐付け待ち), through Hub.publish, the link service, the read
service and the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from consent.identity import linking_centres, may_link
from events.model import Org
from events.store import Quarantine
from services.cli.root import app
from services.hub import Hub
from services.publishing import linking as identity
from tests.conftest import at

pytestmark = pytest.mark.store

ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020"},
    {"id": "oita-center", "type": "municipal_center", "municipality": "442011"},
    {"id": "fukuoka-center", "type": "municipal_center", "municipality": "401307"},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": "442020"},
    {"id": "tobu-hc", "type": "health_center", "prefecture": "44", "covers": ["442011", "442020"]},
    {"id": "ken-office", "type": "prefecture_office", "prefecture": "44"},
]


def register(hub: Hub, child: str, residence: str = "442020", source: str = "beppu-center") -> None:
    [r] = hub.publish(
        [
            {
                "id": f"reg-{child}",
                "kind": "child.registered",
                "child": child,
                "source": source,
                "basis": "internal",
                "at": "2026-04-01T09:00:00+09:00",
                "payload": {"residence": residence},
            }
        ]
    )
    assert r.outcome == "accepted", r


def concern(eid: str, local: str = "2026-0412", source: str = "beppu-es-1", **extra) -> dict:
    return {
        "id": eid,
        "kind": "concern.reported",
        "local_child": local,
        "source": source,
        "basis": "cwa-21-10-5",
        "at": "2026-04-20T10:00:00+09:00",
        "payload": {"summary": "連絡なしの欠席が続いている"},
        **extra,
    }


def ids(hub: Hub, child: str, org: str = "beppu-center", role: str = "caseworker") -> list[str]:
    timeline = hub.timeline(org=org, role=role, child=child, purpose="support")
    assert timeline.allowed
    return [e.id for e in timeline.entries]


@pytest.fixture
def world(hub, clock) -> Hub:
    hub.load_orgs(ORGS)
    register(hub, "c1")
    register(hub, "c2")
    clock.at = at("2026-05-01T09:00:00+09:00")
    return hub


def test_who_may_link_whose_numbers():
    orgs = {o["id"]: Org.from_dict(o) for o in ORGS}
    school, hc = orgs["beppu-es-1"], orgs["tobu-hc"]
    assert [c.id for c in linking_centres(school, orgs)] == ["beppu-center"]  # the school's municipality only
    assert [c.id for c in linking_centres(hc, orgs)] == ["beppu-center", "oita-center"]  # towns it covers
    assert may_link(orgs["beppu-center"], orgs["beppu-center"])  # the centre's own 宛名番号
    assert not may_link(orgs["fukuoka-center"], hc)
    assert not may_link(orgs["beppu-es-1"], school)  # only a centre links
    assert linking_centres(orgs["ken-office"], orgs) == []
    # Without covers, any centre of the organisation's prefecture.
    uncovered = Org(id="hc2", type="health_center", prefecture="44")
    assert [c.id for c in linking_centres(uncovered, orgs)] == ["beppu-center", "oita-center"]


def test_unlinked_record_waits_in_the_queue_and_is_visible_to_the_linking_centre(world):
    [r] = world.publish([concern("e1")])
    assert r.outcome == "queued"
    assert r.problems[0].code == "waiting_for_link" and "紐付け待ち" in r.problems[0].message_ja
    # Not dropped, not guessed onto a child.
    assert ids(world, "c1") == ["reg-c1"] and ids(world, "c2") == ["reg-c2"]
    [w] = identity.waiting(world.store, "beppu-center")
    assert (w.org, w.local_number, w.kind, w.at, w.reason) == (
        "beppu-es-1",
        "2026-0412",
        "concern.reported",
        "2026-04-20T10:00:00+09:00",
        "waiting_for_link",
    )
    assert w.arrived == "2026-05-01T09:00:00+09:00"
    assert "payload" not in w.to_dict()
    assert identity.waiting(world.store, "oita-center") == []  # may not link the Beppu school's numbers
    # Re-sending the same record while it waits changes nothing.
    assert [r.outcome for r in world.publish([concern("e1")])] == ["queued"]
    assert len(identity.waiting(world.store)) == 1
    # The same id with other content is an id conflict, kept in quarantine.
    [conflict] = world.publish([concern("e1", payload={"summary": "別の内容"})])
    assert conflict.outcome == "rejected" and conflict.problems[0].code == "id_conflict"


def test_linking_publishes_the_waiting_records_onto_the_linked_child_only(world):
    world.publish(
        [concern("e1"), concern("e2", local="2026-0999"), concern("e3", to="oita-center")]
    )  # e3 will break the 21-10-5 addressee rule
    outcome = identity.link(world, center="beppu-center", org="beppu-es-1", local_number="2026-0412", child="c1")
    assert outcome.link.outcome == "accepted"
    assert {env["id"]: r.outcome for env, r in outcome.released} == {"e1": "accepted", "e3": "rejected"}
    [rejected] = [r for env, r in outcome.released if env["id"] == "e3"]
    assert rejected.problems[0].code == "wrong_addressee"
    timeline = world.timeline(org="beppu-center", role="caseworker", child="c1", purpose="support")
    shown = {e.id: e for e in timeline.entries}
    assert set(shown) == {"reg-c1", "e1", outcome.link.id}
    assert shown["e1"].rule == "DIRECT" and shown["e1"].source == "beppu-es-1"
    assert shown[outcome.link.id].kind == "identity.linked"
    assert ids(world, "c2") == ["reg-c2"]  # never onto another child
    assert ids(world, "c1", org="beppu-es-1", role="teacher") == ["e1"]
    # Released records leave the queue (the rejected one to quarantine with its reason); the other number waits.
    assert [(w.id, w.local_number) for w in identity.waiting(world.store, "beppu-center")] == [("e2", "2026-0999")]
    held = world.store.peek(Quarantine.create_id("beppu-es-1")).held
    assert held[-1]["raw"]["id"] == "e3" and held[-1]["problems"][0]["code"] == "wrong_addressee"
    # From now on the number resolves at once; re-sending changes nothing.
    assert [r.outcome for r in world.publish([concern("e4"), concern("e1")])] == ["accepted", "duplicate"]
    assert "e4" in ids(world, "c1")
    assert world.publish([{**concern("e1"), "local_child": None, "child": "c1"}])[0].outcome == "duplicate"


def test_a_number_links_to_one_child(world):
    first = identity.link(world, center="beppu-center", org="beppu-es-1", local_number="2026-0412", child="c1")
    assert first.link.outcome == "accepted"
    second = identity.link(world, center="beppu-center", org="beppu-es-1", local_number="2026-0412", child="c2")
    assert second.refused
    [problem] = second.link.problems
    assert problem.code == "linked_to_another_child"
    assert "すでに別の児童に紐付いています" in problem.message_ja and "c1" not in problem.message_ja
    assert ids(world, "c2") == ["reg-c2"]
    world.publish([concern("e5")])
    assert "e5" in ids(world, "c1") and "e5" not in ids(world, "c2")
    # Linking the same number to the same child again publishes nothing new.
    again = identity.link(world, center="beppu-center", org="beppu-es-1", local_number="2026-0412", child="c1")
    assert again.link is None and not again.refused
    assert [e for e in ids(world, "c1") if e.startswith("identity.")] == [first.link.id]
    # A wrong link is corrected by unlinking first; what was published stays where it was.
    assert (
        identity.unlink(world, center="beppu-center", org="beppu-es-1", local_number="2026-0412").link.outcome
        == "accepted"
    )
    assert (
        identity.link(world, center="beppu-center", org="beppu-es-1", local_number="2026-0412", child="c2").link.outcome
        == "accepted"
    )
    world.publish([concern("e6")])
    assert "e6" in ids(world, "c2") and "e6" not in ids(world, "c1") and "e5" in ids(world, "c1")


def test_a_centre_that_may_not_link_the_organisation_is_refused(world):
    world.publish([concern("e1")])
    refused = identity.link(world, center="oita-center", org="beppu-es-1", local_number="2026-0412", child="c1")
    assert refused.refused and refused.released == []
    [problem] = refused.link.problems
    assert problem.code == "link_not_allowed" and "beppu-center" in problem.message_ja
    assert len(identity.waiting(world.store, "beppu-center")) == 1  # still waiting
    assert ids(world, "c1") == ["reg-c1"]
    # A school cannot link, even its own numbers.
    [school] = world.publish(
        [
            {
                "id": "l1",
                "kind": "identity.linked",
                "child": "c1",
                "source": "beppu-es-1",
                "basis": "internal",
                "at": "2026-05-01T09:00:00+09:00",
                "payload": {"org": "beppu-es-1", "local_number": "2026-0412"},
            }
        ]
    )
    assert school.outcome == "rejected" and school.problems[0].code == "link_not_allowed"
    # A 保健所 covering two towns is linked by either town's centre, not by a centre elsewhere.
    assert identity.link(world, center="fukuoka-center", org="tobu-hc", local_number="H-1", child="c1").refused
    assert not identity.link(world, center="oita-center", org="tobu-hc", local_number="H-1", child="c1").refused
    # A child unknown to the hub cannot be linked.
    unknown = identity.link(world, center="beppu-center", org="beppu-es-1", local_number="X", child="nobody")
    assert unknown.refused and unknown.link.problems[0].code == "unknown_child"


def test_child_xor_local_child(world):
    both = world.publish([{**concern("e7"), "child": "c1"}])[0]
    neither = world.publish([{k: v for k, v in concern("e8").items() if k != "local_child"}])[0]
    for r in (both, neither):
        assert r.outcome == "rejected" and r.problems[0].code == "child_or_local_child"
        assert "どちらか一方" in r.problems[0].message_ja


def test_records_of_an_organisation_no_centre_can_link_are_refused(world):
    [r] = world.publish([{**concern("e9"), "source": "ken-office"}])
    assert r.outcome == "rejected" and r.problems[0].code == "no_linking_centre"


def test_residence_unknown_waits_is_listed_for_the_centre_and_is_published_by_itself(world, clock):
    """policy.md v2: a 21-10-5 event about a child whose residence is unknown waits (it is not rejected), the
    centre that may link the source's numbers sees it waiting, and it is published once the child is registered."""
    [r] = world.publish([{**concern("e1"), "local_child": None, "child": "c3"}])
    assert r.outcome == "waiting" and r.problems == []
    [w] = identity.waiting(world.store, "beppu-center")
    assert (w.id, w.child, w.reason) == ("e1", "c3", "residence_unknown")
    assert identity.waiting(world.store, "oita-center") == []
    assert "e1" not in ids(world, "c3")
    # Sent again before the residence is known: still waiting, listed once, stored nowhere.
    assert [r.outcome for r in world.publish([{**concern("e1"), "local_child": None, "child": "c3"}])] == ["waiting"]
    assert len(identity.waiting(world.store, "beppu-center")) == 1
    register(world, "c3")
    assert identity.waiting(world.store, "beppu-center") == []
    assert "e1" in ids(world, "c3")
    # once published, the same event sent again is a duplicate
    assert [r.outcome for r in world.publish([{**concern("e1"), "local_child": None, "child": "c3"}])] == ["duplicate"]


def test_cli_link_and_queue(tmp_path):
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = Hub(database)
    hub.load_orgs(ORGS)
    register(hub, "c1")
    assert hub.publish([concern("e1")])[0].outcome == "queued"
    hub.close()
    runner = CliRunner()
    queue = runner.invoke(app, ["identity", "queue", "--center", "beppu-center", "--database", database, "--json"])
    assert queue.exit_code == 0, queue.output
    [row] = json.loads(queue.output)
    assert (row["org"], row["local_number"], row["kind"], row["reason"]) == (
        "beppu-es-1",
        "2026-0412",
        "concern.reported",
        "waiting_for_link",
    )
    assert (
        json.loads(
            runner.invoke(
                app, ["identity", "queue", "--center", "oita-center", "--database", database, "--json"]
            ).output
        )
        == []
    )
    refused = runner.invoke(
        app,
        [
            "identity",
            "link",
            "--org",
            "beppu-es-1",
            "--local-number",
            "2026-0412",
            "--child",
            "c1",
            "--center",
            "oita-center",
            "--database",
            database,
        ],
    )
    assert refused.exit_code == 1 and "紐付けできません" in refused.output
    linked = runner.invoke(
        app,
        [
            "identity",
            "link",
            "--org",
            "beppu-es-1",
            "--local-number",
            "2026-0412",
            "--child",
            "c1",
            "--center",
            "beppu-center",
            "--database",
            database,
            "--json",
        ],
    )
    assert linked.exit_code == 0, linked.output
    data = json.loads(linked.output)
    assert data["link"]["outcome"] == "accepted"
    assert [(r["id"], r["outcome"]) for r in data["released"]] == [("e1", "accepted")]
    table = runner.invoke(app, ["identity", "queue", "--database", database])
    assert table.exit_code == 0 and "0 件" in table.output
    hub = Hub(database)
    try:
        assert "e1" in ids(hub, "c1")
    finally:
        hub.close()


@pytest.mark.postgres
def test_queue_and_link_on_postgresql(make_hub, clock, postgres_url):
    hub = make_hub(database=postgres_url)
    hub.load_orgs(ORGS)
    register(hub, "c1")
    clock.at = at("2026-05-01T09:00:00+09:00")
    assert [r.outcome for r in hub.publish([concern("e1"), concern("e1")])] == ["queued", "queued"]
    assert [w.id for w in identity.waiting(hub.store, "beppu-center")] == ["e1"]
    outcome = identity.link(hub, center="beppu-center", org="beppu-es-1", local_number="2026-0412", child="c1")
    assert [r.outcome for _, r in outcome.released] == ["accepted"]
    reopened = make_hub(database=postgres_url)  # what was saved, read back from the database
    assert identity.linked_child(reopened.store, "beppu-es-1", "2026-0412") == "c1"
    assert identity.waiting(reopened.store) == []
    assert "e1" in ids(reopened, "c1")
