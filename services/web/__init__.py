"""The staff web UI (an edge, 職員向け画面): server-rendered pages for school clerks, nursery staff and the centres'
caseworkers, served by ``tsunagu serve`` in the same process as the API.

Every page that shows anything about a child reads it through the read service (``Hub.timeline``: decided by the
policy and recorded, with the signed-in person's name, before it is shown); every form publishes through the same
publish path as the API. Sign-in goes through the configured OpenID Connect provider (authorization code flow
with PKCE, ``signin``); the session lives in a signed cookie (``session``); every form carries a CSRF token and
every page a Content-Security-Policy without inline script (``security``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from services.web.admin import router as admin_router
from services.web.aggregates import router as aggregates_router
from services.web.audit import router as audit_router
from services.web.cases import router as cases_router
from services.web.centre import router as centre_router
from services.web.emergency import router as emergency_router
from services.web.family_support import router as family_support_router
from services.web.forms import NotSignedIn, to_signin_page
from services.web.households import router as households_router
from services.web.inquiries import router as inquiries_router
from services.web.pages import router as pages_router
from services.web.plans import router as plans_router
from services.web.providers import router as providers_router
from services.web.schools import router as schools_router
from services.web.scopes import ScopeMissing, refusal, require_scope
from services.web.security import install_security
from services.web.session import WebSettings
from services.web.shared import router as shared_router
from services.web.signin import install_signin

# The pages' routers: each mounted behind the role's scopes (services.web.scopes)
PAGE_ROUTERS = (
    pages_router,
    schools_router,
    centre_router,
    plans_router,
    emergency_router,
    family_support_router,
    households_router,
    providers_router,
    inquiries_router,
    cases_router,
    audit_router,
    admin_router,
    shared_router,
    aggregates_router,
)


def install_web(app: FastAPI, settings: WebSettings) -> None:
    """Mount the staff UI on ``app``: static assets, sign-in, the pages, and the session and security layers."""
    app.state.web = settings
    app.mount("/ui/static", StaticFiles(directory=Path(__file__).with_name("static")), name="web-static")
    install_signin(app, settings)
    # every page checks the role's scopes first (services.web.scopes), as the API checks a token's
    checked = [Depends(require_scope)]
    app.add_exception_handler(ScopeMissing, refusal)
    app.add_exception_handler(NotSignedIn, to_signin_page)  # a form posted without a signed-in person
    for router in PAGE_ROUTERS:
        app.include_router(router, dependencies=checked)
    install_security(app, settings)
