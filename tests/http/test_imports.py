"""Files over HTTP (``POST /v1/imports/{format}``): the same imports as ``tsunagu import``, as the token's
organisation, answering the summary ``--json`` prints, with the file limits of ``events.limits``."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from events.store import Quarantine
from services.auth.tokens import keys_from_file
from services.http.app import create_app
from services.projections.rosters import MonthlyReports, peek
from services.schools.imports import ImportSummary
from tests.helpers import at
from tests.schoolfiles import ES1_CODE, ES2_CODE, MONTHLY_HEADER, list_child, setup, write_csv

pytestmark = pytest.mark.http


def csv_bytes(rows: list[list[object]], header=MONTHLY_HEADER, encoding: str = "cp932") -> bytes:
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def row(student_no: str, days=(19, 15, 4, 2), code: str = ES1_CODE, month: str = "2026-05", notes: str = ""):
    return [code, student_no, month, *days, "", "", "", notes]


@pytest.fixture
def world(hub, clock):
    clock.at = at("2026-06-05T09:00:00+09:00")
    setup(hub)
    hub.load_orgs([{"id": "beppu-npo", "type": "service_provider", "regime": "private", "municipality": "442020"}])
    list_child(hub, "c1", "2026-0412")
    list_child(hub, "c2", "2026-0518")
    list_child(hub, "c3", "2026-0001", school="beppu-es-2")
    return hub


@pytest.fixture
def api(world, tmp_path):
    issuer, verifier = keys_from_file(tmp_path / "signing-key.pem")

    def post(org: str, fmt: str, data: bytes | None, role: str = "school_admin", name="月次.csv", **params):
        token = issuer.issue(org=org, role=role, user="tester")
        files = {"file": (name, data, "text/csv")} if data is not None else None
        return client.post(
            f"/v1/imports/{fmt}", files=files, params=params, headers={"Authorization": f"Bearer {token}"}
        )

    with TestClient(create_app(world, verifier)) as client:
        yield post


def test_a_monthly_file_over_http_answers_what_the_cli_answers(world, api, tmp_path):
    data = csv_bytes([row("2026-0412"), row("2026-0518", days=(19, 18, 4, 2)), row("9999-0000")])
    answer = api("beppu-es-1", "school-monthly", data)
    assert answer.status_code == 200, answer.text
    summary = answer.json()
    assert (summary["status"], summary["encoding"], summary["rows"]) == ("rejected", "cp932", 3)
    assert (summary["accepted"], summary["not_listed"], summary["rejected_total"]) == (1, 1, 1)
    [rejected] = summary["rejected"]
    assert rejected["line"] == 3
    assert rejected["problems"][0]["field"] == "出席日数" and "授業日数" in rejected["problems"][0]["message_ja"]
    assert peek(world.store, MonthlyReports, "beppu-es-1", "2026-05").latest("c1", "beppu-center") is not None
    # the rejected row is in the school's quarantine, for correction
    held = world.store.get_or_none(Quarantine.create_id("beppu-es-1")).held
    assert [h["raw"]["line"] for h in held] == [3] and held[0]["raw"]["file"] == "月次.csv"

    # the same file through the CLI: the same summary, but every row is now unchanged or held already
    path = write_csv(tmp_path / "月次.csv", MONTHLY_HEADER, [row("2026-0412"), row("9999-0000")])
    again = api("beppu-es-1", "school-monthly", path.read_bytes())
    assert (again.json()["unchanged"], again.json()["not_listed"]) == (1, 1)
    assert set(again.json()) == set(ImportSummary("school-monthly", "x").to_dict())  # what --json prints


def test_a_school_sends_only_its_own_rows(world, api):
    data = csv_bytes([row("2026-0001", code=ES2_CODE), row("2026-0412", code="")])
    summary = api("beppu-es-1", "school-monthly", data).json()
    assert summary["accepted"] == 1, json.dumps(summary, ensure_ascii=False)  # a blank 学校コード is the sender's
    [refused] = summary["rejected"]
    assert refused["problems"][0]["code"] == "not_own_school"
    assert "自機関" in refused["problems"][0]["message_ja"]
    assert peek(world.store, MonthlyReports, "beppu-es-2", "2026-05").latest("c3", "beppu-center") is None
    assert world.store.get_or_none(Quarantine.create_id("beppu-es-2")) is None  # kept only by the sender
    # a centre cannot send a school file as a school
    refused = api("beppu-center", "school-monthly", data, role="caseworker")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_a_school"


def test_feeds_over_http_as_the_tokens_organisation(world, api):
    line = {
        "id": "npo-1",
        "kind": "visit.report",
        "local_child": "P-1",
        "source": "beppu-es-1",
        "basis": "commissioned",
        "to": "beppu-center",
        "at": "2026-06-01T10:00:00+09:00",
        "payload": {"observations": "x"},
    }
    answer = api("beppu-npo", "jsonl", json.dumps(line).encode(), role="provider_staff", name="feed.jsonl")
    assert answer.status_code == 200, answer.text
    [rejected] = answer.json()["rejected"]
    assert rejected["problems"][0]["code"] == "source_mismatch"
    assert answer.json()["org"] == "beppu-npo"


def test_bad_uploads_are_refused_in_the_hubs_error_format(world, api, monkeypatch):
    missing = api("beppu-es-1", "school-monthly", None)
    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "missing_file" and missing.json()["error"]["field"] == "file"
    png = api("beppu-es-1", "school-monthly", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, name="写真.png")
    assert png.status_code == 422 and "PNG" in png.json()["error"]["message_ja"]
    assert png.json()["error"]["summary"]["status"] == "refused"
    assert api("beppu-es-1", "school-weekly", b"x").status_code == 422
    monkeypatch.setattr("services.http.imports.MAX_IMPORT_FILE_BYTES", 100)
    large = api("beppu-es-1", "school-monthly", csv_bytes([row("2026-0412")] * 10))
    assert large.status_code == 413 and large.json()["error"]["code"] == "file_too_large"
    assert "大きすぎます" in large.json()["error"]["message_ja"]


def test_an_upload_body_over_the_limit_is_refused_with_413(world, tmp_path):
    from services.http.app import BodyLimit

    issuer, verifier = keys_from_file(tmp_path / "signing-key.pem")
    application = create_app(world, verifier)
    token = issuer.issue(org="beppu-es-1", role="school_admin", user="tester")
    with TestClient(application) as client:
        for middleware in application.user_middleware:
            if middleware.cls is BodyLimit:
                middleware.kwargs["upload_bytes"] = 1000
        application.middleware_stack = application.build_middleware_stack()

        def chunks():
            for _ in range(10):
                yield b"x" * 500

        response = client.post(
            "/v1/imports/school-monthly",
            content=chunks(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "multipart/form-data; boundary=b"},
        )
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "payload_too_large"


def test_an_upload_over_the_limit_at_the_staff_ui_gets_a_page_in_japanese_and_the_api_json():
    """The body limit answers the person at the UI with a page saying what to do, a program with JSON."""
    import asyncio

    from services.http.app import BodyLimit

    async def never_reached(scope, receive, send):
        raise AssertionError("the app must not see a body over the limit")

    async def ask(path: str) -> tuple[int, dict[str, str], bytes]:
        sent: list[dict] = []

        async def receive():
            return {"type": "http.request", "body": b"x" * 100, "more_body": False}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": path, "headers": [(b"content-length", b"100")]}
        await BodyLimit(never_reached, max_bytes=10, upload_bytes=10)(scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body

    status, headers, body = asyncio.run(ask("/ui/imports/monthly"))
    assert status == 413 and headers["content-type"].startswith("text/html")
    assert "送信データが大きすぎます" in body.decode() and '<html lang="ja">' in body.decode()
    status, headers, body = asyncio.run(ask("/v1/imports/school-monthly"))
    assert status == 413 and json.loads(body)["error"]["code"] == "payload_too_large"
