"""Every page of the staff UI checks the role's scopes as the API checks a token's (``services.web.scopes``): an
administrator (``hub_admin``, scope ``admin`` only) signed in for a centre reads no child in the browser, on any
page, and leaves no access record; a caseworker of the same centre still reads."""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import datetime

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner

from consent.model import Settings
from services.audit.queries import child_records
from services.demo import load_demo
from services.http.app import create_app
from services.web import PAGE_ROUTERS
from services.web.scopes import scope_needed
from services.web.session import SESSION_COOKIE, WebSettings

pytestmark = pytest.mark.http

KEY = b"k" * 32
DEMO_TODAY = datetime.fromisoformat("2026-11-23T12:00:00+09:00")
# a value for each path parameter of the UI's pages, from the demo
PARAMETERS = {
    "child": "child-01",
    "case": "K-2026-014",
    "plan": "P-2026-031",
    "event_id": "x",
    "inquiry": "x",
    "household": "H-2026-003",
}


def session(org: str, role: str) -> str:
    """The session cookie the sign-in would set for a person of ``org`` acting as ``role``."""
    data = {"person": {"name": "小林 誠", "subject": "kobayashi", "org": org, "role": role, "roles": [role]}}
    raw = base64.b64encode(json.dumps(data | {"seen": time.time()}).encode())
    return TimestampSigner(KEY.hex()).sign(raw).decode()


def ui_pages() -> list[str]:
    """Every GET address of the staff UI's pages, its path parameters filled from the demo."""
    out = []
    for route in (r for router in PAGE_ROUTERS for r in router.routes):
        if isinstance(route, APIRoute) and route.path.startswith("/ui/") and "GET" in route.methods:
            out.append(re.sub(r"\{(\w+)(:[^}]*)?\}", lambda m: PARAMETERS.get(m.group(1), "x"), route.path))
    return sorted(set(out))


def records(hub) -> int:
    return sum(len(child_records(hub.store, f"child-{n:02d}")[0]) for n in range(1, 17))


def test_an_administrator_reads_no_child_on_any_page_and_a_caseworker_still_does(make_hub, clock, keys):
    clock.at = DEMO_TODAY
    hub = make_hub(settings=Settings(joint_ledger=True))
    load_demo(hub)
    _, verifier = keys
    web = WebSettings(issuer="http://127.0.0.1:9/dev-oidc", client_id="tsunagu-ui", session_key=KEY)
    app = create_app(hub, verifier, web=web)
    pages = ui_pages()
    assert "/ui/children/child-01" in pages and "/ui/ledger" in pages and len(pages) > 30
    before = records(hub)
    with TestClient(app) as client:
        client.cookies.set(SESSION_COOKIE, session("beppu-center", "hub_admin"))
        for path in pages:
            answer = client.get(path, follow_redirects=False)
            needed = scope_needed("GET", path)
            if needed is None or needed == "admin":  # the start page, and the administrator's own pages
                assert answer.status_code != 403, path
            else:
                assert answer.status_code == 403, (path, answer.status_code)
                assert "いまの役割ではこの画面を使えません" in answer.text
        assert client.get("/ui/", follow_redirects=False).status_code == 200  # the start page, without counts
        assert records(hub) == before  # not one child read
    with TestClient(app) as client:
        client.cookies.set(SESSION_COOKIE, session("beppu-center", "caseworker"))
        shown = client.get("/ui/children/child-01")
        assert shown.status_code == 200 and "K-2026-014" in shown.text
    assert records(hub) == before + 1
