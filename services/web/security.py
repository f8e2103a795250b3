"""What every page of the staff UI carries against the web's usual attacks: a CSRF token on every form (checked on
every POST to ``/ui``, ``asgi-csrf``'s double-submit cookie signed with the session key), and response headers:
a Content-Security-Policy that allows nothing but the hub itself and no inline script, no framing, no sniffing,
no referrer outside the hub, and no caching of pages about children."""

from __future__ import annotations

import secrets

from asgi_csrf import asgi_csrf
from fastapi import FastAPI, Request, Response
from itsdangerous import BadSignature
from itsdangerous.url_safe import URLSafeSerializer
from starlette.datastructures import FormData
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from services.web.session import WebSettings

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self' {provider}"
)
HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


CSRF_COOKIE = "csrftoken"
CHECKED_BY_ENDPOINT = "tsunagu.csrf_in_endpoint"
UPLOADS = frozenset({"/ui/imports/monthly", "/ui/imports/daily", "/ui/admin/orgs/load"})
"""The forms that send a file (multipart): ``asgi-csrf`` cannot read such a body with the installed
``python-multipart``, so these endpoints check the token themselves (``multipart_token_ok``), and a multipart
body sent anywhere else under ``/ui/`` is refused (``MultipartGuard``)."""


def _not_ui(scope: Scope) -> bool:
    """Only the pages' forms are checked: the API's requests carry bearer tokens, not cookies. (The uploads are
    checked by their endpoints.)"""
    return not str(scope.get("path", "")).startswith("/ui/") or bool(scope.get(CHECKED_BY_ENDPOINT))


def _multipart(scope: Scope) -> bool:
    for name, value in scope.get("headers") or []:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"multipart/form-data"
    return False


class MultipartGuard:
    """A multipart POST under ``/ui/``: to an upload, its endpoint checks the CSRF token; anywhere else, refused."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope.get("method") not in ("GET", "HEAD", "OPTIONS", "TRACE")
            and str(scope.get("path", "")).startswith("/ui/")
            and _multipart(scope)
        ):
            if scope["path"] not in UPLOADS:
                await PlainTextResponse("この送信は受け付けられません（CSRF）", status_code=403)(scope, receive, send)
                return
            scope = {**scope, CHECKED_BY_ENDPOINT: True}
        await self.app(scope, receive, send)


def multipart_token_ok(request: Request, form: FormData) -> bool:
    """The double-submit check ``asgi-csrf`` does, for an upload's multipart form: the form's ``csrftoken`` is
    the signed token of the request's cookie."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = form.get(CSRF_COOKIE)
    if not cookie or not isinstance(sent, str):
        return False
    try:
        URLSafeSerializer(request.app.state.web.session_key.hex()).loads(cookie, "csrftoken")
    except BadSignature:
        return False
    return secrets.compare_digest(sent, cookie)


def install_security(app: FastAPI, settings: WebSettings) -> None:
    provider = settings.issuer.split("/", 3)
    form_action = "/".join(provider[:3]) if len(provider) >= 3 else ""

    @app.middleware("http")
    async def ui_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        if request.url.path == "/" or request.url.path.startswith(("/ui/", "/dev-oidc/authorize")):
            response.headers["Content-Security-Policy"] = CSP.format(provider=form_action)
            for name, value in HEADERS.items():
                response.headers.setdefault(name, value)
        return response

    app.add_middleware(
        asgi_csrf,
        signing_secret=settings.session_key.hex(),
        skip_if_scope=_not_ui,
        cookie_name=CSRF_COOKIE,
        cookie_secure=settings.https,
        cookie_samesite="Lax",
    )
    app.add_middleware(MultipartGuard)
