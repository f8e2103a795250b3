"""Abuse and bad input (issue 5): request rates per client, the size of everything that comes in (URLs, bodies,
batches, JSON nesting, envelopes, import files), and CSV exports that never carry a formula.

Everything goes through the real paths: HTTP requests to the app ``tsunagu serve`` runs, with real tokens, and
the ``tsunagu`` command on real files. The limits are those of ``events.limits``; rates are lowered through the
environment, as a deployment would.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import date, datetime

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from consent.model import Settings
from events.clock import JST
from events.limits import (
    MAX_BODY_BYTES,
    MAX_ENVELOPE_BYTES,
    MAX_IMPORT_FILE_BYTES,
    MAX_JSON_DEPTH,
    MAX_PAYLOAD_DEPTH,
    MAX_SENSITIVE_FIELDS,
    MAX_TEXT_CHARS,
)
from events.store import Quarantine
from services.auth.tokens import TokenIssuer
from services.casework.commands import Actor, CaseWork
from services.casework.csv_export import csv_bytes, safe_cell
from services.cli.root import app as cli_app
from services.http.app import create_app
from services.hub import Hub
from tests.helpers import assert_error, has_japanese, token_header

pytestmark = [pytest.mark.store, pytest.mark.http]

ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020", "name": "別府市こども家庭センター"},
    {"id": "oita-center", "type": "municipal_center", "municipality": "442011"},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": "442020", "code": "E144202000011"},
]
R1 = {
    "id": "r1",
    "kind": "child.registered",
    "child": "c1",
    "source": "beppu-center",
    "basis": "internal",
    "at": "2026-04-01T09:00:00+09:00",
    "payload": {"residence": "442020"},
}
NOW = datetime(2026, 5, 12, 11, 0, tzinfo=JST)
HEALTH, LEDGER = "/v1/health", "/v1/ledger"


@pytest.fixture
def world(hub, clock) -> Hub:
    hub.load_orgs(ORGS)
    clock.at = NOW
    return hub


def forged(org: str, user: str) -> dict:
    """A token that names ``org`` and ``user`` but is signed by nobody the hub knows."""

    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    claims = {
        "iss": "tsunagu",
        "aud": "tsunagu-hub",
        "sub": user,
        "org": org,
        "role": "caseworker",
        "iat": 1,
        "exp": 4_000_000_000,
        "jti": "x",
    }
    return {"Authorization": f"Bearer {part({'alg': 'ES256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"}


def client_at(app, address: str) -> TestClient:
    return TestClient(app, client=(address, 40000))


# --- Request rates per client ---------------------------------------------------------------------------------


# RATE_WINDOW_NOTE: the tests' limits are "N/hour", not "N/minute". The limiter's sliding window counts the hits
# of the window before with the weight of what is left of it: a test whose requests straddle a minute's boundary
# and take over 20 s under a loaded machine (a cold ledger on a busy CI runner) saw its 4th request allowed (200,
# or the token endpoint's own 503 behind it) instead of 429. Per hour, that would take the test 20 minutes.


def assert_rate_limited(response: httpx.Response) -> int:
    error = assert_error(response, 429, "rate_limited")
    seconds = int(response.headers["Retry-After"])
    assert 1 <= seconds <= 3600  # the tests' limits are per hour (see RATE_WINDOW_NOTE)
    assert error["message_ja"] == f"リクエストが多すぎます。{seconds}秒後に再度お試しください"
    return seconds


def test_a_verified_caller_over_its_rate_gets_429_with_retry_after_and_others_do_not(world, keys, monkeypatch):
    monkeypatch.setenv("TSUNAGU_RATE_LIMIT", "3/hour")
    issuer, verifier = keys
    app = create_app(world, verifier)
    with client_at(app, "10.0.0.1") as one, client_at(app, "10.0.0.2") as other:
        alice = token_header(issuer, user="alice")
        for _ in range(3):
            assert one.get(LEDGER, headers=alice).status_code == 200
        assert_rate_limited(one.get(LEDGER, headers=alice))
        assert_rate_limited(other.get(LEDGER, headers=token_header(issuer, user="alice")))  # her, from anywhere
        # another person of the same centre, and another organisation, from the same address: their own budgets
        assert one.get(LEDGER, headers=token_header(issuer, user="bob")).status_code == 200
        assert one.get(LEDGER, headers=token_header(issuer, org="oita-center", user="alice")).status_code == 200
        for _ in range(10):  # the health check is never limited
            assert one.get(HEALTH).status_code == 200


def test_a_forged_token_neither_spends_someone_elses_budget_nor_gets_a_fresh_one(world, keys, monkeypatch):
    monkeypatch.setenv("TSUNAGU_RATE_LIMIT", "3/hour")
    issuer, verifier = keys
    app = create_app(world, verifier)
    with client_at(app, "10.0.0.1") as alice_pc, client_at(app, "10.0.0.66") as attacker:
        # the token's claims pick whose counter is looked at; refused tokens are charged to the address
        for _ in range(3):
            assert_error(attacker.get(LEDGER, headers=forged("beppu-center", "alice")), 401, "invalid_token")
        for user in ("mallory-1", "mallory-2"):  # a fresh name per request does not help either
            assert_rate_limited(attacker.get(LEDGER, headers=forged("beppu-center", user)))
        # Alice's budget is untouched by all of it
        alice = token_header(issuer, user="alice")
        for _ in range(3):
            assert alice_pc.get(LEDGER, headers=alice).status_code == 200
        assert_rate_limited(alice_pc.get(LEDGER, headers=alice))


def test_requests_without_a_token_are_counted_per_remote_address(world, keys, monkeypatch):
    monkeypatch.setenv("TSUNAGU_RATE_LIMIT", "2/hour")
    app = create_app(world, keys[1])
    with client_at(app, "192.0.2.1") as first, client_at(app, "192.0.2.2") as second:
        assert_error(first.get(LEDGER), 401, "missing_token")
        assert first.get("/openapi.json").status_code == 200
        assert_rate_limited(first.get(LEDGER))
        assert_error(second.get(LEDGER), 401, "missing_token")


def test_the_token_endpoint_has_a_stricter_limit_per_client_id_and_per_address(world, keys, monkeypatch):
    monkeypatch.setenv("TSUNAGU_TOKEN_RATE_LIMIT", "2/hour")
    app = create_app(world, keys[1])
    form = {"grant_type": "client_credentials", "client_secret": "guess"}
    basic = {"Authorization": "Basic " + base64.b64encode(b"adapter-1:guess").decode()}
    with client_at(app, "198.51.100.1") as a, client_at(app, "198.51.100.2") as b, client_at(app, "198.51.100.3") as c:
        # one client_id guessed at from several addresses: HTTP Basic or the form body name the same client
        assert a.post("/oauth/token", headers=basic, data=form).status_code != 429
        assert b.post("/oauth/token", data={**form, "client_id": "adapter-1"}).status_code != 429
        assert_rate_limited(c.post("/oauth/token", data={**form, "client_id": "adapter-1"}))
        # many client_ids guessed at from one address
        assert c.post("/oauth/token", data={**form, "client_id": "adapter-2"}).status_code != 429
        assert_rate_limited(c.post("/oauth/token", data={**form, "client_id": "adapter-3"}))
        # the rest of the API keeps its own, larger budget
        assert c.get("/openapi.json").status_code == 200


@pytest.mark.parametrize(
    "variable, value, words",
    [
        ("TSUNAGU_RATE_LIMIT", "lots", "TSUNAGU_RATE_LIMIT='lots'"),
        ("TSUNAGU_TOKEN_RATE_LIMIT", "10 per fortnight", "TSUNAGU_TOKEN_RATE_LIMIT"),
        ("TSUNAGU_RATE_LIMIT_STORAGE", "redis://localhost:6379", "async+redis://"),
    ],
)
def test_a_rate_setting_that_cannot_be_used_stops_the_app_from_starting(
    world, keys, monkeypatch, variable, value, words
):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=words.replace("+", r"\+")):
        with TestClient(create_app(world, keys[1])):
            pass


def test_every_operation_documents_429_and_414(world, keys):
    with TestClient(create_app(world, keys[1])) as client:
        paths = client.get("/openapi.json").json()["paths"]
    operations = [(path, method, op) for path, item in paths.items() for method, op in item.items()]
    assert len(operations) > 20
    for path, method, op in operations:
        assert op["responses"]["414"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
        if path == HEALTH:
            assert "429" not in op["responses"]
        else:
            assert "Retry-After" in op["responses"]["429"]["headers"], (method, path)


# --- Sizes: URLs, bodies, batches, nesting ---------------------------------------------------------------------


def test_a_huge_child_id_is_refused_before_routing_and_a_long_one_names_the_field(client, issuer):
    """(60 KB: the HTTP client refuses to send longer URLs; servers refuse far shorter request lines.)"""
    auth = token_header(issuer)
    error = assert_error(
        client.get(f"/v1/children/{'c' * 60_000}/timeline", params={"purpose": "support"}, headers=auth),
        414,
        "uri_too_long",
    )
    assert "URL が長すぎます" in error["message_ja"]
    error = assert_error(
        client.get(f"/v1/children/{'c' * 201}/timeline", params={"purpose": "support"}, headers=auth),
        422,
        "invalid_request",
    )
    assert error["field"] == "child" and error["message_ja"] == "child: 長すぎます（200文字まで）"
    assert_error(
        client.get("/v1/agenda", params={"date": "2026-05-20", "x": "y" * 10_000}, headers=auth), 414, "uri_too_long"
    )


def test_every_body_is_limited_not_only_the_publish_endpoint(client, issuer):
    huge = json.dumps({"child": "c1", "category": "youshien", "case_type": "x" * MAX_BODY_BYTES}).encode()
    assert_error(
        client.post("/v1/cases", content=huge, headers={**token_header(issuer), "Content-Type": "application/json"}),
        413,
        "payload_too_large",
    )
    chunks = (b" " * (1 << 20) for _ in range(6))  # streamed, no Content-Length
    assert_error(client.post("/v1/plans", content=chunks, headers=token_header(issuer)), 413, "payload_too_large")


@pytest.mark.parametrize(
    "body",
    [
        "[" * 40 + "]" * 40,  # parses, but nests deeper than any batch of envelopes
        '{"a":' * 100_000 + "1" + "}" * 100_000,  # deeper than the JSON parser goes
    ],
)
def test_deeply_nested_json_is_a_422_naming_the_body_on_every_endpoint(client, issuer, body):
    auth = {**token_header(issuer), "Content-Type": "application/json"}
    error = assert_error(
        client.post("/v1/events", content=body, headers=auth),
        422,
        "nested_too_deeply" if len(body) < 1000 else "invalid_json",
    )
    assert error["field"] == "body"
    if len(body) < 1000:
        assert error["message_ja"] == f"送信データの入れ子が深すぎます（{MAX_JSON_DEPTH}段まで）"
    response = client.post("/v1/cases", content=body, headers=auth)
    assert response.status_code == 422 and has_japanese(response.json()["error"]["message_ja"]), response.text


def test_a_body_that_is_not_utf8_json_is_a_422_on_every_endpoint(client, issuer):
    """FastAPI answers 400 for a body it cannot parse; the hub answers as the publish endpoint does."""
    error = assert_error(
        client.post(
            "/v1/cases",
            content=b'{"child": "\xff\xfe"}',
            headers={**token_header(issuer), "Content-Type": "application/json"},
        ),
        422,
        "invalid_json",
    )
    assert error["field"] == "body" and error["message_ja"] == "送信データは UTF-8 の JSON で送ってください"


# --- Envelopes: the same limits on every path (HTTP here; files and Kafka share parse_envelope) -----------------


def publish_one(client: TestClient, issuer: TokenIssuer, envelope: dict) -> dict:
    response = client.post("/v1/events", json=envelope, headers=token_header(issuer, role="adapter"))
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    return result


def nested(depth: int) -> object:
    value: object = "底"
    for _ in range(depth):
        value = {"level": value}
    return value


@pytest.mark.parametrize(
    "change, code, field, words",
    [
        (
            {"payload": {"residence": "442020", "extra": nested(MAX_PAYLOAD_DEPTH)}},
            "payload_too_deep",
            "payload",
            f"payload: 入れ子が深すぎます（{MAX_PAYLOAD_DEPTH}段まで）",
        ),
        (
            {"payload": {"residence": "442020", "notes": ["短い", "長" * (MAX_TEXT_CHARS + 1)]}},
            "text_too_long",
            "payload.notes.1",
            f"payload.notes.1: 長すぎます（{MAX_TEXT_CHARS}文字まで）",
        ),
        (
            {"payload": {"residence": "442020", "k" * 201: 1}},
            "field_name_too_long",
            "payload",
            "payload: 項目名が長すぎます（200文字まで）",
        ),
        (  # read back, the store would take it for one of its own typed values and fail on the unknown type
            {"payload": {"residence": "442020", "extra": [{"_type_": "nope", "_data_": "x"}]}},
            "reserved_object",
            "payload.extra.0",
            "payload.extra.0: 「_type_」と「_data_」の2項目だけからなる項目は使えません（保存形式の予約）",
        ),
        (
            {"payload": {"_type_": "uuid_hex", "_data_": "0" * 32}},
            "reserved_object",
            "payload",
            "payload: 「_type_」と「_data_」の2項目だけからなる項目は使えません（保存形式の予約）",
        ),
        (
            {"sensitive": [f"f{i}" for i in range(MAX_SENSITIVE_FIELDS + 1)]},
            "invalid_envelope",
            "sensitive",
            f"sensitive: 件数が多すぎます（{MAX_SENSITIVE_FIELDS}件まで）",
        ),
        ({"sensitive": ["s" * 201]}, "invalid_envelope", "sensitive.0", "sensitive.0: 長すぎます（200文字まで）"),
        ({"id": "i" * 201}, "invalid_envelope", "id", "id: 長すぎます（200文字まで）"),
        (
            {"payload": {"residence": "442020", **{f"note{i}": "記" * MAX_TEXT_CHARS for i in range(9)}}},
            "envelope_too_large",
            "payload",
            f"{MAX_ENVELOPE_BYTES // 1024} KB まで",
        ),
    ],
)
def test_an_envelope_past_a_limit_is_rejected_naming_the_field_in_japanese(
    world, client, issuer, change, code, field, words
):
    envelope = {**R1, **change}
    assert len(json.dumps(envelope, ensure_ascii=False).encode()) < MAX_BODY_BYTES
    result = publish_one(client, issuer, envelope)
    assert result["outcome"] == "rejected"
    problem = result["problems"][0]
    assert (problem["code"], problem["field"]) == (code, field), result["problems"]
    assert words in problem["message_ja"], problem
    assert world.store.peek(Quarantine.create_id("beppu-center")) is not None  # held for correction
    assert publish_one(client, issuer, R1)["outcome"] == "accepted"  # the same event within the limits


# --- Import files -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["import", "school-monthly"],
        ["import", "jsonl", "--org", "beppu-es-1"],
    ],
)
def test_an_import_file_over_the_maximum_is_refused_before_it_is_read(tmp_path, command):
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = Hub(database)
    hub.load_orgs(ORGS)
    hub.close()
    path = tmp_path / "huge.csv"
    with path.open("wb") as f:  # sparse: the size of the file, without writing it
        f.write("学校コード,児童生徒番号\r\n".encode("cp932"))
        f.truncate(MAX_IMPORT_FILE_BYTES + 1)
    result = CliRunner().invoke(cli_app, [*command, str(path), "--database", database, "--json"])
    assert result.exit_code == 2, result.output
    summary = json.loads(result.output)
    [problem] = summary["refused"]
    assert problem["code"] == "file_too_large" and summary["rows"] == 0
    assert problem["message_ja"].startswith(f"ファイルが大きすぎます（200 MB。{MAX_IMPORT_FILE_BYTES >> 20} MB まで）")


def test_a_json_lines_feed_line_nested_too_deeply_is_rejected_with_its_line(tmp_path):
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = Hub(database)
    hub.load_orgs(ORGS)
    hub.close()
    feed = tmp_path / "feed.jsonl"
    feed.write_text("[" * 100_000 + "\n" + "[" * 40 + "]" * 40 + "\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli_app, ["import", "jsonl", str(feed), "--org", "beppu-es-1", "--database", database, "--json"]
    )
    assert result.exit_code == 1, result.output
    rejected = json.loads(result.output)["rejected"]
    assert [r["line"] for r in rejected] == [1, 2]
    assert all(
        r["problems"][0]["message_ja"].endswith(f"入れ子が深すぎます（{MAX_JSON_DEPTH}段まで）") for r in rejected
    ), rejected


# --- CSV exports: no formula ever reaches a spreadsheet --------------------------------------------------------


@pytest.mark.parametrize(
    "value, shown",
    [
        ("=1+1", "'=1+1"),
        ("+81-90-1234-5678", "'+81-90-1234-5678"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("  =1+1", "'  =1+1"),
        ("\u3000＝1+1", "'\u3000＝1+1"),
        ("＋1", "'＋1"),
        ("－1", "'－1"),
        ("＠SUM(A1)", "'＠SUM(A1)"),
        ("-3", "-3"),  # a plain number is shown as a number
        ("-0.5", "-0.5"),
        ("-3e2", "'-3e2"),
        ("2026-05-05 =HYPERLINK(...)", "2026-05-05 =HYPERLINK(...)"),
        (-7, "-7"),
        (None, ""),
    ],
)
def test_a_cell_that_could_start_a_formula_is_shown_as_written(value, shown):
    assert safe_cell(value) == shown
    rows = list(csv.reader(io.StringIO(csv_bytes(["列"], [[value]]).decode("utf-8-sig"), newline="")))
    assert rows == [["列"], [shown]]


def test_csv_files_open_in_excel_as_utf8_with_crlf(tmp_path):
    data = csv_bytes(["議題", "=見出し"], [["一\n二", "x"]])
    assert data.startswith(b"\xef\xbb\xbf") and data.endswith(b"\r\n")
    assert data.decode("utf-8-sig") == '議題,\'=見出し\r\n"一\n二",x\r\n'


def test_the_meeting_agenda_csv_neutralises_every_field_a_member_can_write(make_hub, clock, keys):
    """Values other organisations and the centre wrote end up at the start of the agenda's cells: the case
    number, the child's kana, the review decision, the joint ledger's severity (written by the 児相)."""
    hub = make_hub(settings=Settings(joint_ledger=True))
    hub.load_orgs(
        ORGS + [{"id": "chuo-jiso", "type": "child_guidance_center", "prefecture": "44", "covers": ["442020"]}]
    )
    cw = CaseWork(hub)
    centre = Actor("beppu-center")
    clock.at = datetime(2026, 4, 1, 9, 0, tzinfo=JST)
    [registered] = hub.publish(
        [
            {
                **R1,
                "child": "c9",
                "at": clock.at.isoformat(),
                "payload": {"residence": "442020", "name_kana": '=HYPERLINK("http://x","ｸﾘｯｸ")'},
            }
        ]
    )
    assert registered.outcome == "accepted"
    cw.register(centre, child="c9", category="youhogo", case_type="abuse_neglect", case="-2+3+cmd|' /C calc'!A0")
    cw.assign_member(centre, "-2+3+cmd|' /C calc'!A0", "beppu-es-1")
    clock.at = datetime(2026, 4, 10, 9, 0, tzinfo=JST)
    cw.review(centre, "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", date(2026, 5, 1))
    cw.update_ledger(Actor("chuo-jiso"), "-2+3+cmd|' /C calc'!A0", severity="＝1+1")
    clock.at = datetime(2026, 5, 18, 9, 0, tzinfo=JST)
    issuer, verifier = keys
    with TestClient(create_app(hub, verifier)) as client:
        response = client.get(
            "/v1/agenda", params={"date": "2026-05-20", "format": "csv"}, headers=token_header(issuer)
        )
    assert response.status_code == 200, response.text
    assert response.content.startswith(b"\xef\xbb\xbf")
    header, row = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))
    cell = dict(zip(header, row))
    assert cell["ケース番号"] == "'-2+3+cmd|' /C calc'!A0"
    assert cell["ふりがな"] == '\'=HYPERLINK("http://x","ｸﾘｯｸ")'
    assert cell["前回の方針"] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    assert cell["児相の評価"] == "'＝1+1"
    assert cell["超過日数"] == "19"
    assert all(not c.lstrip().startswith(("=", "+", "-", "@", "＝", "＋", "－", "＠")) for c in row), row
