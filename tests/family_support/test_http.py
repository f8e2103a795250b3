"""Family-support services over HTTP (``/v1/services``): the referral, monitoring, urgent inbox and acknowledgement
as the token's organisation, the errors with their Japanese field messages, and the operations in the OpenAPI."""

from __future__ import annotations

from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from services.http.app import create_app
from services.hub import Hub
from tests.family_support.test_family_support import ORGS
from tests.helpers import token_header

pytestmark = [pytest.mark.store, pytest.mark.http]


@pytest.fixture
def world(hub, clock) -> Hub:
    hub.load_orgs(ORGS)
    clock.at = datetime.fromisoformat("2026-05-01T09:00:00+09:00")
    [r] = hub.publish(
        [
            {
                "id": "reg-c1",
                "kind": "child.registered",
                "child": "c1",
                "source": "beppu-center",
                "basis": "internal",
                "at": clock.at.isoformat(),
                "payload": {"residence": "442020"},
            }
        ]
    )
    assert r.outcome == "accepted"
    return hub


@pytest.fixture
def client(world, keys):
    with TestClient(create_app(world, keys[1])) as client:
        yield client


@pytest.fixture
def issuer(keys):
    return keys[0]


def test_referral_monitoring_urgent_inbox_and_acknowledgement(client, issuer, clock):
    centre = token_header(issuer, "beppu-center")
    provider = token_header(issuer, "visit-a", "provider_staff")
    body = {
        "child": "c1",
        "provider": "visit-a",
        "service": "養育支援訪問事業",
        "start": "2026-05-15",
        "summary": "要点",
    }
    made = client.post("/v1/services/referrals", json=body | {"referral": "F-1"}, headers=centre)
    assert made.status_code == 201, made.text
    bad = client.post("/v1/services/referrals", json=body | {"provider": "beppu-es-1"}, headers=centre)
    error = bad.json()["error"]
    assert bad.status_code == 422 and error["field"] == "provider" and "委託事業者" in error["message_ja"]
    monitored = client.post(
        "/v1/services/referrals/F-1/monitoring",
        json={"child": "c1", "observations": "落ち着いている", "recommendation": "continue"},
        headers=provider,
    )
    assert monitored.status_code == 201, monitored.text
    other = client.post(
        "/v1/services/referrals/F-1/monitoring",
        json={"child": "c1", "observations": "x", "recommendation": "continue"},
        headers=token_header(issuer, "visit-b", "provider_staff"),
    )
    assert other.status_code == 404
    sent = client.post(
        "/v1/events",
        json={
            "id": "urgent-1",
            "kind": "visit.report",
            "child": "c1",
            "source": "visit-a",
            "basis": "commissioned",
            "to": "beppu-center",
            "at": clock.at.isoformat(),
            "payload": {
                "date": "2026-05-01",
                "observations": "あざ",
                "urgent": True,
                "urgent_reason": "叩かれたと話した",
            },
        },
        headers=token_header(issuer, "visit-a", "adapter"),
    )
    assert sent.status_code == 200, sent.text
    inbox = client.get("/v1/services/urgent", headers=centre).json()
    assert [r["report"] for r in inbox["reports"]] == ["urgent-1"] and len(inbox["access_records"]) == 1
    ack = client.post("/v1/services/reports/urgent-1/acknowledgement", json={"note": "訪問します"}, headers=centre)
    assert ack.status_code == 201, ack.text
    assert client.get("/v1/services/urgent", headers=centre).json()["reports"] == []
    mine = client.get("/v1/services", headers=provider).json()
    assert mine["reports"][0]["acknowledged"]["note"] == "訪問します"
    assert [r["referral"] for r in mine["referrals"]] == ["F-1"]
    unknown = client.post("/v1/services/reports/nothing/acknowledgement", json={}, headers=centre)
    assert unknown.status_code == 404
    counts = client.get("/v1/services/counts", headers=centre).json()
    assert counts["acknowledgement"]["acknowledged"] == 1
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/services/referrals", "/v1/services/urgent", "/v1/services/reports/{report}/acknowledgement"} <= set(
        paths
    )
