"""What the authentication tests share: one organisation of every type, an app with its token endpoint on a real
key file, and token requests through HTTP."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.auth.dev_provider import DevProvider, DevUser
from services.auth.oidc import OidcProvider
from services.auth.tokens import SigningKeys, TokenIssuer, TokenVerifier
from services.http.app import create_app
from services.hub import Hub
from tests.helpers import has_japanese

BASE = "https://testserver"  # authlib refuses token requests over plain HTTP, except on loopback addresses
BEPPU, OITA = "442020", "442011"

ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": BEPPU, "prefecture": "44"},
    {"id": "oita-center", "type": "municipal_center", "municipality": OITA, "prefecture": "44"},
    {"id": "beppu-boe", "type": "municipal_department", "municipality": BEPPU},
    {"id": "chuo-jiso", "type": "child_guidance_center", "prefecture": "44", "covers": [OITA, BEPPU]},
    {"id": "oita-pref", "type": "prefecture_office", "prefecture": "44"},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": BEPPU},
    {"id": "beppu-es-2", "type": "school", "regime": "public", "municipality": BEPPU},
    {"id": "sakura", "type": "nursery", "regime": "private", "municipality": BEPPU},
    {"id": "tobu-hc", "type": "health_center", "prefecture": "44"},
    {"id": "beppu-clinic", "type": "medical", "regime": "private", "municipality": BEPPU},
    {"id": "kosodate-net", "type": "service_provider", "regime": "private", "municipality": BEPPU},
    {"id": "oita-audit", "type": "auditor", "prefecture": "44"},
]
BY_TYPE = {}
for _org in ORGS:
    BY_TYPE.setdefault(_org["type"], _org["id"])  # the first organisation of each type

DEV_USERS = {
    "sato": DevUser("sato", "beppu-center", "caseworker", "佐藤 花子"),
    "suzuki": DevUser("suzuki", "beppu-es-1", "teacher", "鈴木 一郎"),
    "watanabe": DevUser("watanabe", "oita-audit", "auditor", "渡辺 直子"),
    "ghost": DevUser("ghost", "ghost-org", "caseworker"),
    "robot": DevUser("robot", "beppu-center", "adapter"),
    "boss": DevUser("boss", "beppu-center", "headmaster"),
}


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> dict:
    """RFC 6749, section 5.2, with the Japanese description; never a token."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    assert has_japanese(body["error_description_ja"]), body
    assert "access_token" not in body
    assert response.headers["cache-control"] == "no-store"
    return body


@dataclass
class Auth:
    """An app with its token endpoint, on a real key file, and its test client (HTTPS, as authlib requires)."""

    app: FastAPI
    client: TestClient
    keys: SigningKeys
    issuer: TokenIssuer
    verifier: TokenVerifier
    dev: DevProvider | None


def build(
    hub: Hub,
    key_file: Path,
    *,
    refresh_seconds: float = 0,
    dev_users: dict[str, DevUser] | None = None,
    oidc_refetch_seconds: float = 0,
    oidc_fetch: Callable[[str], Any] | None = None,
) -> Auth:
    """The app; with ``dev_users``, the development OpenID provider mounted on it, and trusted by it: the hub
    fetches the provider's keys through the test client (real HTTP requests to the app), or ``oidc_fetch``."""
    keys = SigningKeys(key_file, create=True, refresh_seconds=refresh_seconds)
    issuer, verifier = TokenIssuer(keys), TokenVerifier(keys)
    dev = oidc = None
    holder: dict[str, TestClient] = {}
    if dev_users is not None:
        dev = DevProvider(f"{BASE}/dev-oidc", dev_users)
        oidc = OidcProvider.from_settings(
            dev.settings,
            fetch=oidc_fetch or (lambda url: _fetch(holder["client"], url)),
            min_refetch_seconds=oidc_refetch_seconds,
        )
    app = create_app(hub, verifier, issuer=issuer, oidc=oidc, dev_oidc=dev)
    client = TestClient(app, base_url=BASE)
    holder["client"] = client
    return Auth(app, client, keys, issuer, verifier, dev)


def _fetch(client: TestClient, url: str) -> Any:
    response = client.get(url)
    response.raise_for_status()
    return response.json()


def basic(client_id: str, secret: str) -> dict[str, str]:
    credentials = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(credentials).decode()}


def client_token(
    client: TestClient, client_id: str, secret: str, *, scope: str | None = None, how: str = "basic"
) -> httpx.Response:
    """A client-credentials token request, authenticated with HTTP Basic or in the form (client_secret_post)."""
    form = {"grant_type": "client_credentials"} | ({"scope": scope} if scope is not None else {})
    if how == "basic":
        return client.post("/oauth/token", data=form, headers=basic(client_id, secret))
    return client.post("/oauth/token", data=form | {"client_id": client_id, "client_secret": secret})


def access_token(client: TestClient, client_id: str, secret: str, *, scope: str | None = None) -> str:
    response = client_token(client, client_id, secret, scope=scope)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def staff_sign_in(client: TestClient, username: str, *, scope: str | None = None) -> httpx.Response:
    """Sign in at the development provider, then exchange its ID token at the hub's token endpoint."""
    response = client.post("/dev-oidc/token", data={"username": username})
    assert response.status_code == 200, response.text
    form = {"grant_type": JWT_BEARER, "assertion": response.json()["id_token"]}
    return client.post("/oauth/token", data=form | ({"scope": scope} if scope is not None else {}))
