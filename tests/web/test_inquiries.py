"""事前照会 in a real browser (meetings-and-services.md §1; issue 15): the centre sends a round for next week's
meeting (a due date after the meeting is refused next to its field), the school answers "変わりなし" for one child and
a safety scale of 3 with a concern for another, and the agenda puts the second under 要検討 with the answer shown
(the fall from the school's previous answer of 7 included); the start pages count what is waiting; axe on every
new page."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from events.clock import JST
from tests.web.conftest import assert_accessible, shoot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.http]

NO_CHANGE_CHILD, NO_CHANGE_CASE = "child-01", "K-2026-014"  # はまかぜ小 is a member, review due 2026-12-11
WORRY_CHILD, WORRY_CASE = "child-13", "K-2026-033"  # はまかぜ小 answered 7 in September, review due 2026-12-11
CONCERN = "月曜の朝、空腹を訴えて保健室に来ることが続いている。"


def test_the_centre_sends_a_round_the_school_answers_and_the_agenda_shows_it(server, page, browser):
    meeting = datetime.now(JST).date() + timedelta(days=7)  # the hub's day is Japan's

    # the centre: the start page counts the overdue inquiry of the demo's December round
    sign_in(page, server.base, re.compile("佐藤 花子"))
    overdue = page.locator("#inquiries-overdue")
    assert (
        "期限を過ぎた事前照会" in overdue.inner_text() and int(overdue.locator(".count-number").inner_text()[:-1]) >= 1
    )
    page.get_by_role("navigation", name="メニュー").get_by_role("link", name="事前照会").click()
    page.wait_for_url(f"{server.base}/ui/rounds/new")
    assert page.get_by_label("会議の日付").input_value() == meeting.isoformat()
    assert "期限超過" in page.locator("#outstanding-heading").inner_text()
    assert_accessible(page, "round form")
    shoot(page, "q01-round-form")

    page.get_by_label("回答期限").fill((meeting + timedelta(days=3)).isoformat())  # after the meeting: refused
    page.get_by_role("button", name="照会を送る").click()
    assert "回答期限は今日から会議の日付までの間" in page.locator("#due-error").inner_text()
    assert page.get_by_label("回答期限").get_attribute("aria-invalid") == "true"
    assert page.get_by_label("会議の日付").input_value() == meeting.isoformat()  # nothing lost
    assert_accessible(page, "round form with an error")
    shoot(page, "q02-round-error")

    page.get_by_label("回答期限").fill((meeting - timedelta(days=2)).isoformat())
    page.get_by_role("button", name="照会を送る").click()
    page.wait_for_url(f"{server.base}/ui/rounds/new")
    assert re.search(r"事前照会を \d+ 件送りました", page.get_by_role("status").first.inner_text())
    assert "別府市立はまかぜ小学校" in page.locator("table.data").inner_text()  # outstanding per member
    shoot(page, "q03-round-sent")

    # the school: its inbox, due first, then the two answers
    school = browser.new_context(locale="ja-JP", timezone_id="Asia/Tokyo", viewport={"width": 1280, "height": 900})
    spage = school.new_page()
    try:
        sign_in(spage, server.base, re.compile("鈴木 一郎"))
        assert "未回答" in spage.locator("#inquiries-waiting").inner_text()
        spage.get_by_role("navigation", name="メニュー").get_by_role("link", name="事前照会").click()
        spage.wait_for_url(f"{server.base}/ui/inquiries")
        waiting = spage.locator("table.data").inner_text()
        assert NO_CHANGE_CHILD in waiting and WORRY_CHILD in waiting
        assert_accessible(spage, "inbox")
        shoot(spage, "q04-school-inbox")

        spage.get_by_role("link", name=f"児童 {NO_CHANGE_CHILD}（ケース {NO_CHANGE_CASE}）の照会に回答する").click()
        spage.wait_for_url(re.compile(r"/ui/inquiries/Q-"))
        assert_accessible(spage, "answer form")
        shoot(spage, "q05-answer-form")
        spage.get_by_label(re.compile("前回から変わりなし")).check()
        spage.get_by_role("button", name="回答を送る").click()
        spage.wait_for_url(f"{server.base}/ui/inquiries")
        assert "回答しました" in spage.get_by_role("status").first.inner_text()

        spage.get_by_role("link", name=f"児童 {WORRY_CHILD}（ケース {WORRY_CASE}）の照会に回答する").click()
        spage.wait_for_url(re.compile(r"/ui/inquiries/Q-"))
        spage.get_by_label("心配なこと（あれば）").fill(CONCERN)
        spage.get_by_label("3", exact=True).check()
        spage.get_by_role("button", name="回答を送る").click()  # no 様子 and no tick: named, nothing lost
        assert "様子を入力してください" in spage.locator("#observations-error").inner_text()
        assert spage.get_by_label("心配なこと（あれば）").input_value() == CONCERN
        assert spage.get_by_label("3", exact=True).is_checked()
        assert_accessible(spage, "answer with an error")
        shoot(spage, "q06-answer-error")
        spage.get_by_label(re.compile("^様子")).fill("元気がなく、休み時間もひとりでいる。")
        spage.get_by_label("対応したこと").fill("養護教諭が朝に声をかけ、補食を用意した。")
        spage.get_by_label("食事（空腹・給食の食べ方）").check()
        spage.get_by_role("button", name="回答を送る").click()
        spage.wait_for_url(f"{server.base}/ui/inquiries")
        assert "回答済みの照会" in spage.locator("main").inner_text()
        shoot(spage, "q07-school-answered")
    finally:
        school.close()

    # the centre's agenda: the second child under 要検討 with the answer; the first answered "変わりなし"
    page.goto(f"{server.base}/ui/agenda?date={meeting.isoformat()}")
    attention = page.locator("section.agenda-group").filter(has=page.get_by_role("heading", name=re.compile("^要検討")))
    row = attention.locator("article.agenda-case").filter(has_text=WORRY_CASE)
    text = row.inner_text()
    assert CONCERN in text and "別府市立はまかぜ小学校" in text
    assert "安全の尺度 3（前回 7 から −4）" in text
    assert "照会への回答に心配なこと" in text and "安全の尺度が3以下" in text
    first = page.locator("article.agenda-case").filter(has_text=NO_CHANGE_CASE)
    assert "変わりなし" in first.inner_text()
    assert_accessible(page, "agenda with answers")
    shoot(page, "q08-agenda")
