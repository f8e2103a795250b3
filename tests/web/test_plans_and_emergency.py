"""Support plans and consent, and the emergency, in a real browser (ui.md, centre items 6 and 10; issue 14 items 2
and 3): the centre creates a plan, records the family's consent naming the nursery and revises the plan; the
nursery then sees the consented version only; the 児相 declares an emergency and reads under it with the time left
shown."""

from __future__ import annotations

import json
import re

import pytest

from tests.web.conftest import assert_accessible, shoot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.http]

CHILD = "child-09"  # 年少 at 認定こども園さくら, with a concern the centre holds; no plan yet
V1_WISH = "朝ごはんを食べてから登園したい"
V2_WISH = "第2版で加えた意向（まだ同意を得ていない）"


def access_records(server, child: str) -> list[dict]:
    return json.loads(server.tsunagu("audit", "reads", child, "--json").stdout)["reads"]


def test_a_plan_is_consented_for_the_nursery_which_sees_only_that_version(server, browser, page):
    sign_in(page, server.base, re.compile("佐藤 花子"))
    page.goto(f"{server.base}/ui/children/{CHILD}")
    page.get_by_role("link", name="この児童のサポートプランを作成する").click()
    page.wait_for_url(re.compile(r"/ui/plans/new"))
    assert page.get_by_label("児童ID").input_value() == CHILD

    # nothing but the child: every missing field named next to it, in Japanese, and in the summary
    page.get_by_role("button", name="プランを作成する").click()
    for message in ("本人・保護者の意向を入力してください", "課題を入力してください", "見直し時期を入力してください"):
        assert page.locator(".field-error", has_text=message).is_visible()
        assert page.get_by_role("alert").get_by_role("link", name=re.compile(message)).is_visible()
    assert_accessible(page, "new plan with errors")
    shoot(page, "p01-new-plan-errors")

    page.get_by_label("本人・保護者の意向").fill(f"{V1_WISH}\n仕事を続けたい")
    page.get_by_label("課題").fill("朝食をとらずに登園する日が多い")
    page.get_by_label("支援の種類及び内容").fill("子育て世帯訪問支援事業（週1回）\n園での朝の見守り")
    page.get_by_label("見直し時期").fill("2020-01-01")  # in the past: the command's refusal, next to the field
    page.get_by_role("button", name="プランを作成する").click()
    assert "今日" in page.locator("#review_due-error").inner_text()
    assert page.get_by_label("課題").input_value() == "朝食をとらずに登園する日が多い"  # nothing lost
    page.get_by_label("見直し時期").fill("2027-03-31")
    page.get_by_role("button", name="プランを作成する").click()
    page.wait_for_url(re.compile(r"/ui/plans/P-[0-9a-f]+\?done=created"))
    plan_url = page.url.split("?")[0]
    assert "作成しました" in page.get_by_role("status").inner_text()
    assert V1_WISH in page.locator("#version-1").locator("..").inner_text()
    assert_accessible(page, "plan page")
    shoot(page, "p02-plan-created")

    # consent: no recipient chosen is refused by name; then the nursery, chosen by its name from the registry
    page.get_by_label("署名した人").fill("母")
    page.get_by_role("button", name="同意を記録する").click()
    assert "共有先の機関を1つ以上選んでください" in page.locator("#recipients-error").inner_text()
    assert page.get_by_label("署名した人").input_value() == "母"
    page.get_by_label(re.compile("認定こども園さくら")).check()
    page.get_by_label("有効期限（任意）").fill("2027-03-31")
    page.get_by_role("button", name="同意を記録する").click()
    page.wait_for_url(re.compile(r"done=consented"))
    consents = page.get_by_role("table", name=re.compile("同意"))
    assert "認定こども園さくら" in consents.inner_text() and "第1版" in consents.inner_text()
    assert "第1版（同意による）" in page.locator("#plan").inner_text()

    # the revision: version 2, not covered by the consent
    page.get_by_label("本人・保護者の意向").fill(V2_WISH)
    page.get_by_label("見直し時期").fill("2027-06-30")
    page.get_by_role("button", name="改訂する").click()
    page.wait_for_url(re.compile(r"done=revised"))
    assert V2_WISH in page.locator("#version-2").locator("..").inner_text()
    assert "第1版（同意による）" in page.locator("#plan").inner_text()  # still only version 1 shared
    assert_accessible(page, "plan page after consent and revision")
    shoot(page, "p03-plan-consented-and-revised")

    page.get_by_role("navigation").get_by_role("link", name="サポートプラン").click()
    row = page.locator("tr", has=page.get_by_role("link", name=plan_url.rsplit("/", 1)[1]))
    assert "第2版" in row.inner_text() and "共有中" not in row.inner_text()
    assert_accessible(page, "plans")
    shoot(page, "p04-plans")

    # the nursery's staff read the child's page: version 1 under 同意, nothing of version 2
    nursery = browser.new_context(locale="ja-JP", timezone_id="Asia/Tokyo", viewport={"width": 1280, "height": 900})
    other = nursery.new_page()
    try:
        sign_in(other, server.base, re.compile("田中 美咲"))
        before = len(access_records(server, CHILD))
        other.goto(f"{server.base}/ui/children/{CHILD}")
        assert len(access_records(server, CHILD)) == before + 1  # one recorded read
        plan_entry = other.locator(".entry", has=other.locator(".entry-kind", has_text="サポートプラン作成"))
        assert plan_entry.count() == 1
        assert plan_entry.locator(".badge", has_text="同意").is_visible()
        assert V1_WISH in plan_entry.inner_text()
        main = other.locator("main").inner_text()
        assert V2_WISH not in main and "サポートプラン改訂" not in main
        assert other.get_by_role("button", name="緊急時アクセスを宣言する").count() == 0  # a nursery may not
        assert_accessible(other, "child page (nursery, consented plan)")
        shoot(other, "p05-nursery-sees-consented-version")
        other.goto(plan_url)
        assert other.get_by_role("heading", name="この画面は使えません").is_visible()
    finally:
        nursery.close()


def test_the_jiso_declares_an_emergency_and_reads_with_the_time_left(server, page):
    sign_in(page, server.base, re.compile("伊藤 健"))
    page.goto(f"{server.base}/ui/children/child-01?purpose=emergency")  # no window yet: refused, and said why
    assert page.get_by_role("heading", name="緊急時アクセスの期間外です").is_visible()
    page.goto(f"{server.base}/ui/children/child-01")
    section = page.get_by_role("region", name="緊急時アクセスを宣言する")
    assert "監査担当者" in section.inner_text() and "24 時間" in section.inner_text()
    assert_accessible(page, "child page (jiso) with the emergency form")
    shoot(page, "p06-jiso-child-emergency-form")

    section.get_by_role("button", name="緊急時アクセスを宣言する").click()
    assert "理由を入力してください" in page.locator("#reason-error").inner_text()
    assert_accessible(page, "emergency form with an error")
    shoot(page, "p07-emergency-reason-missing")

    before = len(access_records(server, "child-01"))
    page.get_by_label("緊急時アクセスの理由").fill("夜間に警察から身柄付き通告。保護者と連絡がとれない。")
    page.get_by_role("button", name="緊急時アクセスを宣言する").click()
    page.wait_for_url(re.compile(r"/ui/children/child-01\?purpose=emergency"))
    banner = page.locator(".emergency-banner")
    assert re.search(r"残り (23時間5\d分|24時間0分)", banner.inner_text()), banner.inner_text()
    assert "監査担当者" in banner.inner_text()
    assert page.locator(".badge", has_text="緊急時").count() > 0
    reads = access_records(server, "child-01")
    assert len(reads) == before + 1 and reads[-1]["purpose"] == "emergency"
    assert_accessible(page, "emergency read")
    shoot(page, "p08-emergency-read")
