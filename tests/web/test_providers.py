"""委託事業者 in a real browser (issue 14 item 5): the provider sends a visit report about a child by hub id to the
centre that commissioned it and is told only 受付; bad input comes back named next to its field with nothing
lost; the centre's caseworker then reads the report on the child's page under the rule 直接の提供."""

from __future__ import annotations

import json
import re

import pytest

from tests.web.conftest import assert_accessible, shoot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.http]


def reads(server, child: str) -> list[dict]:
    return json.loads(server.tsunagu("audit", "reads", child, "--json").stdout)["reads"]


def test_a_provider_sends_a_visit_report_and_the_centre_reads_it_as_direct(server, browser, page):
    sign_in(page, server.base, re.compile("中村 由美"))
    assert_accessible(page, "start (provider)")
    shoot(page, "70-start-provider")
    page.get_by_role("navigation").get_by_role("link", name="委託元への報告").click()
    page.wait_for_url(f"{server.base}/ui/provider")
    assert page.locator("#v_to option:checked").inner_text() == "別府市こども家庭センター"
    assert_accessible(page, "provider forms")
    shoot(page, "71-provider-forms")

    form = page.locator("form[action='/ui/provider/visit']")
    form.get_by_label("児童の番号", exact=True).fill("child-01")
    form.get_by_label("訪問日").fill("2026-11-20")
    form.get_by_label("訪問時の様子").fill("")
    observations = "訪問5回目。本人は元気。母は夜眠れていないと話す。"
    page.locator("#observations").evaluate("e => e.removeAttribute('required')")
    form.get_by_role("button", name="訪問の報告を送信する").click()
    assert page.locator("#observations-error").inner_text() == "訪問時の様子を入力してください"
    assert page.locator("#v_who").input_value() == "child-01"  # nothing lost
    assert page.locator("#v_date").input_value() == "2026-11-20"
    assert_accessible(page, "provider form with errors")
    shoot(page, "72-provider-errors")

    page.locator("#observations").fill(observations)
    page.get_by_role("button", name="訪問の報告を送信する").click()
    receipt = page.get_by_role("status")
    assert "訪問の報告を受け付けました" in receipt.inner_text()
    assert "別府市こども家庭センター" in receipt.inner_text()
    text = page.locator("main").inner_text()
    assert "保留" not in text and "公開" not in text  # a provider is told 受付, nothing of what the hub knows
    assert_accessible(page, "provider receipt")
    shoot(page, "73-provider-receipt")

    centre = browser.new_context(locale="ja-JP", timezone_id="Asia/Tokyo", viewport={"width": 1280, "height": 900})
    try:
        sato = centre.new_page()
        sign_in(sato, server.base, re.compile("佐藤 花子"))
        before = len(reads(server, "child-01"))  # after the start page's own reads
        sato.goto(f"{server.base}/ui/children/child-01")
        entry = sato.locator("li, tr, article").filter(has_text=observations).last
        assert entry.is_visible()
        assert "直接の提供" in entry.inner_text()
        assert reads(server, "child-01")[-1]["reader"]["user"] == "佐藤 花子 (sato)"
        assert len(reads(server, "child-01")) == before + 1
        assert_accessible(sato, "child page with the visit report")
        shoot(sato, "74-centre-reads-visit-report")
    finally:
        centre.close()


def test_a_usage_report_with_its_end_before_its_start_is_refused_next_to_the_field(server, page):
    sign_in(page, server.base, re.compile("中村 由美"))
    page.goto(f"{server.base}/ui/provider")
    form = page.locator("form[action='/ui/provider/usage']")
    form.get_by_label("児童の番号", exact=True).fill("child-01")
    form.get_by_label("利用している事業").fill("子育て短期支援事業")
    form.get_by_label("利用開始日").fill("2026-11-01")
    form.get_by_label("利用終了日（終了したとき）").fill("2026-10-01")
    form.get_by_role("button", name="利用状況を送信する").click()
    assert page.locator("#u_until-error").inner_text() == "利用終了日は利用開始日より後の日にしてください"
    assert page.locator("#service").input_value() == "子育て短期支援事業"
    page.locator("#u_until").fill("")
    page.get_by_role("button", name="利用状況を送信する").click()
    assert "利用状況の報告を受け付けました" in page.get_by_role("status").inner_text()
    shoot(page, "75-provider-usage-receipt")


def test_a_school_cannot_use_the_provider_page(server, page):
    sign_in(page, server.base, re.compile("鈴木 一郎"))
    answer = page.goto(f"{server.base}/ui/provider")
    assert answer is not None and answer.status == 403
