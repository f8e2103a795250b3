"""The authorisation matrix, through HTTP: for every organisation type of domain.md and every scope, what each
kind of endpoint answers. A token is the organisation's adapter's, from the token endpoint (client credentials)
with one scope. With the endpoint's scope, the answer is the hub's own decision for that organisation type (the
read policy, case work, the auditors' rule); with any other scope it is 403 ``insufficient_scope`` and nothing
happens: nothing is stored, no case is registered, no read is recorded. Without a token, every endpoint but the
public ones is 401, and every endpoint declares its scope in the OpenAPI schema."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute

from events.model import ORG_TYPES
from events.store import Quarantine
from services.audit.replay import access_records
from services.auth.clients import add_client
from services.auth.tokens import SCOPES
from services.projections.cases import case_entry
from tests.authkit import BY_TYPE, ORGS, access_token, bearer, build
from tests.helpers import assert_error

pytestmark = [pytest.mark.store, pytest.mark.http]

R1 = {
    "id": "r1",
    "kind": "child.registered",
    "child": "c1",
    "source": "beppu-center",
    "basis": "internal",
    "at": "2026-04-01T09:00:00+09:00",
    "payload": {"residence": "442020"},
}
PUBLIC = {"/v1/health", "/oauth/token", "/.well-known/jwks.json", "/.well-known/oauth-authorization-server"}


@pytest.fixture
def world(hub, clock, tmp_path):
    hub.load_orgs(ORGS)
    clock.at = clock.at.replace(year=2026, month=5, day=12, hour=11)
    [result] = hub.publish([R1])
    assert result.outcome == "accepted"
    auth = build(hub, tmp_path / "keys.pem")
    with auth.client:
        yield hub, auth


def _everyone_but(*types: str) -> dict[str, int]:
    return {t: 403 if t in types else 200 for t in ORG_TYPES}


# (scope, method, path, request, expected status per organisation type with that scope)
ENDPOINTS: list[tuple[str, str, str, dict[str, Any], dict[str, int]]] = [
    ("publish", "post", "/v1/events", {}, {t: 200 for t in ORG_TYPES}),
    ("publish", "post", "/v1/cases", {}, {t: 201 if t == "municipal_center" else 403 for t in ORG_TYPES}),
    (
        "read",
        "get",
        "/v1/children/c1/timeline",
        {"params": {"purpose": "support"}},
        _everyone_but("auditor", "prefecture_office"),
    ),
    ("read", "get", "/v1/ledger", {}, {t: 200 if t == "municipal_center" else 403 for t in ORG_TYPES}),
    (
        "read",
        "get",
        "/v1/reports/overdue",
        {},
        {t: 200 if t in ("municipal_center", "child_guidance_center", "school", "nursery") else 403 for t in ORG_TYPES},
    ),
    ("audit", "get", "/v1/audit/emergencies", {}, {t: 200 if t == "auditor" else 403 for t in ORG_TYPES}),
    ("admin", "get", "/v1/settings", {}, {t: 200 for t in ORG_TYPES}),
]


def test_every_organisation_type_of_the_domain_is_in_the_matrix():
    assert set(BY_TYPE) == set(ORG_TYPES) and len(ORG_TYPES) == 10
    assert {scope for scope, *_ in ENDPOINTS} == set(SCOPES)


@pytest.mark.parametrize("org_type", sorted(ORG_TYPES))
def test_each_scope_opens_its_endpoints_and_no_other(world, org_type):
    hub, auth = world
    org = BY_TYPE[org_type]
    client, secret = add_client(hub, org=org, scopes=list(SCOPES), by="test-admin")
    for scope in SCOPES:
        token = access_token(auth.client, client.client_id, secret, scope=scope)
        for needed, method, path, request, expected in ENDPOINTS:
            reads_before = len(list(access_records(hub.store)))
            request = _request(path, org, scope) | request
            response = getattr(auth.client, method)(path, headers=bearer(token), **request)
            where = f"{org_type} with {scope} on {method.upper()} {path}"
            if scope != needed:
                error = assert_error(response, 403, "insufficient_scope")
                assert needed in error["message"] and needed in response.headers["WWW-Authenticate"], where
                assert len(list(access_records(hub.store))) == reads_before, where  # nothing was read, or recorded
            else:
                assert response.status_code == expected[org_type], (where, response.text)
                assert response.status_code != 403 or response.json()["error"]["code"] != "insufficient_scope"
            _check_effects(hub, path, org, scope, allowed=scope == needed, status=response.status_code)


def _request(path: str, org: str, scope: str) -> dict[str, Any]:
    if path == "/v1/events":
        return {
            "json": {
                "id": f"m-{scope}",
                "kind": "concern.reported",
                "child": "c1",
                "source": org,
                "basis": "cwa-21-10-5",
                "at": "2026-05-12T10:00:00+09:00",
                "payload": {"summary": "気づき"},
            }
        }
    if path == "/v1/cases":
        return {"json": {"child": "c1", "category": "youshien", "case_type": "neglect", "case": f"K-{scope}"}}
    return {}


def _check_effects(hub, path: str, org: str, scope: str, *, allowed: bool, status: int) -> None:
    """What the request changed in the store: only what the right scope allows, and only when it succeeded."""
    if path == "/v1/events":
        stored = hub.store.stored_envelope(f"m-{scope}") is not None
        assert stored == allowed, (org, scope)
        if not allowed:
            assert hub.store.peek(Quarantine.create_id(org)) is None
    if path == "/v1/cases":
        assert (case_entry(hub.store, f"K-{scope}") is not None) == (allowed and status == 201), (org, scope)


def test_every_endpoint_declares_a_scope_and_refuses_a_request_without_a_token(world):
    hub, auth = world
    schema = auth.client.get("/openapi.json").json()
    unscoped = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if path in PUBLIC:
                assert not operation.get("security"), path
                continue
            requirements = operation.get("security") or []
            scopes = {s for requirement in requirements for values in requirement.values() for s in values}
            if len(scopes) != 1 or not scopes <= set(SCOPES):
                unscoped.append((method.upper(), path, sorted(scopes)))
    assert unscoped == [], "every endpoint requires exactly one scope (services.api_deps.require_scope)"
    assert schema["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]["tokenUrl"] == "/oauth/token"

    reads_before = len(list(access_records(hub.store)))
    for route in auth.app.routes:
        if not isinstance(route, APIRoute) or route.path in PUBLIC or not route.include_in_schema:
            continue
        path = route.path.replace("{", "").replace("}", "")  # every path parameter becomes its own name
        for method in route.methods:
            response = auth.client.request(method, path, json={})
            assert_error(response, 401, "missing_token")
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="tsunagu"', path
    assert len(list(access_records(hub.store))) == reads_before


def test_a_token_without_a_scope_opens_nothing(world):
    hub, auth = world
    token = auth.issuer.issue(org="beppu-center", role="caseworker", user="x", scopes=[])
    for _, method, path, request, _ in ENDPOINTS:
        response = getattr(auth.client, method)(
            path, headers=bearer(token), **(_request(path, "beppu-center", "none") | request)
        )
        assert_error(response, 403, "insufficient_scope")
    assert list(access_records(hub.store)) == []
