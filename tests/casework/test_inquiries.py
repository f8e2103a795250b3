"""Status inquiries (事前照会, meetings-and-services.md §1) through their real paths: the centre's round publishes one
inquiry per (case due, member) in one action, the member's inbox reads each child once, the answer is published to
the centre, what is outstanding is counted per member, and the agenda folds the answers in and splits the cases."""

from __future__ import annotations

from datetime import date

import pytest

from services.audit.replay import access_records
from services.casework.commands import Actor, CaseWork
from services.casework.inquiries import Inquiries
from services.casework.ledger import CaseViews
from tests.casework.test_casework import BEPPU, JISO, ORGS, child, move, refused

pytestmark = [pytest.mark.store]


@pytest.fixture
def world(make_hub):
    def build(settings=None):
        hub = make_hub(settings=settings)
        hub.load_orgs(ORGS)
        return hub

    return build


SCHOOL, NURSERY = Actor("beppu-es-1", "teacher"), Actor("hoikuen-a", "nursery_staff")


def setup_cases(hub, clock):
    cw = CaseWork(hub)
    move(clock, "2026-04-01")
    for name in ("A", "B", "C"):
        child(hub, clock, f"c{name}")
        cw.register(BEPPU, child=f"c{name}", category="youshien", case_type="neglect", case=name)
        cw.assign_member(BEPPU, name, "beppu-es-1")
    cw.assign_member(BEPPU, "B", "hoikuen-a")
    move(clock, "2026-04-10")
    cw.review(BEPPU, "A", "見守り", date(2026, 6, 10))
    cw.review(BEPPU, "B", "見守り", date(2026, 6, 12))
    cw.review(BEPPU, "C", "見守り", date(2026, 9, 1))  # not due for the June meeting
    return cw


def test_a_round_asks_each_member_of_each_due_case_once(world, clock):
    hub = world()
    setup_cases(hub, clock)
    move(clock, "2026-06-01")
    inquiries = Inquiries(hub)
    sent = inquiries.send_round(BEPPU, "2026-06-15", "2026-06-10")
    assert sorted((s["case"], s["member"]) for s in sent.sent) == [
        ("A", "beppu-es-1"),
        ("B", "beppu-es-1"),
        ("B", "hoikuen-a"),
    ]
    assert len(sent.access_records) == 2  # the agenda's reads: one per child on the agenda (cases A and B)
    again = inquiries.send_round(BEPPU, "2026-06-15", "2026-06-12")
    assert again.sent == [] and len(again.skipped) == 3
    refused(lambda: inquiries.send_round(BEPPU, "2026-06-15", "2026-06-20"), "invalid_due")
    refused(lambda: inquiries.send_round(BEPPU, "2026-05-15", "2026-05-10"), "meeting_date_past")
    refused(lambda: inquiries.send_round(SCHOOL, "2026-06-15", "2026-06-10"), "not_a_center")

    # the school's inbox: its two inquiries, due first, each child read once as the school
    before = sum(1 for _ in access_records(hub.store))
    inbox, reads = inquiries.inbox(SCHOOL)
    assert [i.case for i in inbox] == ["A", "B"] and len(reads) == 2
    assert sum(1 for _ in access_records(hub.store)) == before + 2
    assert [i.case for i in inquiries.inbox(NURSERY)[0]] == ["B"]

    # outstanding per member; overdue after the due date
    assert [(m["member"], m["count"], m["overdue"]) for m in inquiries.outstanding("beppu-center")] == [
        ("beppu-es-1", 2, 0),
        ("hoikuen-a", 1, 0),
    ]
    move(clock, "2026-06-11")
    assert inquiries.overdue_count("beppu-center") == 3

    # the school answers: no change for A; a scale of 3 with a concern for B
    a, b = inbox
    inquiries.answer(SCHOOL, a.inquiry, no_change=True)
    refused(lambda: inquiries.answer(SCHOOL, b.inquiry, safety_scale="11", observations="様子"), "invalid_safety_scale")
    refused(lambda: inquiries.answer(SCHOOL, b.inquiry, observations=" "), "missing_observations")
    refused(lambda: inquiries.answer(NURSERY, a.inquiry, no_change=True), "unknown_inquiry")
    made_up = refused(lambda: inquiries.answer(NURSERY, "Q-nope", no_change=True), "unknown_inquiry")
    assert made_up == refused(lambda: inquiries.answer(NURSERY, a.inquiry, no_change=True), "unknown_inquiry").replace(
        a.inquiry, "Q-nope"
    )
    inquiries.answer(
        SCHOOL,
        b.inquiry,
        observations="表情が暗い",
        actions="担任が声かけ",
        concerns="月曜に空腹を訴える",
        safety_scale="3",
        attendance={"days": "18", "absent": "3", "absent_without_contact": "1"},
        checklist=["meals", "mood"],
    )
    assert [(m["member"], m["count"], m["overdue"]) for m in inquiries.outstanding("beppu-center")] == [
        ("hoikuen-a", 1, 1)
    ]
    assert inquiries.inbox(SCHOOL)[0] == []
    [answered_b] = [i for i in inquiries.inbox(SCHOOL, answered=True)[0] if i.case == "B"]
    assert answered_b.answer["safety_scale"] == 3

    # the agenda: B needs discussion with the answer shown; A is for confirmation with its "no change"
    agenda = CaseViews(hub).agenda("beppu-center", date(2026, 6, 15))
    assert [r.case for r in agenda.attention] == ["B"] and [r.case for r in agenda.confirmation] == ["A"]
    [answer] = agenda.attention[0].answers
    assert (answer["by"], answer["safety_scale"], answer["concerns"]) == ("beppu-es-1", 3, "月曜に空腹を訴える")
    assert agenda.attention[0].attention_reasons(date(2026, 6, 15)) == ["照会への回答に心配なこと", "安全の尺度が3以下"]
    assert agenda.confirmation[0].answers[0]["no_change"] is True
    # the nursery (another member of B) reads neither the question to the school nor its answer
    nursery = hub.timeline(org="hoikuen-a", role="nursery_staff", child="cB", purpose="meeting")
    assert {e.to for e in nursery.entries if e.kind == "inquiry.sent"} == {"hoikuen-a"}
    assert not [e for e in nursery.entries if e.kind == "inquiry.answered"]
    assert hub.verify().ok


def test_a_protection_since_the_last_review_puts_the_case_under_discussion(world, clock):
    from consent.model import Settings

    hub = world(Settings(joint_ledger=True))
    cw = CaseWork(hub)
    move(clock, "2026-04-01")
    child(hub, clock, "c1")
    cw.register(BEPPU, child="c1", category="youhogo", case_type="abuse_physical", case="K1")
    cw.review(BEPPU, "K1", "見守り", date(2026, 6, 10))
    move(clock, "2026-05-20")
    cw.protection(JISO, "K1", started=True)
    agenda = CaseViews(hub).agenda("beppu-center", date(2026, 6, 15))
    assert [r.case for r in agenda.attention] == ["K1"]
    assert agenda.attention[0].attention_reasons(date(2026, 6, 15)) == ["一時保護の開始"]


@pytest.mark.http
def test_inquiries_over_http_and_on_the_command_line(world, clock, keys, tmp_path):
    import json

    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from services.cli.root import app as cli_app
    from services.http.app import create_app

    hub = world()
    setup_cases(hub, clock)
    move(clock, "2026-06-01")
    issuer, verifier = keys

    def auth(org: str, role: str = "caseworker") -> dict[str, str]:
        return {"Authorization": f"Bearer {issuer.issue(org=org, role=role, user='tester')}"}

    with TestClient(create_app(hub, verifier)) as client:
        body = {"meeting_date": "2026-06-15", "due": "2026-06-10"}
        assert client.post("/v1/inquiries/rounds", json=body, headers=auth("beppu-es-1", "teacher")).status_code == 403
        bad = client.post("/v1/inquiries/rounds", json=body | {"due": "2026-06-30"}, headers=auth("beppu-center"))
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "due"
        sent = client.post("/v1/inquiries/rounds", json=body, headers=auth("beppu-center"))
        assert sent.status_code == 201, sent.text and len(sent.json()["sent"]) == 3
        response = client.get("/v1/inquiries/outstanding", headers=auth("beppu-center"))
        assert [m["member"] for m in response.json()["members"]] == ["beppu-es-1", "hoikuen-a"]
        inbox = client.get("/v1/inquiries", headers=auth("beppu-es-1", "teacher")).json()
        assert [i["case"] for i in inbox["inquiries"]] == ["A", "B"] and len(inbox["access_records"]) == 2
        first = inbox["inquiries"][0]["inquiry"]
        # the nursery was not asked this one: the same 404 as for a made-up inquiry
        other = client.post(
            f"/v1/inquiries/{first}/answer", json={"no_change": True}, headers=auth("hoikuen-a", "nursery_staff")
        )
        made_up = client.post(
            "/v1/inquiries/Q-nope/answer", json={"no_change": True}, headers=auth("hoikuen-a", "nursery_staff")
        )
        assert other.status_code == made_up.status_code == 404
        assert other.text == made_up.text.replace("Q-nope", first)
        bad = client.post(
            f"/v1/inquiries/{first}/answer", json={"observations": ""}, headers=auth("beppu-es-1", "teacher")
        )
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "observations"
        done = client.post(
            f"/v1/inquiries/{first}/answer", json={"no_change": True}, headers=auth("beppu-es-1", "teacher")
        )
        assert done.status_code == 201, done.text
        assert client.get(f"/v1/inquiries/{first}", headers=auth("beppu-es-1", "teacher")).json()["answer"]["no_change"]
        schema = client.get("/openapi.json").json()
        assert {"/v1/inquiries", "/v1/inquiries/rounds", "/v1/inquiries/{inquiry}/answer"} <= set(schema["paths"])

    # the command line, on a store of its own
    runner = CliRunner()
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    from tests.casework.test_casework import ORGS as ALL_ORGS

    (tmp_path / "orgs.json").write_text(json.dumps(ALL_ORGS), encoding="utf-8")

    def cli(*args: str):
        return runner.invoke(cli_app, [*args, "--database", database])

    assert cli("orgs", "load", str(tmp_path / "orgs.json")).exit_code == 0
    result = cli(
        "inquiries", "round", "--center", "beppu-center", "--meeting-date", "2099-01-01", "--due", "2098-12-20"
    )
    assert result.exit_code == 0 and "0 件" in result.output, result.output
    result = cli("inquiries", "round", "--center", "beppu-es-1", "--meeting-date", "2099-01-01", "--due", "2098-12-20")
    assert result.exit_code == 1 and "センター" in result.output
    result = cli("inquiries", "outstanding", "--center", "beppu-center", "--json")
    assert result.exit_code == 0 and json.loads(result.output) == []
    result = cli("inquiries", "inbox", "--org", "beppu-es-1", "--json")
    assert result.exit_code == 0 and json.loads(result.output)["inquiries"] == []
    result = cli("inquiries", "answer", "Q-nope", "--org", "beppu-es-1", "--no-change")
    assert result.exit_code == 1 and "照会「Q-nope」" in result.output


def test_an_inquiry_id_names_one_inquiry_in_the_whole_hub(world, clock):
    """An inquiry's answer names only its id, so an id is used once, as case and plan ids are: a second
    ``inquiry.sent`` with a used id is refused naming ``payload.inquiry``, for another child, in a later batch or in
    the same batch."""
    hub = world()
    setup_cases(hub, clock)
    move(clock, "2026-06-01")

    def sent(inquiry, child, case, id):
        return {
            "id": id,
            "kind": "inquiry.sent",
            "child": child,
            "source": "beppu-center",
            "basis": "cwa-25-3",
            "to": "beppu-es-1",
            "at": "2026-06-01T08:00:00+09:00",
            "payload": {"inquiry": inquiry, "case": case, "meeting_date": "2026-06-15", "due": "2026-06-10"},
        }

    assert hub.publish([sent("Q-1", "cA", "A", "e1")])[0].outcome == "accepted"
    later = hub.publish([sent("Q-1", "cB", "B", "e2")])[0]
    assert later.outcome == "rejected" and later.problems[0].field == "payload.inquiry", later
    together = hub.publish([sent("Q-2", "cA", "A", "e3"), sent("Q-2", "cB", "B", "e4")])
    assert [r.outcome for r in together] == ["accepted", "rejected"]
    assert together[1].problems[0].code == "inquiry_id_in_use"
