"""Request limits of the HTTP API: the length of the URL, and request rates per client (README.md, "Limits").

``install_limits(app)`` (called by ``create_app``) puts ``RequestLimits`` in front of everything else, so that an
abusive request is refused before its body is read or its token verified, and documents its answers (414, 429)
on every operation of the OpenAPI schema. The values are in ``events.limits``; the body size (``BodyLimit``) and
batch length stay with the publish endpoint in ``services.http.app``.

**URL.** A path longer than ``MAX_PATH_BYTES`` or a query string longer than ``MAX_QUERY_BYTES`` (as sent,
percent-encoded) gets 414. Each path parameter is limited again by its schema (200 characters, 422).

**Rates.** The counters are kept by ``limits`` (the storage and strategy library behind slowapi and
Flask-Limiter), with its sliding-window-counter strategy: smooth, O(1) per client, and the same on every storage.
slowapi itself is not used: it keys requests from inside the endpoints (a decorator per endpoint and a ``Request``
parameter on each), while here one middleware covers every router, including routers added later. The counters
live in the process by default (``async+memory://``); a deployment with several API workers points them all at
one Redis with ``TSUNAGU_RATE_LIMIT_STORAGE=async+redis://host:6379``, or each worker counts on its own. Behind a
reverse proxy, run uvicorn with ``--proxy-headers --forwarded-allow-ips=PROXY`` so that the remote address is
the client's, not the proxy's (this module never reads ``X-Forwarded-For`` itself: anyone can write it).

Who is counted:

- a request with a bearer token is counted against the caller the token names (its ``org`` and ``sub``). Before
  the request, the token's payload is decoded **without verifying its signature, only to find whose counter to
  look at**; nothing is ever authorised from it. The counter is charged after the app answered, and only with
  the caller the app verified (``get_principal`` leaves it in ``request.state.principal``): a forged token can
  neither spend someone else's budget nor get a fresh one. A request whose token the app refused (401) is
  charged to the remote address's counter of refused tokens, which is checked before every request with a token
  from that address (against guessing, and against flooding the signature check with forged tokens);
- a request without a token is counted against its remote address;
- the token endpoint (``/oauth/token``) has its own, stricter limit, per ``client_id`` (from HTTP Basic
  authentication or the form body) and per remote address, each request counted, against secret guessing;
- ``/v1/health`` is not limited (load balancers and monitoring poll it).

An answer over a limit is 429 with ``Retry-After`` (seconds) and the usual error object, in Japanese
「リクエストが多すぎます。N秒後に再度お試しください」.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any, TypeGuard
from urllib.parse import parse_qs, unquote_plus, urlparse

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from limits import RateLimitItem, parse
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from events.limits import (
    MAX_ID_CHARS,
    MAX_PATH_BYTES,
    MAX_QUERY_BYTES,
    RATE_LIMIT,
    RATE_LIMIT_STORAGE,
    TOKEN_RATE_LIMIT,
)
from services.http.deps import ErrorResponse, error_body

RATE_LIMIT_ENV = "TSUNAGU_RATE_LIMIT"
TOKEN_RATE_LIMIT_ENV = "TSUNAGU_TOKEN_RATE_LIMIT"
RATE_LIMIT_STORAGE_ENV = "TSUNAGU_RATE_LIMIT_STORAGE"
TOKEN_PATH = "/oauth/token"
UNLIMITED_PATHS = frozenset({"/v1/health"})
MAX_TOKEN_CHARS = 16 * 1024  # a bearer token longer than this is not looked into (it cannot be one of ours)
MAX_TOKEN_FORM_BYTES = 16 * 1024  # how much of a token request's body is read to find its client_id


@dataclass(frozen=True)
class RateLimits:
    """The configured rates (``limits`` notation, e.g. ``600/minute``) and where the counters are kept."""

    default: str = RATE_LIMIT
    token: str = TOKEN_RATE_LIMIT
    storage: str = RATE_LIMIT_STORAGE

    @classmethod
    def from_env(cls) -> RateLimits:
        """From ``TSUNAGU_RATE_LIMIT``, ``TSUNAGU_TOKEN_RATE_LIMIT`` and ``TSUNAGU_RATE_LIMIT_STORAGE``, each
        defaulting to ``events.limits``."""
        return cls(
            default=os.environ.get(RATE_LIMIT_ENV) or RATE_LIMIT,
            token=os.environ.get(TOKEN_RATE_LIMIT_ENV) or TOKEN_RATE_LIMIT,
            storage=os.environ.get(RATE_LIMIT_STORAGE_ENV) or RATE_LIMIT_STORAGE,
        )

    def items(self) -> tuple[RateLimitItem, RateLimitItem]:
        """The default and token-endpoint limits; ``ValueError`` naming the setting when one cannot be read."""
        out = []
        for name, text in ((RATE_LIMIT_ENV, self.default), (TOKEN_RATE_LIMIT_ENV, self.token)):
            try:
                out.append(parse(text))
            except ValueError:
                raise ValueError(f"{name}={text!r} is not a rate such as 600/minute or 10/second") from None
        return out[0], out[1]


def install_limits(app: FastAPI, limits: RateLimits | None = None) -> None:
    """Put ``RequestLimits`` in front of the app (outermost: call it after every other ``add_middleware``) and
    document its answers on every operation of the app's OpenAPI schema (call it after setting ``app.openapi``)."""
    app.add_middleware(RequestLimits, limits=limits or RateLimits.from_env())
    generated = app.openapi

    def openapi() -> dict[str, Any]:
        return _documented(generated())

    app.openapi = openapi  # type: ignore[method-assign]


_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


def _documented(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with 414 on every operation and 429 (with ``Retry-After``) on every limited one (in place)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    if "ErrorResponse" not in components:
        error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(error_schema.pop("$defs", {}))
        components["ErrorResponse"] = error_schema
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            responses.setdefault("414", {"description": "The URL is too long (path or query string)", "content": error})
            if path not in UNLIMITED_PATHS:
                responses.setdefault(
                    "429",
                    {
                        "description": "Too many requests from this client: retry after the seconds in Retry-After",
                        "headers": {
                            "Retry-After": {
                                "description": "Seconds to wait before retrying",
                                "schema": {"type": "integer"},
                            }
                        },
                        "content": error,
                    },
                )
    return schema


class RequestLimits:
    """ASGI middleware: refuse over-long URLs (414) and requests over the client's rate (429). See the module."""

    def __init__(self, app: ASGIApp, limits: RateLimits):
        self.app = app
        self.default, self.token = limits.items()
        if not urlparse(limits.storage).scheme.startswith("async+"):
            raise ValueError(
                f"{RATE_LIMIT_STORAGE_ENV}={limits.storage!r}: use an async storage, e.g. "
                "async+memory:// or async+redis://host:6379"
            )
        self.limiter = SlidingWindowCounterRateLimiter(storage_from_string(limits.storage))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode()
        if len(raw_path) > MAX_PATH_BYTES or len(scope.get("query_string", b"")) > MAX_QUERY_BYTES:
            await _refuse(
                scope,
                receive,
                send,
                414,
                error_body(
                    "uri_too_long",
                    f"the URL is too long (path at most {MAX_PATH_BYTES} bytes, query string at most "
                    f"{MAX_QUERY_BYTES})",
                    "URL が長すぎます。指定した値を確認してください",
                ),
            )
            return
        path = scope["path"]
        if path in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
        elif path == TOKEN_PATH:
            await self._token_request(scope, receive, send)
        else:
            await self._request(scope, receive, send)

    async def _request(self, scope: Scope, receive: Receive, send: Send) -> None:
        address = _address(scope)
        token = _bearer(scope)
        if token is None:
            if not await self.limiter.hit(self.default, "address", address):
                await self._too_many(scope, receive, send, self.default, "address", address)
                return
            await self.app(scope, receive, send)
            return
        claimed = _claimed_caller(token)  # unverified: only to find whose counter to look at
        checks = [("failed", address)] + ([("client", claimed)] if claimed else [])
        for bucket in checks:
            if not await self.limiter.test(self.default, *bucket):
                await self._too_many(scope, receive, send, self.default, *bucket)
                return
        state = scope.setdefault("state", {})
        status = 0

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, send_and_watch)
        principal = state.get("principal")  # the caller get_principal verified, if it did
        if principal is not None:
            await self.limiter.hit(self.default, "client", _caller_key(principal.org, principal.user))
        elif status == 401:
            await self.limiter.hit(self.default, "failed", address)
        elif status:
            await self.limiter.hit(self.default, "address", address)  # answered without looking at the token

    async def _token_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count the request per remote address and per client_id, before the token endpoint sees it."""
        messages, body = await _peek_body(receive, MAX_TOKEN_FORM_BYTES)
        buckets = [("token-address", _address(scope))]
        client_id = _client_id(scope, body)
        if client_id is not None:
            buckets.append(("token-client", client_id))
        for bucket in buckets:
            if not await self.limiter.hit(self.token, *bucket):
                await self._too_many(scope, receive, send, self.token, *bucket)
                return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _too_many(self, scope: Scope, receive: Receive, send: Send, item: RateLimitItem, *bucket: str) -> None:
        stats = await self.limiter.get_window_stats(item, *bucket)
        seconds = max(1, math.ceil(stats.reset_time - time.time()))
        await _refuse(
            scope,
            receive,
            send,
            429,
            error_body(
                "rate_limited",
                f"too many requests (at most {item}); retry in {seconds} seconds",
                f"リクエストが多すぎます。{seconds}秒後に再度お試しください",
            ),
            {"Retry-After": str(seconds)},
        )


async def _refuse(
    scope: Scope, receive: Receive, send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    await JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)(scope, receive, send)


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _bearer(scope: Scope) -> str | None:
    authorization = Headers(scope=scope).get("authorization")
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _caller_key(org: str, user: str) -> str:
    return json.dumps([org, user], ensure_ascii=False)


def _claimed_caller(token: str) -> str | None:
    """The ``org`` and ``sub`` a JWT's payload claims, read WITHOUT verifying the signature: only to find whose
    counter to look at before the request. Never used to authorise, nor to charge a counter."""
    parts = token.split(".")
    if len(token) > MAX_TOKEN_CHARS or len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        return None
    if not isinstance(claims, dict):
        return None
    org, user = claims.get("org"), claims.get("sub")
    if not (_plausible_id(org) and _plausible_id(user)):
        return None
    return _caller_key(org, user)


def _plausible_id(value: object) -> TypeGuard[str]:
    """Whether a claimed ``org`` or ``sub`` could be one: a string of 1 to ``MAX_ID_CHARS`` characters."""
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS


def _client_id(scope: Scope, body: bytes) -> str | None:
    """The OAuth client a token request names: HTTP Basic authentication (RFC 6749, 2.3.1) or the form body."""
    authorization = Headers(scope=scope).get("authorization") or ""
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (ValueError, binascii.Error):
            return None
        client_id = unquote_plus(decoded.partition(":")[0])
    else:
        try:
            form = parse_qs(body.decode("utf-8"), max_num_fields=50)
        except ValueError:
            return None
        client_id = (form.get("client_id") or [""])[0]
    return client_id[:MAX_ID_CHARS] or None


async def _peek_body(receive: Receive, limit: int) -> tuple[list[Message], bytes]:
    """The first messages of the request body, up to about ``limit`` bytes, to be replayed to the app."""
    messages: list[Message] = []
    body = b""
    while len(body) <= limit:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return messages, body if len(body) <= limit else b""
