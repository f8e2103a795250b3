"""Family-support services in a real browser (meetings-and-services.md §2, issue 15): a provider sends an urgent
visit report; it is at the top of the centre's start page (the urgent inbox, oldest first, with the time waited);
the caseworker acknowledges it in one click; the provider sees 確認済み with the centre's reply. Also the centre's
referrals page and the provider's referrals page, each with axe."""

from __future__ import annotations

import json
import re

import pytest

from tests.web.conftest import assert_accessible, shoot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.http]

REASON = "本人が「お父さんにけられた」と話した。背中を痛がる。"


def reads(server, child: str) -> list[dict]:
    return json.loads(server.tsunagu("audit", "reads", child, "--json").stdout)["reads"]


def test_an_urgent_visit_report_tops_the_start_page_is_acknowledged_and_the_provider_sees_it(server, browser, page):
    sign_in(page, server.base, re.compile("中村 由美"))
    page.goto(f"{server.base}/ui/provider")
    form = page.locator("form[action='/ui/provider/visit']")
    form.get_by_label("児童の番号", exact=True).fill("child-11")
    form.get_by_label("訪問日").fill("2026-11-27")
    form.get_by_label("訪問時の様子").fill("訪問時、本人は背中を気にしていた。")
    form.get_by_label(re.compile("^緊急（")).check()
    form.get_by_role("button", name="訪問の報告を送信する").click()
    assert page.locator("#urgent_reason-error").inner_text() == "緊急の場合は、緊急の理由を入力してください"
    assert page.locator("#observations").input_value() == "訪問時、本人は背中を気にしていた。"  # nothing lost
    assert page.locator("#urgent").is_checked()
    assert_accessible(page, "provider urgent form with an error")
    shoot(page, "90-provider-urgent-error")
    page.locator("#urgent_reason").fill(REASON)
    page.get_by_role("button", name="訪問の報告を送信する").click()
    assert "緊急の訪問の報告を受け付けました" in page.get_by_role("status").inner_text()
    page.goto(f"{server.base}/ui/provider/referrals")
    row = page.locator("tr").filter(has_text=REASON)
    assert "未確認" in row.inner_text()
    assert_accessible(page, "provider referrals and reports")
    shoot(page, "91-provider-referrals-before")

    centre = browser.new_context(locale="ja-JP", timezone_id="Asia/Tokyo", viewport={"width": 1280, "height": 900})
    try:
        sato = centre.new_page()
        sign_in(sato, server.base, re.compile("佐藤 花子"))
        # The urgent inbox is the first section of the start page; the new report is in it, with the time waited.
        first = sato.locator("main section").first
        assert first.locator("h2").inner_text().startswith("未確認の緊急報告")
        item = first.locator("li.urgent-item").filter(has_text=REASON)
        assert item.is_visible() and "child-11" in item.inner_text() and "時間経過" in item.inner_text()
        # child-11 was never referred to this provider: said so; the demo's report on child-02 (referred) is not.
        assert "紹介（委託）の記録はセンターにありません" in item.inner_text()
        referred = first.locator("li.urgent-item").filter(has_text="child-02")
        assert referred.count() == 1 and "紹介（委託）の記録" not in referred.inner_text()
        assert_accessible(sato, "centre start page with the urgent inbox")
        shoot(sato, "92-centre-urgent-inbox")
        before = len(reads(server, "child-11"))
        item.get_by_label(re.compile("事業者への返信")).fill("本日16時に家庭訪問します")
        item.get_by_role("button", name="確認済みにする").click()
        sato.wait_for_url(f"{server.base}/ui/")
        assert "報告を確認済みにしました" in sato.get_by_role("status").inner_text()
        assert not sato.locator("li.urgent-item").filter(has_text=REASON).count()
        assert len(reads(server, "child-11")) > before  # the acknowledgement read the child (recorded)
        shoot(sato, "93-centre-after-acknowledging")
        sato.goto(f"{server.base}/ui/referrals")
        assert sato.locator("tr").filter(has_text="F-2026-002").is_visible()
        assert "確認済み" in sato.locator("tr").filter(has_text=REASON).inner_text()
        assert_accessible(sato, "centre referrals")
        shoot(sato, "94-centre-referrals")
        # A bad referral: the field named in Japanese, nothing lost.
        refer = sato.locator("form[action='/ui/referrals/refer']")
        refer.get_by_label("児童ID").fill("child-02")
        refer.get_by_label("事業", exact=True).fill("一時預かり事業")
        refer.get_by_label("開始日").fill("")
        sato.locator("#r_start").evaluate("e => e.removeAttribute('required')")
        refer.get_by_label(re.compile("事業者に伝えること")).fill("双子の弟の預かりも相談中")
        refer.get_by_role("button", name="依頼を送る").click()
        assert sato.locator("#r_start-error").inner_text() == "開始日を入力してください"
        assert sato.locator("#r_summary").input_value() == "双子の弟の預かりも相談中"
        assert_accessible(sato, "centre referral form with an error")
        shoot(sato, "95-centre-referral-error")
    finally:
        centre.close()

    page.goto(f"{server.base}/ui/provider/referrals")
    row = page.locator("tr").filter(has_text=REASON)
    assert "確認済み" in row.inner_text() and "本日16時に家庭訪問します" in row.inner_text()
    assert "佐藤 花子" in row.inner_text()
    assert page.locator("tr").filter(has_text="F-2026-002").is_visible()
    shoot(page, "96-provider-sees-acknowledgement")
