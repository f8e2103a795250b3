"""Case work as forms in a real browser (ui.md, centre item 3; issue 14 item 1): the caseworker registers a case for
a demo child, assigns a school, shares to the case, records a review (a date not after today is refused next to
its field, nothing typed lost) and closes the case; the school then reads what was shared under rule CASE while
the case was open; a school's session cannot open the case page; a form without its CSRF token is refused."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.web.conftest import assert_accessible, shoot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.http]

CHILD = "child-10"  # 小1 at 別府市立やまなみ小学校, no case in the demo
CASE = "K-2026-WEB-1"
SUMMARY = "家庭訪問の結果、母の就労で朝の見守りが手薄。学校は登校時の様子を見てください。"


def access_records(server, child: str) -> list[dict]:
    return json.loads(server.tsunagu("audit", "reads", child, "--json").stdout)["reads"]


def test_the_caseworker_registers_assigns_shares_reviews_and_closes_a_case(server, page):
    sign_in(page, server.base, re.compile("佐藤 花子"))
    page.goto(f"{server.base}/ui/children/{CHILD}")
    page.get_by_role("link", name="この児童のケースを登録する").click()
    page.wait_for_url(re.compile(r"/ui/cases/new\?child="))
    assert page.get_by_label("児童ID").input_value() == CHILD
    page.get_by_role("button", name="ケースを登録する").click()  # no category, no 相談種別: both named
    summary = page.get_by_role("alert").inner_text()
    assert "要対協の区分" in summary and "相談種別を一覧から選んでください" in summary
    assert page.get_by_label("児童ID").input_value() == CHILD  # nothing lost
    assert_accessible(page, "register with errors")
    shoot(page, "k01-register-errors")

    page.get_by_label("要支援児童").check()
    page.get_by_label("相談種別").select_option(label="育児困難")
    page.get_by_label(re.compile("ケース番号")).fill(CASE)
    assert_accessible(page, "register")
    shoot(page, "k02-register-filled")
    page.get_by_role("button", name="ケースを登録する").click()
    page.wait_for_url(f"{server.base}/ui/cases/{CASE}")
    assert f"ケース {CASE} を登録しました" in page.get_by_role("status").first.inner_text()
    facts = page.locator(".case-facts").inner_text()
    assert "要支援児童" in facts and "育児困難" in facts and "対応中" in facts
    assert "メンバーはまだいません" in page.locator("main").inner_text()
    assert_accessible(page, "case registered")
    shoot(page, "k03-case-registered")

    page.get_by_label("追加する機関").select_option(label="別府市立やまなみ小学校")
    page.get_by_role("button", name="メンバーに追加する").click()
    page.wait_for_url(f"{server.base}/ui/cases/{CASE}")
    assert "別府市立やまなみ小学校をケース" in page.get_by_role("status").first.inner_text()
    assert page.get_by_role("button", name="別府市立やまなみ小学校をメンバーから外す").is_visible()

    page.get_by_label("共有する内容").fill(SUMMARY)
    page.get_by_role("button", name="メンバーに共有する").click()
    page.wait_for_url(f"{server.base}/ui/cases/{CASE}")
    assert "メンバーに共有しました" in page.get_by_role("status").first.inner_text()
    assert SUMMARY in page.locator(".timeline").inner_text()  # in the case's history

    before = len(access_records(server, CHILD))
    page.get_by_label("検討結果（方針）").fill("学校の見守りを継続し、来月の実務者会議で再検討する。")
    page.get_by_label("次回検討日").fill("2020-01-10")  # not after today: refused next to the field
    page.get_by_role("button", name="検討結果を記録する").click()
    error = page.locator("#review-next_review-error")
    assert "次回検討日は今日" in error.inner_text()
    assert page.get_by_label("次回検討日").get_attribute("aria-invalid") == "true"
    assert "次回検討日は今日" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("検討結果（方針）").input_value().startswith("学校の見守りを継続")  # nothing lost
    assert len(access_records(server, CHILD)) > before  # the command's check and the page: recorded reads
    assert_accessible(page, "review with error")
    shoot(page, "k04-review-date-error")

    page.get_by_label("次回検討日").fill("2099-01-15")
    page.get_by_role("button", name="検討結果を記録する").click()
    page.wait_for_url(f"{server.base}/ui/cases/{CASE}")
    assert "検討結果を記録しました" in page.get_by_role("status").first.inner_text()
    facts = page.locator(".case-facts").inner_text()
    assert "学校の見守りを継続" in facts and "2099-01-15" in facts
    assert_accessible(page, "case after review")
    shoot(page, "k05-case-reviewed")

    page.get_by_role("button", name="終結する").click()  # nothing filled in: reason and meeting both named
    errors = page.get_by_role("alert").inner_text()
    assert "終結の理由を入力してください" in errors and "終結を決めた会議" in errors
    page.get_by_label("終結の理由").fill("母の就労が安定し、朝の見守りの体制ができたため。")
    page.get_by_label("終結を決めた会議").fill("2026-12-11 実務者会議")
    page.get_by_role("button", name="終結する").click()
    page.wait_for_url(f"{server.base}/ui/children/{CHILD}")
    assert f"ケース {CASE} を終結しました" in page.get_by_role("status").first.inner_text()
    row = page.locator("tr", has_text=CASE)
    assert "終結" in row.inner_text()
    assert_accessible(page, "child after closing")
    shoot(page, "k06-child-after-close")

    row.get_by_role("link", name=CASE).click()  # the closed case: facts and history, no actions
    page.wait_for_url(f"{server.base}/ui/cases/{CASE}")
    assert "2026-12-11 実務者会議" in page.locator(".case-facts").inner_text()
    assert page.get_by_role("button", name="終結する").count() == 0
    assert page.get_by_role("button", name="メンバーに共有する").count() == 0
    assert_accessible(page, "closed case")
    shoot(page, "k07-closed-case")

    page.goto(f"{server.base}/ui/ledger?status=closed")
    page.get_by_role("link", name=CASE).click()  # the ledger links to the case page
    page.wait_for_url(f"{server.base}/ui/cases/{CASE}")


def test_a_case_page_is_the_registrars_only(server, page):
    sign_in(page, server.base, re.compile("鈴木 一郎"))  # a teacher of はまかぜ小学校, a member of K-2026-014
    before = len(access_records(server, "child-01"))
    for path in ("/ui/cases/K-2026-014", "/ui/cases/new?child=child-01"):
        response = page.goto(f"{server.base}{path}")
        assert response.status == 403, path
        assert "K-2026-014" not in page.locator("main").inner_text().replace(path, "")
    assert_accessible(page, "case refused (school)")
    shoot(page, "k08-case-refused-school")
    assert len(access_records(server, "child-01")) == before  # refused before any read

    page.context.clear_cookies()
    sign_in(page, server.base, re.compile("佐藤 花子"))
    response = page.goto(f"{server.base}/ui/cases/NO-SUCH-CASE")
    assert response.status == 404
    assert_accessible(page, "unknown case")


def test_a_case_form_without_its_token_is_refused(server, page):
    sign_in(page, server.base, re.compile("佐藤 花子"))
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    response = httpx.post(
        f"{server.base}/ui/cases/K-2026-014/share",
        data={"summary": "トークンなし"},
        cookies=cookies,
        follow_redirects=False,
    )
    assert response.status_code == 403
    page.goto(f"{server.base}/ui/cases/K-2026-014")
    assert "トークンなし" not in page.locator("main").inner_text()


def test_the_caseworker_changes_the_type_shares_a_proposal_and_transfers_a_case(server, page):
    sign_in(page, server.base, re.compile("佐藤 花子"))
    page.goto(f"{server.base}/ui/cases/new?child={CHILD}")
    page.get_by_label("要保護児童").check()
    page.get_by_label("相談種別").select_option(label="養育不適切（ネグレクト傾向）")
    page.get_by_label(re.compile("ケース番号")).fill("K-2026-WEB-2")
    page.get_by_role("button", name="ケースを登録する").click()
    page.wait_for_url(f"{server.base}/ui/cases/K-2026-WEB-2")

    page.get_by_label("新しい相談種別").select_option(label="養育不適切（ネグレクト傾向）（現在）")
    page.get_by_role("button", name="相談種別を変更する").click()  # the same type: the command refuses it
    assert "相談種別はすでに" in page.locator("#type-case_type-error").inner_text()
    page.get_by_label("新しい相談種別").select_option(label="虐待（ネグレクト）")
    page.get_by_role("button", name="相談種別を変更する").click()
    page.wait_for_url(f"{server.base}/ui/cases/K-2026-WEB-2")
    assert "虐待（ネグレクト）" in page.get_by_role("status").first.inner_text()
    assert "変更の経過" in page.locator(".case-facts").inner_text()

    page.get_by_label("共有する内容").fill("次回会議では見守りの継続を提案します。")
    page.get_by_label(re.compile("会議前の提案")).check()
    page.get_by_role("button", name="メンバーに共有する").click()  # a proposal without its meeting's date
    assert "会議の日付を入力してください" in page.locator("#share-meeting_date-error").inner_text()
    assert page.get_by_label(re.compile("会議前の提案")).is_checked()  # nothing lost
    page.get_by_label("会議の日付（提案のとき）").fill("2099-01-20")
    page.get_by_role("button", name="メンバーに共有する").click()
    page.wait_for_url(f"{server.base}/ui/cases/K-2026-WEB-2")
    history = page.locator(".timeline").inner_text()
    assert "会議前の提案" in history and "2099-01-20" in history

    page.get_by_role("button", name="移管する").click()
    assert "移管先のこども家庭センターを選んでください" in page.get_by_role("alert").inner_text()
    page.get_by_label("移管先のこども家庭センター").select_option(label="大分市こども家庭センター")
    page.get_by_role("button", name="移管する").click()
    page.wait_for_url(f"{server.base}/ui/cases/K-2026-WEB-2")
    assert "大分市こども家庭センターへ移管しました" in page.get_by_role("status").first.inner_text()
    assert "移管" in page.locator(".case-facts").inner_text()
    assert page.get_by_role("button", name="メンバーに共有する").count() == 0  # only closing is left
    assert page.get_by_role("button", name="終結する").is_visible()
    assert_accessible(page, "transferred case")
    shoot(page, "k09-transferred-case")
