"""The centre's pages in a real browser (ui.md, "Centre"; issue 13 item 4): the start page's counts, a child's
page with cases and plans, the ledger, the agenda printed, the linking queue with a link, transfers, lists; and a
school that may not open them."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest

from events.clock import JST
from tests.web.conftest import assert_accessible, shoot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.http]

WAITING_NUMBER = "H-2026-9001"


def access_records(server, child: str) -> list[dict]:
    return json.loads(server.tsunagu("audit", "reads", child, "--json").stdout)["reads"]


def publish_waiting_concern(server, tmp_path) -> None:
    """A school's concern naming the child by a number no centre has linked yet: it waits in the queue."""
    envelope = {
        "id": "web-test-waiting-concern-1",
        "kind": "concern.reported",
        "local_child": WAITING_NUMBER,
        "source": "beppu-es-hamakaze",
        "basis": "cwa-21-10-5",
        "at": "2026-11-30T10:00:00+09:00",
        "payload": {"summary": "朝から表情が暗く、給食をほとんど食べない日が続いている"},
    }
    file = tmp_path / "waiting.jsonl"
    file.write_text(json.dumps(envelope, ensure_ascii=False) + "\n", encoding="utf-8")
    result = server.tsunagu("publish", str(file), "--json")
    summary = json.loads(result.stdout)
    assert summary["accepted"] == 0 and summary["rejected"] == [], summary  # neither accepted nor refused: waiting


def test_the_caseworker_sees_the_alert_opens_the_child_links_a_number_and_prints_the_agenda(server, page, tmp_path):
    # a new absence alert from the school, after child-01's last review: not yet taken up
    now = datetime.now(JST)
    alert = {
        "id": f"web-test-alert-{now:%Y%m%d%H%M%S%f}",
        "kind": "absence.alert",
        "child": "child-01",
        "source": "beppu-es-hamakaze",
        "basis": "cwa-25-3",
        "to": "beppu-center",
        "at": (now - timedelta(hours=1)).isoformat(),
        "payload": {"reason": "consecutive_absence", "days": 7, "since": (now - timedelta(days=9)).date().isoformat()},
    }
    (tmp_path / "alert.jsonl").write_text(json.dumps(alert, ensure_ascii=False) + "\n", encoding="utf-8")
    assert json.loads(server.tsunagu("publish", str(tmp_path / "alert.jsonl"), "--json").stdout)["accepted"] == 1
    sign_in(page, server.base, re.compile("佐藤 花子"))
    before = len(access_records(server, "child-01"))
    page.goto(f"{server.base}/ui/")
    open_alerts = page.locator(".count-item", has=page.locator("#alerts-open"))
    assert int(re.sub(r"\D", "", page.locator("#alerts-open .count-number").inner_text())) >= 1
    assert open_alerts.get_by_role("link", name="児童 child-01").is_visible()
    year = open_alerts
    nav = page.get_by_role("navigation", name="メニュー")
    for name in ("進行管理台帳", "会議の議題", "紐付け待ち", "ケース移管", "対象名簿"):
        assert nav.get_by_role("link", name=name).is_visible()
    assert len(access_records(server, "child-01")) == before + 1  # the start page read child-01 once, recorded
    assert access_records(server, "child-01")[-1]["reader"]["user"] == "佐藤 花子 (sato)"
    assert_accessible(page, "start (centre)")
    shoot(page, "c01-start-centre")

    year.get_by_role("link", name="児童 child-01").click()
    page.wait_for_url(f"{server.base}/ui/children/child-01")
    text = page.locator("main").inner_text()
    assert "K-2026-014" in text and "要保護児童" in text and "虐待（ネグレクト）" in text  # the case, in Japanese
    report = page.locator(".entry", has=page.locator(".entry-kind", has_text="月次出欠")).first
    assert report.locator(".badge", has_text="直接の提供").is_visible()
    assert "欠席" in report.inner_text()
    assert_accessible(page, "child page with cases")
    shoot(page, "c02-child-with-case")

    publish_waiting_concern(server, tmp_path)
    page.get_by_role("link", name="紐付け待ち").click()
    page.wait_for_url(f"{server.base}/ui/queue")
    row = page.locator("tr", has_text=WAITING_NUMBER)
    assert "別府市立はまかぜ小学校" in row.inner_text() and "気づき" in row.inner_text()
    assert "給食" not in page.locator("main").inner_text()  # what waits, not what it says
    assert_accessible(page, "queue")
    shoot(page, "c03-queue")
    row.get_by_label(re.compile(WAITING_NUMBER)).fill("child-10")
    row.get_by_role("button", name="紐付ける").click()
    status = page.get_by_role("status")
    assert "紐付けました" in status.inner_text() and "受け付けられました" in status.inner_text()
    assert page.locator("tr", has_text=WAITING_NUMBER).count() == 0
    assert_accessible(page, "queue after link")
    shoot(page, "c04-queue-linked")
    page.goto(f"{server.base}/ui/children/child-10?kind=concern.reported")
    assert "給食をほとんど食べない" in page.locator("main").inner_text()

    page.goto(f"{server.base}/ui/agenda?date=2026-12-31")
    text = page.locator("main").inner_text()
    assert text.index("要検討") < text.index("確認のみ") and "K-2026-014" in text
    assert page.get_by_role("link", name=re.compile("CSV")).is_visible()
    assert_accessible(page, "agenda")
    shoot(page, "c05-agenda")
    page.emulate_media(media="print")
    assert page.locator(".site-nav").is_hidden() and page.locator("form.filters").is_hidden()
    assert page.get_by_role("button", name="ログアウト").is_hidden()
    assert page.locator(".agenda-case").first.is_visible()
    shoot(page, "c06-agenda-print")
    page.emulate_media(media="screen")
    csv = page.request.get(f"{server.base}/ui/agenda.csv?date=2026-12-31")
    assert csv.status == 200 and csv.body().startswith(b"\xef\xbb\xbf") and "確認のみ" in csv.text()


def test_the_ledger_filters_sorts_pages_and_exports(server, page):
    sign_in(page, server.base, re.compile("佐藤 花子"))
    page.get_by_role("link", name="進行管理台帳").click()
    page.wait_for_url(f"{server.base}/ui/ledger")
    text = page.locator("main").inner_text()
    assert "K-2026-014" in text and "要保護児童" in text and "対応中" in text
    assert "youhogo" not in text and "abuse_neglect" not in text
    assert_accessible(page, "ledger")
    shoot(page, "c07-ledger")

    page.get_by_label("要対協区分").select_option(label="要支援児童")
    page.get_by_role("button", name="表示する").click()
    page.wait_for_url(re.compile(r"category=youshien"))
    categories = {t.strip() for t in page.locator("tbody tr td:nth-child(4)").all_inner_texts()}
    assert categories == {"要支援児童"}
    page.get_by_role("link", name="ケース番号").click()
    cases = [t.strip() for t in page.locator("tbody tr td:nth-child(1)").all_inner_texts()]
    assert cases == sorted(cases)
    page.get_by_role("link", name="ケース番号").click()
    assert [t.strip() for t in page.locator("tbody tr td:nth-child(1)").all_inner_texts()] == sorted(
        cases, reverse=True
    )
    shoot(page, "c08-ledger-filtered")

    csv = page.request.get(f"{server.base}/ui/ledger.csv?category=youshien")
    body = csv.text()
    assert csv.status == 200 and csv.body().startswith(b"\xef\xbb\xbf")
    assert body.splitlines()[0].lstrip("\ufeff").startswith("ケース番号,児童") and "要支援児童" in body
    assert "要保護児童" not in body

    response = page.goto(f"{server.base}/ui/ledger?status=nonsense&page=x")
    assert response.status == 422
    errors = page.get_by_role("alert").inner_text()
    assert "状況" in errors and "ページ" in errors
    assert_accessible(page, "ledger with bad filters")


def test_transfers_and_lists(server, page):
    sign_in(page, server.base, re.compile("佐藤 花子"))
    page.get_by_role("link", name="ケース移管").click()
    text = page.locator("main").inner_text()
    assert "K-2026-019" in text and "大分市" in text  # sent to 大分市's centre, by name
    assert_accessible(page, "transfers")
    shoot(page, "c09-transfers")

    page.get_by_role("link", name="対象名簿").click()
    text = page.locator("main").inner_text()
    assert "別府市立はまかぜ小学校" in text and "child-01" in text
    assert_accessible(page, "lists")
    shoot(page, "c10-lists")
    page.get_by_label("学校・園", exact=True).select_option(label="別府市立はまかぜ小学校")
    page.get_by_label("児童生徒番号（学校・園での番号）").fill("2026-0777")
    page.get_by_label("児童ID").fill("child-08")
    page.get_by_role("button", name="登録する").click()
    assert "登録しました" in page.get_by_role("status").inner_text()
    assert page.locator("tr", has_text="2026-0777").count() == 1
    page.get_by_role("button", name="child-08 を名簿から削除").click()
    assert "削除しました" in page.get_by_role("status").inner_text()
    assert page.locator("tr", has_text="2026-0777").count() == 0

    page.get_by_role("button", name="登録する").click()  # nothing filled in: each field named
    errors = page.get_by_role("alert").inner_text()
    assert "学校・園を選んでください" in errors and "児童IDを入力してください" in errors
    assert_accessible(page, "lists with errors")
    shoot(page, "c11-lists-errors")


def test_the_jiso_sees_the_joint_ledger(server, page):
    sign_in(page, server.base, re.compile("伊藤 健"))
    page.get_by_role("link", name="共同管理台帳").click()
    text = page.locator("main").inner_text()
    assert "共同管理台帳" in text and "K-2026-014" in text and "別府市こども家庭センター" in text
    assert_accessible(page, "joint ledger")
    shoot(page, "c12-joint-ledger")
    page.goto(f"{server.base}/ui/")
    assert page.locator("#reviews-due").is_visible()
    assert_accessible(page, "start (jiso)")
    shoot(page, "c13-start-jiso")


def test_a_school_cannot_open_the_centres_pages(server, page):
    sign_in(page, server.base, re.compile("鈴木 一郎"))
    assert page.get_by_role("link", name="進行管理台帳").count() == 0
    before = len(access_records(server, "child-01"))
    for path in ("/ui/ledger", "/ui/ledger.csv", "/ui/agenda?date=2026-12-11", "/ui/queue", "/ui/transfers"):
        response = page.goto(f"{server.base}{path}")
        assert response.status == 403, path
        assert "K-2026-014" not in page.locator("body").inner_text()
    assert_accessible(page, "ledger refused (school)")
    shoot(page, "c14-ledger-refused-school")
    assert len(access_records(server, "child-01")) == before  # no child was asked for, none was read
