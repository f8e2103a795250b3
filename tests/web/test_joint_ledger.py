"""The 児童相談所's side of the joint ledger in a real browser (issue 14 item 4): 伊藤 健 records the severity and
status of the abuse case of child-01 and starts 一時保護; the table shows both; a refusal stands next to its field;
a school may not open the page; a form without its CSRF token is refused."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.web.conftest import assert_accessible, shoot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.http]

CASE = "K-2026-014"


def row(page):
    return page.locator("table.data tbody tr", has_text=CASE)


def test_the_jiso_records_a_ledger_update_and_starts_protection(server, page):
    sign_in(page, server.base, re.compile("伊藤 健"))
    page.get_by_role("link", name="共同管理台帳").click()
    assert page.url.startswith(f"{server.base}/ui/joint-ledger")
    assert_accessible(page, "joint ledger")
    shoot(page, "j01-joint-ledger")

    # Nothing given: refused by the command, next to the row's severity field.
    page.locator(f"[id='{CASE}-severity']").fill("")
    page.locator(f"[id='{CASE}-status']").fill("")
    row(page).get_by_role("button", name="記録する").click()
    error = page.locator(f"[id='{CASE}-severity-error']")
    assert "重症度" in error.inner_text()
    assert page.locator(f"[id='{CASE}-severity']").get_attribute("aria-invalid") == "true"
    assert_accessible(page, "joint ledger refused")
    shoot(page, "j02-joint-ledger-refused")

    page.locator(f"[id='{CASE}-severity']").fill("中度")
    page.locator(f"[id='{CASE}-status']").fill("在宅支援（週1回訪問）")
    row(page).get_by_role("button", name="記録する").click()
    assert "重症度・状況を共同管理台帳に記録しました" in page.locator("main").inner_text()
    row(page).get_by_role("button", name="一時保護を開始する").click()
    assert "一時保護の開始を記録しました" in page.locator("main").inner_text()
    text = row(page).inner_text()
    assert "中度" in text and "在宅支援（週1回訪問）" in text and "一時保護中" in text
    assert row(page).get_by_role("button", name="一時保護を解除する").count() == 1
    assert_accessible(page, "joint ledger updated")
    shoot(page, "j03-joint-ledger-updated")

    # The old address leads here for a 児相, the filters kept.
    page.goto(f"{server.base}/ui/ledger?status=open")
    assert page.url == f"{server.base}/ui/joint-ledger?status=open"
    page.emulate_media(media="print")
    assert not page.locator("form.ledger-form").first.is_visible()
    shoot(page, "j04-joint-ledger-print")
    page.emulate_media(media="screen")


def test_a_school_cannot_open_the_joint_ledger(server, page):
    sign_in(page, server.base, re.compile("鈴木 一郎"))
    for path in ("/ui/joint-ledger", "/ui/joint-ledger?status=open"):
        response = page.goto(f"{server.base}{path}")
        assert response.status == 403, path
        assert CASE not in page.locator("body").inner_text()
    assert_accessible(page, "joint ledger refused (school)")
    shoot(page, "j05-joint-ledger-refused-school")


def test_a_centre_cannot_open_the_joint_ledger(server, page):
    sign_in(page, server.base, re.compile("佐藤 花子"))
    response = page.goto(f"{server.base}/ui/joint-ledger")
    assert response.status == 403


def test_a_joint_ledger_form_without_its_token_is_refused(server, page):
    sign_in(page, server.base, re.compile("伊藤 健"))
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    response = httpx.post(
        f"{server.base}/ui/joint-ledger/{CASE}/update",
        data={"severity": "トークンなし"},
        cookies=cookies,
        follow_redirects=False,
    )
    assert response.status_code == 403
    response = httpx.post(
        f"{server.base}/ui/joint-ledger/{CASE}/protection",
        data={"action": "end"},
        cookies=cookies,
        follow_redirects=False,
    )
    assert response.status_code == 403
    page.goto(f"{server.base}/ui/joint-ledger")
    assert "トークンなし" not in page.locator("main").inner_text()
