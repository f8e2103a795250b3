"""The staff UI in a real browser: signing in, a child's page as the policy lets each reader see it, and the
security every page carries (ui.md; issue 13)."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.web.conftest import assert_accessible, shoot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.http]


def access_records(server, child: str) -> list[dict]:
    return json.loads(server.tsunagu("audit", "reads", child, "--json").stdout)["reads"]


def test_a_caseworker_signs_in_and_reads_a_child_with_rule_badges_and_her_name_on_the_record(server, page):
    page.goto(f"{server.base}/")
    assert page.url.endswith("/ui/login")
    assert_accessible(page, "login")
    shoot(page, "01-login")
    page.get_by_role("button", name="ログイン").click()
    assert "/dev-oidc/authorize" in page.url
    assert page.get_by_role("button", name=re.compile("鈴木 一郎（別府市立はまかぜ小学校・教員）")).is_visible()
    assert_accessible(page, "dev sign-in")
    shoot(page, "02-dev-signin")
    page.get_by_role("button", name=re.compile("佐藤 花子")).click()
    page.wait_for_url(f"{server.base}/ui/")
    header = page.locator("header").inner_text()
    assert "佐藤 花子" in header and "別府市こども家庭センター" in header and "児童福祉の担当職員" in header
    assert_accessible(page, "start")
    shoot(page, "03-start-centre")

    before = len(access_records(server, "child-01"))
    page.get_by_label("児童ID").fill("child-01")
    page.get_by_role("button", name="開く").click()
    page.wait_for_url(f"{server.base}/ui/children/child-01")
    text = page.locator("main").inner_text()
    assert "気づき" in text and "月次出欠" in text  # kinds by their Japanese names, never codes
    assert "attendance.monthly" not in text and "concern.reported" not in text
    assert page.locator(".badge", has_text="直接の提供").count() > 0
    assert page.locator(".badge", has_text="自機関の記録").count() > 0
    assert "令和8年" in text  # 和暦 with 西暦
    assert_accessible(page, "child page")
    shoot(page, "04-child-centre")
    records = access_records(server, "child-01")
    assert len(records) == before + 1  # one recorded read for the one child shown
    assert records[-1]["reader"]["user"] == "佐藤 花子 (sato)"

    page.get_by_label("種類").select_option(label="気づき")
    page.get_by_role("button", name="絞り込む").click()
    page.wait_for_url(re.compile(r"kind=concern\.reported"))
    assert {t.strip() for t in page.locator(".entry-kind").all_inner_texts()} == {"気づき"}


def test_a_school_sees_only_what_it_may_and_nothing_of_what_is_withheld(server, page):
    sign_in(page, server.base, re.compile("鈴木 一郎"))
    page.goto(f"{server.base}/ui/children/child-03")  # a child the school has no record of and no share about
    text = page.locator("main").inner_text()
    assert "表示できる記録はありません" in text
    assert "件あります" not in text  # no withheld count for a school
    shoot(page, "05-child-school-nothing")
    page.goto(f"{server.base}/ui/children/child-01")
    text = page.locator("main").inner_text()
    assert "ケース共有" in text or "自機関の記録" in text
    assert "閲覧が認められていない記録" not in text
    assert_accessible(page, "child page (school)")


def test_no_page_without_signing_in_and_every_page_carries_its_security_headers(server):
    with httpx.Client(base_url=server.base, follow_redirects=False, timeout=10) as client:
        for path in ("/", "/ui/", "/ui/children/child-01", "/ui/role"):
            response = client.get(path)
            assert response.status_code == 303 and response.headers["location"] == "/ui/login", path
        login = client.get("/ui/login")
        csp = login.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert login.headers["x-frame-options"] == "DENY"
        # a form posted without its CSRF token is refused
        assert client.post("/ui/logout").status_code == 403
        assert client.post("/ui/login").status_code == 403


def test_sign_out_ends_the_session(server, page):
    sign_in(page, server.base, re.compile("佐藤 花子"))
    page.get_by_role("button", name="ログアウト").click()
    page.wait_for_url(f"{server.base}/ui/login")
    page.goto(f"{server.base}/ui/children/child-01")
    assert page.url.endswith("/ui/login")


def test_an_idle_session_ends_after_its_time():
    """The session mechanism itself (``services.web.session``) on a minimal app: signed in, used, then idle for
    longer than allowed: the person is no longer signed in and the sign-in page can say why."""
    from types import SimpleNamespace

    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from services.web.session import Person, WebSettings, sign_in, signed_in

    def enter(request):
        sign_in(request, Person("佐藤 花子", "sato", "beppu-center", "caseworker", ("caseworker",)))
        return JSONResponse({})

    def who(request):
        person = signed_in(request)
        return JSONResponse(
            {"person": person.name if person else None, "expired": request.session.get("expired", False)}
        )

    app = Starlette(
        routes=[Route("/in", enter), Route("/who", who)],
        middleware=[Middleware(SessionMiddleware, secret_key="x" * 32)],
    )
    app.state.web = SimpleNamespace(idle_seconds=0)  # idle at once
    with TestClient(app) as client:
        client.get("/in")
        assert client.get("/who").json() == {"person": None, "expired": True}
    app.state.web = SimpleNamespace(idle_seconds=60)
    with TestClient(app) as client:
        client.get("/in")
        assert client.get("/who").json() == {"person": "佐藤 花子", "expired": False}
    assert WebSettings("http://x", "c", b"k").idle_seconds == 30 * 60


def test_a_person_with_several_roles_chooses_the_one_she_acts_in(server, page):
    page.goto(f"{server.base}/ui/login")
    page.get_by_role("button", name="ログイン").click()
    page.get_by_role("button", name=re.compile("山本 恵子")).click()
    page.wait_for_url(f"{server.base}/ui/role")
    assert_accessible(page, "role choice")
    shoot(page, "06-role-choice")
    page.get_by_label("児童福祉の担当職員").check()
    page.get_by_role("button", name="この役割で続ける").click()
    page.wait_for_url(f"{server.base}/ui/")
    assert "児童福祉の担当職員" in page.locator("header").inner_text()
    page.goto(f"{server.base}/ui/children/child-01")
    assert access_records(server, "child-01")[-1]["reader"]["role"] == "caseworker"
    page.get_by_role("link", name="役割を変更").click()
    page.get_by_label("統括支援員").check()
    page.get_by_role("button", name="この役割で続ける").click()
    page.wait_for_url(f"{server.base}/ui/")
    assert "統括支援員" in page.locator("header").inner_text()
