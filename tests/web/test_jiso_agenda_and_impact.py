"""Issue 14's remaining journeys in a real browser: the auditor's policy-impact page (counts only, never case
content); the 児相's child page with its joint-ledger rows; the 児相 starts 一時保護 and the centre's agenda then
lists the case under 要検討; a school's valid form token does not let it act on a centre's case."""

from __future__ import annotations

import re

import pytest

from tests.web.conftest import assert_accessible, shoot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.http]

CASE = "K-2026-014"  # child-01's case, 確認のみ on the demo's agenda until a 一時保護 starts
CONTENT = ("夜ごはんがなかった", "ヤマモト", "冷蔵庫", "ネグレクトの疑い", "安全確認")  # child-01's content


def test_the_auditor_sees_the_impact_of_a_setting_and_of_policy_version_1(server, page):
    for org, role, user in (
        ("chuo-jiso", "caseworker", "伊藤 健 (ito)"),
        ("beppu-center", "caseworker", "佐藤 花子 (sato)"),
    ):
        server.tsunagu("timeline", "child-01", "--org", org, "--role", role, "--purpose", "support", "--user", user)
    sign_in(page, server.base, re.compile("渡辺 直子"))
    page.get_by_role("navigation", name="メニュー").get_by_role("link", name="規則・設定の影響").click()
    page.wait_for_url(f"{server.base}/ui/audit/impact")
    assert_accessible(page, "impact form")

    # a setting chosen without its value: named next to the field, the choice kept
    page.get_by_label("設定を変えた場合").check()
    page.get_by_label("設定", exact=True).select_option("emergency_hours")
    page.get_by_role("button", name="影響を調べる").click()
    assert "新しい値を入力してください" in page.locator("#value-error").inner_text()
    assert page.get_by_role("alert").is_visible()
    assert page.get_by_label("設定", exact=True).input_value() == "emergency_hours"
    page.get_by_label("新しい値").fill("1000")
    page.get_by_role("button", name="影響を調べる").click()
    assert page.locator("#value-error").is_visible() and page.get_by_label("新しい値").input_value() == "1000"
    assert_accessible(page, "impact refused")
    shoot(page, "i01-impact-refused")

    # the joint ledger off: the 児相's reads of child-01 would differ
    page.get_by_label("設定", exact=True).select_option("joint_ledger")
    page.get_by_label("新しい値").fill("false")
    page.get_by_role("button", name="影響を調べる").click()
    table = page.locator("#impact-table")
    assert "child-01" in table.inner_text() and "大分県中央児童相談所" in table.inner_text()
    assert "児童相談所との共同管理台帳" in page.locator("#impact-result").inner_text()
    text = page.locator("main").inner_text()
    for words in CONTENT:
        assert words not in text, words
    assert_accessible(page, "impact of a setting")
    shoot(page, "i02-impact-setting")

    # policy version 1 against 2
    page.get_by_label("読み取り規則の第1版と第2版").check()
    page.get_by_role("button", name="影響を調べる").click()
    assert "第1版で判定し直した場合" in page.locator("#impact-result").inner_text()
    assert re.search(r"判定し直した閲覧 \d+ 件", page.locator("#impact-summary").inner_text())
    shoot(page, "i03-impact-version")
    queries = server.tsunagu("audit", "queries", "beppu-audit", "--json").stdout
    assert "policy_impact" in queries  # in the auditor's trail

    page.context.clear_cookies()
    sign_in(page, server.base, re.compile("佐藤 花子"))
    response = page.goto(f"{server.base}/ui/audit/impact?mode=version")
    assert response is not None and response.status == 403


def test_the_jiso_starts_protection_and_the_centre_finds_the_case_under_attention(server, page):
    sign_in(page, server.base, re.compile("佐藤 花子"))
    page.goto(f"{server.base}/ui/agenda?date=2026-12-31")
    groups = page.locator("section.agenda-group")
    assert CASE in groups.filter(has_text="確認のみ").inner_text()  # before: 確認のみ

    page.context.clear_cookies()
    sign_in(page, server.base, re.compile("伊藤 健"))
    page.goto(f"{server.base}/ui/children/child-01")
    rows = page.locator("#joint-ledger-rows")
    assert CASE in rows.inner_text() and "別府市こども家庭センター" in rows.inner_text()
    assert "一時保護中" not in rows.inner_text()
    assert_accessible(page, "child page (jiso)")
    shoot(page, "i04-child-jiso")
    rows.get_by_role("link", name=re.compile(f"共同管理台帳で.*{CASE}")).click()
    page.wait_for_url(re.compile(r"/ui/joint-ledger"))
    row = page.locator(f"[id='case-{CASE}']")
    row.get_by_role("button", name="一時保護を開始する").click()
    assert "一時保護の開始を記録しました" in page.locator("main").inner_text()
    page.goto(f"{server.base}/ui/children/child-01")
    assert "一時保護中" in page.locator("#joint-ledger-rows").inner_text()
    shoot(page, "i05-child-jiso-protected")

    page.context.clear_cookies()
    sign_in(page, server.base, re.compile("佐藤 花子"))
    page.goto(f"{server.base}/ui/agenda?date=2026-12-31")
    attention = page.locator("section.agenda-group").filter(has_text="要検討").first
    assert CASE in attention.inner_text()
    assert CASE not in page.locator("section.agenda-group").filter(has_text="確認のみ").inner_text()
    assert_accessible(page, "agenda after protection")
    shoot(page, "i06-agenda-attention")
    response = page.goto(f"{server.base}/ui/children/child-01")
    assert response.status == 200 and page.locator("#joint-ledger-rows").count() == 0  # the 児相's section only


def test_a_schools_form_token_does_not_act_on_a_centres_case(server, page):
    sign_in(page, server.base, re.compile("鈴木 一郎"))  # a member of K-2026-014, not its registrar
    page.goto(f"{server.base}/ui/send")
    token = page.locator("input[name=csrftoken]").first.get_attribute("value")
    for path, data in (
        (f"/ui/cases/{CASE}/share", {"summary": "学校からの書き込み"}),
        (f"/ui/cases/{CASE}/review", {"decision": "学校からの書き込み", "next_review": "2027-01-10"}),
        (f"/ui/joint-ledger/{CASE}/update", {"severity": "学校からの書き込み"}),
        (f"/ui/joint-ledger/{CASE}/protection", {"action": "start"}),
    ):
        response = page.request.post(f"{server.base}{path}", form={"csrftoken": token, **data}, max_redirects=0)
        assert response.status in (403, 404), (path, response.status)
        assert "学校からの書き込み" not in response.text()
    timeline = server.tsunagu(
        "timeline", "child-01", "--org", "beppu-center", "--role", "caseworker", "--purpose", "support"
    )
    assert "学校からの書き込み" not in timeline.stdout
