"""What we shared, and who read it (``services.audit.shared_reads``, ``GET /v1/shared/...``): a centre or 児相 sees
every read of what it published by another organisation; a school sees only its addressees' first reads, never a
児相's LEDGER read nor a case member's read; refused reads are not reads; an unknown child and a child never
published about give the same empty answer."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from consent.model import Settings
from events.store import AccessLog
from services.audit.queries import NotFound
from services.audit.shared_reads import Filters, SharedReads
from services.http.app import create_app
from tests.helpers import assert_error, at, token_header

pytestmark = pytest.mark.store

ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020", "name": "別府市こども家庭センター"},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": "442020", "name": "別府市立南小学校"},
    {"id": "beppu-es-2", "type": "school", "regime": "public", "municipality": "442020", "name": "別府市立北小学校"},
    {
        "id": "chuo-jiso",
        "type": "child_guidance_center",
        "prefecture": "44",
        "covers": ["442020"],
        "name": "大分県中央児童相談所",
    },
]


def envelope(id, kind, source, basis, day, payload, **more):
    return {
        "id": id,
        "kind": kind,
        "child": more.pop("child", "c1"),
        "source": source,
        "basis": basis,
        "at": f"2026-05-{day}T09:00:00+09:00",
        "payload": payload,
        **more,
    }


EVENTS = [
    envelope("r1", "child.registered", "beppu-center", "internal", "01", {"residence": "442020"}),
    envelope("r2", "child.registered", "beppu-center", "internal", "01", {"residence": "442020"}, child="c2"),
    envelope(
        "k1",
        "case.registered",
        "beppu-center",
        "internal",
        "02",
        {"case": "K1", "category": "youhogo", "case_type": "abuse_physical"},
    ),
    envelope("m1", "case.member_assigned", "beppu-center", "internal", "02", {"case": "K1", "member": "beppu-es-2"}),
    envelope("e1", "concern.reported", "beppu-es-1", "cwa-21-10-5", "03", {"summary": "腕にあざ"}),
    envelope("e2", "notification.filed", "beppu-es-1", "cwa-25", "04", {"summary": "通告"}, to="beppu-center"),
    envelope("s1", "case.shared", "beppu-center", "cwa-25-2", "05", {"case": "K1", "summary": "見守りの分担"}),
]


class World:
    """c1: a school's concern (e1, no ``to``) and notification (e2, to the centre), a ledger case with a second
    school as member. Reads on 2026-05-10: the school itself, the centre twice, the 児相 (support, then refused
    for statistics), the member school."""

    def __init__(self, hub, clock):
        self.hub, self.clock = hub, clock
        clock.at = at("2026-05-06T09:00:00+09:00")
        hub.load_orgs(ORGS)
        assert {r.outcome for r in hub.publish(EVENTS)} == {"accepted"}, hub.publish(EVENTS)
        self.own = self.read("beppu-es-1", "teacher", "support", "08:00")
        self.centre = self.read("beppu-center", "caseworker", "support", "09:00")
        self.centre_again = self.read("beppu-center", "supervisor", "meeting", "10:00")
        self.jiso = self.read("chuo-jiso", "caseworker", "support", "11:00")
        self.refused = self.read("chuo-jiso", "caseworker", "statistics", "12:00")
        self.member = self.read("beppu-es-2", "teacher", "support", "13:00")
        self.shared = SharedReads(hub.store)

    def read(self, org, role, purpose, hhmm, child="c1"):
        self.clock.at = at(f"2026-05-10T{hhmm}:00+09:00")
        return self.hub.timeline(org=org, role=role, child=child, purpose=purpose, user=f"{org}-person")


@pytest.fixture
def world(make_hub, clock):
    return World(make_hub(settings=Settings(joint_ledger=True)), clock)


def test_the_readers_actually_read_the_events(world):
    """The world is what the tests say: the 児相 reads the school's concern under LEDGER, the member the case's
    sharing under CASE, the refused read is refused."""
    assert {e.id: e.rule for e in world.jiso.entries}["e1"] == "LEDGER"
    assert {e.id: e.rule for e in world.member.entries} == {"s1": "CASE"}
    assert {e.id: e.rule for e in world.centre.entries}["e1"] == "DIRECT"
    assert not world.refused.allowed


def test_a_centre_sees_every_read_by_others_with_role_rule_and_purpose(world):
    page = world.shared.latest("beppu-center", Filters.of())
    assert page.view == "reads" and page.receipts == []
    rows = [(r.event.id, r.org, r.org_name, r.role, r.rule, r.purpose, r.t[11:16]) for r in page.reads]
    assert ("k1", "chuo-jiso", "大分県中央児童相談所", "caseworker", "LEDGER", "support", "11:00") in rows
    assert ("s1", "beppu-es-2", "別府市立北小学校", "teacher", "CASE", "support", "13:00") in rows
    assert all(org != "beppu-center" for _, org, *_ in rows), "its own reads are left out"
    assert all(t != "12:00" for *_, t in rows), "a refused read is not a read"
    assert [r.t for r in page.reads] == sorted((r.t for r in page.reads), reverse=True)
    assert "person" not in page.model_dump_json(), "never the reader's name"
    assert "あざ" not in page.model_dump_json() and "見守り" not in page.model_dump_json(), "never content"


def test_a_school_sees_only_its_addressees_first_reads(world):
    page = world.shared.latest("beppu-es-1", Filters.of())
    assert page.view == "receipts" and page.reads == []
    rows = [(r.event.id, r.org, r.org_name, r.t[11:16]) for r in page.receipts]
    # e1 had no `to`: its addressee, the centre of residence, is described, not named; e2 named the centre
    assert rows == [
        ("e2", "beppu-center", "別府市こども家庭センター", "09:00"),
        ("e1", None, "居住地のこども家庭センター", "09:00"),
    ]
    text = page.model_dump_json()
    assert "chuo-jiso" not in text and "児童相談所" not in text, "nothing of the 児相's read"
    assert "beppu-es-2" not in text and "北小学校" not in text, "nothing of the case member's read"
    assert "LEDGER" not in text and "support" not in text, "no rule, no purpose"


def test_a_schools_event_page_shows_each_addressee_and_whether_it_read(world):
    e2 = world.shared.of_event("beppu-es-1", "e2")
    assert e2.view == "receipts" and e2.reads == []
    assert [(a.org, a.org_name, (a.first_read or "")[11:16]) for a in e2.addressees] == [
        ("beppu-center", "別府市こども家庭センター", "09:00")
    ]
    e1 = world.shared.of_event("beppu-es-1", "e1")
    assert [(a.org, a.org_name) for a in e1.addressees] == [(None, "居住地のこども家庭センター")]
    assert "chuo-jiso" not in e1.model_dump_json()


def test_a_centre_event_page_lists_every_read_by_others(world):
    k1 = world.shared.of_event("beppu-center", "k1")
    assert [(r.org, r.rule, r.t[11:16]) for r in k1.reads] == [("chuo-jiso", "LEDGER", "11:00")]


def test_unknown_and_other_organisations_events_are_not_found_alike(world):
    answers = []
    for publisher, event in (("beppu-es-1", "k1"), ("beppu-es-1", "no-such-event"), ("chuo-jiso", "e1")):
        with pytest.raises(NotFound) as raised:
            world.shared.of_event(publisher, event)
        answers.append((raised.value.code, raised.value.message_ja))
    assert len(set(answers)) == 1


def test_a_waiting_event_looks_like_a_published_one_nobody_read_yet(world):
    """The school is told 受付 for an event published at once and for one that waits for the child's residence;
    its event page must not tell them apart either (that would say whether the hub knows the child)."""
    shared = SharedReads(world.hub.store)
    sent = [
        envelope("w-known", "concern.reported", "beppu-es-1", "cwa-21-10-5", "09", {"summary": "x"}, child="c2"),
        envelope("w-unknown", "concern.reported", "beppu-es-1", "cwa-21-10-5", "09", {"summary": "x"}, child="zz"),
    ]
    # the hub knows the difference (the API tells the school 受付 for both)
    assert [r.outcome for r in world.hub.publish(sent, publisher="beppu-es-1")] == ["accepted", "waiting"]
    known, waiting = (shared.of_event("beppu-es-1", e["id"]).model_dump() for e in sent)
    for answer in (known, waiting):
        answer["event"].pop("id"), answer["event"].pop("child")
    assert known == waiting
    assert waiting["addressees"] == [{"org": None, "org_name": "居住地のこども家庭センター", "first_read": None}]
    with pytest.raises(NotFound):  # another school still learns nothing of it
        shared.of_event("beppu-es-2", "w-unknown")


def test_an_unknown_child_and_a_child_never_published_about_give_the_same_empty_answer(world):
    never = world.shared.latest("beppu-es-1", Filters.of(child="c2"))
    unknown = world.shared.latest("beppu-es-1", Filters.of(child="no-such-child"))
    assert never == unknown and never.total == 0
    assert world.shared.latest("beppu-es-1", Filters.of(child="c1")).total == 2


def test_filters_by_period_and_pages(world):
    assert world.shared.latest("beppu-center", Filters.of(since="2026-05-11")).total == 0
    everything = world.shared.latest("beppu-center", Filters.of(since="2026-05-10", until="2026-05-10"))
    first = world.shared.latest("beppu-center", Filters.of(), page=1, per_page=1)
    second = world.shared.latest("beppu-center", Filters.of(), page=2, per_page=1)
    assert first.total == second.total == everything.total >= 2
    assert [first.reads[0], second.reads[0]] == everything.reads[:2]


def test_it_loads_only_the_publishers_children(world, monkeypatch):
    def no_global_scan(*args, **kwargs):
        raise AssertionError("must not scan the whole log")

    monkeypatch.setattr(world.hub.store.recorder, "select_notifications", no_global_scan)
    assert world.shared.latest("beppu-es-1", Filters.of()).total == 2


def test_these_answers_are_not_recorded_as_reads(world):
    before = world.hub.store.peek(AccessLog.create_id("c1")).count
    world.shared.latest("beppu-es-1", Filters.of())
    world.shared.of_event("beppu-es-1", "e1")
    assert world.hub.store.peek(AccessLog.create_id("c1")).count == before


# --- HTTP ---------------------------------------------------------------------------------------------------


@pytest.fixture
def api(world, keys):
    with TestClient(create_app(world.hub, keys[1])) as client:
        yield client


@pytest.mark.http
def test_the_api_answers_for_the_callers_own_organisation(api, keys):
    school = token_header(keys[0], "beppu-es-1", "teacher")
    body = api.get("/v1/shared/reads", headers=school).json()
    assert body["view"] == "receipts" and {r["event"]["id"] for r in body["receipts"]} == {"e1", "e2"}
    centre = token_header(keys[0], "beppu-center", "caseworker")
    body = api.get("/v1/shared/reads", params={"child": "c1", "per_page": 1}, headers=centre).json()
    assert body["view"] == "reads" and len(body["reads"]) == 1 and body["total"] >= 2
    page = api.get("/v1/shared/events/e2/reads", headers=school).json()
    assert page["addressees"][0]["org_name"] == "別府市こども家庭センター"


@pytest.mark.http
def test_the_api_refuses_alike_and_names_bad_fields(api, keys):
    school = token_header(keys[0], "beppu-es-1", "teacher")
    unknown = assert_error(api.get("/v1/shared/events/nope/reads", headers=school), 404, "unknown_event")
    other = assert_error(api.get("/v1/shared/events/k1/reads", headers=school), 404, "unknown_event")
    assert unknown == other
    error = assert_error(api.get("/v1/shared/reads", params={"from": "5月"}, headers=school), 422, "invalid_date")
    assert error["field"] == "from"
    assert api.get("/v1/shared/reads").status_code == 401
    assert (
        api.get("/v1/shared/reads", params={"child": "c2"}, headers=school).json()
        == api.get("/v1/shared/reads", params={"child": "zz"}, headers=school).json()
    )


@pytest.mark.http
def test_the_openapi_documents_the_answers(api):
    schema = api.get("/openapi.json").json()
    reads = schema["paths"]["/v1/shared/reads"]["get"]
    assert "SharedReadsPage" in str(reads["responses"]["200"])
    assert {p["name"] for p in reads["parameters"]} >= {"child", "from", "to", "page", "per_page"}
    assert "/v1/shared/events/{event_id}/reads" in schema["paths"]
