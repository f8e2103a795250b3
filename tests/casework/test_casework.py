"""要対協 case work (issue 4) through its real paths: the case commands publish through ``Hub.publish``, every view
is built from the requesting organisation's policy-decided, recorded reads, and the log proves what happened."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from consent.model import Settings
from events.problems import Rejected
from services.audit.replay import access_records
from services.casework.agenda import agenda_csv, agenda_html
from services.casework.commands import Actor, CaseWork
from services.casework.ledger import CaseViews
from services.cli.root import app as cli_app
from services.http.app import create_app
from services.hub import Hub

pytestmark = [pytest.mark.store, pytest.mark.http]

ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020", "name": "別府市こども家庭センター"},
    {"id": "oita-center", "type": "municipal_center", "municipality": "442011", "name": "大分市こども家庭センター"},
    {"id": "nakatsu-center", "type": "municipal_center", "municipality": "442038"},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": "442020"},
    {"id": "oita-es-1", "type": "school", "regime": "public", "municipality": "442011"},
    {"id": "hoikuen-a", "type": "nursery", "regime": "private", "municipality": "442020"},
    {"id": "hoikuen-b", "type": "nursery", "regime": "public", "municipality": "442020"},
    {"id": "chuo-jiso", "type": "child_guidance_center", "prefecture": "44", "covers": ["442011", "442020"]},
    {"id": "nakatsu-jiso", "type": "child_guidance_center", "prefecture": "44", "covers": ["442038"]},
]
BEPPU, OITA = Actor("beppu-center"), Actor("oita-center")
JISO = Actor("chuo-jiso")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text if "T" in text else f"{text}T09:00:00+09:00")


@pytest.fixture
def world(make_hub, clock):
    """A hub with the organisations loaded, and a function that moves the clock."""

    def build(settings: Settings | None = None) -> Hub:
        hub = make_hub(settings=settings)
        hub.load_orgs(ORGS)
        return hub

    return build


def move(clock, when: str) -> None:
    clock.at = at(when)


def publish(hub: Hub, clock, **envelope) -> None:
    """Publish as an organisation's system would (an adapter, the school's report), at the clock's time."""
    envelope.setdefault("at", clock.at.isoformat())
    envelope.setdefault("basis", "internal")
    [result] = hub.publish([envelope])
    assert result.outcome == "accepted", result.problems


def child(hub: Hub, clock, child_id: str, center: str = "beppu-center", residence: str = "442020") -> None:
    publish(
        hub,
        clock,
        id=f"reg-{child_id}",
        kind="child.registered",
        child=child_id,
        source=center,
        payload={"residence": residence, "name_kana": "ベップ タロウ"},
    )


def monthly(
    hub: Hub,
    clock,
    child_id: str,
    month: str,
    absent: int,
    without_contact: int = 0,
    *,
    school: str = "beppu-es-1",
    center: str = "beppu-center",
    event_id: str | None = None,
    **extra,
) -> str:
    event_id = event_id or f"att-{child_id}-{month}"
    publish(
        hub,
        clock,
        id=event_id,
        kind="attendance.monthly",
        child=child_id,
        source=school,
        basis="cwa-25-3",
        to=center,
        payload={
            "month": month,
            "school_days": 20,
            "attended": 20 - absent,
            "absent": absent,
            "absent_without_contact": without_contact,
            **extra,
        },
    )
    return event_id


def refused(call, code: str) -> str:
    with pytest.raises(Rejected) as caught:
        call()
    problem = caught.value.problems[0]
    assert problem.code == code, caught.value.problems
    assert any("\u3040" <= c <= "\u9fff" for c in problem.message_ja), problem
    return problem.message_ja


def row_of(ledger, case: str):
    [row] = [r for r in ledger.rows if r.case == case]
    return row


def visible(hub: Hub, org: str, role: str, child_id: str, purpose: str = "support") -> list[str]:
    timeline = hub.timeline(org=org, role=role, child=child_id, purpose=purpose)
    return [e.id for e in timeline.entries]


# --- A year of a case ---------------------------------------------------------------------------------------


def test_a_year_of_a_case_from_registration_to_closure(world, clock):
    hub = world()
    cw, views = CaseWork(hub), CaseViews(hub)
    move(clock, "2026-04-01")
    child(hub, clock, "c1")
    move(clock, "2026-04-03")
    done = cw.register(BEPPU, child="c1", category="youshien", case_type="neglect", case="K1")
    assert done.kind == "case.registered" and done.access_records  # the state check was a recorded read
    cw.assign_member(BEPPU, "K1", "beppu-es-1")
    cw.share(BEPPU, "K1", "朝の登校確認を学校に依頼")

    months = {"2026-04": (1, 0), "2026-05": (3, 1)}
    for month, (absent, silent) in months.items():
        move(clock, f"{month}-28T17:00:00+09:00")
        monthly(hub, clock, "c1", month, absent, silent)
    move(clock, "2026-06-15T10:00:00+09:00")
    publish(
        hub,
        clock,
        id="alert-1",
        kind="absence.alert",
        child="c1",
        source="beppu-es-1",
        basis="cwa-25-3",
        to="beppu-center",
        payload={"reason": "consecutive_absence", "days": 7, "since": "2026-06-05"},
    )
    move(clock, "2026-06-16T10:00:00+09:00")
    publish(
        hub,
        clock,
        id="concern-1",
        kind="concern.reported",
        child="c1",
        source="beppu-es-1",
        basis="cwa-21-10-5",
        payload={"summary": "腕にあざ。本人は転んだと話す"},
    )

    move(clock, "2026-06-20")
    row = row_of(views.progress_ledger("beppu-center"), "K1")
    assert (row.status, row.category, row.case_type, row.members) == ("open", "youshien", "neglect", ["beppu-es-1"])
    assert row.attendance["month"] == "2026-05" and row.attendance["absent_without_contact"] == 1
    assert [a["event"] for a in row.open_alerts] == ["alert-1"]
    assert [c["event"] for c in row.concerns] == ["concern-1"]
    assert row.last_review is None and row.next_review_default and row.next_review == "2026-07-03"
    assert row.name_kana == "ベップ タロウ"

    # the meeting takes up the alert and sets the next review
    move(clock, "2026-06-25")
    cw.review(BEPPU, "K1", "週1回の家庭訪問と登校確認", date(2026, 9, 25))

    # June's report, then a correction of it: the correction is what every view shows
    move(clock, "2026-06-30T17:00:00+09:00")
    first = monthly(hub, clock, "c1", "2026-06", 8, 5)
    move(clock, "2026-07-02T09:00:00+09:00")
    monthly(hub, clock, "c1", "2026-06", 6, 3, event_id="att-c1-2026-06-fix", supersedes=first)
    row = row_of(views.progress_ledger("beppu-center"), "K1")
    assert row.attendance["event"] == "att-c1-2026-06-fix" and row.attendance["absent"] == 6
    for month in ("2026-07", "2026-08"):
        move(clock, f"{month}-28T17:00:00+09:00")
        monthly(hub, clock, "c1", month, 2)
        if month == "2026-07":  # an individual case meeting (個別ケース検討会議) raises the case to abuse
            move(clock, "2026-08-05")
            cw.change_type(BEPPU, "K1", "abuse_neglect")
            refused(lambda: cw.change_type(BEPPU, "K1", "abuse_neglect"), "same_case_type")

    move(clock, "2026-09-01")
    row = row_of(views.progress_ledger("beppu-center"), "K1")
    assert row.open_alerts == [] and row.concerns == []
    assert row.last_review["decision"] == "週1回の家庭訪問と登校確認" and row.next_review == "2026-09-25"
    assert not row.next_review_default
    assert [h["case_type"] for h in row.case_type_history] == ["neglect", "abuse_neglect"]
    assert row.case_type == "abuse_neglect"
    assert row.attendance["month"] == "2026-08"
    kinds = [c["kind"] for c in row.changes]
    assert "case.type_changed" in kinds and kinds.count("attendance.monthly") == 4

    for review_day, decision, following in (
        ("2026-09-25", "改善傾向。訪問を隔週に", date(2026, 12, 20)),
        ("2026-12-20", "安定。終結に向けて確認", date(2027, 3, 19)),
    ):
        move(clock, review_day)
        cw.review(BEPPU, "K1", decision, following)
    for month in ("2026-09", "2026-10", "2026-11", "2026-12", "2027-01", "2027-02"):
        move(clock, f"{month}-27T17:00:00+09:00")
        monthly(hub, clock, "c1", month, 0)

    move(clock, "2027-03-19")
    school = hub.timeline(org="beppu-es-1", role="teacher", child="c1", purpose="meeting")
    assert [(e.kind, e.rule) for e in school.entries if e.source != "beppu-es-1"] == [("case.shared", "CASE")]
    refused(lambda: cw.close(BEPPU, "K1", "", "2027-03-19 実務者会議"), "missing_reason")
    refused(lambda: cw.close(BEPPU, "K1", "登校と家庭の状況が安定", " "), "missing_meeting")
    closed = cw.close(BEPPU, "K1", "登校と家庭の状況が安定", "2027-03-19 実務者会議")
    assert closed.kind == "case.closed"

    move(clock, "2027-03-20")
    refused(lambda: cw.review(BEPPU, "K1", "再検討", None), "case_closed")
    refused(lambda: cw.share(BEPPU, "K1", "追加の共有"), "case_closed")
    refused(lambda: cw.assign_member(BEPPU, "K1", "hoikuen-a"), "case_closed")
    refused(lambda: cw.close(BEPPU, "K1", "重複", "会議"), "case_closed")
    row = row_of(views.progress_ledger("beppu-center"), "K1")
    assert row.status == "closed" and row.closed["meeting"] == "2027-03-19 実務者会議"
    assert row.attendance["month"] == "2027-02"
    # the member school read the share while the case was open; now it reads only its own reports
    school = hub.timeline(org="beppu-es-1", role="teacher", child="c1", purpose="meeting")
    assert school.entries and all(e.source == "beppu-es-1" and e.rule == "OWN" for e in school.entries)
    assert hub.verify().ok


def test_commands_refuse_what_the_coordinating_body_may_not_do(world, clock):
    hub = world()
    cw = CaseWork(hub)
    move(clock, "2026-04-01")
    child(hub, clock, "c1")
    child(hub, clock, "c2", center="oita-center", residence="442011")
    refused(
        lambda: cw.register(Actor("beppu-es-1", "teacher"), child="c1", category="youshien", case_type="neglect"),
        "not_a_center",
    )
    refused(lambda: cw.register(BEPPU, child="c1", category="kodomo", case_type="neglect"), "invalid_category")
    refused(lambda: cw.register(BEPPU, child="c1", category="youshien", case_type=" "), "missing_case_type")
    refused(lambda: cw.register(BEPPU, child="c2", category="youshien", case_type="neglect"), "unknown_child")
    cw.register(BEPPU, child="c1", category="youshien", case_type="neglect", case="K1")
    refused(lambda: cw.register(OITA, child="c2", category="youshien", case_type="neglect", case="K1"), "case_exists")
    made_up = refused(lambda: cw.review(OITA, "K404", "方針", None), "unknown_case")
    message = refused(lambda: cw.review(OITA, "K1", "方針", None), "unknown_case")
    # another centre's case gets the answer a made-up case gets: it never says who holds it (policy.md v2)
    assert message == made_up.replace("K404", "K1") and "別府" not in message
    refused(lambda: cw.assign_member(BEPPU, "K1", "no-such-school"), "unknown_member")
    refused(lambda: cw.remove_member(BEPPU, "K1", "beppu-es-1"), "not_a_member")
    cw.assign_member(BEPPU, "K1", "beppu-es-1")
    refused(lambda: cw.assign_member(BEPPU, "K1", "beppu-es-1"), "already_member")
    refused(lambda: cw.share(BEPPU, "K1", "  "), "missing_summary")
    refused(lambda: cw.review(BEPPU, "K1", "方針", date(2026, 3, 1)), "next_review_not_future")
    refused(lambda: cw.review(BEPPU, "K1", "方針", "2026-13-01"), "invalid_date")
    refused(lambda: cw.transfer(BEPPU, "K1", "beppu-es-1"), "invalid_transfer_target")
    refused(lambda: cw.transfer(BEPPU, "K1", "beppu-center"), "transfer_to_same_municipality")
    # nothing of the refused commands reached the log: the centre's own view has the case and one member only
    assert [
        e.kind for e in hub.timeline(org="beppu-center", role="caseworker", child="c1", purpose="meeting").entries
    ] == ["child.registered", "case.registered", "case.member_assigned"]


# --- The meeting agenda --------------------------------------------------------------------------------------


def agenda_world(world, clock):
    hub = world()
    cw = CaseWork(hub)
    move(clock, "2026-04-01")
    next_reviews = {
        "A": date(2026, 5, 1),
        "B": date(2026, 5, 20),
        "C": date(2026, 5, 15),
        "D": date(2026, 6, 30),
        "E": date(2026, 5, 1),
        "F": date(2026, 6, 30),
        "G": date(2026, 4, 30),
    }
    for name in next_reviews:
        child(hub, clock, f"c{name}")
        cw.register(BEPPU, child=f"c{name}", category="youshien", case_type="neglect", case=name)
        cw.assign_member(BEPPU, name, "beppu-es-1")
    move(clock, "2026-04-10")
    for name, when in next_reviews.items():
        cw.review(BEPPU, name, f"{name} の方針", when)
    move(clock, "2026-04-28T17:00:00+09:00")
    for name in next_reviews:
        monthly(hub, clock, f"c{name}", "2026-04", 0)
    move(clock, "2026-05-05T10:00:00+09:00")
    publish(
        hub,
        clock,
        id="alert-A",
        kind="absence.alert",
        child="cA",
        source="beppu-es-1",
        basis="cwa-25-3",
        to="beppu-center",
        payload={"reason": "no_contact", "days": 3},
    )
    for name, summary in (
        ("B", '=HYPERLINK("http://example.invalid","詳細")'),
        ("F", "服装の汚れが続く"),
        ("G", "<script>alert(1)</script> 給食を急いで食べる"),
    ):
        publish(
            hub,
            clock,
            id=f"concern-{name}",
            kind="concern.reported",
            child=f"c{name}",
            source="beppu-es-1",
            basis="cwa-21-10-5",
            payload={"summary": summary},
        )
    move(clock, "2026-05-10")
    cw.close(BEPPU, "E", "転居なし・状況改善", "2026-05-10 個別ケース検討会議")
    return hub


def test_the_agenda_lists_due_cases_with_new_alerts_or_concerns_first(world, clock):
    hub = agenda_world(world, clock)
    move(clock, "2026-05-18")
    agenda = CaseViews(hub).agenda("beppu-center", date(2026, 5, 20))
    # A has an alert; G and B only concerns (G is the more overdue); C is stable; D and F are not due; E closed
    assert [r.case for r in agenda.attention] == ["A", "G", "B"]
    assert [r.case for r in agenda.confirmation] == ["C"]
    a = agenda.attention[0]
    assert [c["event"] for c in a.changes] == ["att-cA-2026-04", "alert-A"]
    assert a.overdue_days(date(2026, 5, 20)) == 19
    assert [c["summary"] for c in agenda.attention[2].changes if c["kind"] == "concern.reported"] == [
        '=HYPERLINK("http://example.invalid","詳細")'
    ]
    assert agenda.confirmation[0].changes[0]["kind"] == "attendance.monthly"
    # one read recorded per child on the agenda (D and F are not due, E is closed: not shown, not recorded)
    readers = [r for r in access_records(hub.store) if r["id"] in set(agenda.reads)]
    assert sorted(r["child"] for r in readers) == ["cA", "cB", "cC", "cG"]
    assert {r["purpose"] for r in readers} == {"meeting"}
    # a 児相 over its municipalities needs the joint ledger setting
    refused(lambda: CaseViews(hub).agenda("chuo-jiso", date(2026, 5, 20)), "joint_ledger_off")


def test_the_agenda_as_excel_csv_and_as_a_printable_page(world, clock):
    hub = agenda_world(world, clock)
    move(clock, "2026-05-18")
    agenda = CaseViews(hub).agenda("beppu-center", date(2026, 5, 20))
    data = agenda_csv(agenda)
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    assert text.count("\r\n") == 5 and "\n" not in text.replace("\r\n", "")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["議題区分", "ケース番号", "児童"]
    assert [(r[0], r[1]) for r in rows[1:]] == [("要検討", "A"), ("要検討", "G"), ("要検討", "B"), ("確認のみ", "C")]
    concerns_column = rows[0].index("新しい気づき")
    assert rows[3][concerns_column].startswith("2026-05-05 =HYPERLINK")  # not at the start of the cell: harmless
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    # a cell that would start with a formula character is neutralised
    agenda.confirmation[0].members = ["=cmd|' /C calc'!A0"]
    rows = list(csv.reader(io.StringIO(agenda_csv(agenda).decode("utf-8-sig"))))
    assert rows[-1][rows[0].index("メンバー")] == "'=cmd|' /C calc'!A0"

    page = agenda_html(agenda, {o.id: o.name or o.id for o in hub.orgs().values()})
    assert "<h1>実務者会議 進行管理ケース一覧</h1>" in page and "@media print" in page
    assert "要検討" in page and "確認のみ" in page and "別府市こども家庭センター" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert page.index("ケース A") < page.index("ケース G") < page.index("ケース B") < page.index("ケース C")


# --- The joint ledger ---------------------------------------------------------------------------------------


def test_the_joint_ledger_of_a_jiso_covering_two_municipalities(world, clock):
    hub = world(Settings(joint_ledger=True))
    cw, views = CaseWork(hub), CaseViews(hub)
    move(clock, "2026-04-01")
    child(hub, clock, "c1")
    child(hub, clock, "c2", center="oita-center", residence="442011")
    child(hub, clock, "c3")
    move(clock, "2026-05-07")
    cw.register(BEPPU, child="c1", category="youhogo", case_type="abuse_physical", case="K1")
    cw.register(OITA, child="c2", category="youhogo", case_type="abuse_neglect", case="K2")
    cw.register(BEPPU, child="c3", category="youshien", case_type="neglect", case="K3")
    move(clock, "2026-05-31T17:00:00+09:00")
    monthly(hub, clock, "c1", "2026-05", 8, 5)
    monthly(hub, clock, "c2", "2026-05", 1, school="oita-es-1", center="oita-center")
    move(clock, "2026-06-03")
    cw.update_ledger(JISO, "K1", severity="重度", status="一時保護検討")
    cw.protection(JISO, "K1", started=True)
    cw.update_ledger(OITA, "K2", status="在宅支援")
    refused(lambda: cw.protection(BEPPU, "K1", started=False), "not_a_jiso")
    refused(lambda: cw.protection(JISO, "K1", started=True), "already_protected")
    refused(lambda: cw.update_ledger(JISO, "K3", severity="軽度"), "not_on_ledger")
    refused(lambda: cw.update_ledger(Actor("nakatsu-jiso"), "K1", severity="軽度"), "not_ledger_party")
    refused(lambda: cw.update_ledger(JISO, "K1"), "nothing_to_update")

    move(clock, "2026-06-04")
    before = sum(1 for _ in access_records(hub.store))
    ledger = views.joint_ledger("chuo-jiso")
    assert [(r.case, r.center) for r in ledger.rows] == [("K1", "beppu-center"), ("K2", "oita-center")]
    k1, k2 = ledger.rows
    assert k1.ledger["severity"] == "重度" and k1.protection and k1.attendance["absent_without_contact"] == 5
    assert k2.ledger is None  # the centre's own update is not the 児相's assessment
    assert k2.attendance["month"] == "2026-05" and k2.category == "youhogo"
    assert len(ledger.reads) == 2 and sum(1 for _ in access_records(hub.store)) == before + 2
    assert {r["reader"]["org"] for r in access_records(hub.store) if r["id"] in ledger.reads} == {"chuo-jiso"}

    # the centre's side: the 児相's assessment on its progress ledger
    k1_centre = row_of(views.progress_ledger("beppu-center"), "K1")
    assert k1_centre.ledger["severity"] == "重度" and k1_centre.protection

    # a 児相 covering neither municipality has an empty ledger; a centre has no joint ledger
    assert views.joint_ledger("nakatsu-jiso").rows == []
    refused(lambda: views.joint_ledger("beppu-center"), "not_allowed_for_type")

    # a closed case stays on the ledger as closed, and leaves the 児相's agenda
    move(clock, "2026-06-10")
    cw.protection(JISO, "K1", started=False)
    cw.close(BEPPU, "K1", "家庭復帰後の安定", "2026-06-10 個別ケース検討会議")
    rows = {r.case: r for r in views.joint_ledger("chuo-jiso").rows}
    assert rows["K1"].status == "closed" and not rows["K1"].protection
    agenda = views.agenda("chuo-jiso", date(2026, 12, 31))
    assert [r.case for r in agenda.attention + agenda.confirmation] == ["K2"]
    assert hub.verify().ok


def test_the_joint_ledger_needs_the_setting(world, clock):
    hub = world()
    move(clock, "2026-04-01")
    refused(lambda: CaseViews(hub).joint_ledger("chuo-jiso"), "joint_ledger_off")


# --- Support plans and consent ------------------------------------------------------------------------------


def test_a_plan_revised_after_consent_stays_shared_at_the_signed_version(world, clock):
    hub = world()
    cw, views = CaseWork(hub), CaseViews(hub)
    move(clock, "2026-04-01")
    child(hub, clock, "c1")
    move(clock, "2026-04-10")
    p = cw.create_plan(
        BEPPU,
        child="c1",
        plan="P1",
        wishes="夜眠れるようになりたい",
        issues="家事の負担",
        supports=["子育て世帯訪問支援事業"],
        review_due="2026-07-10",
    )
    assert (p.plan, p.version) == ("P1", 1)
    refused(
        lambda: cw.create_plan(
            BEPPU, child="c1", plan="P1", wishes="x", issues="y", supports="z", review_due="2026-07-10"
        ),
        "plan_exists",
    )
    refused(
        lambda: cw.create_plan(BEPPU, child="c1", wishes="x", issues="", supports="z", review_due="2026-07-10"),
        "missing_plan_field",
    )
    refused(
        lambda: cw.create_plan(BEPPU, child="c1", wishes="x", issues="y", supports="z", review_due="2026-04-10"),
        "review_due_not_future",
    )
    refused(
        lambda: cw.grant_consent(BEPPU, "P1", version=2, recipients=["hoikuen-a"], signed_by="母"), "unknown_version"
    )
    refused(
        lambda: cw.grant_consent(BEPPU, "P1", version=1, recipients=["nowhere"], signed_by="母"), "unknown_recipient"
    )
    refused(
        lambda: cw.grant_consent(BEPPU, "P1", version=1, recipients=["hoikuen-a"], signed_by=""), "missing_signed_by"
    )
    consent = cw.grant_consent(BEPPU, "P1", version=1, recipients=["hoikuen-a"], signed_by="母")
    move(clock, "2026-05-01")
    revised = cw.revise_plan(
        BEPPU, "P1", wishes="仕事に復帰したい", issues="送迎", supports=["ショートステイ"], review_due="2026-08-01"
    )
    assert revised.version == 2

    move(clock, "2026-05-02")
    nursery = hub.timeline(org="hoikuen-a", role="nursery_staff", child="c1", purpose="support")
    assert [(e.kind, e.payload["version"], e.rule) for e in nursery.entries] == [("plan.created", 1, "CONSENT")]
    assert visible(hub, "hoikuen-b", "nursery_staff", "c1") == []

    plans, _ = views.plans("beppu-center")
    [state] = plans
    assert state.latest_version == 2 and state.review_due == "2026-08-01" and state.shared_version(clock.at) == 1

    # the family refuses to share a second plan: support goes on under it, and nothing of it goes out
    cw.create_plan(
        BEPPU,
        child="c1",
        plan="Q1",
        wishes="相談できる人がほしい",
        issues="孤立",
        supports="母子保健の訪問",
        review_due="2026-06-01",
    )
    cw.refuse_consent(BEPPU, "Q1")
    move(clock, "2026-05-20")
    cw.revise_plan(
        BEPPU,
        "Q1",
        wishes="相談できる人がほしい",
        issues="孤立",
        supports=["母子保健の訪問", "親子の居場所"],
        review_due="2026-05-30",
    )
    nursery = hub.timeline(org="hoikuen-a", role="nursery_staff", child="c1", purpose="support")
    assert [(e.payload["plan"], e.payload["version"]) for e in nursery.entries] == [("P1", 1)]

    due, reads = views.plans_due("beppu-center", date(2026, 6, 1))
    assert [(s.plan, s.review_due, bool(s.refusals)) for s in due] == [("Q1", "2026-05-30", True)]
    assert reads and hub.verify().ok

    # withdrawal: from then on the nursery reads nothing of the plan
    move(clock, "2026-06-01")
    cw.withdraw_consent(BEPPU, "P1", consent.event)
    refused(lambda: cw.withdraw_consent(BEPPU, "P1", consent.event), "already_withdrawn")
    assert visible(hub, "hoikuen-a", "nursery_staff", "c1") == []


# --- Case transfer on moving --------------------------------------------------------------------------------


def test_a_transfer_acknowledged_and_one_left_unacknowledged(world, clock):
    hub = world()
    cw, views = CaseWork(hub), CaseViews(hub)
    move(clock, "2026-04-01")
    for c in ("c1", "c2"):
        child(hub, clock, c)
    move(clock, "2026-04-20")
    publish(
        hub,
        clock,
        id="concern-1",
        kind="concern.reported",
        child="c1",
        source="beppu-es-1",
        basis="cwa-21-10-5",
        payload={"summary": "連絡なしの欠席が続いている"},
    )
    cw.register(BEPPU, child="c1", category="youshien", case_type="neglect", case="K1")
    cw.register(BEPPU, child="c2", category="youhogo", case_type="abuse_neglect", case="K2")
    move(clock, "2026-06-01")
    for c in ("c1", "c2"):
        publish(
            hub,
            clock,
            id=f"moved-{c}",
            kind="residence.changed",
            child=c,
            source="beppu-center",
            payload={"residence": "442011"},
        )
    move(clock, "2026-06-02")
    transfer = cw.transfer(BEPPU, "K1", "oita-center")
    cw.transfer(BEPPU, "K2", "oita-center")
    refused(lambda: cw.review(BEPPU, "K1", "方針", None), "case_transferred")
    refused(lambda: cw.transfer(BEPPU, "K1", "oita-center"), "case_transferred")

    # the new centre reads the package (rule TRANSFER) and acknowledges receipt
    move(clock, "2026-06-10")
    refused(lambda: cw.acknowledge_transfer(BEPPU, "K1"), "no_transfer")
    refused(lambda: cw.transfer_package(Actor("nakatsu-center"), "K1"), "no_transfer")
    sent, package = cw.transfer_package(OITA, "K1")
    assert sent["from"] == "beppu-center" and sent["transfer"] == transfer.event
    assert {e.id: e.rule for e in package.entries}["concern-1"] == "TRANSFER"
    assert "case.registered" in [e.kind for e in package.entries]
    ack = cw.acknowledge_transfer(OITA, "K1")
    refused(lambda: cw.acknowledge_transfer(OITA, "K1"), "already_acknowledged")

    move(clock, "2026-06-12")  # 10 days: nothing overdue yet
    assert views.transfers("beppu-center") == [] and views.transfers("oita-center") == []
    move(clock, "2026-06-20")  # 18 days: K2 is overdue, for both centres
    for center, direction in (("beppu-center", "out"), ("oita-center", "in")):
        [overdue] = views.transfers(center)
        assert (overdue["case"], overdue["direction"], overdue["days_waiting"]) == ("K2", direction, 18)
        everything = {t["case"]: t for t in views.transfers(center, overdue_only=False)}
        assert everything["K1"]["acknowledged_at"].startswith("2026-06-10") and not everything["K1"]["overdue"]
    assert views.transfers("nakatsu-center") == []
    # the old centre's ledger shows the case as transferred
    assert row_of(views.progress_ledger("beppu-center"), "K1").transferred["to"] == "oita-center"

    # the hand-over is provable from the log: the transfer, the receiving centre's reads, the acknowledgement
    old_view = hub.timeline(org="beppu-center", role="caseworker", child="c1", purpose="meeting")
    assert [e.id for e in old_view.entries if e.kind == "case.transferred"] == [transfer.event]
    new_view = hub.timeline(org="oita-center", role="caseworker", child="c1", purpose="meeting")
    assert [e.id for e in new_view.entries if e.kind == "case.transfer_acknowledged"] == [ack.event]
    assert [e.payload for e in new_view.entries if e.id == ack.event] == [{"case": "K1", "from": "beppu-center"}]
    receipts = [
        r
        for r in access_records(hub.store)
        if r["reader"]["org"] == "oita-center"
        and r["child"] == "c1"
        and any(d["rule"] == "TRANSFER" and d["event"] == transfer.event for d in r["decision"]["events"])
    ]
    assert ack.access_records[0] in {r["id"] for r in receipts}
    assert min(r["t"] for r in receipts) < clock.at.isoformat()
    assert hub.verify().ok


# --- Views leave access records -----------------------------------------------------------------------------


def test_building_a_ledger_leaves_access_records_and_verify_passes(world, clock):
    hub = world()
    cw = CaseWork(hub)
    move(clock, "2026-04-01")
    for c in ("c1", "c2"):
        child(hub, clock, c)
    cw.register(BEPPU, child="c1", category="youshien", case_type="neglect", case="K1")
    cw.register(BEPPU, child="c1", category="youhogo", case_type="abuse_neglect", case="K1b")
    cw.register(BEPPU, child="c2", category="tokutei_ninpu", case_type="health", case="K2")
    before = list(access_records(hub.store))
    move(clock, "2026-04-02")
    ledger = CaseViews(hub).progress_ledger("beppu-center", user="tanaka")
    after = list(access_records(hub.store))
    new = after[len(before) :]
    assert sorted(r["child"] for r in new) == ["c1", "c2"]  # one read per child, two cases for c1
    assert [r["id"] for r in new] == ledger.reads
    assert all(
        r["reader"] == {"org": "beppu-center", "role": "caseworker", "user": "tanaka"} and r["purpose"] == "meeting"
        for r in new
    )
    assert sorted(r.case for r in ledger.rows) == ["K1", "K1b", "K2"]
    assert {r.case: r.category for r in ledger.rows}["K2"] == "tokutei_ninpu"
    report = hub.verify()
    assert report.ok and report.records == len(after)
    # another centre's ledger does not list this centre's cases, and reads nothing
    assert CaseViews(hub).progress_ledger("oita-center").rows == []


# --- The command line ---------------------------------------------------------------------------------------


def test_the_case_commands_on_the_command_line(tmp_path):
    runner = CliRunner()
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    orgs_file = tmp_path / "orgs.json"
    orgs_file.write_text(json.dumps(ORGS), encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text(
        json.dumps(
            {
                "id": "r1",
                "kind": "child.registered",
                "child": "c1",
                "source": "beppu-center",
                "basis": "internal",
                "at": "2025-04-01T09:00:00+09:00",
                "payload": {"residence": "442020"},
            }
        )
        + "\n",
        encoding="utf-8",
    )

    def cli(*args: str):
        return runner.invoke(cli_app, [*args, "--database", database])

    assert cli("orgs", "load", str(orgs_file)).exit_code == 0
    assert cli("publish", str(events)).exit_code == 0
    result = cli(
        "case",
        "register",
        "c1",
        "--center",
        "beppu-center",
        "--category",
        "youshien",
        "--type",
        "neglect",
        "--case",
        "K1",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["case"] == "K1"
    assert cli("case", "assign", "K1", "beppu-es-1", "--center", "beppu-center").exit_code == 0
    result = cli("case", "review", "K1", "--center", "oita-center", "--decision", "方針")
    assert result.exit_code == 1 and "登録したセンターだけ" in result.output
    result = cli("case", "close", "K1", "--center", "beppu-center", "--reason", "改善", "--meeting", "")
    assert result.exit_code == 1 and "会議" in result.output
    result = cli("case", "ledger", "--center", "beppu-center", "--json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)["rows"]
    assert row["members"] == ["beppu-es-1"] and row["category_ja"] == "要支援児童"
    output = tmp_path / "agenda.csv"
    result = cli(
        "case", "agenda", "--org", "beppu-center", "--date", "2099-01-01", "--format", "csv", "--output", str(output)
    )
    assert result.exit_code == 0, result.output
    data = output.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and ",K1," in data.decode("utf-8-sig") and b"\r\n" in data
    result = cli("case", "transfers", "--center", "beppu-center", "--json")
    assert result.exit_code == 0 and json.loads(result.output) == []
    assert cli("audit", "verify").exit_code == 0


# --- HTTP ---------------------------------------------------------------------------------------------------


def test_case_work_over_http_acts_as_the_tokens_organisation(world, clock, keys):
    hub = world(Settings(joint_ledger=True))
    issuer, verifier = keys
    move(clock, "2026-04-01")
    child(hub, clock, "c1")

    def auth(org: str, role: str = "caseworker") -> dict[str, str]:
        return {"Authorization": f"Bearer {issuer.issue(org=org, role=role, user='tester')}"}

    with TestClient(create_app(hub, verifier)) as client:
        response = client.post(
            "/v1/cases",
            json={"child": "c1", "category": "youhogo", "case_type": "abuse_neglect", "case": "K1"},
            headers=auth("beppu-center"),
        )
        assert response.status_code == 201, response.text
        assert response.json()["case"] == "K1"
        assert (
            client.post("/v1/cases/K1/members", json={"member": "beppu-es-1"}, headers=auth("beppu-center")).status_code
            == 201
        )
        # another centre's case and a made-up one get the same answer (policy.md, "Rejections leak nothing")
        others = client.post("/v1/cases/K1/reviews", json={"decision": "方針"}, headers=auth("oita-center"))
        made_up = client.post(
            "/v1/cases/K1/reviews".replace("K1", "K9"), json={"decision": "方針"}, headers=auth("oita-center")
        )
        assert others.status_code == made_up.status_code == 404
        assert others.text == made_up.text.replace("K9", "K1")
        assert others.json()["error"]["code"] == "unknown_case" and "beppu" not in others.text
        response = client.post("/v1/cases/K9/reviews", json={"decision": "方針"}, headers=auth("beppu-center"))
        assert response.status_code == 404 and response.json()["error"]["message_ja"]
        response = client.post("/v1/cases/K1/close", json={"reason": "改善"}, headers=auth("beppu-center"))
        assert response.status_code == 422
        response = client.post("/v1/cases/K1/ledger", json={"severity": "中度"}, headers=auth("chuo-jiso"))
        assert response.status_code == 201, response.text

        move(clock, "2026-04-02")
        ledger = client.get("/v1/ledger", headers=auth("beppu-center")).json()
        assert [r["case"] for r in ledger["rows"]] == ["K1"] and ledger["rows"][0]["ledger"]["severity"] == "中度"
        joint = client.get("/v1/joint-ledger", headers=auth("chuo-jiso")).json()
        assert [r["case"] for r in joint["rows"]] == ["K1"]
        assert client.get("/v1/joint-ledger", headers=auth("nakatsu-jiso")).json()["rows"] == []
        assert client.get("/v1/joint-ledger", headers=auth("beppu-center")).status_code == 403

        response = client.get(
            "/v1/agenda", params={"date": "2026-07-31", "format": "csv"}, headers=auth("beppu-center")
        )
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
        assert response.content.startswith(b"\xef\xbb\xbf") and ",K1," in response.content.decode("utf-8-sig")
        response = client.get(
            "/v1/agenda", params={"date": "2026-07-31", "format": "html"}, headers=auth("beppu-center")
        )
        assert response.status_code == 200 and "実務者会議" in response.text
        agenda = client.get("/v1/agenda", params={"date": "2026-07-31"}, headers=auth("chuo-jiso")).json()
        assert [r["case"] for r in agenda["confirmation"]] == ["K1"]

        response = client.post("/v1/cases/K1/transfer", json={"to": "oita-center"}, headers=auth("beppu-center"))
        assert response.status_code == 201
        response = client.get("/v1/cases/K1/transfer/package", headers=auth("oita-center"))
        assert response.status_code == 200 and response.json()["transfer"]["from"] == "beppu-center"
        assert client.post("/v1/cases/K1/transfer/acknowledge", headers=auth("oita-center")).status_code == 201
        response = client.post("/v1/cases/K1/transfer/acknowledge", headers=auth("oita-center"))
        assert response.status_code == 409
        transfers = client.get("/v1/transfers", params={"all": True}, headers=auth("beppu-center")).json()
        assert [t["acknowledged_at"] is not None for t in transfers] == [True]

        response = client.post(
            "/v1/plans",
            json={
                "child": "c1",
                "wishes": "安心して暮らしたい",
                "issues": "生活リズム",
                "supports": ["家庭訪問"],
                "review_due": "2026-06-30",
                "plan": "P1",
            },
            headers=auth("beppu-center"),
        )
        assert response.status_code == 201, response.text
        response = client.get("/v1/plans/due", params={"date": "2026-07-01"}, headers=auth("beppu-center"))
        assert [p["plan"] for p in response.json()["plans"]] == ["P1"]
    assert hub.verify().ok


def test_case_work_dates_outside_the_hubs_range_are_422_naming_the_field(world, clock, keys):
    """The same range of dates as everywhere in the hub (events.dates): a meeting on 9999-12-31 or a plan due on
    it is a typing error to point at, not a day to compute with."""
    hub = world()
    issuer, verifier = keys
    move(clock, "2026-04-01")
    child(hub, clock, "c1")
    headers = {"Authorization": f"Bearer {issuer.issue(org='beppu-center', role='caseworker', user='tester')}"}
    plan = {"child": "c1", "wishes": "w", "issues": "i", "supports": ["s"], "plan": "P1"}
    with TestClient(create_app(hub, verifier)) as client:
        for method, url, options, field in [
            ("GET", "/v1/agenda", {"params": {"date": "9999-12-31"}}, "date"),
            ("GET", "/v1/agenda", {"params": {"date": "0001-01-01"}}, "date"),
            ("GET", "/v1/plans/due", {"params": {"date": "9999-12-31"}}, "date"),
            ("POST", "/v1/plans", {"json": {**plan, "review_due": "9999-12-31"}}, "review_due"),
        ]:
            response = client.request(method, url, headers=headers, **options)
            assert response.status_code == 422, (url, options, response.text)
            error = response.json()["error"]
            assert error["field"] == field and "2999-12-31" in error["message_ja"], error
        assert client.post("/v1/plans", json={**plan, "review_due": "2026-06-30"}, headers=headers).status_code == 201
        response = client.post(
            "/v1/plans/P1/consents",
            headers=headers,
            json={"version": 1, "recipients": ["beppu-es-1"], "signed_by": "母", "valid_until": "9999-12-31"},
        )
        assert response.status_code == 422 and response.json()["error"]["field"] == "valid_until", response.text
    result = CliRunner().invoke(
        cli_app, ["case", "agenda", "--org", "beppu-center", "--date", "9999-12-31", "--database", "sqlite:///:memory:"]
    )
    assert result.exit_code == 2 and "2999-12-31" in result.output, result.output


# --- PostgreSQL ---------------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_the_case_index_and_ledger_on_postgresql(make_hub, clock, postgres_url):
    hub = make_hub(database=postgres_url)
    hub.load_orgs(ORGS)
    cw = CaseWork(hub)
    move(clock, "2026-04-01")
    child(hub, clock, "c1")
    cw.register(BEPPU, child="c1", category="youshien", case_type="neglect", case="K1")
    cw.assign_member(BEPPU, "K1", "beppu-es-1")
    cw.transfer(BEPPU, "K1", "oita-center")
    [row] = CaseViews(hub).progress_ledger("beppu-center").rows
    assert (row.case, row.status, row.members) == ("K1", "transferred", ["beppu-es-1"])
    assert [t["case"] for t in CaseViews(hub).transfers("oita-center", overdue_only=False)] == ["K1"]
    assert hub.verify().ok


def test_an_erased_childs_case_leaves_the_ledgers_and_the_agenda(world, clock):
    """Crypto-shredding reaches the case index too: once the child is erased, the case is in no ledger, and
    later case events for it do not break the index."""
    hub = world(Settings(joint_ledger=True))
    cw, views = CaseWork(hub), CaseViews(hub)
    move(clock, "2026-04-01")
    child(hub, clock, "c1")
    child(hub, clock, "c2")
    move(clock, "2026-04-03")
    cw.register(BEPPU, child="c1", category="youshien", case_type="abuse_physical", case="K1")
    cw.register(BEPPU, child="c2", category="youshien", case_type="neglect", case="K2")
    assert {r.case for r in views.progress_ledger("beppu-center").rows} == {"K1", "K2"}
    move(clock, "2026-05-01")
    publish(
        hub,
        clock,
        id="erase-c1",
        kind="child.erased",
        child="c1",
        source="beppu-center",
        payload={"reason": "保存期間の満了"},
    )
    assert {r.case for r in views.progress_ledger("beppu-center").rows} == {"K2"}
    assert [r.case for r in views.joint_ledger("chuo-jiso").rows] == []
    agenda = views.agenda("beppu-center", date(2026, 12, 1))
    assert "K1" not in [r.case for r in agenda.attention + agenda.confirmation]
    publish(
        hub,
        clock,
        id="close-K1",
        kind="case.closed",
        child="c1",
        source="beppu-center",
        payload={"case": "K1", "reason": "終結"},
    )
    assert {r.case for r in views.progress_ledger("beppu-center").rows} == {"K2"}
    assert hub.verify().ok


def test_a_protection_started_since_the_last_review_puts_the_case_under_attention(world, clock):
    hub = world(Settings(joint_ledger=True))
    cw, views = CaseWork(hub), CaseViews(hub)
    move(clock, "2026-04-01")
    child(hub, clock, "c1")
    move(clock, "2026-04-02")
    cw.register(BEPPU, child="c1", category="youhogo", case_type="abuse_physical", case="K1")
    move(clock, "2026-05-01")
    # meetings within 30 days of the review due (registration + 91 days, then the date decided), so that the
    # review's delay is not a reason of its own
    agenda = views.agenda("beppu-center", date(2026, 7, 15))
    assert [r.case for r in agenda.confirmation] == ["K1"] and not agenda.attention  # stable: 確認のみ
    move(clock, "2026-05-10")
    cw.protection(JISO, "K1", started=True)
    move(clock, "2026-05-11")
    agenda = views.agenda("beppu-center", date(2026, 7, 15))
    assert [r.case for r in agenda.attention] == ["K1"] and not agenda.confirmation
    [started] = [c for c in agenda.attention[0].changes if c["kind"] == "protection.started"]
    assert started["source"] == "chuo-jiso"
    # taken up at a review: no longer 要検討 for that reason
    move(clock, "2026-05-20")
    cw.review(BEPPU, "K1", decision="一時保護中の状況を確認", next_review="2026-08-20")
    move(clock, "2026-05-21")
    agenda = views.agenda("beppu-center", date(2026, 8, 25))
    assert [r.case for r in agenda.confirmation] == ["K1"] and not agenda.attention


def test_sharing_over_http_as_a_proposal_names_its_meeting(world, clock, keys):
    """``POST /v1/cases/{case}/shares`` takes ``proposal`` and ``meeting_date`` as the web form does; a proposal
    without its meeting's date is 422 naming the field."""
    hub = world()
    issuer, verifier = keys
    move(clock, "2026-04-01")
    child(hub, clock, "c1")
    headers = {"Authorization": f"Bearer {issuer.issue(org='beppu-center', role='caseworker', user='tester')}"}
    with TestClient(create_app(hub, verifier)) as client:
        body = {"child": "c1", "category": "youshien", "case_type": "neglect", "case": "K1"}
        assert client.post("/v1/cases", json=body, headers=headers).status_code == 201
        response = client.post("/v1/cases/K1/shares", json={"summary": "見守り継続", "proposal": True}, headers=headers)
        assert response.status_code == 422 and response.json()["error"]["field"] == "meeting_date", response.text
        assert "会議の日付" in response.json()["error"]["message_ja"]
        response = client.post(
            "/v1/cases/K1/shares",
            json={"summary": "見守り継続を提案", "proposal": True, "meeting_date": "2026-04-20"},
            headers=headers,
        )
        assert response.status_code == 201, response.text
        response = client.post("/v1/cases/K1/shares", json={"summary": "通常の共有"}, headers=headers)
        assert response.status_code == 201, response.text
        response = client.post(
            "/v1/cases/K1/shares",
            json={"summary": "s", "proposal": True, "meeting_date": "9999-12-31"},
            headers=headers,
        )
        assert response.status_code == 422 and response.json()["error"]["field"] == "meeting_date"
    shared = [
        e
        for e in hub.timeline(org="beppu-center", role="caseworker", child="c1", purpose="support").entries
        if e.kind == "case.shared"
    ]
    assert [(e.payload.get("proposal"), e.payload.get("meeting_date")) for e in shared] == [
        (True, "2026-04-20"),
        (None, None),
    ]
