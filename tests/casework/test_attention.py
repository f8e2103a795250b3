"""The agenda's 要検討 / 確認のみ split (meetings-and-services.md §1, "The agenda") on crafted cases: each reason the
spec lists, and the answers to status inquiries folded into the case's row (who, when, the scale and its change).
Built from entries as a reader receives them (``build_row``), with no store."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from events.model import Org
from services.casework.ledger import build_row
from services.reading.timeline import TimelineEntry

pytestmark = pytest.mark.unit

ORGS = {
    "beppu-center": Org(id="beppu-center", type="municipal_center", municipality="442020"),
    "beppu-es-1": Org(id="beppu-es-1", type="school", municipality="442020"),
    "hoikuen-a": Org(id="hoikuen-a", type="nursery", municipality="442020"),
    "chuo-jiso": Org(id="chuo-jiso", type="child_guidance_center", covers=("442020",)),
}
MEETING = date(2026, 6, 15)
T = datetime.fromisoformat("2026-06-12T09:00:00+09:00")


def entry(n: str, kind: str, at: str, payload: dict[str, Any], *, source: str = "beppu-center", **kw: Any):
    return TimelineEntry(
        id=n,
        kind=kind,
        source=source,
        basis=kw.pop("basis", "internal"),
        at=f"{at}T09:00:00+09:00",
        payload=payload,
        rule="OWN",
        redacted=[],
        **kw,
    )


def base() -> list[TimelineEntry]:
    """A case registered in April, two members, reviewed on 3 May with its next review on 1 June."""
    return [
        entry("r1", "child.registered", "2026-04-01", {"residence": "442020"}),
        entry("k1", "case.registered", "2026-04-05", {"case": "K1", "category": "youshien", "case_type": "neglect"}),
        entry("m1", "case.member_assigned", "2026-04-05", {"case": "K1", "member": "beppu-es-1"}),
        entry("m2", "case.member_assigned", "2026-04-05", {"case": "K1", "member": "hoikuen-a"}),
        entry("v1", "case.reviewed", "2026-05-03", {"case": "K1", "decision": "見守り", "next_review": "2026-06-01"}),
    ]


def inquiry(n: str, at: str, to: str = "beppu-es-1") -> TimelineEntry:
    return entry(
        f"q-{n}",
        "inquiry.sent",
        at,
        {"inquiry": n, "case": "K1", "meeting_date": "2026-06-15", "due": "2026-06-10"},
        basis="cwa-25-3",
        to=to,
    )


def answer(n: str, at: str, by: str = "beppu-es-1", **payload: Any) -> TimelineEntry:
    body = {"inquiry": n, "no_change": False, "observations": "様子", **payload}
    return entry(f"a-{n}-{at}", "inquiry.answered", at, body, source=by, basis="cwa-25-3", to="beppu-center")


def row(entries: list[TimelineEntry]):
    built = build_row("K1", "c1", entries, ORGS, T)
    assert built is not None
    return built


def test_a_stable_case_is_for_confirmation():
    r = row([*base(), inquiry("Q1", "2026-06-01"), answer("Q1", "2026-06-05", no_change=True, safety_scale=7)])
    assert r.attention_reasons(MEETING) == [] and not r.needs_attention
    [a] = r.answers
    assert (a["by"], a["no_change"], a["safety_scale"], a["change"]) == ("beppu-es-1", True, 7, None)


def test_a_fall_from_7_to_4_needs_discussion_and_from_6_to_5_does_not():
    before_review = [inquiry("Q0", "2026-04-20"), answer("Q0", "2026-04-25", safety_scale=7)]
    fell = row(
        [
            *base()[:4],
            *before_review,
            base()[4],
            inquiry("Q1", "2026-06-01"),
            answer("Q1", "2026-06-05", safety_scale=4),
        ]
    )
    assert fell.attention_reasons(MEETING) == ["安全の尺度が前回の回答から2以上低下"]
    [a] = fell.answers  # only the answers since the last review are folded in; the earlier one is the reference
    assert (a["safety_scale"], a["previous_scale"], a["change"]) == (4, 7, -3)

    earlier = [inquiry("Q0", "2026-04-20"), answer("Q0", "2026-04-25", safety_scale=6)]
    steady = row(
        [*base()[:4], *earlier, base()[4], inquiry("Q1", "2026-06-01"), answer("Q1", "2026-06-05", safety_scale=5)]
    )
    assert steady.attention_reasons(MEETING) == [] and steady.answers[0]["change"] == -1


def test_the_previous_answer_is_that_members_own():
    entries = [
        *base(),
        inquiry("Q1", "2026-05-10", to="hoikuen-a"),
        answer("Q1", "2026-05-12", by="hoikuen-a", safety_scale=8),
        inquiry("Q2", "2026-06-01"),
        answer("Q2", "2026-06-05", safety_scale=6),
    ]
    r = row(entries)
    assert [(a["by"], a["change"]) for a in r.answers] == [("hoikuen-a", None), ("beppu-es-1", None)]
    assert r.attention_reasons(MEETING) == []


def test_a_low_scale_or_an_answer_with_concerns_needs_discussion():
    low = row([*base(), inquiry("Q1", "2026-06-01"), answer("Q1", "2026-06-05", safety_scale=3)])
    assert low.attention_reasons(MEETING) == ["安全の尺度が3以下"]
    worried = row([*base(), inquiry("Q1", "2026-06-01"), answer("Q1", "2026-06-05", concerns="月曜に空腹")])
    assert worried.attention_reasons(MEETING) == ["照会への回答に心配なこと"]


def test_a_later_answer_supersedes_the_earlier_one():
    r = row(
        [
            *base(),
            inquiry("Q1", "2026-06-01"),
            answer("Q1", "2026-06-04", safety_scale=2, concerns="けが"),
            answer("Q1", "2026-06-05", no_change=True, safety_scale=8),
        ]
    )
    assert [a["safety_scale"] for a in r.answers] == [8] and r.attention_reasons(MEETING) == []


def test_an_answer_from_someone_not_asked_or_to_another_case_is_not_folded_in():
    stray = answer("Q1", "2026-06-05", by="hoikuen-a", safety_scale=1)
    other = entry(
        "q-Q9", "inquiry.sent", "2026-06-01", {"inquiry": "Q9", "case": "K2"}, basis="cwa-25-3", to="beppu-es-1"
    )
    r = row([*base(), inquiry("Q1", "2026-06-01"), stray, other, answer("Q9", "2026-06-05", safety_scale=1)])
    assert r.answers == [] and r.attention_reasons(MEETING) == []


def test_a_protection_started_since_the_last_review_needs_discussion():
    started = entry("p1", "protection.started", "2026-05-20", {"case": "K1"}, source="chuo-jiso", basis="joint-ledger")
    r = row([*base(), started])
    assert r.attention_reasons(MEETING) == ["一時保護の開始"]
    ended = entry("p2", "protection.ended", "2026-06-05", {"case": "K1"}, source="chuo-jiso", basis="joint-ledger")
    assert row([*base(), started, ended]).attention_reasons(MEETING) == ["一時保護の開始", "一時保護の解除"]
    # before the last review it was taken up already
    earlier = entry("p0", "protection.started", "2026-04-20", {"case": "K1"}, source="chuo-jiso", basis="joint-ledger")
    assert row([*base()[:4], earlier, base()[4]]).attention_reasons(MEETING) == []


def test_a_ledger_severity_change_needs_discussion_and_the_same_severity_again_does_not():
    def update(n: str, at: str, **payload: Any) -> TimelineEntry:
        return entry(n, "ledger.updated", at, {"case": "K1", **payload}, source="chuo-jiso", basis="joint-ledger")

    first = update("l0", "2026-04-20", severity="中度")
    assert (
        row([*base()[:4], first, base()[4], update("l1", "2026-06-01", severity="中度", status="在宅")]).reasons == []
    )
    changed = row([*base()[:4], first, base()[4], update("l1", "2026-06-01", severity="重度")])
    assert changed.attention_reasons(MEETING) == ["共同管理台帳の重症度の変更"]
    # a severity from the centre itself is not the 児相's assessment
    own = entry("l2", "ledger.updated", "2026-06-01", {"case": "K1", "severity": "重度"}, basis="joint-ledger")
    assert row([*base()[:4], first, base()[4], own]).reasons == []


def test_new_alerts_concerns_and_notifications_need_discussion():
    alert = entry("al", "absence.alert", "2026-06-02", {"reason": "no_contact", "days": 3}, source="beppu-es-1")
    concern = entry("co", "concern.reported", "2026-06-03", {"summary": "服が汚れている"}, source="beppu-es-1")
    notice = entry("no", "notification.filed", "2026-06-04", {"summary": "泣き声の通報"}, source="beppu-es-1")
    assert row([*base(), alert]).attention_reasons(MEETING) == ["新しい欠席等の警告"]
    assert row([*base(), concern]).attention_reasons(MEETING) == ["新しい気づき・通告"]
    assert row([*base(), notice]).attention_reasons(MEETING) == ["新しい気づき・通告"]


def test_a_review_overdue_by_more_than_30_days_needs_discussion():
    r = row(base())  # next review 2026-06-01
    assert r.attention_reasons(date(2026, 7, 1)) == []  # 30 days
    assert r.attention_reasons(date(2026, 7, 2)) == ["検討が31日超過"]
