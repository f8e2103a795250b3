"""Signing in to the staff UI through the configured OpenID Connect provider: the authorization code flow with
PKCE (``authlib``'s Starlette client, S256), the ID token checked by authlib against the provider's keys, issuer,
audience and nonce; then the person's organisation must be registered in the hub and their role known.

``/ui/login`` shows the sign-in page and starts the flow; ``/ui/callback`` ends it; ``/ui/role`` lets a person
with several roles choose the one they act in; ``/ui/logout`` ends the session.
"""

from __future__ import annotations

from typing import Any

from authlib.integrations.base_client import OAuthError
from authlib.integrations.starlette_client import OAuth
from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware

from services.auth.tokens import ROLES
from services.web.pages import page
from services.web.session import SESSION_COOKIE, Person, WebSettings, sign_in, sign_out, signed_in

router = APIRouter(include_in_schema=False)


def install_signin(app: FastAPI, settings: WebSettings) -> None:
    """The provider's client, the sign-in routes, and the session cookie they rely on."""
    oauth = OAuth()
    kwargs: dict[str, Any] = {"scope": "openid", "code_challenge_method": "S256"}
    if settings.client_secret is None:
        kwargs["token_endpoint_auth_method"] = "none"
    oauth.register(
        "staff",
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        server_metadata_url=settings.discovery_url,
        client_kwargs=kwargs,
    )
    app.state.staff_signin = oauth
    app.include_router(router)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_key.hex(),
        session_cookie=SESSION_COOKIE,
        max_age=None,
        same_site="lax",
        https_only=settings.https,
    )


@router.get("/ui/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    """The sign-in page: one button to the organisation's sign-in (and why the session ended, if it did)."""
    if signed_in(request) is not None:
        return RedirectResponse("/ui/", status_code=303)
    expired = bool(request.session.pop("expired", False))
    return page(request, "web/login.html", None, title="ログイン", expired=expired)


@router.post("/ui/login")
async def start_signin(request: Request) -> Response:
    """Send the browser to the provider (state, nonce and the PKCE verifier kept in the session)."""
    return await request.app.state.staff_signin.staff.authorize_redirect(
        request, str(request.url_for("signin_callback"))
    )


@router.get("/ui/callback", name="signin_callback")
async def callback(request: Request) -> Response:
    try:
        token = await request.app.state.staff_signin.staff.authorize_access_token(request)
    except OAuthError:
        return await run_in_threadpool(  # the page reads the hub's registry: not on the event loop
            page,
            request,
            "web/error.html",
            None,
            status_code=400,
            title="ログインできませんでした",
            message="ログインの手続きが完了しませんでした。もう一度ログインしてください。",
        )
    claims = token.get("userinfo") or {}
    orgs = await run_in_threadpool(request.app.state.hub.orgs)  # a read of the store: not on the event loop
    roles = [r for r in (claims.get("tsunagu_roles") or [claims.get("tsunagu_role")]) if r in ROLES]
    org = str(claims.get("tsunagu_org") or "")
    if org not in orgs or not roles:
        return await run_in_threadpool(
            page,
            request,
            "web/error.html",
            None,
            status_code=403,
            title="ログインできませんでした",
            message="この方の所属機関または役割がハブに登録されていません。管理者にお問い合わせください。",
        )
    person = Person(str(claims.get("name") or claims.get("sub")), str(claims.get("sub")), org, roles[0], tuple(roles))
    sign_in(request, person)
    return RedirectResponse("/ui/role" if len(roles) > 1 else "/ui/", status_code=303)


@router.get("/ui/role", response_class=HTMLResponse)
def choose_role_page(request: Request) -> Response:
    person = signed_in(request)
    if person is None:
        return RedirectResponse("/ui/login", status_code=303)
    return page(request, "web/role.html", person, title="役割の選択")


@router.post("/ui/role")
def choose_role(request: Request, role: str = Form(...)) -> Response:
    person = signed_in(request)
    if person is None:
        return RedirectResponse("/ui/login", status_code=303)
    if role not in person.roles:
        return page(
            request,
            "web/role.html",
            person,
            status_code=422,
            title="役割の選択",
            errors={"role": "選べる役割から選んでください"},
        )
    sign_in(request, Person(person.name, person.subject, person.org, role, person.roles))
    return RedirectResponse("/ui/", status_code=303)


@router.post("/ui/logout")
def logout(request: Request) -> Response:
    sign_out(request)
    return RedirectResponse("/ui/login", status_code=303)
