"""Households (世帯, meetings-and-services.md §3) in a real browser: the caseworker links two siblings on a child's
page and sees the sibling's open case and new alert there, each sibling shown through one recorded read; a child
the centre may not link is refused next to its field with what was typed kept; the demo's ナカムラ household shows
on each child's page for the centre, and a school teacher's page of the same child shows no sibling and reads none."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest

from events.clock import JST
from tests.web.conftest import assert_accessible, shoot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.http]

CHILD, SIBLING = "child-10", "child-12"  # 小1 at やまなみ小 (no case); 中1 at 鶴見台中 (要支援 case K-2026-024)


def access_records(server, child: str) -> list[dict]:
    return json.loads(server.tsunagu("audit", "reads", child, "--json").stdout)["reads"]


def publish(server, tmp_path, envelope: dict) -> None:
    file = tmp_path / f"{envelope['id']}.jsonl"
    file.write_text(json.dumps(envelope, ensure_ascii=False) + "\n", encoding="utf-8")
    assert json.loads(server.tsunagu("publish", str(file), "--json").stdout)["accepted"] == 1


def test_the_caseworker_links_two_siblings_and_sees_the_siblings_case_and_alert(server, page, tmp_path):
    now = datetime.now(JST)
    publish(  # a new alert about the sibling, not yet taken up at a review
        server,
        tmp_path,
        {
            "id": f"web-test-household-alert-{now:%Y%m%d%H%M%S%f}",
            "kind": "absence.alert",
            "child": SIBLING,
            "source": "beppu-jhs-tsurumidai",
            "basis": "cwa-25-3",
            "to": "beppu-center",
            "at": (now - timedelta(hours=1)).isoformat(),
            "payload": {"reason": "consecutive_absence", "days": 4},
        },
    )
    sign_in(page, server.base, re.compile("佐藤 花子"))
    page.goto(f"{server.base}/ui/children/{CHILD}")
    section = page.locator("section.households")
    assert "この児童は世帯に登録されていません" in section.inner_text()
    page.locator("#hh-household").fill("H-WEB-1")
    page.locator("#hh-relation").select_option(label="きょうだい")
    assert_accessible(page, "child page with the household form")
    shoot(page, "h01-household-form")
    page.get_by_role("button", name="世帯に登録する").click()
    page.wait_for_url(f"{server.base}/ui/children/{CHILD}")
    assert "世帯「H-WEB-1」に登録しました" in page.get_by_role("status").first.inner_text()
    assert "世帯 H-WEB-1" in section.inner_text()

    # a made-up child: refused next to the field, what was typed kept
    page.locator("#hh1-child").fill("child-99")
    page.get_by_role("button", name="この世帯に加える").click()
    assert "センターだけです" in page.locator("#child-error").inner_text()
    assert page.get_by_label("児童（ハブの児童ID）").input_value() == "child-99"
    assert page.get_by_label("世帯番号").input_value() == "H-WEB-1"
    assert "センターだけです" in page.get_by_role("alert").inner_text()
    assert_accessible(page, "household form with an error")
    shoot(page, "h02-household-error")

    page.get_by_label("児童（ハブの児童ID）").fill(SIBLING)
    page.get_by_label("続柄").select_option(label="きょうだい")
    before = len(access_records(server, SIBLING))
    page.get_by_role("button", name="世帯に登録する").click()
    page.wait_for_url(f"{server.base}/ui/children/{CHILD}")
    table = section.locator("table").inner_text()
    assert SIBLING in table and "K-2026-024" in table and "要支援児童" in table
    assert "連続欠席 4日" in table
    records = access_records(server, SIBLING)
    assert len(records) == before + 1  # the sibling shown: one recorded read, with the person's name
    assert records[-1]["reader"]["user"] == "佐藤 花子 (sato)"
    assert_accessible(page, "child page with a sibling")
    shoot(page, "h03-household-sibling")

    # from the sibling's page, the first child shows in the same household
    page.goto(f"{server.base}/ui/children/{SIBLING}")
    assert CHILD in section.locator("table").inner_text()


def test_the_demo_household_shows_for_the_centre_and_never_for_a_school(server, page):
    sign_in(page, server.base, re.compile("鈴木 一郎"))  # a teacher at はまかぜ小, a member of child-14's case
    others = ("child-04", "child-16", "child-15")
    before = {c: len(access_records(server, c)) for c in others}
    page.goto(f"{server.base}/ui/children/child-14")
    main = page.locator("main").inner_text()
    assert "ケース共有" in main  # the teacher reads what was shared with the school
    assert "世帯" not in main and page.locator("section.households").count() == 0
    assert {c: len(access_records(server, c)) for c in others} == before  # no sibling read at all
    assert_accessible(page, "teacher's child page")
    shoot(page, "h04-teacher-no-sibling")

    page.context.clear_cookies()
    sign_in(page, server.base, re.compile("佐藤 花子"))
    page.goto(f"{server.base}/ui/children/child-14")
    table = page.locator("section.households table").inner_text()
    for child in others:
        assert child in table
    assert "K-2026-041" in table and "新生児（特定妊婦の子）" in table  # the newborn's case
    assert "別府市立鶴見台中学校 2026-10" in table  # the sister's overdue October report
    assert "母" in table
    assert_accessible(page, "centre's child page with the demo household")
    shoot(page, "h05-demo-household")
