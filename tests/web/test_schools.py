"""Schools and nurseries in a real browser (ui.md, "School or nursery"; issue 13): the monthly file with a bad row
corrected in the browser and resent, the typed report of a nursery, daily attendance, the school's list and its
missing reports, and sending a concern with its receipt."""

from __future__ import annotations

import json
import re

import pytest

from tests.web.conftest import assert_accessible, shoot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.http]

HAMAKAZE = "B144220200013"  # 別府市立はまかぜ小学校 (services/demo.py)
HEADER = "学校コード,児童生徒番号,対象年月,授業日数,出席日数,欠席日数,うち連絡なし欠席日数,遅刻日数,早退日数,欠席理由,特記事項"


def monthly_file(tmp_path, rows: list[str]) -> str:
    path = tmp_path / "11月分.csv"
    path.write_bytes(("\r\n".join([HEADER, *rows]) + "\r\n").encode("cp932"))
    return str(path)


def reads(server, child: str) -> list[dict]:
    return json.loads(server.tsunagu("audit", "reads", child, "--json").stdout)["reads"]


def test_a_school_clerk_uploads_a_monthly_file_and_corrects_the_bad_row_in_the_browser(server, page, tmp_path):
    sign_in(page, server.base, re.compile("鈴木 一郎"))
    assert page.get_by_role("navigation").get_by_role("link", name="月次報告", exact=True).is_visible()
    assert_accessible(page, "start (school)")
    shoot(page, "10-start-school")
    page.get_by_role("link", name="月次の定期的な情報提供を送る（ファイル）").click()
    page.wait_for_url(f"{server.base}/ui/imports/monthly")
    assert_accessible(page, "monthly upload")
    shoot(page, "11-monthly-upload")

    file = monthly_file(
        tmp_path,
        [
            f"{HAMAKAZE},2026-0307,2026-11,19,18,1,0,,,,",  # listed at another school: counted only
            f"{HAMAKAZE},2026-0412,2026-11,19,17,4,1,,,体調不良,",  # child-01: 17 + 4 > 19
            f"{HAMAKAZE},2026-9999,2026-11,19,19,0,0,,,,",  # not on the list: counted only
        ],
    )
    page.locator('input[type="file"][name="file"]').set_input_files(file)
    assert page.locator("#upload-progress").is_hidden()  # shown once sending starts (upload.js)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    with page.expect_request(lambda r: r.method == "POST" and r.resource_type == "xhr"):  # sent by upload.js
        page.get_by_role("button", name="送信する").click()
    page.locator("table.counts").wait_for()  # the result page the hub answered replaces the upload page
    assert errors == []
    text = page.locator("main").inner_text()
    assert "不備のある行が 1 行あります" in text
    counts = page.locator("table.counts")
    assert counts.get_by_role("row", name=re.compile("^受理")).inner_text().split()[-1] == "0"
    assert counts.get_by_role("row", name=re.compile("^名簿外")).inner_text().split()[-1] == "2"
    assert "出席日数" in text and "授業日数（19）を超えています" in text and "3" in text
    assert page.get_by_role("link", name="不備のある行を CSV でダウンロード").is_visible()
    assert_accessible(page, "monthly result")
    shoot(page, "12-monthly-result")

    with page.expect_download() as download:
        page.get_by_role("link", name="不備のある行を CSV でダウンロード").click()
    downloaded = open(download.value.path(), encoding="utf-8-sig").read()
    assert "2026-0412" in downloaded and "体調不良" in downloaded

    form = page.locator("form.correction")
    assert form.get_by_label("出席日数").get_attribute("aria-invalid") == "true"
    assert form.get_by_label("出席日数").input_value() == "17"  # prefilled from the row the hub keeps
    form.get_by_label("出席日数").fill("15")
    form.get_by_role("button", name="この行を送り直す").click()
    page.wait_for_url(f"{server.base}/ui/imports/monthly/correct")
    text = page.locator("main").inner_text()
    assert "訂正した行を受け付けました" in text
    assert page.locator("table.counts").get_by_role("row", name=re.compile("^受理")).inner_text().split()[-1] == "1"
    assert page.locator("form.correction").count() == 0
    assert_accessible(page, "monthly corrected")
    shoot(page, "13-monthly-corrected")

    # the centre now reads the corrected report on the child's record
    timeline = json.loads(
        server.tsunagu(
            "timeline", "child-01", "--org", "beppu-center", "--role", "caseworker", "--purpose", "support", "--json"
        ).stdout
    )
    november = [
        e for e in timeline["entries"] if e["kind"] == "attendance.monthly" and e["payload"]["month"] == "2026-11"
    ]
    assert [(e["payload"]["attended"], e["payload"]["absent"]) for e in november] == [(15, 4)]


def test_the_schools_list_and_missing_reports_with_one_recorded_read_per_child(server, page):
    sign_in(page, server.base, re.compile("鈴木 一郎"))
    before = {c: len(reads(server, c)) for c in ("child-01", "child-12")}
    page.get_by_role("navigation").get_by_role("link", name="対象名簿・未提出").click()
    page.wait_for_url(f"{server.base}/ui/overdue")
    text = page.locator("main").inner_text()
    assert "2026-0412" in text and "2026-0307" not in text and "別府市こども家庭センター" in text
    assert "未提出の月次報告" in text
    assert_accessible(page, "our list")
    shoot(page, "14-overdue")
    records = reads(server, "child-01")  # the one child on the school's list: one recorded read
    assert len(records) == before["child-01"] + 1
    assert records[-1]["reader"]["user"] == "鈴木 一郎 (suzuki)"
    assert len(reads(server, "child-12")) == before["child-12"]  # listed at another school: not read


def test_daily_attendance_upload_shows_its_result(server, page, tmp_path):
    sign_in(page, server.base, re.compile("鈴木 一郎"))
    page.goto(f"{server.base}/ui/imports/daily")
    assert_accessible(page, "daily upload")
    path = tmp_path / "日次.csv"
    rows = [f"{HAMAKAZE},2026-0412,2026-12-0{d},欠席,無," for d in (1, 2, 3)]
    rows.append(f"{HAMAKAZE},2026-0412,2026-12-04,欠席,,")  # 連絡有無 missing
    path.write_bytes(("\r\n".join(["学校コード,児童生徒番号,日付,出欠,連絡有無,理由", *rows]) + "\r\n").encode("cp932"))
    page.locator('input[type="file"][name="file"]').set_input_files(str(path))
    page.get_by_role("button", name="送信する").click()
    page.get_by_text("出された欠席アラート").wait_for()
    text = page.locator("main").inner_text()
    assert "欠席の日は連絡有無" in text
    alerts = page.get_by_role("table").filter(has_text="理由")
    assert "出された欠席アラート" in text and "2026-0412" in alerts.first.inner_text()
    assert_accessible(page, "daily result")
    shoot(page, "15-daily-result")


def test_a_school_sends_a_concern_and_gets_a_receipt(server, page):
    sign_in(page, server.base, re.compile("鈴木 一郎"))
    page.goto(f"{server.base}/ui/send")
    assert_accessible(page, "send form")
    page.get_by_role("button", name="送信する").click()  # nothing typed: the browser asks first
    page.get_by_label("児童の番号", exact=True).fill("2026-0412")
    page.get_by_role("textbox", name="内容").fill("給食をほとんど食べず、午後に保健室へ来ることが増えた。")
    page.get_by_label("気づいた様子（1行に1つ。気づきのとき）").fill("給食を残す\n保健室の利用が増えた")
    page.locator("#sensitive-summary").check()
    shoot(page, "16-send-form")
    page.get_by_role("button", name="送信する").click()
    page.wait_for_url(f"{server.base}/ui/send")
    text = page.locator("main").inner_text()
    assert "受け付けました" in text and "このあと" in text
    assert "紐付け" not in text and "待ち" not in text  # the school is told only that it was received
    assert_accessible(page, "send receipt")
    shoot(page, "17-send-receipt")


def test_a_nursery_types_its_monthly_report(server, page):
    listing = {
        "id": "ui-test-list-sakura-S-22-031",
        "kind": "target_list.assigned",
        "child": "child-09",
        "source": "beppu-center",
        "basis": "cwa-25-3",
        "to": "sakura-kodomoen",
        "at": "2026-11-02T10:00:00+09:00",
        "payload": {"school": "sakura-kodomoen", "student_no": "S-22-031", "from_month": "2026-11"},
    }
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write(json.dumps(listing, ensure_ascii=False) + "\n")
    server.tsunagu("publish", f.name)
    sign_in(page, server.base, re.compile("田中 美咲"))
    page.get_by_role("navigation").get_by_role("link", name="月次報告（画面入力）").click()
    page.get_by_label("対象年月", exact=True).fill("2026-11")
    page.get_by_role("button", name="この年月を表示").click()
    assert page.get_by_role("rowheader", name="S-22-031").is_visible()
    assert_accessible(page, "typed form")
    page.get_by_label("S-22-031 の授業日数").fill("20")
    page.get_by_label("S-22-031 の出席日数").fill("18")
    page.get_by_label("S-22-031 の欠席日数").fill("2")
    page.get_by_label("S-22-031 のうち連絡なし欠席日数").fill("0")
    page.get_by_label("S-22-031 の特記事項").fill("お迎えが遅れる日が続いた")
    shoot(page, "18-typed-form")
    page.get_by_role("button", name="送信する").click()
    text = page.locator("main").inner_text()
    assert "すべての行を受け付けました" in text
    assert page.locator("table.counts").get_by_role("row", name=re.compile("^受理")).inner_text().split()[-1] == "1"
    assert_accessible(page, "typed result")
    shoot(page, "19-typed-result")


def test_a_centre_cannot_open_the_school_pages(server, page):
    sign_in(page, server.base, re.compile("佐藤 花子"))
    response = page.goto(f"{server.base}/ui/imports/monthly")
    assert response.status == 403
    assert page.get_by_role("navigation").get_by_role("link", name="月次報告").count() == 0


def test_uploads_without_a_session_or_token_are_refused(server):
    import httpx

    files = {"file": ("a.csv", HEADER.encode("cp932"), "text/csv")}
    with httpx.Client(base_url=server.base, follow_redirects=False, timeout=10) as client:
        response = client.post("/ui/imports/monthly", files=files)
        assert response.status_code == 303 and response.headers["location"] == "/ui/login"
        client.cookies.set("csrftoken", "forged")
        # a multipart body anywhere but an upload is refused before any form is read
        assert client.post("/ui/logout", files=files).status_code == 403
        assert client.get("/ui/overdue").status_code == 303


def test_a_signed_in_upload_without_its_csrf_token_is_refused(server, page):
    sign_in(page, server.base, re.compile("鈴木 一郎"))
    response = page.request.post(
        f"{server.base}/ui/imports/monthly",
        multipart={"file": {"name": "a.csv", "mimeType": "text/csv", "buffer": HEADER.encode("cp932")}},
    )
    assert response.status == 403
    assert "もう一度送ってください" in response.text()


def test_the_upload_works_without_javascript_too(server, browser, tmp_path):
    """ui.md: pages work without JavaScript for every form; the progress bar is only an addition."""
    context = browser.new_context(java_script_enabled=False, locale="ja-JP")
    page = context.new_page()
    try:
        sign_in(page, server.base, re.compile("鈴木 一郎"))
        page.goto(f"{server.base}/ui/imports/monthly")
        page.locator('input[type="file"][name="file"]').set_input_files(
            monthly_file(tmp_path, [f"{HAMAKAZE},2026-9998,2026-11,19,19,0,0,,,,"])
        )
        page.get_by_role("button", name="送信する").click()
        page.locator("table.counts").wait_for()
        assert (
            page.locator("table.counts").get_by_role("row", name=re.compile("^名簿外")).inner_text().split()[-1] == "1"
        )
    finally:
        context.close()
