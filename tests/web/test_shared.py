"""What we shared, and who read it, in the browser: a school sends a concern, the centre's caseworker opens the
child, and the school's /ui/shared shows the receipt; the centre sees every read of what it published."""

from __future__ import annotations

import re

import pytest

from tests.web.conftest import assert_accessible, shoot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.http]


def test_a_school_sees_that_the_centre_read_its_concern(server, browser):
    school = browser.new_context(locale="ja-JP", timezone_id="Asia/Tokyo", viewport={"width": 1280, "height": 900})
    centre = browser.new_context(locale="ja-JP", timezone_id="Asia/Tokyo", viewport={"width": 1280, "height": 900})
    try:
        page = school.new_page()
        sign_in(page, server.base, re.compile("鈴木 一郎"))
        page.get_by_role("link", name="送った記録をセンター等が確認したか見る").click()
        page.wait_for_url(f"{server.base}/ui/shared")
        page.goto(f"{server.base}/ui/send")
        page.get_by_label("ハブの児童ID").check()
        page.get_by_label("児童の番号", exact=True).fill("child-01")
        page.get_by_role("textbox", name="内容").fill("体育の着替えのとき、背中に新しいあざが見えた。")
        page.get_by_role("button", name="送信する").click()
        page.wait_for_url(f"{server.base}/ui/send")

        reader = centre.new_page()
        sign_in(reader, server.base, re.compile("佐藤 花子"))
        reader.goto(f"{server.base}/ui/children/child-01")
        assert "背中に新しいあざ" in reader.locator("main").inner_text()

        page.goto(f"{server.base}/ui/shared?child=child-01")
        text = page.locator("main").inner_text()
        assert re.search(r"居住地のこども家庭センターが令和\d+年\d+月\d+日.*に確認しました", text), text
        assert text.count("確認しました") >= 1 and "児童相談所" not in text and "あざ" not in text
        assert_accessible(page, "shared receipts")
        shoot(page, "shared-01-school-receipts")
        page.locator("main .read-receipt a").first.click()
        assert "確認しました" in page.locator("main").inner_text()
        assert_accessible(page, "shared event")
        shoot(page, "shared-02-school-event")
        page.goto(f"{server.base}/ui/shared?since=5月")
        assert page.locator("#since-error").is_visible() and "入力に誤りがあります" in page.locator("main").inner_text()
        assert_accessible(page, "shared errors")

        reader.goto(f"{server.base}/ui/")
        reader.get_by_role("link", name="送った記録をほかの機関が閲覧した記録を見る").click()
        assert_accessible(reader, "centre shared")
        shoot(reader, "shared-03-centre-reads")
    finally:
        school.close()
        centre.close()
