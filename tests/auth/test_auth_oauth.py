"""Authentication through HTTP: adapters' client credentials, the JWKS and the metadata, key rotation without a
restart, staff sign-in through the (development) OpenID provider, and every kind of token the hub must refuse.
Real apps on real stores and key files; one test runs ``tsunagu serve`` and does it all over a socket."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from typer.testing import CliRunner

from events.clock import JST
from events.problems import Rejected
from events.store import Quarantine
from services.audit.replay import access_records
from services.auth import clients
from services.auth.clients import CLIENTS_ID, add_client, disable_client, find_client, rotate_secret, secret_matches
from services.auth.dev_provider import DevProvider
from services.auth.oidc import fetch_json
from services.auth.tokens import SigningKeys, TokenIssuer
from services.cli.root import app as cli
from services.hub import Hub
from tests.authkit import (
    BASE,
    DEV_USERS,
    JWT_BEARER,
    ORGS,
    access_token,
    assert_oauth_error,
    basic,
    bearer,
    build,
    client_token,
    staff_sign_in,
)
from tests.helpers import assert_error, b64url_json, free_port, has_japanese

pytestmark = [pytest.mark.store, pytest.mark.http]

NOW = datetime(2026, 5, 12, 11, 0, tzinfo=JST)
R1 = {
    "id": "r1",
    "kind": "child.registered",
    "child": "c1",
    "source": "beppu-center",
    "basis": "internal",
    "at": "2026-04-01T09:00:00+09:00",
    "payload": {"residence": "442020"},
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


@pytest.fixture
def world(hub, clock) -> Hub:
    hub.load_orgs(ORGS)
    clock.at = NOW
    [result] = hub.publish([R1])
    assert result.outcome == "accepted"
    return hub


@pytest.fixture
def auth(world, tmp_path):
    built = build(world, tmp_path / "signing-keys.pem", dev_users=DEV_USERS)
    with built.client:
        yield built


@pytest.fixture
def school_client(world):
    """The school's adapter: its client, allowed to publish and read, and its secret."""
    client, secret = add_client(world, org="beppu-es-1", scopes=["publish", "read"], by="test-admin")
    return client.client_id, secret


def reads_of(hub: Hub, child: str = "c1") -> list[dict]:
    return [r for r in access_records(hub.store) if r["child"] == child]


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# --- Client credentials ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["basic", "post"])
def test_an_adapter_gets_a_token_for_its_organisation_and_publishes_and_reads_with_it(world, auth, school_client, how):
    client_id, secret = school_client
    response = client_token(auth.client, client_id, secret, how=how)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 900, "publish read")
    claims = claims_of(body["access_token"])
    assert {k: claims[k] for k in ("iss", "aud", "sub", "org", "role", "scope", "client_id")} == {
        "iss": "tsunagu",
        "aud": "tsunagu-hub",
        "sub": client_id,
        "org": "beppu-es-1",
        "role": "adapter",
        "scope": "publish read",
        "client_id": client_id,
    }
    assert claims["exp"] - claims["iat"] == 900 and claims["jti"]

    published = auth.client.post("/v1/events", json=E1, headers=bearer(body["access_token"]))
    assert published.status_code == 200 and published.json()["counts"]["received"] == 1  # a school: 受付
    assert world.store.stored_envelope("e1") is not None
    read = auth.client.get(
        "/v1/children/c1/timeline", params={"purpose": "support"}, headers=bearer(body["access_token"])
    )
    assert read.status_code == 200, read.text
    assert [(e["id"], e["rule"]) for e in read.json()["entries"]] == [("e1", "OWN")]
    (record,) = reads_of(world)
    assert record["reader"] == {"org": "beppu-es-1", "role": "adapter", "user": client_id}


def test_a_client_asks_for_fewer_scopes_and_gets_only_those(world, auth, school_client):
    token = access_token(auth.client, *school_client, scope="read")
    assert claims_of(token)["scope"] == "read"
    refused = auth.client.post("/v1/events", json=E1, headers=bearer(token))
    assert_error(refused, 403, "insufficient_scope")
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    assert world.store.stored_envelope("e1") is None
    assert world.store.peek(Quarantine.create_id("beppu-es-1")) is None


@pytest.mark.parametrize("scope", ["publish audit", "admin", "read publish unknown"])
def test_a_client_cannot_ask_for_scopes_it_was_not_given(world, auth, school_client, scope):
    assert_oauth_error(client_token(auth.client, *school_client, scope=scope), 400, "invalid_scope")


def test_wrong_unknown_and_missing_client_credentials_are_invalid_client(world, auth, school_client):
    client_id, secret = school_client
    not_utf8 = {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()}
    for response in [
        client_token(auth.client, client_id, secret + "x"),
        client_token(auth.client, client_id, secret + "x", how="post"),
        client_token(auth.client, client_id, "", how="basic"),
        client_token(auth.client, "tc_nobody", secret),
        auth.client.post("/oauth/token", data={"grant_type": "client_credentials"}),
        auth.client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=not_utf8),
    ]:
        body = assert_oauth_error(response, 401, "invalid_client")
        assert response.headers["WWW-Authenticate"].startswith("Basic"), body  # HTTP Basic is offered


def test_an_unknown_client_a_disabled_one_and_a_wrong_secret_get_the_same_answer_and_the_same_work(
    world, auth, school_client, monkeypatch
):
    """Nothing tells a caller guessing client ids which ones exist: the same status, body and headers, and an
    unknown id costs the same scrypt verification as a wrong secret (against a dummy hash with the same
    parameters). The work is counted, not timed: the times themselves are measured by bench.timings."""
    client_id, secret = school_client
    disabled, disabled_secret = add_client(world, org="beppu-center", scopes=["read"], by="test-admin")
    disable_client(world, disabled.client_id, by="test-admin")
    for how in ["basic", "post"]:
        answers = []
        for who, what in [
            (client_id, secret + "x"),
            ("tc_0123456789abcdef", secret),
            (disabled.client_id, disabled_secret),
        ]:
            response = client_token(auth.client, who, what, how=how)
            answers.append((response.status_code, response.json(), response.headers.get("www-authenticate")))
        assert answers[0][0] == 401 and answers[0][1]["error"] == "invalid_client", answers[0]
        assert answers[1] == answers[0] and answers[2] == answers[0], (how, answers)

    verified: list[str] = []  # the stored hash each scrypt verification ran against

    def recorded(candidate: str, stored: str) -> bool:
        verified.append(stored)
        return secret_matches(candidate, stored)

    monkeypatch.setattr(clients, "secret_matches", recorded)
    work = {}
    for who, what in [
        (client_id, secret + "x"),
        ("tc_0123456789abcdef", secret),
        (disabled.client_id, disabled_secret),
    ]:
        verified.clear()
        assert client_token(auth.client, who, what).status_code == 401
        assert len(verified) == 1, (who, verified)  # one scrypt verification per request, whoever asks
        work[who] = verified[0].rsplit("$", 2)[0]  # the scheme and scrypt parameters (N, r, p), not salt or hash
    assert work["tc_0123456789abcdef"] == work[client_id] == work[disabled.client_id], work


@pytest.mark.parametrize(
    "form, content_type, error",
    [
        ({"grant_type": "password", "username": "a", "password": "b"}, None, "unsupported_grant_type"),
        ({"scope": "read"}, None, "unsupported_grant_type"),
        ({"grant_type": "authorization_code", "code": "x"}, None, "unsupported_grant_type"),
        (b'{"grant_type": "client_credentials"}', "application/json", "invalid_request"),
        (b"grant_type=client_credentials&grant_type=client_credentials", None, "invalid_request"),
        (b"grant_type=client_credentials&scope=\xff", None, "invalid_request"),
        ({"grant_type": JWT_BEARER}, None, "invalid_request"),  # no assertion
        ({"grant_type": JWT_BEARER, "assertion": "not-a-jwt"}, None, "invalid_grant"),
    ],
)
def test_malformed_token_requests_get_rfc_6749_errors_in_both_languages(
    world, auth, school_client, form, content_type, error
):
    headers = basic(*school_client) | {"Content-Type": content_type or "application/x-www-form-urlencoded"}
    if isinstance(form, dict):
        response = auth.client.post("/oauth/token", data=form, headers=basic(*school_client))
    else:
        response = auth.client.post("/oauth/token", content=form, headers=headers)
    assert_oauth_error(response, 400, error)


def test_token_requests_over_plain_http_are_refused_except_on_loopback(world, auth, school_client):
    plain = TestClient(auth.app, base_url="http://hub.example")
    assert_oauth_error(client_token(plain, *school_client), 400, "insecure_transport")
    loopback = TestClient(auth.app, base_url="http://127.0.0.1:8080")
    assert client_token(loopback, *school_client).status_code == 200


def test_secrets_are_stored_hashed_and_rotating_one_retires_the_old(world, auth, school_client):
    client_id, secret = school_client
    stored = find_client(world.store, client_id)
    assert secret not in repr(stored) and stored.secret_hash.startswith("scrypt$16384$8$1$")
    assert secret_matches(secret, stored.secret_hash) and not secret_matches(secret + "x", stored.secret_hash)
    recordings = world.store.recorder.select_events(CLIENTS_ID)
    assert recordings and all(secret.encode() not in r.state for r in recordings)

    before = access_token(auth.client, client_id, secret)
    _, new_secret = rotate_secret(world, client_id, by="test-admin")
    assert_oauth_error(client_token(auth.client, client_id, secret), 401, "invalid_client")
    after = access_token(auth.client, client_id, new_secret)
    for token in (before, after):  # tokens issued before the rotation stay valid until they expire
        assert auth.client.post("/v1/events", json=E1, headers=bearer(token)).status_code == 200


def test_one_enabled_client_per_organisation(world):
    add_client(world, org="beppu-es-1", scopes=["publish"], by="test-admin")
    with pytest.raises(Rejected) as refused:
        add_client(world, org="beppu-es-1", scopes=["publish"], by="test-admin")
    assert refused.value.code == "client_exists" and has_japanese(refused.value.problems[0].message_ja)
    for org, scopes, code in [
        ("ghost-org", ["read"], "unknown_organisation"),
        ("beppu-es-2", [], "no_scopes"),
        ("beppu-es-2", ["read", "root"], "unknown_scope"),
    ]:
        with pytest.raises(Rejected) as refused:
            add_client(world, org=org, scopes=scopes, by="test-admin")
        assert refused.value.code == code


def test_a_client_disabled_after_issuance_is_refused_at_once_and_gets_no_new_token(world, auth, school_client):
    client_id, secret = school_client
    token = access_token(auth.client, client_id, secret)
    disable_client(world, client_id, by="test-admin")
    error = assert_error(auth.client.post("/v1/events", json=E1, headers=bearer(token)), 401, "client_disabled")
    assert error["message_ja"]
    assert_error(
        auth.client.get("/v1/children/c1/timeline", params={"purpose": "support"}, headers=bearer(token)),
        401,
        "client_disabled",
    )
    assert world.store.stored_envelope("e1") is None and reads_of(world) == []
    assert_oauth_error(client_token(auth.client, client_id, secret), 401, "invalid_client")
    # the organisation may register a new client now
    replacement, _ = add_client(world, org="beppu-es-1", scopes=["publish"], by="test-admin")
    assert replacement.client_id != client_id


# --- One organisation never acts as another ------------------------------------------------------------------


def test_a_token_for_one_organisation_cannot_publish_or_read_as_another(world, auth, school_client):
    token = access_token(auth.client, *school_client)
    as_centre = dict(R1, id="r2", payload={"residence": "442011"})  # the centre's event, sent by the school
    body = auth.client.post("/v1/events", json=as_centre, headers=bearer(token)).json()
    assert body["results"][0]["outcome"] == "rejected"
    assert body["results"][0]["problems"][0]["code"] == "source_mismatch"
    assert world.store.stored_envelope("r2") is None
    assert world.store.peek(Quarantine.create_id("beppu-center")) is None  # not held in the centre's name either
    # reading: the organisation is the token's, whatever the request says
    read = auth.client.get(
        "/v1/children/c1/timeline",
        params={"purpose": "support", "org": "beppu-center"},
        headers=bearer(token) | {"X-Org": "beppu-center"},
    )
    assert read.status_code == 200 and read.json()["org"] == "beppu-es-1" and read.json()["entries"] == []
    (record,) = reads_of(world)
    assert record["reader"]["org"] == "beppu-es-1"


def test_a_client_token_naming_another_organisation_than_its_clients_is_refused(world, auth, school_client):
    """Defence in depth: even a correctly signed token is refused when its client acts for another organisation."""
    client_id, _ = school_client
    forged = auth.issuer.issue(
        org="beppu-center", role="adapter", user=client_id, client_id=client_id, scopes=["publish", "read"]
    )
    assert_error(auth.client.post("/v1/events", json=dict(R1, id="r3"), headers=bearer(forged)), 401, "client_disabled")
    assert world.store.stored_envelope("r3") is None


def _tampered(token: str, **changes) -> str:
    header, payload, signature = token.split(".")
    return ".".join([header, b64url_json(claims_of(token) | changes), signature])


def test_expired_forged_wrong_audience_and_unsigned_client_tokens_are_refused(world, auth, school_client):
    client_id, secret = school_client
    good = claims_of(access_token(auth.client, client_id, secret))
    kid = auth.keys.signing_key().kid
    other = ECKey.generate_key("P-256", private=True)
    expired = TokenIssuer(auth.keys, now=lambda: time.time() - 3600).issue(
        org="beppu-es-1",
        role="adapter",
        user=client_id,
        client_id=client_id,
        scopes=["publish"],
        lifetime=timedelta(minutes=15),
    )
    signed = access_token(auth.client, client_id, secret)
    cases = {
        "expired": (expired, "token_expired"),
        "another key, our kid": (jwt.encode({"alg": "ES256", "kid": kid}, good, other), "invalid_token"),
        "another key, its kid": (jwt.encode({"alg": "ES256", "kid": "x"}, good, other), "invalid_token"),
        "payload changed": (_tampered(signed, org="beppu-center"), "invalid_token"),
        "scope widened": (_tampered(signed, scope="publish read audit admin"), "invalid_token"),
        "wrong audience": (
            jwt.encode({"alg": "ES256", "kid": kid}, good | {"aud": "elsewhere"}, auth.keys.signing_key()),
            "wrong_audience",
        ),
        "wrong issuer": (
            jwt.encode({"alg": "ES256", "kid": kid}, good | {"iss": "someone"}, auth.keys.signing_key()),
            "wrong_issuer",
        ),
        "alg none": (b64url_json({"alg": "none", "kid": kid}) + "." + b64url_json(good) + ".", "invalid_token"),
        "HS256 with the public key": (
            _hs256({"alg": "HS256", "kid": kid}, good, auth.keys.signing_key().as_pem(private=False)),
            "invalid_token",
        ),
    }
    for name, (token, code) in cases.items():
        response = auth.client.post("/v1/events", json=E1, headers=bearer(token))
        assert_error(response, 401, code)
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="tsunagu", error="invalid_token"'), name
    assert world.store.stored_envelope("e1") is None
    assert world.store.peek(Quarantine.create_id("beppu-es-1")) is None


def _hs256(header: dict, claims: dict, secret: bytes) -> str:
    """An attacker's token: HMAC-signed with the public key as the secret (the algorithm confusion attack)."""
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


# --- JWKS, metadata, rotation ----------------------------------------------------------------------------------


def test_the_jwks_verifies_the_hubs_tokens_and_the_metadata_is_rfc_8414(world, auth, school_client):
    jwks = auth.client.get("/.well-known/jwks.json").json()
    assert [k["kid"] for k in jwks["keys"]] == [auth.keys.signing_key().kid]
    assert all("d" not in k for k in jwks["keys"])  # public halves only
    token = access_token(auth.client, *school_client)
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES256"])  # as any resource server would
    assert decoded.claims["org"] == "beppu-es-1"

    metadata = auth.client.get("/.well-known/oauth-authorization-server").json()
    checked = AuthorizationServerMetadata(metadata)
    for name in (
        "issuer",
        "token_endpoint",
        "jwks_uri",
        "scopes_supported",
        "grant_types_supported",
        "token_endpoint_auth_methods_supported",
        "service_documentation",
        "ui_locales_supported",
    ):
        getattr(checked, f"validate_{name}")()  # all of RFC 8414 but response_types_supported, which is empty:
    assert metadata["response_types_supported"] == []  # the hub has no authorisation endpoint
    assert metadata["token_endpoint"] == f"{BASE}/oauth/token"
    assert metadata["jwks_uri"] == f"{BASE}/.well-known/jwks.json"
    assert metadata["scopes_supported"] == ["publish", "read", "audit", "admin"]
    assert metadata["grant_types_supported"] == ["client_credentials", JWT_BEARER]
    assert metadata["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post"]


def test_keys_rotate_without_downtime_and_a_retired_keys_tokens_are_refused(world, tmp_path, school_client):
    """The server's key file is changed by another process (``tsunagu keys``): the server notices without a
    restart, at once for a key it has not seen (even with a long refresh interval), and within the interval for
    a retired one."""
    key_file = tmp_path / "rotating.pem"
    auth = build(world, key_file, refresh_seconds=3600)
    operator = SigningKeys(key_file)  # another process
    with auth.client:
        old_token = access_token(auth.client, *school_client)
        old_kid = claims_kid(old_token)

        new_kid = operator.rotate().kid
        new_token = operator_issuer(operator).issue(org="beppu-es-1", role="teacher", user="山田")
        assert claims_kid(new_token) == new_kid != old_kid
        for token in (old_token, new_token):  # the server had not seen the new key: it reads the file again
            assert (
                auth.client.get(
                    "/v1/children/c1/timeline", params={"purpose": "support"}, headers=bearer(token)
                ).status_code
                == 200
            )
        assert [k["kid"] for k in auth.client.get("/.well-known/jwks.json").json()["keys"]] == [old_kid, new_kid]
        assert claims_kid(access_token(auth.client, *school_client)) == new_kid  # the newest key signs

        with pytest.raises(Exception, match="may be in use"):
            operator.retire(old_kid)  # tokens it signed have not expired yet
        operator.retire(old_kid, force=True)
        auth.keys.refresh_seconds = 0  # the interval has passed
        assert_error(
            auth.client.get("/v1/children/c1/timeline", params={"purpose": "support"}, headers=bearer(old_token)),
            401,
            "invalid_token",
        )
        assert (
            auth.client.get(
                "/v1/children/c1/timeline", params={"purpose": "support"}, headers=bearer(new_token)
            ).status_code
            == 200
        )
        assert [k["kid"] for k in auth.client.get("/.well-known/jwks.json").json()["keys"]] == [new_kid]
        with pytest.raises(Exception, match="signs the hub's tokens"):
            operator.retire(new_kid, force=True)


def test_a_key_whose_kid_starts_with_a_dash_can_be_retired_from_the_command_line(tmp_path):
    """A kid is a base64url thumbprint, and one in 64 starts with "-": the command must not take it for an
    option (the operator pastes it from 'tsunagu keys list')."""
    key_file = tmp_path / "keys.pem"
    keys = SigningKeys(key_file, create=True)
    while not keys.rotate().kid.startswith("-"):
        pass  # about 64 tries on average, each a new key
    dashed = keys.keys()[-1].kid
    keys.rotate()  # so that the dashed key no longer signs
    runner = CliRunner()
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    retired = runner.invoke(
        cli, ["keys", "retire", dashed, "--force", "--key-file", str(key_file), "--database", database]
    )
    assert retired.exit_code == 0, retired.output
    assert dashed not in {info.kid for info in SigningKeys(key_file).keys()}


def claims_kid(token: str) -> str:
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def operator_issuer(keys: SigningKeys) -> TokenIssuer:
    return TokenIssuer(keys)


def test_a_key_file_broken_while_running_keeps_the_keys_in_use(world, tmp_path):
    key_file = tmp_path / "keys.pem"
    auth = build(world, key_file)
    with auth.client:
        token = auth.issuer.issue(org="beppu-center", role="caseworker", user="x")
        key_file.write_text("not a key")
        response = auth.client.get("/v1/children/c1/timeline", params={"purpose": "support"}, headers=bearer(token))
        assert response.status_code == 200


# --- Staff sign-in through OpenID Connect (the development provider) -------------------------------------------


def test_staff_sign_in_with_the_providers_id_token_and_read_as_themselves(world, auth):
    discovery = auth.client.get("/dev-oidc/.well-known/openid-configuration").json()
    assert discovery["issuer"] == f"{BASE}/dev-oidc" and discovery["jwks_uri"] == f"{BASE}/dev-oidc/jwks.json"
    response = staff_sign_in(auth.client, "sato")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "publish read" and body["expires_in"] == 900
    claims = claims_of(body["access_token"])
    assert (claims["org"], claims["role"], claims["sub"], claims["aud"]) == (
        "beppu-center",
        "caseworker",
        "sato",
        "tsunagu-hub",
    )
    assert "client_id" not in claims
    read = auth.client.get(
        "/v1/children/c1/timeline", params={"purpose": "support"}, headers=bearer(body["access_token"])
    )
    assert read.status_code == 200 and [e["id"] for e in read.json()["entries"]] == ["r1"]
    (record,) = reads_of(world)
    assert record["reader"] == {"org": "beppu-center", "role": "caseworker", "user": "sato"}

    auditor = staff_sign_in(auth.client, "watanabe").json()
    assert auditor["scope"] == "audit read"
    assert_oauth_error(staff_sign_in(auth.client, "suzuki", scope="audit"), 400, "invalid_scope")
    assert claims_of(staff_sign_in(auth.client, "suzuki", scope="read").json()["access_token"])["scope"] == "read"


@pytest.mark.parametrize(
    "username, why",
    [
        ("ghost", "ghost-org"),  # the organisation is not registered
        ("robot", "adapter"),  # a person is never an adapter
        ("boss", "headmaster"),  # not a role of the hub
    ],
)
def test_an_id_token_that_maps_to_no_registered_organisation_and_role_is_refused(world, auth, username, why):
    body = assert_oauth_error(staff_sign_in(auth.client, username), 400, "invalid_grant")
    assert why in body["error_description"]


def _exchange(auth, id_token: str) -> httpx.Response:
    return auth.client.post("/oauth/token", data={"grant_type": JWT_BEARER, "assertion": id_token})


def test_id_tokens_from_elsewhere_expired_forged_or_for_another_audience_are_refused(world, auth):
    dev = auth.dev
    user = dev.users["sato"]
    stranger = DevProvider(f"{BASE}/dev-oidc", {"sato": user})  # same issuer name, another key
    impostor = DevProvider("https://idp.example", {"sato": user})
    other_audience = DevProvider(f"{BASE}/dev-oidc", {"sato": user}, audience="another-app")
    other_audience.key = dev.key
    stale = DevProvider(f"{BASE}/dev-oidc", {"sato": user}, now=lambda: time.time() - 7200)
    stale.key = dev.key
    good = dev.id_token("sato")
    header, payload, signature = good.split(".")
    cases = [
        stranger.id_token("sato"),
        impostor.id_token("sato"),
        other_audience.id_token("sato"),
        stale.id_token("sato"),
        ".".join([header, b64url_json(claims_of(good) | {"tsunagu_org": "chuo-jiso"}), signature]),
        b64url_json({"alg": "none", "kid": dev.key.kid}) + "." + payload + ".",
        _hs256({"alg": "HS256", "kid": dev.key.kid}, claims_of(good), dev.key.as_pem(private=False)),
    ]
    for id_token in cases:
        assert_oauth_error(_exchange(auth, id_token), 400, "invalid_grant")
    assert _exchange(auth, good).status_code == 200


def test_the_providers_keys_are_fetched_again_when_it_rotates(world, auth):
    assert staff_sign_in(auth.client, "sato").status_code == 200
    auth.dev.key = ECKey.import_key(
        ECKey.generate_key("P-256", private=True).as_dict(private=True), {"kid": "rotated", "alg": "ES256"}
    )
    assert staff_sign_in(auth.client, "sato").status_code == 200  # unknown kid: the JWKS is fetched again


def test_without_a_reachable_provider_sign_in_is_temporarily_unavailable(world, tmp_path):
    closed = f"http://127.0.0.1:{free_port()}/jwks.json"  # nothing listens there
    auth = build(world, tmp_path / "k.pem", dev_users=DEV_USERS, oidc_fetch=lambda url: fetch_json(closed))
    with auth.client:
        id_token = auth.client.post("/dev-oidc/token", data={"username": "sato"}).json()["id_token"]
        assert_oauth_error(_exchange(auth, id_token), 503, "temporarily_unavailable")


def test_without_a_configured_provider_the_jwt_bearer_grant_is_not_offered(world, tmp_path):
    auth = build(world, tmp_path / "k.pem")
    with auth.client:
        assert_oauth_error(
            auth.client.post("/oauth/token", data={"grant_type": JWT_BEARER, "assertion": "x"}),
            400,
            "unsupported_grant_type",
        )
        assert auth.client.get("/dev-oidc/jwks.json").status_code == 404
        assert auth.client.get("/.well-known/oauth-authorization-server").json()["grant_types_supported"] == [
            "client_credentials"
        ]


def test_the_development_provider_knows_only_its_users(world, auth):
    response = auth.client.post("/dev-oidc/token", data={"username": "nobody"})
    assert response.status_code == 400 and has_japanese(response.json()["error_description_ja"])


# --- The command line and a real server ------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.invalid"])
def test_tsunagu_serve_refuses_the_development_provider_unless_it_listens_on_loopback_only(tmp_path, host):
    """Anyone who reaches the development provider signs in as anyone: with TSUNAGU_DEV_OIDC=1, ``tsunagu serve``
    on any address but a loopback one stops before it listens (or creates anything), with a Japanese message."""
    port = free_port()
    env = dict(os.environ, TSUNAGU_DEV_OIDC="1")
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("tsunagu")),
            "serve",
            "--host",
            host,
            "--port",
            str(port),
            "--database",
            f"sqlite:///{tmp_path / 'hub.db'}",
            "--key-file",
            str(tmp_path / "keys.pem"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0, (done.stdout, done.stderr)
    assert "ループバック" in done.stderr and "TSUNAGU_DEV_OIDC" in done.stderr, done.stderr
    assert not (tmp_path / "keys.pem").exists() and not (tmp_path / "hub.db").exists()


def test_tsunagu_serve_with_clients_rotation_and_dev_sign_in_over_a_socket(tmp_path):
    database, key_file = f"sqlite:///{tmp_path / 'hub.db'}", tmp_path / "keys.pem"
    hub = Hub(database)
    hub.load_orgs(ORGS)
    assert [r.outcome for r in hub.publish([dict(R1, at=(datetime.now(JST) - timedelta(days=1)).isoformat())])] == [
        "accepted"
    ]
    hub.close()
    runner = CliRunner()
    db, keys = ["--database", database], ["--key-file", str(key_file)]

    added = runner.invoke(cli, ["clients", "add", "--org", "beppu-es-1", "--scopes", "publish,read", "--json", *db])
    assert added.exit_code == 0, added.output
    registered = json.loads(added.stdout.strip().splitlines()[-1])
    client_id, secret = registered["client_id"], registered["client_secret"]
    assert registered["scopes"] == ["publish", "read"] and registered["enabled"] is True
    refused = runner.invoke(cli, ["clients", "add", "--org", "beppu-es-1", "--scopes", "publish", *db])
    assert refused.exit_code == 1 and "disable" in refused.output
    listed = json.loads(runner.invoke(cli, ["clients", "list", "--json", *db]).stdout)
    assert [c["client_id"] for c in listed] == [client_id] and secret not in json.dumps(listed)
    assert "client_secret" not in listed[0] and "secret_hash" not in listed[0]

    users = tmp_path / "users.yaml"
    users.write_text(
        "users:\n  - {username: sato, name: 佐藤, org: beppu-center, role: caseworker}\n", encoding="utf-8"
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, TSUNAGU_DEV_OIDC="1", TSUNAGU_DEV_OIDC_USERS=str(users))
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("tsunagu")),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *db,
            *keys,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
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

        response = httpx.post(
            f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret), timeout=10
        )
        assert response.status_code == 200, response.text
        old_token = response.json()["access_token"]
        published = httpx.post(
            f"{base}/v1/events", json=dict(E1, at=datetime.now(JST).isoformat()), headers=bearer(old_token), timeout=10
        )
        assert published.status_code == 200 and published.json()["counts"]["received"] == 1, published.text

        # key rotation while the server runs
        old_kid = claims_kid(old_token)
        rotated = runner.invoke(cli, ["keys", "rotate", *keys])
        assert rotated.exit_code == 0, rotated.output
        new_kid = rotated.stdout.strip()
        deadline = time.monotonic() + 60  # only stops a hung server: the file is read again about every second
        while True:  # the server reads the key file again, and signs with the new key
            new_token = httpx.post(
                f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret), timeout=10
            ).json()["access_token"]
            if claims_kid(new_token) == new_kid:
                break
            assert claims_kid(new_token) == old_kid and time.monotonic() < deadline, "the new key does not sign"
            time.sleep(0.2)
        jwks = httpx.get(f"{base}/.well-known/jwks.json", timeout=10).json()
        assert {k["kid"] for k in jwks["keys"]} == {old_kid, new_kid}
        assert runner.invoke(cli, ["keys", "retire", old_kid, *keys, *db]).exit_code == 2  # too early
        retired = runner.invoke(cli, ["keys", "retire", old_kid, "--force", *keys, *db])
        assert retired.exit_code == 0, retired.output
        timeline = f"{base}/v1/children/c1/timeline?purpose=support"
        deadline = time.monotonic() + 60  # only stops a hung server
        while httpx.get(timeline, headers=bearer(old_token), timeout=10).status_code != 401:
            assert time.monotonic() < deadline, "the retired key still verifies"
            time.sleep(0.2)
        assert httpx.get(timeline, headers=bearer(new_token), timeout=10).status_code == 200

        # staff sign-in through the development provider, the hub fetching its keys over HTTP from itself
        id_token = httpx.post(f"{base}/dev-oidc/token", data={"username": "sato"}, timeout=10).json()["id_token"]
        staff = httpx.post(f"{base}/oauth/token", data={"grant_type": JWT_BEARER, "assertion": id_token}, timeout=10)
        assert staff.status_code == 200, staff.text
        read = httpx.get(timeline, headers=bearer(staff.json()["access_token"]), timeout=10)
        assert read.status_code == 200 and {e["id"] for e in read.json()["entries"]} == {"r1", "e1"}

        # the secret rotated, then the client disabled, from the command line
        rotated_secret = runner.invoke(cli, ["clients", "rotate-secret", client_id, "--json", *db])
        assert rotated_secret.exit_code == 0, rotated_secret.output
        assert (
            httpx.post(
                f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret), timeout=10
            ).status_code
            == 401
        )
        assert runner.invoke(cli, ["clients", "disable", client_id, *db]).exit_code == 0
        refused = httpx.get(timeline, headers=bearer(new_token), timeout=10)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "client_disabled"
    finally:
        server.terminate()
        server.wait(timeout=15)
    hub = Hub(database)
    try:
        readers = [r["reader"] for r in access_records(hub.store) if r["child"] == "c1"]
        assert {"org": "beppu-center", "role": "caseworker", "user": "sato"} in readers
        assert {"org": "beppu-es-1", "role": "adapter", "user": client_id} in readers
    finally:
        hub.close()


def test_token_issue_gives_the_roles_scopes_or_the_ones_asked_for(tmp_path):
    database, key_file = f"sqlite:///{tmp_path / 'hub.db'}", tmp_path / "keys.pem"
    hub = Hub(database)
    hub.load_orgs(ORGS)
    hub.close()
    runner = CliRunner()
    common = ["--database", database, "--key-file", str(key_file)]

    def issued(*args: str) -> dict:
        result = runner.invoke(cli, ["token", "issue", *args, *common])
        assert result.exit_code == 0, result.output
        return claims_of(result.stdout.strip().splitlines()[-1])

    assert issued("--org", "beppu-center", "--role", "caseworker")["scope"] == "publish read"
    assert issued("--org", "oita-audit", "--role", "auditor")["scope"] == "audit read"
    assert issued("--org", "beppu-es-1", "--role", "adapter")["scope"] == "publish"
    assert issued("--org", "beppu-center", "--role", "clerk", "--scope", "admin,read")["scope"] == "admin read"
    bad = runner.invoke(cli, ["token", "issue", "--org", "beppu-center", "--role", "clerk", "--scope", "root", *common])
    assert bad.exit_code == 2 and "root" in bad.output
    listed = runner.invoke(cli, ["keys", "list", "--json", "--key-file", str(key_file)])
    assert [k["signing"] for k in json.loads(listed.stdout)] == [True]


def test_client_changes_keep_who_made_them_from_the_command_line(tmp_path):
    """Registering, rotating and disabling a client keep who did it (the login name of whoever ran the command),
    shown by ``tsunagu clients list --json``."""
    import os
    import pwd

    database = f"sqlite:///{tmp_path / 'hub.db'}"
    runner = CliRunner()
    orgs = tmp_path / "orgs.yaml"
    orgs.write_text("- {id: beppu-es-1, type: school, municipality: '442020'}\n", encoding="utf-8")
    assert runner.invoke(cli, ["orgs", "load", str(orgs), "--database", database]).exit_code == 0
    added = runner.invoke(  # $USER and $LOGNAME say nothing of who runs it
        cli,
        ["clients", "add", "--org", "beppu-es-1", "--scopes", "publish", "--database", database, "--json"],
        env={"USER": "someone-else", "LOGNAME": "someone-else"},
    )
    assert added.exit_code == 0, added.output
    client_id = json.loads(added.stdout)["client_id"]
    assert runner.invoke(cli, ["clients", "rotate-secret", client_id, "--database", database]).exit_code == 0
    assert runner.invoke(cli, ["clients", "disable", client_id, "--database", database]).exit_code == 0
    [listed] = json.loads(runner.invoke(cli, ["clients", "list", "--database", database, "--json"]).stdout)
    me = pwd.getpwuid(os.getuid()).pw_name
    assert listed["registered_by"] == listed["secret_rotated_by"] == listed["disabled_by"] == me
