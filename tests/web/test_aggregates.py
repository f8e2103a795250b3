"""Planners' aggregates in the browser (issue 17 §3, "Done when"): a prefecture office's planner signs in, opens
the spring-survey table of the year and downloads it for Excel, then the month table and chart; no count under 5
of another municipality anywhere (page or CSV), no child, case or person; axe on each page; a centre sees its own
small counts; a school is refused."""

from __future__ import annotations

import csv
import io
import re

import pytest

from tests.web.conftest import assert_accessible, shoot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.http]

NO_CHILD = re.compile(r"child-\d|bg-|K-\d|K-2026")


def numbers(cells: list[str]) -> list[int]:
    return [int(c) for c in cells if c.isdigit()]


def body_cells(page, table: str) -> list[list[str]]:
    return [
        [c.strip() for c in row.locator("th, td").all_inner_texts()] for row in page.locator(f"{table} tbody tr").all()
    ]


def test_a_prefecture_planner_reads_and_downloads_the_survey_without_small_cells(server, page):
    sign_in(page, server.base, re.compile("松本 彩"))
    shoot(page, "aggregates-01-start")
    assert page.get_by_label("児童ID").count() == 0  # a prefecture office opens no child
    page.get_by_role("link", name=re.compile("年度の市町村調査表を見る")).click()
    page.wait_for_url(re.compile(r"/ui/aggregates/survey"))
    main = page.locator("main").inner_text()
    rows = body_cells(page, "#survey-table")
    names = [r[0] for r in rows]
    assert {"別府市", "大分市", "中津市", "日出町", "計"} <= set(names), names
    assert not any(0 < n < 5 for row in rows for n in numbers(row[1:])), rows
    assert "<5" in main and not NO_CHILD.search(main)
    nakatsu = next(r for r in rows if r[0] == "中津市")
    assert nakatsu[1] == "40"  # 要対協ケースの新規登録 of the year, shown whole
    # the 年度 is in progress: a state at month end is this month's, not March's (what is written ahead for it)
    header = [t.strip() for t in page.locator("#survey-table thead th").all_inner_texts()]
    assert "月末に検討期限を過ぎたケース（今月末）" in header and not any("年度末" in h for h in header), header
    assert_accessible(page, "survey")
    shoot(page, "aggregates-02-survey")

    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("CSV でダウンロード")).click()
    data = open(download.value.path(), "rb").read()
    assert data.startswith("\ufeff".encode())
    table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert table[0][0] == "市町村" and table[-1][0] == "計"
    assert [r[0] for r in table[1:]] == names
    assert not any(0 < n < 5 for row in table[1:] for n in numbers(row[1:])), table
    assert not NO_CHILD.search(data.decode("utf-8-sig"))

    page.get_by_role("link", name="月ごとの集計を見る").click()
    page.get_by_label("集計項目").select_option("cases.open")
    page.get_by_label("開始月").fill("2026-04")
    page.get_by_label("終了月").fill("2026-11")
    page.get_by_role("button", name="表示する").click()
    page.wait_for_url(re.compile(r"measure=cases.open"))
    rows = body_cells(page, "#aggregates-table")
    assert len(rows[0]) == 1 + 8 + 1 and not any(0 < n < 5 for row in rows for n in numbers(row[1:])), rows
    assert page.locator("figure.chart svg rect.chart-bar").count() == 8 * 8
    # a level's row total is its last month-end (期末), never the sum of the month-ends
    assert page.locator("#aggregates-table thead th").last.inner_text().strip() == "期末"
    assert all(r[-1] == r[-2] for r in rows), rows
    # a hidden cell is a hatched box whose text alternative says 秘匿, never drawn like a zero
    hidden = page.locator("figure.chart svg rect.chart-hidden")
    assert hidden.count() > 0
    assert all("秘匿" in t for t in hidden.locator("title").all_text_contents())
    assert page.locator("figure.chart svg rect.chart-zero title").all_text_contents() == [
        t for t in page.locator("figure.chart svg rect.chart-bar title").all_text_contents() if t.endswith(": 0")
    ]
    assert page.locator("figure.chart svg pattern#chart-hatch").count() == 1
    assert page.locator("[style]").count() == 0  # nothing the CSP would block
    assert not NO_CHILD.search(page.locator("main").inner_text())
    assert_accessible(page, "aggregates")
    shoot(page, "aggregates-03-month-table")
    page.get_by_label("単位").select_option("region")
    page.get_by_role("button", name="表示する").click()
    assert "東部圏域" in page.locator("#aggregates-table").inner_text()
    assert_accessible(page, "aggregates by region")
    shoot(page, "aggregates-04-regions")


def test_a_centre_sees_its_own_small_counts_and_a_school_is_refused(server, browser):
    context = browser.new_context(locale="ja-JP", timezone_id="Asia/Tokyo", viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        sign_in(page, server.base, re.compile("佐藤 花子"))
        page.get_by_role("link", name="集計", exact=True).click()
        rows = body_cells(page, "#aggregates-table")
        own = next(r for r in rows if r[0].startswith("別府市"))
        assert "（自市町村）" in own[0] and "<5" not in own and "秘匿" not in own
        others = [n for r in rows if not r[0].startswith(("別府市", "計")) for n in numbers(r[1:])]
        assert not any(0 < n < 5 for n in others)
        shoot(page, "aggregates-05-centre")
        page.get_by_role("button", name="ログアウト").click()
        sign_in(page, server.base, re.compile("鈴木 一郎"))
        response = page.goto(f"{server.base}/ui/aggregates")
        assert response is not None and response.status == 403
        assert "集計を表示できません" in page.locator("main").inner_text()
    finally:
        context.close()
