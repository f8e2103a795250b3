"""The auditors' pages and the hub's administration in a real browser (issue 14 items 6 and 7): the demo's auditor
finds who read child-01, reconstructs a read (exact), records a finding on an emergency access, prints the 開示
report and verifies the access log; a caseworker may not open those pages; the administrator sees the settings
with their history and changes ``joint_ledger``."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest

from events.clock import JST
from tests.web.conftest import assert_accessible, shoot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.http]

CONTENT = (
    "夜ごはんがなかった",
    "ヤマモト",
    "冷蔵庫",
    "ネグレクトの疑い",
    "安全確認",
)  # child-01's content, never shown


def no_content(page) -> None:
    text = page.locator("main").inner_text()
    for words in CONTENT:
        assert words not in text, words


def emergency_read(server, tmp_path) -> None:
    """The 児相 declares an emergency on child-01 and reads under it, through the real command line."""
    declared = {
        "id": "web-audit-emergency-1",
        "kind": "emergency.declared",
        "child": "child-01",
        "source": "chuo-jiso",
        "basis": "internal",
        "at": (datetime.now(JST) - timedelta(minutes=5)).isoformat(timespec="seconds"),
        "payload": {"reason": "夜間に安全確認ができない"},
    }
    file = tmp_path / "emergency.jsonl"
    file.write_text(json.dumps(declared, ensure_ascii=False) + "\n", encoding="utf-8")
    assert json.loads(server.tsunagu("publish", str(file), "--json").stdout)["accepted"] == 1
    server.tsunagu(
        "timeline", "child-01", "--org", "chuo-jiso", "--role", "caseworker", "--purpose", "emergency",
        "--user", "伊藤 健 (ito)",
    )  # fmt: skip
    for org, role, user in (
        ("beppu-center", "caseworker", "佐藤 花子 (sato)"),
        ("beppu-es-hamakaze", "teacher", "鈴木 一郎 (suzuki)"),
    ):
        server.tsunagu("timeline", "child-01", "--org", org, "--role", role, "--purpose", "support", "--user", user)


def test_the_auditor_reads_reconstructs_reviews_and_prints(server, page, tmp_path):
    emergency_read(server, tmp_path)
    sign_in(page, server.base, re.compile("渡辺 直子"))
    assert_accessible(page, "start (auditor)")
    page.get_by_role("navigation", name="メニュー").get_by_role("link", name="閲覧記録の監査").click()
    page.get_by_label("児童ID").fill("child-01")
    page.get_by_label("開始日").fill("2026-04-01")
    page.get_by_label("終了日").fill(datetime.now(JST).date().isoformat())
    assert_accessible(page, "audit home")
    shoot(page, "a01-audit-home")
    page.get_by_role("button", name="閲覧の記録を表示").click()
    page.wait_for_url(re.compile(r"/ui/audit/children/child-01\?since=2026-04-01"))
    table = page.locator("table.data")
    assert "中央児童相談所" in table.inner_text() or "児童相談所" in table.inner_text()
    assert "緊急対応のため" in table.inner_text()
    no_content(page)
    assert_accessible(page, "who read")
    shoot(page, "a02-who-read")

    # filtered by purpose: only the emergency read
    page.get_by_label("目的").select_option("emergency")
    page.get_by_role("button", name="表示する").click()
    rows = page.locator("table.data tbody tr")
    assert rows.count() == 1 and "伊藤 健" in rows.inner_text()

    rows.get_by_role("link", name=re.compile("番目の閲覧を再現")).click()
    page.wait_for_url(re.compile(r"/ui/audit/records/"))
    assert "正確な再現です" in page.locator("#proof").inner_text()
    assert "一致（正確な再現）" in page.locator("main").inner_text()
    assert page.locator("table.data tbody tr").count() >= 1  # the entries it returned, as kinds and rules
    assert "緊急時" in page.locator("table.data").inner_text()
    no_content(page)
    assert_accessible(page, "reconstruction")
    shoot(page, "a03-reconstruction")

    # the emergency access: a finding refused without its kind, then recorded
    page.get_by_role("navigation", name="メニュー").get_by_role("link", name="緊急時の閲覧").click()
    access = page.locator("section.access", has_text="児童 child-01")
    assert "夜間に安全確認ができない" in access.inner_text()  # the declared reason: what a reviewer judges
    assert "未確認" in access.inner_text()
    assert_accessible(page, "emergencies")
    shoot(page, "a04-emergencies")
    access.get_by_label("所見（5000文字まで）").fill("夜間の安全確認のため。宣言から5分後の閲覧で妥当")
    access.get_by_role("button", name="所見を記録する").click()
    assert page.get_by_role("alert").is_visible()
    assert "所見の区分" in page.get_by_role("alert").inner_text()
    assert page.locator("#finding-error").is_visible()  # next to the field, too
    assert page.locator("#note").input_value().startswith("夜間の安全確認")  # nothing lost
    assert_accessible(page, "emergencies with an error")
    shoot(page, "a05-finding-error")
    access = page.locator("section.access", has_text="児童 child-01")
    access.get_by_label("正当", exact=True).check()
    access.get_by_role("button", name="所見を記録する").click()
    assert "所見を記録しました" in page.get_by_role("status").inner_text()
    access = page.locator("section.access", has_text="児童 child-01")
    assert "確認済み" in access.inner_text() and "渡辺 直子" in access.locator(".findings").inner_text()
    shoot(page, "a06-finding-recorded")
    reviewed = json.loads(server.tsunagu("audit", "emergencies", "--json").stdout)
    assert any(f["finding"] == "justified" for a in reviewed["accesses"] for f in a["findings"])

    # the family's 開示 report, printed
    page.goto(f"{server.base}/ui/audit/children/child-01/disclosure")
    report = page.locator(".disclosure")
    for name in ("大分県中央児童相談所", "別府市こども家庭センター", "別府市立はまかぜ小学校"):
        assert name in report.inner_text()  # read by three organisations
    assert "緊急対応のため" in report.inner_text()
    assert "要対協" not in report.inner_text()
    no_content(page)
    assert_accessible(page, "disclosure")
    shoot(page, "a07-disclosure")
    page.emulate_media(media="print")
    assert not page.locator(".site-nav").is_visible() and not page.locator(".staff-only").is_visible()
    assert not page.locator(".site-header").is_visible()
    assert report.locator("table.reads").first.is_visible()
    shoot(page, "a08-disclosure-print")
    page.emulate_media(media="screen")

    # the access log: verified on request, the verification recorded and shown as the last one
    page.get_by_role("navigation", name="メニュー").get_by_role("link", name="アクセスログの状態").click()
    page.get_by_role("button", name="いま検証する").click()
    assert "改ざんや不一致は見つかりませんでした" in page.get_by_role("status").inner_text()
    assert "渡辺 直子" in page.locator("#last-check").inner_text()
    assert re.fullmatch(r"[0-9a-f]{64}|sha256:[0-9a-f]{64}", page.locator("#heads-digest").inner_text())
    assert_accessible(page, "log state")
    shoot(page, "a09-log")
    queries = json.loads(server.tsunagu("audit", "queries", "beppu-audit", "--json").stdout)
    asked = [q["query"] for q in (queries["queries"] if isinstance(queries, dict) else queries)]
    for query in ("reads_of_child", "reconstruct", "emergency_accesses", "disclosure_report", "verify_log"):
        assert query in asked, query  # every page's query is in the auditor's trail


def test_a_caseworker_may_not_open_the_auditors_or_the_administrators_pages(server, page):
    sign_in(page, server.base, re.compile("佐藤 花子"))
    for path in (
        "/ui/audit",
        "/ui/audit/children/child-01",
        "/ui/audit/children/child-01/disclosure",
        "/ui/audit/emergencies",
        "/ui/audit/log",
        "/ui/admin/settings",
        "/ui/admin/orgs",
    ):
        response = page.goto(f"{server.base}{path}")
        assert response is not None and response.status == 403, path
    assert (
        "監査・個人情報保護担当" in page.locator("main").inner_text() or "管理者" in page.locator("main").inner_text()
    )
    response = page.request.post(f"{server.base}/ui/audit/log/verify")
    assert response.status == 403  # no CSRF token: refused before anything


def test_the_administrator_sees_the_settings_history_and_changes_joint_ledger(server, page):
    sign_in(page, server.base, re.compile("小林 誠"))
    assert_accessible(page, "start (admin)")
    page.get_by_role("navigation", name="メニュー").get_by_role("link", name="設定").click()
    row = page.locator("#setting-joint_ledger")
    assert "児童相談所との共同管理台帳" in row.inner_text()
    history = page.locator("#history")
    assert "児童相談所との共同管理台帳" in history.inner_text() and "（初期値）" in history.inner_text()
    assert_accessible(page, "settings")
    shoot(page, "a10-settings")
    current = row.get_by_label(re.compile("新しい値")).input_value()
    new = "false" if current == "true" else "true"
    row.get_by_label(re.compile("新しい値")).select_option(new)
    row.get_by_role("button", name="変更する").click()
    assert "変更しました" in page.get_by_role("status").inner_text()
    first = page.locator("#history tbody tr").first.inner_text()
    assert "児童相談所との共同管理台帳" in first and "小林 誠" in first
    shoot(page, "a11-settings-changed")
    shown = json.loads(server.tsunagu("settings", "show", "--json").stdout)
    assert shown["settings"]["joint_ledger"] is (new == "true")

    # The 児相's ledger page follows at once (same server, no restart), and back again.
    jiso = page.context.browser.new_context(locale="ja-JP", timezone_id="Asia/Tokyo").new_page()
    sign_in(jiso, server.base, re.compile("伊藤 健"))
    for value in (new, current):
        if value != new:
            row = page.locator("#setting-joint_ledger")
            row.get_by_label(re.compile("新しい値")).select_option(value)
            row.get_by_role("button", name="変更する").click()
            assert "変更しました" in page.get_by_role("status").inner_text()
        jiso.goto(f"{server.base}/ui/joint-ledger")
        text = jiso.locator("main").inner_text()
        if value == "true":
            assert "有効になっていません" not in text and "K-2026-014" in text, text
        else:
            assert "有効になっていません" in text and "K-2026-014" not in text, text
        shoot(jiso, f"a11-joint-ledger-{'on' if value == 'true' else 'off'}")
    jiso.context.close()

    # a bad value is named next to the field, nothing else changes
    row = page.locator("#setting-emergency_hours")
    row.get_by_label(re.compile("新しい値")).fill("1000")
    row.get_by_role("button", name="変更する").click()
    assert page.get_by_role("alert").is_visible()
    assert page.locator("#value-error").is_visible()
    assert page.locator("#value").input_value() == "1000"
    assert_accessible(page, "settings with an error")

    page.get_by_role("navigation", name="メニュー").get_by_role("link", name="機関の登録").click()
    assert "別府市こども家庭センター" in page.locator("#orgs").inner_text()
    assert "監査担当" in page.locator("#orgs").inner_text()
    assert_accessible(page, "orgs")
    shoot(page, "a12-orgs")
    page.get_by_role("navigation", name="メニュー").get_by_role("link", name="連携システム").click()
    assert_accessible(page, "clients")
    shoot(page, "a13-clients")
    response = page.goto(f"{server.base}/ui/audit/emergencies")
    assert response is not None and response.status == 403  # an administrator is not an auditor
