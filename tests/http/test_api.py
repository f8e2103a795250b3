"""The HTTP API through HTTP: bearer tokens, publishing as oneself, timeline reads decided by the policy and
recorded, JSON errors for every bad input. A real hub (SQLite in memory, or PostgreSQL), a real app, real tokens;
one test runs ``tsunagu serve`` and reads over a socket."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey
from typer.testing import CliRunner

from consent.policy import POLICY_VERSION
from events.clock import JST
from events.store import AccessLog, ChildRecord, Quarantine
from services.audit.replay import access_records
from services.auth.tokens import TokenIssuer, keys_from_file
from services.http.app import create_app
from services.hub import Hub
from tests.helpers import assert_error, b64url_json, free_port, has_japanese, token_header

pytestmark = [pytest.mark.store, pytest.mark.http]

ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020", "name": "別府市こども家庭センター"},
    {"id": "oita-center", "type": "municipal_center", "municipality": "442011"},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": "442020"},
    {"id": "beppu-es-2", "type": "school", "regime": "public", "municipality": "442020"},
    {"id": "chuo-jiso", "type": "child_guidance_center", "prefecture": "44", "covers": ["442011", "442020"]},
    {"id": "oita-audit", "type": "auditor", "prefecture": "44"},
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
N1 = {
    "id": "n1",
    "kind": "note.recorded",
    "child": "c1",
    "source": "beppu-center",
    "basis": "internal",
    "at": "2026-05-01T09:00:00+09:00",
    "payload": {"text": "母親からDV被害の相談", "shelter": "非公開の避難先"},
    "sensitive": ["shelter"],
}
E1 = {
    "id": "e1",
    "kind": "concern.reported",
    "child": "c1",
    "source": "beppu-es-1",
    "basis": "cwa-21-10-5",
    "at": "2026-05-12T10:00:00+09:00",
    "payload": {"summary": "連絡なしの欠席が続いている"},
}
NOW = datetime(2026, 5, 12, 11, 0, tzinfo=JST)


@pytest.fixture
def world(hub, clock) -> Hub:
    hub.load_orgs(ORGS)
    clock.at = NOW
    return hub


def publish(client: TestClient, issuer: TokenIssuer, org: str, body) -> dict:
    response = client.post("/v1/events", json=body, headers=token_header(issuer, org, "adapter"))
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def published(client, issuer) -> None:
    """r1 and n1 by the centre, e1 by the school, each published through the API as its own organisation."""
    assert publish(client, issuer, "beppu-center", [R1, N1])["counts"]["accepted"] == 2
    # a school is told only that its event was received (受付), not whether it was published at once (policy.md)
    assert publish(client, issuer, "beppu-es-1", E1)["counts"]["received"] == 1


def read(
    client: TestClient, issuer: TokenIssuer, org: str, role: str, purpose: str = "support", child: str = "c1"
) -> httpx.Response:
    return client.get(
        f"/v1/children/{child}/timeline", params={"purpose": purpose}, headers=token_header(issuer, org, role)
    )


def records_about(hub: Hub, child: str) -> list[dict]:
    return [r for r in access_records(hub.store) if r["child"] == child]


# --- Health -----------------------------------------------------------------------------------------------


def test_health_needs_no_token_and_names_the_store(client):
    response = client.get("/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "policy_version": POLICY_VERSION, "store": "sqlite"}


def test_openapi_documents_the_endpoints_and_the_envelope(client):
    schema = client.get("/openapi.json").json()
    assert {"/v1/health", "/v1/events", "/v1/children/{child}/timeline"} <= set(schema["paths"])
    assert "basis" in schema["components"]["schemas"]["Envelope"]["properties"]
    assert "entries" in schema["components"]["schemas"]["TimelineOut"]["properties"]
    assert client.get("/docs").status_code == 200


# --- Authentication ---------------------------------------------------------------------------------------


def _forged(key: ECKey, kid: str, **claims) -> str:
    now = int(time.time())
    body = {
        "iss": "tsunagu",
        "aud": "tsunagu-hub",
        "sub": "x",
        "org": "beppu-center",
        "role": "caseworker",
        "iat": now,
        "exp": now + 3600,
        "jti": "j1",
    } | claims
    return jwt.encode({"alg": "ES256", "kid": kid}, body, key)


def _bad_tokens(issuer: TokenIssuer, tmp_path: Path) -> dict[str, tuple[str | None, str]]:
    stranger, _ = keys_from_file(tmp_path / "stranger.pem")
    other_key = ECKey.generate_key("P-256", private=True)
    expired = TokenIssuer(issuer.key, now=lambda: time.time() - 9 * 3600)
    return {
        "no token": (None, "missing_token"),
        "not bearer": ("Basic YWxpY2U6c2VjcmV0", "invalid_token"),
        "garbage": ("Bearer not-a-jwt", "invalid_token"),
        "empty bearer": ("Bearer ", "invalid_token"),
        "another hub's key": (
            f"Bearer {stranger.issue(org='beppu-center', role='caseworker', user='x')}",
            "invalid_token",
        ),
        "bad signature under our kid": (f"Bearer {_forged(other_key, issuer.key.kid)}", "invalid_token"),
        "expired": (f"Bearer {expired.issue(org='beppu-center', role='caseworker', user='x')}", "token_expired"),
        "wrong audience": (f"Bearer {_forged(issuer.key, issuer.key.kid, aud='another-service')}", "wrong_audience"),
        "wrong issuer": (f"Bearer {_forged(issuer.key, issuer.key.kid, iss='someone')}", "wrong_issuer"),
        "unknown role": (f"Bearer {_forged(issuer.key, issuer.key.kid, role='boss')}", "invalid_token"),
        "missing org": (f"Bearer {_forged(issuer.key, issuer.key.kid, org='')}", "invalid_token"),
        "no kid": (f"Bearer {jwt.encode({'alg': 'ES256'}, {'org': 'beppu-center'}, issuer.key)}", "invalid_token"),
        "alg none": (
            "Bearer "
            + ".".join(
                b64url_json(part)
                for part in (
                    {"alg": "none", "kid": issuer.key.kid},
                    {
                        "iss": "tsunagu",
                        "aud": "tsunagu-hub",
                        "sub": "x",
                        "org": "beppu-center",
                        "role": "caseworker",
                        "jti": "j",
                        "iat": int(time.time()),
                        "exp": int(time.time()) + 60,
                    },
                )
            )
            + ".",
            "invalid_token",
        ),
    }


def test_every_bad_token_is_401_with_a_bearer_challenge_and_reads_nothing(world, client, issuer, published, tmp_path):
    for name, (header, code) in _bad_tokens(issuer, tmp_path).items():
        headers = {"Authorization": header} if header is not None else {}
        response = client.get("/v1/children/c1/timeline", params={"purpose": "support"}, headers=headers)
        error = assert_error(response, 401, code)
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="tsunagu"'), name
        assert "entries" not in response.text and "母親" not in response.text, name
        assert error["message"], name
        response = client.post("/v1/events", json=dict(R1, id="sneaky"), headers=headers)
        assert_error(response, 401, code)
    assert records_about(world, "c1") == []  # no principal, no read
    assert world.store.peek(ChildRecord.create_id("c1")).envelopes[-1]["id"] == "e1"  # nothing published


def test_an_unregistered_organisation_is_refused_and_the_refusal_is_recorded(world, client, issuer, published):
    response = read(client, issuer, "ghost-org", "caseworker")
    error = assert_error(response, 403, "unknown_organisation")
    assert "母親" not in response.text
    (record,) = records_about(world, "c1")
    assert record["id"] == error["access_record"]
    assert record["reader"] == {"org": "ghost-org", "role": "caseworker", "user": "tester"}
    assert record["decision"]["allowed"] is False and record["decision"]["reason"] == "unknown_organisation"
    assert world.verify().ok and world.verify().records == 1

    response = client.post(
        "/v1/events", json=dict(R1, id="g1", source="ghost-org"), headers=token_header(issuer, "ghost-org", "adapter")
    )
    assert_error(response, 403, "unknown_organisation")
    assert world.store.peek(Quarantine.create_id("ghost-org")) is None


# --- Timeline reads ---------------------------------------------------------------------------------------


def test_the_centre_reads_its_own_and_what_was_provided_to_it(world, client, issuer, published):
    response = read(client, issuer, "beppu-center", "caseworker")
    assert response.status_code == 200, response.text
    body = response.json()
    assert {e["id"]: e["rule"] for e in body["entries"]} == {"r1": "OWN", "n1": "OWN", "e1": "DIRECT"}
    n1 = next(e for e in body["entries"] if e["id"] == "n1")
    assert n1["payload"]["shelter"] == "非公開の避難先" and n1["redacted"] == []
    assert body["withheld"] == 0
    assert (body["org"], body["role"], body["purpose"], body["allowed"]) == (
        "beppu-center",
        "caseworker",
        "support",
        True,
    )
    (record,) = records_about(world, "c1")
    assert record["id"] == body["access_record"]
    assert record["reader"] == {"org": "beppu-center", "role": "caseworker", "user": "tester"}


def test_a_school_reads_only_its_own_and_never_learns_what_was_withheld(world, client, issuer, published):
    body = read(client, issuer, "beppu-es-1", "teacher").json()
    assert [(e["id"], e["rule"]) for e in body["entries"]] == [("e1", "OWN")]
    assert "withheld" not in body

    def stripped(response: httpx.Response) -> dict:
        assert response.status_code == 200
        return {k: v for k, v in response.json().items() if k != "access_record"}

    before = stripped(read(client, issuer, "beppu-es-2", "teacher"))
    assert before["entries"] == [] and "withheld" not in before
    more = [dict(N1, id=f"n{i}", payload={"text": f"記録{i}"}, sensitive=[]) for i in range(2, 6)]
    assert publish(client, issuer, "beppu-center", more)["counts"]["accepted"] == 4
    after = read(client, issuer, "beppu-es-2", "teacher")
    assert stripped(after) == before  # four more events about the child, and nothing in the answer changed
    assert "withheld" not in after.text
    # the centre does learn how many it may not see (none here), the 児童相談所 too
    assert read(client, issuer, "chuo-jiso", "caseworker").json()["withheld"] == 7


def test_the_child_guidance_centre_sees_nothing_without_the_joint_ledger(world, client, issuer, published):
    body = read(client, issuer, "chuo-jiso", "caseworker").json()
    assert body["allowed"] is True and body["entries"] == []
    assert body["withheld"] == 3


def test_an_auditor_is_refused_as_a_whole_and_the_refusal_is_recorded(world, client, issuer, published):
    response = read(client, issuer, "oita-audit", "auditor", purpose="support")
    error = assert_error(response, 403, "organisation_type_reads_no_case_content")
    assert "entries" not in response.text and "母親" not in response.text
    (record,) = records_about(world, "c1")
    assert record["id"] == error["access_record"] and record["decision"]["allowed"] is False


def test_emergency_reads_only_inside_a_declared_window(world, client, issuer, clock, published):
    error = assert_error(
        read(client, issuer, "chuo-jiso", "caseworker", purpose="emergency"), 403, "no_emergency_window"
    )
    declared = {
        "id": "x1",
        "kind": "emergency.declared",
        "child": "c1",
        "source": "chuo-jiso",
        "basis": "internal",
        "at": "2026-05-12T10:30:00+09:00",
        "payload": {"reason": "夜間に安全確認ができない"},
    }
    assert publish(client, issuer, "chuo-jiso", declared)["counts"]["accepted"] == 1
    body = read(client, issuer, "chuo-jiso", "caseworker", purpose="emergency").json()
    rules = {e["id"]: e["rule"] for e in body["entries"]}
    assert rules == {"r1": "EMERGENCY", "n1": "EMERGENCY", "e1": "EMERGENCY", "x1": "OWN"}
    n1 = next(e for e in body["entries"] if e["id"] == "n1")
    assert n1["redacted"] == ["shelter"] and n1["payload"]["shelter"] != "非公開の避難先"
    clock.at = NOW + timedelta(hours=25)
    assert_error(read(client, issuer, "chuo-jiso", "caseworker", purpose="emergency"), 403, "no_emergency_window")
    refused = [r for r in records_about(world, "c1") if not r["decision"]["allowed"]]
    assert [r["id"] for r in refused][0] == error["access_record"] and len(refused) == 2


def test_a_purpose_outside_the_gate_is_refused_and_recorded(world, client, issuer, published):
    error = assert_error(
        read(client, issuer, "beppu-center", "caseworker", purpose="statistics"), 403, "purpose_not_allowed"
    )
    assert [r["id"] for r in records_about(world, "c1")] == [error["access_record"]]


def test_every_read_allowed_or_refused_is_recorded_and_replays(world, client, issuer, published):
    statuses = [
        read(client, issuer, org, role, purpose).status_code
        for org, role, purpose in [
            ("beppu-center", "caseworker", "support"),
            ("beppu-es-1", "teacher", "meeting"),
            ("oita-audit", "auditor", "audit"),
            ("chuo-jiso", "caseworker", "emergency"),
            ("ghost-org", "clerk", "support"),
            ("oita-center", "caseworker", "support"),
        ]
    ]
    assert statuses == [200, 200, 403, 403, 403, 200]
    records = records_about(world, "c1")
    assert [r["decision"]["allowed"] for r in records] == [True, True, False, False, False, True]
    log = world.store.peek(AccessLog.create_id("c1"))
    assert log.count == 6
    report = world.verify()
    assert report.ok and report.records == 6


# --- Publishing -------------------------------------------------------------------------------------------


def test_a_batch_gets_a_result_per_event_and_the_rejected_are_kept(world, client, issuer, published):
    batch = [
        {
            "id": "e2",
            "kind": "concern.reported",
            "child": "c1",
            "source": "beppu-center",
            "basis": "internal",
            "at": "2026-05-12T10:30:00+09:00",
            "payload": {"summary": "家庭訪問の予定"},
        },  # accepted
        R1,  # duplicate
        {
            "id": "e3",
            "kind": "concern.reported",
            "child": "c1",
            "source": "beppu-center",
            "at": "2026-05-12T10:30:00+09:00",
            "payload": {"summary": "根拠なし"},
        },  # no basis
        dict(R1, payload={"residence": "442011"}),  # id reused
        dict(E1, id="e4"),  # another source
    ]
    body = publish(client, issuer, "beppu-center", batch)
    results = body["results"]
    assert [(r["index"], r["id"], r["outcome"]) for r in results] == [
        (0, "e2", "accepted"),
        (1, "r1", "duplicate"),
        (2, "e3", "rejected"),
        (3, "r1", "rejected"),
        (4, "e4", "rejected"),
    ]
    assert {k: body["counts"][k] for k in ("accepted", "duplicate", "rejected")} == {
        "accepted": 1,
        "duplicate": 1,
        "rejected": 3,
    }
    assert results[0]["problems"] == [] and results[1]["problems"] == []
    (missing,) = [p for p in results[2]["problems"] if p["field"] == "basis"]
    assert (
        missing["code"] == "missing_basis" and "basis" in missing["message_ja"] and has_japanese(missing["message_ja"])
    )
    assert [p["code"] for p in results[3]["problems"]] == ["id_conflict"]
    (mismatch,) = results[4]["problems"]
    assert (mismatch["code"], mismatch["field"]) == ("source_mismatch", "source")
    assert "beppu-es-1" in mismatch["message_ja"] and has_japanese(mismatch["message_ja"])

    held = world.store.peek(Quarantine.create_id("beppu-center")).held
    assert [h["raw"]["id"] for h in held] == ["e3", "r1", "e4"]
    assert held[2]["raw"] == dict(E1, id="e4") and held[2]["problems"][0]["code"] == "source_mismatch"
    assert world.store.peek(Quarantine.create_id("beppu-es-1")) is None  # not held in the impersonated org's name
    ids = [e["id"] for e in read(client, issuer, "beppu-center", "caseworker").json()["entries"]]
    assert sorted(ids) == ["e1", "e2", "n1", "r1"]
    r1 = next(e for e in read(client, issuer, "beppu-center", "caseworker").json()["entries"] if e["id"] == "r1")
    assert r1["payload"] == {"residence": "442020"}


def test_a_single_envelope_is_a_batch_of_one(world, client, issuer):
    body = publish(client, issuer, "beppu-center", R1)
    assert body["results"] == [{"index": 0, "id": "r1", "outcome": "accepted", "problems": []}]
    assert publish(client, issuer, "beppu-center", R1)["results"][0]["outcome"] == "duplicate"


def test_items_that_are_not_objects_are_rejected_one_by_one(world, client, issuer):
    body = publish(client, issuer, "beppu-center", [R1, 5, "text", None])
    assert [r["outcome"] for r in body["results"]] == ["accepted", "rejected", "rejected", "rejected"]
    assert all(has_japanese(r["problems"][0]["message_ja"]) for r in body["results"][1:])
    assert len(world.store.peek(Quarantine.create_id("beppu-center")).held) == 3


# --- Bad requests: a clear JSON error, never a 500 --------------------------------------------------------


@pytest.mark.parametrize(
    "content, code, field",
    [
        (b"", "invalid_json", "body"),
        (b"{not json", "invalid_json", "body"),
        (b"[" * 50_000, "invalid_json", "body"),
        (b'{"id": NaN}', "invalid_json", "body"),
        (b'[{"id": "\\ud800"}]', "invalid_text", "body[0]"),
        ('{"id": "x"}'.encode("utf-16"), "invalid_encoding", "body"),
        (b"5", "invalid_body", "body"),
        (b'"an event"', "invalid_body", "body"),
        (b"[]", "empty_batch", "body"),
        (json.dumps([{"id": str(i)} for i in range(1001)]).encode(), "batch_too_large", "body"),
    ],
)
def test_a_publish_body_that_is_not_events_gets_a_422_naming_the_body(world, client, issuer, content, code, field):
    response = client.post(
        "/v1/events",
        content=content,
        headers=token_header(issuer, "beppu-center", "adapter") | {"Content-Type": "application/json"},
    )
    error = assert_error(response, 422, code)
    assert error["field"] == field
    assert world.store.peek(Quarantine.create_id("beppu-center")) is None


def test_dates_beyond_the_hubs_range_are_refused_naming_the_field_and_never_break_a_later_read(
    world, client, issuer, published
):
    """An ``at`` whose Japan time is before year 1, a payload month or date at the end of the calendar: rejected
    with the field named, so that nothing stored breaks the overdue list (once a server error for every reader)."""
    listed = {
        "kind": "target_list.assigned",
        "child": "c1",
        "source": "beppu-center",
        "basis": "cwa-25-3",
        "to": "beppu-es-1",
        "at": "2026-05-01T09:00:00+09:00",
        "payload": {"school": "beppu-es-1", "student_no": "S1"},
    }
    cases = [
        ({**listed, "id": "t1", "at": "0001-01-01T00:00:00+14:00"}, "at"),
        ({**listed, "id": "t2", "at": "1899-12-31T23:59:59+09:00"}, "at"),
        ({**listed, "id": "t3", "payload": {**listed["payload"], "from_month": "9999-12"}}, "payload.from_month"),
        (
            {**N1, "id": "n2", "kind": "visit.report", "payload": {"date": "0001-01-01", "observations": "面会"}},
            "payload.date",
        ),
        (
            {**R1, "id": "r2", "child": "c2", "payload": {"residence": "442020", "birth_date": "9999-12-31"}},
            "payload.birth_date",
        ),
    ]
    for envelope, field in cases:
        [result] = publish(client, issuer, "beppu-center", envelope)["results"]
        assert result["outcome"] == "rejected", (envelope, result)
        assert [p["field"] for p in result["problems"]] == [field], result
        assert "2999-12" in result["problems"][0]["message_ja"], result
    assert publish(client, issuer, "beppu-center", {**listed, "id": "t4"})["counts"]["accepted"] == 1
    for org, role in [("beppu-es-1", "teacher"), ("beppu-center", "caseworker")]:
        response = client.get("/v1/reports/overdue", headers=token_header(issuer, org, role))
        assert response.status_code == 200, response.text
        for month in ["9999-12", "0000-01"]:
            response = client.get(
                "/v1/reports/overdue", params={"month": month}, headers=token_header(issuer, org, role)
            )
            error = assert_error(response, 422, "invalid_request")
            assert error["field"] == "month" and "2999-12" in error["message_ja"], error


def test_a_number_that_overflows_to_infinity_is_rejected_naming_its_field(world, client, issuer, published):
    """``1e400`` is valid JSON that Python reads as infinity: no store keeps it as sent, so it is refused by name,
    in a named field or in a free one, however deep, and kept in quarantine for correction."""
    note = (
        '{"id": "n5", "kind": "note.recorded", "child": "c1", "source": "beppu-center", "basis": "internal", '
        '"at": "2026-05-01T09:00:00+09:00", "payload": {"text": "x", "score": [1, {"weight": -1e400}]}}'
    )
    report = (
        '{"id": "a1", "kind": "attendance.monthly", "child": "c1", "source": "beppu-center", "basis": '
        '"internal", "at": "2026-05-01T09:00:00+09:00", "payload": {"month": "2026-04", "school_days": 20, '
        '"attended": 1e400, "absent": 0, "absent_without_contact": 0}}'
    )
    response = client.post(
        "/v1/events",
        content=f"[{note}, {report}]",
        headers=token_header(issuer, "beppu-center", "adapter") | {"Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["outcome"] for r in results] == ["rejected", "rejected"]
    assert [[p["field"] for p in r["problems"]] for r in results] == [["payload.score.1.weight"], ["payload.attended"]]
    assert all(has_japanese(r["problems"][0]["message_ja"]) for r in results)
    held = world.store.peek(Quarantine.create_id("beppu-center")).held
    assert [h["raw"]["id"] for h in held] == ["n5", "a1"]
    assert [e.id for e in world.store.peek(ChildRecord.create_id("c1")).entries] == ["r1", "n1", "e1"]


@pytest.mark.parametrize(
    "path, params, field",
    [
        ("/v1/children/c1/timeline", {}, "purpose"),
        ("/v1/children/c1/timeline", {"purpose": ""}, "purpose"),
        ("/v1/children/c1/timeline", {"purpose": "x" * 41}, "purpose"),
        ("/v1/children/" + "c" * 201 + "/timeline", {"purpose": "support"}, "child"),
    ],
)
def test_a_timeline_request_that_is_not_valid_gets_a_422_naming_the_field(world, client, issuer, path, params, field):
    response = client.get(path, params=params, headers=token_header(issuer, "beppu-center", "caseworker"))
    error = assert_error(response, 422, "invalid_request")
    assert error["field"] == field and error["message_ja"].startswith(f"{field}: ")
    assert records_about(world, "c1") == []


def test_unknown_paths_and_methods_answer_in_json(client):
    assert_error(client.get("/v1/nothing-here"), 404, "not_found")
    assert_error(client.delete("/v1/health"), 405, "method_not_allowed")


def test_a_body_over_the_limit_gets_a_json_413_declared_or_streamed(world, keys):
    app = create_app(world, keys[1], max_body_bytes=2000)
    headers = token_header(keys[0], "beppu-center", "adapter")
    with TestClient(app) as client:
        assert_error(client.post("/v1/events", content=b" " * 2001, headers=headers), 413, "payload_too_large")
        chunks = (b"[" + b" " * 999 for _ in range(3))  # no Content-Length: sent chunked
        assert_error(client.post("/v1/events", content=chunks, headers=headers), 413, "payload_too_large")
        assert client.post("/v1/events", json=R1, headers=headers).status_code == 200  # under the limit


def test_an_unexpected_failure_is_a_json_500_without_internals(world, keys):
    broken = APIRouter()

    @broken.get("/v1/broken")
    def fails() -> None:
        raise RuntimeError("secret internal detail")

    app = create_app(world, keys[1])
    app.include_router(broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v1/broken")
    assert_error(response, 500, "internal_error")
    assert "secret" not in response.text and "RuntimeError" not in response.text


# --- PostgreSQL -------------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_the_api_on_postgresql(make_hub, clock, keys, postgres_url):
    hub = make_hub(database=postgres_url)
    hub.load_orgs(ORGS)
    clock.at = NOW
    issuer = keys[0]
    with TestClient(create_app(hub, keys[1])) as client:
        assert client.get("/v1/health").json()["store"] == "postgresql"
        assert publish(client, issuer, "beppu-center", [R1, N1])["counts"]["accepted"] == 2
        assert publish(client, issuer, "beppu-center", E1)["results"][0]["problems"][0]["code"] == "source_mismatch"
        assert {e["id"] for e in read(client, issuer, "beppu-center", "caseworker").json()["entries"]} == {"r1", "n1"}
        assert_error(read(client, issuer, "oita-audit", "auditor"), 403, "organisation_type_reads_no_case_content")
    assert hub.verify().ok and hub.verify().records == 2


# --- The command line: token issue, serve -----------------------------------------------------------------


def test_token_issue_mints_a_token_the_hub_verifies_and_refuses_unknowns(tmp_path):
    from services.cli.root import app

    database, key_file = f"sqlite:///{tmp_path / 'hub.db'}", tmp_path / "key.pem"
    hub = Hub(database)
    hub.load_orgs(ORGS)
    hub.close()
    runner = CliRunner()
    common = ["--database", database, "--key-file", str(key_file)]
    result = runner.invoke(
        app, ["token", "issue", "--org", "beppu-es-1", "--role", "teacher", "--user", "山田", "--hours", "2", *common]
    )
    assert result.exit_code == 0, result.output
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    _, verifier = keys_from_file(key_file, create=False)
    principal = verifier.verify(result.stdout.strip().splitlines()[-1])
    assert (principal.org, principal.role, principal.user) == ("beppu-es-1", "teacher", "山田")

    refused = runner.invoke(app, ["token", "issue", "--org", "beppu-es-1", "--role", "headmaster", *common])
    assert refused.exit_code == 2 and "headmaster" in refused.output
    unknown = runner.invoke(app, ["token", "issue", "--org", "ghost-org", "--role", "teacher", *common])
    assert unknown.exit_code == 2 and "ghost-org" in unknown.output


def test_tsunagu_serve_answers_an_authenticated_read_over_a_socket(tmp_path):
    database, key_file = f"sqlite:///{tmp_path / 'hub.db'}", tmp_path / "key.pem"
    hub = Hub(database)
    hub.load_orgs(ORGS)
    at = (datetime.now(JST) - timedelta(days=1)).isoformat()
    assert [r.outcome for r in hub.publish([dict(R1, at=at)])] == ["accepted"]
    hub.close()
    issuer, _ = keys_from_file(key_file)
    port = free_port()
    tsunagu = Path(sys.executable).with_name("tsunagu")
    server = subprocess.Popen(
        [
            str(tsunagu),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--database",
            database,
            "--key-file",
            str(key_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        response = httpx.get(
            f"{base}/v1/children/c1/timeline",
            params={"purpose": "support"},
            headers=token_header(issuer, "beppu-center", "caseworker", user="佐藤"),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        assert [(e["id"], e["rule"]) for e in response.json()["entries"]] == [("r1", "OWN")]
        assert (
            httpx.get(f"{base}/v1/children/c1/timeline", params={"purpose": "support"}, timeout=10).status_code == 401
        )
    finally:
        server.terminate()
        server.wait(timeout=15)
    hub = Hub(database)
    try:
        (record,) = records_about(hub, "c1")
        assert record["reader"] == {"org": "beppu-center", "role": "caseworker", "user": "佐藤"}
        assert hub.verify().ok
    finally:
        hub.close()
