"""What every page of the staff UI carries against the web's usual attacks: a CSRF token on every form (checked on
every POST to ``/ui``, ``asgi-csrf``'s double-submit cookie signed with the session key), and response headers:
a Content-Security-Policy that allows nothing but the hub itself and no inline script, no framing, no sniffing,
no referrer outside the hub, and no caching of pages about children."""

from __future__ import annotations

from asgi_csrf import asgi_csrf
from fastapi import FastAPI, Request, Response
from starlette.types import Scope

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


def _not_ui(scope: Scope) -> bool:
    """Only the pages' forms are checked: the API's requests carry bearer tokens, not cookies."""
    return not str(scope.get("path", "")).startswith("/ui/")


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
        cookie_name="csrftoken",
        cookie_secure=settings.https,
        cookie_samesite="Lax",
    )
