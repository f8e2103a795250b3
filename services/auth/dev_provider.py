"""The hub's development OpenID Connect provider: staff sign-in for the demo and the tests, without a real one.

**Never for production.** It signs an ID token for any configured user who asks, without a password. It is
mounted only when asked for: ``TSUNAGU_DEV_OIDC=1 tsunagu serve`` (or ``create_app(..., dev_oidc=...)``), and
``tsunagu serve`` refuses to start it unless the server listens on a loopback address only (``loopback_only``).

- ``GET /dev-oidc/.well-known/openid-configuration``: its discovery document (issuer, ``jwks_uri``, token
  endpoint, ES256).
- ``GET /dev-oidc/jwks.json``: its public key (made in memory when the server starts).
- ``POST /dev-oidc/token`` with the form field ``username``: an ID token (one hour) for that user, with the claims
  ``sub`` (the username), ``name``, ``tsunagu_org`` and ``tsunagu_role`` and the audience ``tsunagu-dev``.
- The authorization code flow with PKCE for the staff web UI (``services.web``): ``GET /dev-oidc/authorize`` shows
  the demo people by name and organisation; choosing one redirects back with a code (one use, five minutes), which
  ``POST /dev-oidc/token`` (``grant_type=authorization_code``, ``code_verifier``) exchanges for the ID token, with
  the ``nonce`` of the request and the client as its audience.

The users are read from a YAML file (``TSUNAGU_DEV_OIDC_USERS``, default ``services/auth/dev_users.yaml``: people
of the demo municipality)::

    users:
      - {username: sato, name: 佐藤 花子, org: beppu-center, role: caseworker}

The hub trusts it like any provider (``services.auth.oidc``): ``tsunagu serve`` with ``TSUNAGU_DEV_OIDC=1`` and no
``TSUNAGU_OIDC_ISSUER`` configures the issuer ``http://HOST:PORT/dev-oidc``, its JWKS URL and the audience, and
the hub fetches the keys over HTTP from itself, exactly as it would from a real provider.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import secrets
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, KeySetSerialization

from events.labels import ROLE_JA
from services.auth.oidc import OidcSettings
from services.templates import render

DEV_OIDC_ENV = "TSUNAGU_DEV_OIDC"
DEV_USERS_ENV = "TSUNAGU_DEV_OIDC_USERS"
DEFAULT_USERS_FILE = Path(__file__).with_name("dev_users.yaml")
PREFIX = "/dev-oidc"
DEV_AUDIENCE = "tsunagu-dev"
ID_TOKEN_SECONDS = 3600


def dev_oidc_enabled(environ: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    return (environ.get(DEV_OIDC_ENV) or "").strip().lower() in ("1", "true", "yes", "on")


def loopback_only(host: str) -> bool:
    """Whether a server listening on ``host`` can be reached from this machine only: a loopback address
    (127.0.0.0/8, ::1), or a name (``localhost``) whose every address is one. ``0.0.0.0``, ``::``, any other
    address and a name that does not resolve are not."""
    host = host.strip().removeprefix("[").removesuffix("]")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in socket.getaddrinfo(host, None)]
        except (OSError, UnicodeError, ValueError):
            return False
    return bool(addresses) and all(_is_loopback(a) for a in addresses)


def _is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address.is_loopback


LOOPBACK_ONLY_JA = (
    f"開発用ログイン（{DEV_OIDC_ENV}=1）はパスワードなしで誰にでもなりすませるため、このコンピューター"
    "の中からしか接続できないループバックアドレス（127.0.0.1 または ::1）でだけ起動できます。"
    f"--host 127.0.0.1 を指定するか、{DEV_OIDC_ENV} を外してください"
)


@dataclass(frozen=True)
class DevUser:
    username: str
    org: str
    role: str
    name: str | None = None
    roles: tuple[str, ...] = ()  # a person who acts in several roles chooses one when signing in to the UI


def load_dev_users(path: str | os.PathLike[str] | None = None) -> dict[str, DevUser]:
    """The users of ``path`` (default ``$TSUNAGU_DEV_OIDC_USERS``, else the demo's). ``ValueError`` saying what
    is wrong with the file."""
    path = Path(path or os.environ.get(DEV_USERS_ENV) or DEFAULT_USERS_FILE)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: {error}") from None
    items = data.get("users") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a mapping with a 'users' list")
    users = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k), str) and item[k] for k in ("username", "org", "role")
        ):
            raise ValueError(f"{path}: users[{i}] needs username, org and role")
        roles = item.get("roles") or []
        if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
            raise ValueError(f"{path}: users[{i}].roles must be a list of roles")
        users[item["username"]] = DevUser(item["username"], item["org"], item["role"], item.get("name"), tuple(roles))
    return users


class DevProvider:
    """The provider at ``issuer`` (``http(s)://host:port/dev-oidc``), for ``users``."""

    def __init__(
        self,
        issuer: str,
        users: Mapping[str, DevUser],
        *,
        audience: str = DEV_AUDIENCE,
        now: Callable[[], float] = time.time,
    ):
        self.issuer = issuer.rstrip("/")
        self.users = dict(users)
        self.audience = audience
        self.now = now
        key = ECKey.generate_key("P-256", private=True)
        self.key = ECKey.import_key(key.as_dict(private=True), {"kid": key.thumbprint(), "alg": "ES256", "use": "sig"})

    @property
    def settings(self) -> OidcSettings:
        """How the hub trusts this provider."""
        return OidcSettings(issuer=self.issuer, jwks_url=f"{self.issuer}/jwks.json", audience=self.audience)

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/jwks.json",
            "token_endpoint": f"{self.issuer}/token",
            "authorization_endpoint": f"{self.issuer}/authorize",
            "response_types_supported": ["code", "id_token"],
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": ["openid"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "claims_supported": ["sub", "name", "tsunagu_org", "tsunagu_role"],
        }

    def jwks(self) -> KeySetSerialization:
        return KeySet([self.key]).as_dict(private=False)

    def id_token(self, username: str, *, audience: str | None = None, nonce: str | None = None) -> str | None:
        """An ID token for ``username``, or ``None`` when there is no such user."""
        user = self.users.get(username)
        if user is None:
            return None
        issued = int(self.now())
        claims = {
            "iss": self.issuer,
            "aud": audience or self.audience,
            "sub": user.username,
            "iat": issued,
            "exp": issued + ID_TOKEN_SECONDS,
            "jti": str(uuid.uuid4()),
            "tsunagu_org": user.org,
            "tsunagu_role": user.role,
        }
        if user.name:
            claims["name"] = user.name
        if len(user.roles) > 1:
            claims["tsunagu_roles"] = list(user.roles)
        if nonce:
            claims["nonce"] = nonce
        return jwt.encode({"alg": "ES256", "kid": self.key.kid, "typ": "JWT"}, claims, self.key)


@dataclass
class _Grant:
    """An authorization code waiting to be exchanged: for whom, to which client and address, with which PKCE
    challenge and nonce, until when."""

    username: str
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    expires: float


class CodeFlow:
    """The authorization code flow with PKCE (RFC 7636, S256 only) of the development provider: codes are kept in
    memory, used once, and expire after five minutes."""

    CODE_SECONDS = 300

    def __init__(self, provider: DevProvider):
        self.provider = provider
        self.grants: dict[str, _Grant] = {}

    def grant(self, username: str, client_id: str, redirect_uri: str, challenge: str, nonce: str | None) -> str:
        now = self.provider.now()
        self.grants = {c: g for c, g in self.grants.items() if g.expires > now}
        code = secrets.token_urlsafe(32)
        self.grants[code] = _Grant(username, client_id, redirect_uri, challenge, nonce, now + self.CODE_SECONDS)
        return code

    def exchange(self, code: str, client_id: str, redirect_uri: str, verifier: str) -> str | None:
        """The ID token for ``code``, or ``None`` when the code, client, address or PKCE verifier does not match."""
        grant = self.grants.pop(code, None)
        if grant is None or grant.expires <= self.provider.now():
            return None
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
        if (grant.client_id, grant.redirect_uri) != (client_id, redirect_uri) or not hmac.compare_digest(
            digest, grant.challenge
        ):
            return None
        return self.provider.id_token(grant.username, audience=client_id, nonce=grant.nonce)


def dev_router(provider: DevProvider) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["development sign-in (開発用)"])
    flow = CodeFlow(provider)

    @router.get("/.well-known/openid-configuration", summary="Development OpenID provider: discovery")
    def discovery() -> dict[str, Any]:
        return provider.discovery()

    @router.get("/jwks.json", summary="Development OpenID provider: its key")
    def jwks() -> dict[str, Any]:
        return dict(provider.jwks())

    @router.post(
        "/token",
        summary="Development OpenID provider: an ID token for a configured user",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "required": ["username"],
                            "properties": {"username": {"type": "string"}},
                        }
                    }
                },
            }
        },
    )
    async def token(request: Request) -> JSONResponse:
        """No password: development only. Exchange the ``id_token`` at ``/oauth/token`` (JWT bearer grant); or,
        with ``grant_type=authorization_code``, a code of the sign-in page for the ID token."""
        try:
            form = dict(parse_qsl((await request.body()).decode("utf-8"), max_num_fields=10))
        except (UnicodeDecodeError, ValueError):
            form = {}
        if form.get("grant_type") == "authorization_code":
            id_token = flow.exchange(
                form.get("code", ""),
                form.get("client_id", ""),
                form.get("redirect_uri", ""),
                form.get("code_verifier", ""),
            )
        else:
            id_token = provider.id_token(form.get("username", ""))
        if id_token is None:
            return JSONResponse(
                {
                    "error": "invalid_grant",
                    "error_description": "no such development user",
                    "error_description_ja": "開発用の利用者として登録されていません",
                },
                status_code=400,
            )
        return JSONResponse(
            {
                "id_token": id_token,
                "access_token": secrets.token_urlsafe(16),
                "token_type": "Bearer",
                "expires_in": ID_TOKEN_SECONDS,
            },
            headers={"Cache-Control": "no-store"},
        )

    @router.get("/authorize", response_class=HTMLResponse, include_in_schema=False)
    def authorize(request: Request) -> HTMLResponse:
        """The sign-in page: the demo people by name, organisation and role; choosing one signs in as them."""
        q = request.query_params
        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return HTMLResponse(
                render(
                    "web/error.html",
                    title="ログインできません",
                    person=None,
                    message="ログインの要求が正しくありません（authorization code + PKCE S256 が必要です）。",
                ),
                status_code=400,
            )
        hub = getattr(request.app.state, "hub", None)
        orgs = hub.orgs() if hub is not None else {}
        people = [
            (
                u,
                u.name or u.username,
                (orgs[u.org].name or u.org) if u.org in orgs else u.org,
                ROLE_JA.get(u.role, u.role),
            )
            for u in provider.users.values()
        ]
        return HTMLResponse(render("web/dev_signin.html", title="開発用ログイン", people=people, params=dict(q)))

    @router.post("/authorize", include_in_schema=False)
    async def chosen(request: Request) -> RedirectResponse:
        form = dict(parse_qsl((await request.body()).decode("utf-8"), max_num_fields=20))
        redirect_uri = form.get("redirect_uri", "")
        if form.get("username") not in provider.users or not redirect_uri.startswith(("http://", "https://")):
            return RedirectResponse(f"{PREFIX}/authorize", status_code=303)
        code = flow.grant(
            form["username"],
            form.get("client_id", ""),
            redirect_uri,
            form.get("code_challenge", ""),
            form.get("nonce") or None,
        )
        return RedirectResponse(
            f"{redirect_uri}?{urlencode({'code': code, 'state': form.get('state', '')})}", status_code=303
        )

    return router
