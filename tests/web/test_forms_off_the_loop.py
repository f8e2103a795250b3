"""The staff UI's form handlers do the hub's work in a request thread, not on the event loop
(``services.web.forms``): while a form's POST waits for a child whose turn another writer holds, the process
goes on answering, ``/v1/health`` and a read of another child included. (Before, the handlers were ``async def``
and their wait stopped the whole process until the turn's wait ran out.)"""

from __future__ import annotations

import inspect
import re
import threading

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from consent.model import Settings
from events.store import AccessLog
from services.demo import load_demo
from services.http.app import create_app
from services.hub import Hub
from services.web import PAGE_ROUTERS, signin
from services.web.session import SESSION_COOKIE, WebSettings
from tests.web.test_role_scopes import DEMO_TODAY, KEY, session

pytestmark = [pytest.mark.http, pytest.mark.store]

WEB = WebSettings(issuer="http://127.0.0.1:9/dev-oidc", client_id="tsunagu-ui", session_key=KEY)
PLAN, PLAN_CHILD, OTHER_CHILD = "P-2026-031", "child-02", "child-05"  # the demo's


def _until(condition, what: str) -> None:
    for _ in range(1200):
        if condition():
            return
        threading.Event().wait(0.05)
    raise AssertionError(what)


@pytest.fixture
def demo_hub(make_hub, clock, tmp_path) -> Hub:
    """The demo on a store of its own, on the demo's day."""
    clock.at = DEMO_TODAY
    hub = make_hub(settings=Settings(joint_ledger=True), database=f"sqlite:///{tmp_path / 'hub.db'}")
    load_demo(hub)
    return hub


def plan_form_token(client: TestClient) -> str:
    """Sign in as the centre's caseworker and open the plan's page: the CSRF token its forms carry."""
    client.cookies.set(SESSION_COOKIE, session("beppu-center", "caseworker"))
    shown = client.get(f"/ui/plans/{PLAN}")
    assert shown.status_code == 200
    token = re.search(r'name="csrftoken" value="([^"]+)"', shown.text)
    assert token is not None
    return token.group(1)


def test_health_and_another_child_are_answered_while_a_form_waits_for_a_held_child(demo_hub, keys, monkeypatch):
    monkeypatch.setenv("TSUNAGU_TURN_LOCK_TIMEOUT", "60")  # the POST waits until the test lets the child go
    hub = demo_hub
    log = AccessLog.create_id(PLAN_CHILD)
    with TestClient(create_app(hub, keys[1], web=WEB)) as client:
        token = plan_form_token(client)
        posted: list[httpx.Response] = []

        def post_revision() -> None:  # an invalid revision: the 422 page reads the plan's child
            posted.append(client.post(f"/ui/plans/{PLAN}/revise", data={"csrftoken": token}))

        with hub.store.append_in_turn([log]):  # another writer holds the child's turn
            poster = threading.Thread(target=post_revision, daemon=True)
            poster.start()
            _until(lambda: hub.store.turns.waiting_for(log) == 1, "the form's POST did not wait for the child")
            health = client.get("/v1/health")
            other = client.get(f"/ui/children/{OTHER_CHILD}", params={"purpose": "support"})
            still_waiting = poster.is_alive() and not posted
        poster.join(120)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert other.status_code == 200 and OTHER_CHILD in other.text
    assert still_waiting, "health and the other child were answered only after the form's wait"
    assert [r.status_code for r in posted] == [422]  # once the child was let go, the form was answered


@pytest.mark.unit
def test_no_handler_of_the_staff_ui_runs_on_the_event_loop_but_the_sign_in():
    """Every page handler of the staff UI is a plain function (FastAPI runs it in a request thread); only the
    sign-in's are not: they await the provider (authlib's client) and read the hub in a thread."""
    pages = [route for router in PAGE_ROUTERS for route in router.routes if isinstance(route, APIRoute)]
    assert sum("POST" in route.methods for route in pages) >= 20  # the forms are there
    assert [route.path for route in pages if inspect.iscoroutinefunction(route.endpoint)] == []
    sign_in = [route for route in signin.router.routes if isinstance(route, APIRoute)]
    assert {route.path for route in sign_in if inspect.iscoroutinefunction(route.endpoint)} <= {
        "/ui/login",
        "/ui/callback",
    }


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/ui/imports/monthly", {"files": [("file", ("a.csv", b"a")), ("file2", ("b.csv", b"b"))]}),  # one too many
        ("/ui/imports/monthly", {"files": {"file": ("a.csv", b"x" * (1 << 20))}}),
        ("/ui/imports/monthly", {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data"}}),
        ("/ui/admin/orgs/load", {"files": {"file": ("orgs.json", b"[]")}}),
        ("/ui/plans/P-2026-031/revise", {"data": {f"f{n}": "x" for n in range(30)}}),  # too many fields
    ],
)
def test_a_form_posted_without_signing_in_is_sent_to_sign_in_before_its_body_is_read(tmp_path, keys, path, body):
    """As when the handlers read their forms after the sign-in check (review of session 7, LOW-1): a body that
    is not read answers the sign-in redirect, not the form parser's 422."""
    hub = Hub(f"sqlite:///{tmp_path / 'hub.db'}")
    try:
        with TestClient(create_app(hub, keys[1], web=WEB), follow_redirects=False) as client:
            posted = client.post(path, **body)
        assert posted.status_code == 303 and posted.headers["location"] == "/ui/login", posted.text[:200]
    finally:
        hub.close()


def test_a_form_the_hub_could_not_serve_in_time_is_answered_with_a_japanese_page_and_nothing_stored(
    demo_hub, keys, monkeypatch
):
    """A person, not a program, reads the staff UI's answers: a form whose child stayed held past the turn's wait
    (``Busy``) gets a page in Japanese that says nothing was stored and what to do, with ``Retry-After``, not the
    API's JSON (review of session 7, LOW-2); the API keeps its JSON for the same error."""
    monkeypatch.setenv("TSUNAGU_TURN_LOCK_TIMEOUT", "0.3")
    hub = demo_hub
    log = AccessLog.create_id(PLAN_CHILD)
    with TestClient(create_app(hub, keys[1], web=WEB)) as client:
        token = plan_form_token(client)
        records = hub.store.peek(log)
        before = records.count if records is not None else 0
        with hub.store.append_in_turn([log]):  # another writer holds the child's turn past the wait
            posted = client.post(f"/ui/plans/{PLAN}/revise", data={"csrftoken": token})
        records = hub.store.peek(log)
        after = records.count if records is not None else 0
    assert posted.status_code == 503 and posted.headers["retry-after"]
    assert posted.headers["content-type"].startswith("text/html")
    assert "何も保存されていません" in posted.text and "「戻る」" in posted.text
    assert after == before  # no access record of a read whose content was not shown


def test_a_form_whose_body_cannot_be_read_is_answered_with_a_japanese_page(demo_hub, keys):
    """A signed-in person's form the parser refuses (too many fields) gets a page in Japanese, not the API's
    "the body is not JSON in UTF-8" (review of session 7, LOW-2)."""
    with TestClient(create_app(demo_hub, keys[1], web=WEB)) as client:
        fields = {f"f{n}": "x" for n in range(30)} | {"csrftoken": plan_form_token(client)}
        posted = client.post(f"/ui/plans/{PLAN}/revise", data=fields)
    assert posted.status_code == 422 and posted.headers["content-type"].startswith("text/html")
    assert "送信された内容を読み取れませんでした" in posted.text and "JSON" not in posted.text
