"""Who is signed in to the staff UI, for how long, and in which role.

The session is Starlette's signed cookie (``SessionMiddleware``: HttpOnly, SameSite=Lax, Secure behind TLS),
signed with a key derived from the deployment's stream secret, so every process of the deployment accepts it.
It holds the person (name, subject), the organisation, the role acted in, the roles they may choose from, and when
they last did something: after ``IDLE_MINUTES`` without a request the session ends (``signed_in``).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import Request

IDLE_MINUTES = 30
SESSION_COOKIE = "tsunagu_session"
CLIENT_SECRET_ENV = "TSUNAGU_OIDC_CLIENT_SECRET"  # the UI's client secret at the provider, if it has one
HTTPS_ENV = "TSUNAGU_WEB_HTTPS"  # 1: the hub is served over TLS (behind a proxy): cookies are Secure


@dataclass(frozen=True)
class WebSettings:
    """How the UI signs people in: the OpenID provider (discovery URL, client id and secret), the key that signs
    session cookies, and whether the hub is served over TLS (the cookie is then ``Secure``)."""

    issuer: str
    client_id: str
    session_key: bytes
    client_secret: str | None = None
    https: bool = False
    idle_seconds: int = IDLE_MINUTES * 60

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"


def session_key_from(stream_secret: bytes) -> bytes:
    """The key that signs session cookies: derived from the deployment's stream secret (``events.sealing``), so
    that it is the same in every process and never written anywhere else."""
    return hmac.new(stream_secret, b"tsunagu web session", hashlib.sha256).digest()


@dataclass(frozen=True)
class Person:
    """The signed-in person as the UI acts: their name and subject at the provider, their organisation, the role
    they act in now, and the roles they may choose from."""

    name: str
    subject: str
    org: str
    role: str
    roles: tuple[str, ...] = field(default=())

    @property
    def user(self) -> str:
        """What access records say of who read: the person's name, and their subject at the provider."""
        return f"{self.name} ({self.subject})"


def sign_in(request: Request, person: Person) -> None:
    request.session.clear()
    request.session["person"] = asdict(person) | {"roles": list(person.roles)}
    request.session["seen"] = time.time()


def sign_out(request: Request) -> None:
    request.session.clear()


def signed_in(request: Request) -> Person | None:
    """The person of this request's session, or ``None`` (no session, or idle for longer than allowed: the
    session is then ended)."""
    data: dict[str, Any] | None = request.session.get("person")
    if not data:
        return None
    settings: WebSettings = request.app.state.web
    now = time.time()
    if now - float(request.session.get("seen", 0)) > settings.idle_seconds:
        request.session.clear()
        request.session["expired"] = True
        return None
    request.session["seen"] = now
    return Person(data["name"], data["subject"], data["org"], data["role"], tuple(data.get("roles") or ()))
