"""Family-support services (meetings-and-services.md §2) through their real paths: the commands publish through
``Hub.publish``, each refusal names its field in Japanese, and every view is built from the organisation's own
recorded reads of the children it shows."""

from __future__ import annotations

from datetime import datetime

import pytest

from events.problems import Rejected
from services.casework.commands import Actor
from services.family_support.work import FamilySupport, SupportViews, acknowledgement_times, usage_counts
from services.hub import Hub

pytestmark = pytest.mark.store

ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020", "name": "別府市こども家庭センター"},
    {"id": "oita-center", "type": "municipal_center", "municipality": "442011", "name": "大分市こども家庭センター"},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": "442020"},
    {"id": "visit-a", "type": "service_provider", "municipality": "442020", "name": "訪問サポートA"},
    {"id": "visit-b", "type": "service_provider", "municipality": "442020", "name": "訪問サポートB"},
]
BEPPU, OITA = Actor("beppu-center"), Actor("oita-center")
PROV_A, PROV_B = Actor("visit-a", "provider_staff"), Actor("visit-b", "provider_staff")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text if "T" in text else f"{text}T09:00:00+09:00")


@pytest.fixture
def hub(make_hub, clock) -> Hub:
    hub = make_hub()
    hub.load_orgs(ORGS)
    clock.at = at("2026-04-01")
    for c in ("c1", "c2", "c3"):
        [r] = hub.publish(
            [
                {
                    "id": f"reg-{c}",
                    "kind": "child.registered",
                    "child": c,
                    "source": "beppu-center",
                    "basis": "internal",
                    "at": clock.at.isoformat(),
                    "payload": {"residence": "442020"},
                }
            ]
        )
        assert r.outcome == "accepted"
    return hub


def visit(hub: Hub, clock, child: str, source: str, when: str, *, urgent: bool = False) -> str:
    clock.at = at(when)
    payload = {"date": when[:10], "observations": "訪問時の様子"}
    if urgent:
        payload |= {"urgent": True, "urgent_reason": "実は親から叩かれていると話した"}
    envelope = {
        "id": f"visit-{child}-{source}-{when}",
        "kind": "visit.report",
        "child": child,
        "source": source,
        "basis": "commissioned",
        "to": "beppu-center",
        "at": clock.at.isoformat(),
        "payload": payload,
    }
    [r] = hub.publish([envelope], publisher=source)
    assert r.outcome == "accepted", r.problems
    return str(envelope["id"])


def problems(excinfo: pytest.ExceptionInfo[Rejected]) -> dict[str | None, str]:
    return {p.field: p.message_ja for p in excinfo.value.problems}


def test_recommendation_order_referral_monitoring_and_end(hub, clock):
    work, views = FamilySupport(hub), SupportViews(hub)
    clock.at = at("2026-05-01")
    done = work.recommend(
        BEPPU, child="c1", service="養育支援訪問事業", form="written", reason="育児負担", recommendation="R-1"
    )
    assert done.kind == "service.recommended"
    work.record_result(BEPPU, child="c1", recommendation="R-1", result="accepted", note="来週から")
    work.order(BEPPU, child="c2", service="子育て短期支援事業", from_="2026-05-20", notice_date="2026-05-09")
    work.refer(
        BEPPU,
        child="c1",
        provider="visit-a",
        service="養育支援訪問事業",
        start="2026-05-15",
        summary="母の育児不安が強い",
        frequency="週1回",
        referral="F-1",
    )
    # A referral reaches only the provider named.
    a = views.overview("visit-a", role="provider_staff")
    assert [r.referral for r in a.referrals] == ["F-1"] and a.referrals[0].summary == "母の育児不安が強い"
    assert views.overview("visit-b", role="provider_staff").referrals == []
    # The provider monitors; the centre sees it as the last monitoring.
    clock.at = at("2026-06-10")
    work.monitor(PROV_A, child="c1", referral="F-1", observations="落ち着いている", recommendation="extend")
    with pytest.raises(Rejected) as refused:
        work.monitor(PROV_B, child="c1", referral="F-1", observations="見た", recommendation="continue")
    assert "referral" in problems(refused)
    centre = views.overview("beppu-center")
    [ref] = centre.referrals
    assert ref.last_monitoring and ref.last_monitoring["recommendation"] == "extend" and ref.provider == "visit-a"
    assert ref.monitoring_due == "2026-09-08" and not ref.due
    assert [r["result"] for r in centre.recommendations] == ["accepted"]
    assert [o["order"] for o in centre.orders][0].startswith("O-")
    # Monitoring is due 90 days after the last one.
    clock.at = at("2026-09-09")
    assert SupportViews(hub).overview("beppu-center").referrals[0].due
    work.end(BEPPU, child="c1", referral="F-1", reason="目標を達成")
    with pytest.raises(Rejected) as refused:
        work.end(BEPPU, child="c1", referral="F-1", reason="もう一度")
    assert "終了" in problems(refused)["referral"]
    assert views.overview("visit-a", role="provider_staff").referrals[0].ended


def test_field_errors_are_named_in_japanese(hub, clock):
    work = FamilySupport(hub)
    clock.at = at("2026-05-01")
    with pytest.raises(Rejected) as refused:
        work.recommend(BEPPU, child="c1", service="訪問", form="fax", reason="理由")
    assert "勧奨の方法" in problems(refused)["form"]
    with pytest.raises(Rejected) as refused:
        work.refer(BEPPU, child="c1", provider="beppu-es-1", service="訪問", start="2026-05-01", summary="要点")
    assert "委託事業者" in problems(refused)["provider"]
    with pytest.raises(Rejected) as refused:
        work.refer(BEPPU, child="c1", provider="visit-a", service="訪問", start="5月1日", summary="要点")
    assert "開始日" in problems(refused)["start"]
    with pytest.raises(Rejected) as refused:
        work.order(OITA, child="c1", service="訪問", from_="2026-05-01", notice_date="2026-05-01")
    assert problems(refused)  # another centre: refused by the authority row
    # A made-up referral answers like another centre's.
    with pytest.raises(Rejected) as made_up:
        work.monitor(OITA, child="c1", referral="F-404", observations="x", recommendation="continue")
    assert problems(made_up)["referral"].startswith("依頼「F-404」")


def test_urgent_inbox_oldest_first_and_acknowledgement_seen_by_the_provider(hub, clock):
    work, views = FamilySupport(hub), SupportViews(hub)
    first = visit(hub, clock, "c1", "visit-a", "2026-06-01T15:00:00+09:00", urgent=True)
    visit(hub, clock, "c2", "visit-b", "2026-06-01T16:00:00+09:00")  # not urgent
    second = visit(hub, clock, "c3", "visit-b", "2026-06-02T10:00:00+09:00", urgent=True)
    clock.at = at("2026-06-02T15:00:00+09:00")
    inbox, reads = views.urgent_inbox("beppu-center")
    assert [r.report for r in inbox] == [first, second]
    assert inbox[0].waited_hours == 24.0 and inbox[0].urgent_reason
    assert len(reads) == 2  # one recorded read per child shown (c2 has no urgent report: not read)
    done = work.acknowledge(BEPPU, report=first, note="本日家庭訪問します", handled_by="山田")
    assert done.kind == "report.acknowledged"
    assert [r.report for r in views.urgent_inbox("beppu-center")[0]] == [second]
    mine = views.overview("visit-a", role="provider_staff").reports
    assert mine[0].acknowledged and mine[0].acknowledged["note"] == "本日家庭訪問します"
    other = views.overview("visit-b", role="provider_staff").reports
    assert {r.report for r in other} == {second, "visit-c2-visit-b-2026-06-01T16:00:00+09:00"}
    assert all(r.acknowledged is None for r in other)
    # Only the centre the report was sent to; an unknown report answers like another centre's.
    with pytest.raises(Rejected) as refused:
        work.acknowledge(OITA, report=second)
    with pytest.raises(Rejected) as made_up:
        work.acknowledge(OITA, report="no-such-report")
    assert problems(refused)["report"].replace(second, "X") == problems(made_up)["report"].replace(
        "no-such-report", "X"
    )
    counts = acknowledgement_times(views.overview("beppu-center").reports)
    assert counts == {"urgent": 2, "acknowledged": 1, "median_hours": 24.0, "longest_hours": 24.0}


def test_the_inbox_marks_a_report_from_a_provider_the_child_was_not_referred_to(hub, clock):
    """policy.md's ``commissioned`` rule accepts a provider's report about any child to a centre; the inbox says
    which reports come from a provider the centre referred that child to and which do not (review finding: a
    provider could put any child into a centre's urgent inbox unmarked)."""
    work, views = FamilySupport(hub), SupportViews(hub)
    visit(hub, clock, "c1", "visit-a", "2026-04-20T15:00:00+09:00", urgent=True)  # before the referral
    clock.at = at("2026-05-01")
    work.refer(BEPPU, child="c1", provider="visit-a", service="訪問", start="2026-05-01", summary="要点", referral="F1")
    visit(hub, clock, "c1", "visit-a", "2026-06-01T15:00:00+09:00", urgent=True)  # referred
    visit(hub, clock, "c1", "visit-b", "2026-06-01T16:00:00+09:00", urgent=True)  # the same child, another provider
    visit(hub, clock, "c3", "visit-a", "2026-06-02T10:00:00+09:00", urgent=True)  # another child
    clock.at = at("2026-06-10")
    work.end(BEPPU, child="c1", referral="F1", reason="目標達成")
    visit(hub, clock, "c1", "visit-a", "2026-06-20T10:00:00+09:00", urgent=True)  # after the referral ended
    clock.at = at("2026-06-21T15:00:00+09:00")
    inbox, _ = views.urgent_inbox("beppu-center")
    assert [(r.child, r.source, r.at[:10], r.referred) for r in inbox] == [
        ("c1", "visit-a", "2026-04-20", False),
        ("c1", "visit-a", "2026-06-01", True),
        ("c1", "visit-b", "2026-06-01", False),
        ("c3", "visit-a", "2026-06-02", False),
        ("c1", "visit-a", "2026-06-20", False),
    ]


def test_usage_counts_per_service_and_provider(hub, clock):
    clock.at = at("2026-06-01")
    [r] = hub.publish(
        [
            {
                "id": "use-1",
                "kind": "service.usage",
                "child": "c1",
                "source": "visit-a",
                "basis": "commissioned",
                "to": "beppu-center",
                "at": clock.at.isoformat(),
                "payload": {"service": "一時預かり事業", "from": "2026-06-01", "to": "2026-06-03"},
            }
        ],
        publisher="visit-a",
    )
    assert r.outcome == "accepted"
    visit(hub, clock, "c1", "visit-a", "2026-06-02T10:00:00+09:00")
    clock.at = at("2026-06-10")
    counts = SupportViews(hub).counts("beppu-center")
    assert counts["usage"] == [
        {"service": "一時預かり事業", "provider": "visit-a", "children": 1, "visits": 1, "person_days": 3}
    ]
    assert usage_counts([], clock.at) == []
