"""The hub's administration in a real browser (issue 14 item 7), signed in as the demo's administrator 小林 誠:
an organisations file is loaded (a bad one first: its rows and fields named in Japanese, nothing applied), its
diff is shown before anything changes, a change made in between is caught, and the new organisation appears; a
client is added, its secret shown once (never cached, gone on reload) and good for a token at ``/oauth/token``
over real HTTP, then rotated and disabled; a signing key is rotated (the old one kept until its tokens expire);
a caseworker gets 403 on every administration page."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.web.conftest import assert_accessible, shoot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.http]

ADMIN = re.compile("小林 誠")

BAD_FILE = """\
orgs:
  - id: beppu-es-aoba
    type: school
    name: 別府市立あおば小学校
    municipality: "442020"
  - id: beppu-es-sakura
    type: gakkou
    municipality: "44202"
"""

GOOD_FILE = """\
orgs:
  - id: beppu-es-aoba
    type: school
    name: 別府市立あおば小学校
    municipality: "442020"
    regime: public
    code: B144220200099
  - id: beppu-boe
    type: municipal_department
    name: 別府市教育委員会 学校教育課・教育相談室
    municipality: "442020"
    regime: public
"""

MEANWHILE = """\
- id: beppu-nursery-umi
  type: nursery
  name: 別府市立うみ保育所
  municipality: "442020"
  regime: public
"""


def token(base: str, client_id: str, secret: str) -> httpx.Response:
    return httpx.post(
        f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret), timeout=30
    )


def test_the_administrator_loads_an_organisations_file_after_seeing_its_diff(server, page, tmp_path):
    sign_in(page, server.base, ADMIN)
    page.get_by_role("navigation", name="メニュー").get_by_role("link", name="機関の登録").click()
    assert_accessible(page, "orgs with the load form")

    # A bad file: every problem by row and field, in Japanese; nothing registered.
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_FILE, encoding="utf-8")
    page.locator("#file").set_input_files(str(bad))
    page.get_by_role("button", name="読み込んで確認する").click()
    assert page.get_by_role("alert").is_visible()
    problems = page.locator("#file-error").inner_text()
    assert "機関 2 件目（beppu-es-sakura）" in problems
    assert "種類「gakkou」はありません" in problems and "「市町村コード」は6桁の数字" in problems
    assert "何も登録していません" in problems
    assert "別府市立あおば小学校" not in page.locator("#orgs").inner_text()
    assert_accessible(page, "orgs: a bad file")
    shoot(page, "ad01-orgs-bad-file")

    # A good file: the diff first (added, changed with old → new), nothing applied yet.
    good = tmp_path / "orgs.yaml"
    good.write_text(GOOD_FILE, encoding="utf-8")
    page.locator("#file").set_input_files(str(good))
    page.get_by_role("button", name="読み込んで確認する").click()
    assert page.get_by_role("heading", name="機関登録ファイルの確認").is_visible()
    added = page.locator("#added").inner_text()
    assert "別府市立あおば小学校" in added and "学校" in added and "公立" in added
    changed = page.locator("#changed").inner_text()
    assert "名称" in changed and "別府市教育委員会 学校教育課" in changed and "学校教育課・教育相談室" in changed
    assert "別府市こども家庭センター" in page.locator("#absent").inner_text()  # kept, said so
    assert_accessible(page, "orgs diff")
    shoot(page, "ad02-orgs-diff")
    listed = server.tsunagu("orgs", "list", "--json").stdout
    assert "beppu-es-aoba" not in listed  # shown, not applied

    # The registry changes in between (another administrator, at the command line): refused, the new diff shown.
    meanwhile = tmp_path / "meanwhile.yaml"
    meanwhile.write_text(MEANWHILE, encoding="utf-8")
    server.tsunagu("orgs", "load", str(meanwhile))
    with page.expect_navigation() as moved:
        page.get_by_role("button", name="この内容で登録する").click()
    assert moved.value is not None and moved.value.status == 409
    assert "読み込みませんでした" in page.get_by_role("alert").inner_text()
    assert "beppu-es-aoba" not in server.tsunagu("orgs", "list", "--json").stdout
    assert "別府市立うみ保育所" in page.locator("#absent").inner_text()
    assert_accessible(page, "orgs diff: the registry moved")
    shoot(page, "ad03-orgs-diff-moved")

    page.get_by_role("button", name="この内容で登録する").click()
    assert page.url == f"{server.base}/ui/admin/orgs"
    assert "新規登録 1 件、変更 1 件" in page.get_by_role("status").inner_text()
    orgs = page.locator("#orgs").inner_text()
    assert "別府市立あおば小学校" in orgs and "学校教育課・教育相談室" in orgs
    history = page.locator("ol.history li")
    applied = history.nth(0).inner_text() + history.nth(1).inner_text()  # the file's registration and its change
    assert "別府市立あおば小学校" in applied
    assert applied.count("小林 誠") == 2  # who applied it: the administrator signed in (the registry keeps it)
    assert "（system）" in history.last.inner_text()  # the demo's first registration: a program
    assert_accessible(page, "orgs loaded")
    shoot(page, "ad04-orgs-loaded")

    # The same file again: nothing to apply.
    page.locator("#file").set_input_files(str(good))
    page.get_by_role("button", name="読み込んで確認する").click()
    assert "変わる登録はありません" in page.get_by_role("status").inner_text()
    assert page.get_by_role("button", name="この内容で登録する").count() == 0


def test_the_administrator_adds_a_client_whose_secret_is_shown_once_and_gets_a_token(server, page):
    sign_in(page, server.base, ADMIN)
    page.get_by_role("navigation", name="メニュー").get_by_role("link", name="連携システム").click()
    assert_accessible(page, "clients")

    # Nothing chosen: both fields named.
    page.get_by_role("checkbox", name=re.compile("^送信")).uncheck()
    page.get_by_role("button", name="登録して秘密の値を表示する").click()
    assert page.get_by_role("alert").is_visible()
    assert "機関を選んでください" in page.locator("#org-error").inner_text()
    assert "権限を1つ以上選んでください" in page.locator("#scopes-error").inner_text()
    assert_accessible(page, "clients: refused")

    page.get_by_label("機関").select_option(label="別府市立やまなみ小学校（学校）")
    page.get_by_role("checkbox", name=re.compile("^送信")).check()
    page.get_by_role("checkbox", name=re.compile("^閲覧")).check()
    with page.expect_navigation() as added:
        page.get_by_role("button", name="登録して秘密の値を表示する").click()
    response = added.value
    assert response is not None and response.status == 200
    assert response.headers["cache-control"] == "no-store"
    client_id = page.locator("#client-id").inner_text()
    secret = page.locator("#client-secret").inner_text()
    assert client_id.startswith("tc_") and len(secret) >= 40
    assert "今だけ表示されます" in page.locator("main").inner_text()
    assert_accessible(page, "client secret")
    shoot(page, "ad05-client-secret")

    # Reload (the form sent again): no second client, no secret.
    page.reload()
    assert secret not in page.content()
    assert "既に処理されています" in page.locator("main").inner_text()
    page.goto(f"{server.base}/ui/admin/clients")
    assert secret not in page.content()
    row = page.locator(f"[id='client-{client_id}']")
    assert "別府市立やまなみ小学校" in row.inner_text() and "有効" in row.inner_text()
    assert page.locator("#clients tbody tr").count() == 1
    shoot(page, "ad06-clients")

    # The adapter gets a token with it, over real HTTP.
    got = token(server.base, client_id, secret)
    assert got.status_code == 200, got.text
    assert set(got.json()["scope"].split()) == {"publish", "read"}

    # A second client for the same school: refused next to the organisation.
    page.get_by_label("機関").select_option(label="別府市立やまなみ小学校（学校）")
    page.get_by_role("button", name="登録して秘密の値を表示する").click()
    assert "登録済みです" in page.locator("#org-error").inner_text()

    # Rotate: the new secret once; the old one stops working.
    page.goto(f"{server.base}/ui/admin/clients")
    page.locator(f"[id='client-{client_id}']").get_by_role("button", name=re.compile("秘密の値を更新")).click()
    assert page.get_by_role("heading", name="秘密の値を更新しました").is_visible()
    rotated = page.locator("#client-secret").inner_text()
    assert rotated != secret
    shoot(page, "ad07-client-rotated")
    assert token(server.base, client_id, secret).status_code == 401
    assert token(server.base, client_id, rotated).status_code == 200

    # Disable: asked first (nothing changes until confirmed), then no more tokens.
    page.goto(f"{server.base}/ui/admin/clients")
    page.locator(f"[id='client-{client_id}']").get_by_role("button", name=re.compile("無効化")).click()
    assert page.get_by_role("heading", name="クライアントの無効化の確認").is_visible()
    assert client_id in page.locator("#client").inner_text()
    assert token(server.base, client_id, rotated).status_code == 200  # not yet
    assert_accessible(page, "clients: disable asked")
    shoot(page, "ad07b-client-disable-asked")
    page.get_by_role("button", name="無効化する").click()
    assert "無効化しました" in page.get_by_role("status").inner_text()
    assert "無効" in page.locator(f"[id='client-{client_id}']").inner_text()
    assert token(server.base, client_id, rotated).status_code == 401
    assert_accessible(page, "clients: disabled")
    shoot(page, "ad08-client-disabled")


def test_the_administrator_rotates_the_signing_key(server, page):
    sign_in(page, server.base, ADMIN)
    page.get_by_role("navigation", name="メニュー").get_by_role("link", name="署名鍵").click()
    assert page.locator("#keys tbody tr").count() == 1
    assert "署名に使用中" in page.locator("#keys").inner_text()
    assert_accessible(page, "keys")
    old = page.locator("#keys tbody tr code").first.inner_text()

    page.get_by_role("button", name="新しい署名鍵を追加する").click()
    assert "新しい署名鍵" in page.get_by_role("status").inner_text()
    rows = page.locator("#keys tbody tr")
    assert rows.count() == 2
    assert "署名に使用中" in rows.nth(0).inner_text() and old not in rows.nth(0).inner_text()
    assert old in rows.nth(1).inner_text() and "検証のみ" in rows.nth(1).inner_text()
    new = rows.nth(0).locator("code").inner_text()
    kids = {k["kid"] for k in httpx.get(f"{server.base}/.well-known/jwks.json", timeout=10).json()["keys"]}
    assert kids == {old, new}  # both verify
    shoot(page, "ad09-keys-rotated")

    # The old key's tokens may still be in use: retiring it now is refused, next to its row.
    rows.nth(1).get_by_role("button", name=re.compile("廃止する")).click()
    assert page.get_by_role("alert").is_visible()
    assert "まだ有効な可能性があります" in page.locator(f"[id='retire-{old}']").inner_text()
    assert page.locator("#keys tbody tr").count() == 2
    assert_accessible(page, "keys: retire refused")
    shoot(page, "ad10-keys-retire-refused")


def test_a_caseworker_may_not_open_the_administration(server, page):
    sign_in(page, server.base, re.compile("佐藤 花子"))
    for path in ("/ui/admin/orgs", "/ui/admin/settings", "/ui/admin/clients", "/ui/admin/keys"):
        response = page.goto(f"{server.base}{path}")
        assert response is not None and response.status == 403, path
        assert "ハブの管理者だけ" in page.locator("main").inner_text()
    csrftoken = page.locator("input[name=csrftoken]").first.get_attribute("value")
    for path in ("/ui/admin/keys/rotate", "/ui/admin/clients", "/ui/admin/orgs/apply"):
        response = page.request.post(f"{server.base}{path}", form={"csrftoken": csrftoken or ""})
        assert response.status == 403, path
    response = page.request.post(f"{server.base}/ui/admin/keys/rotate")
    assert response.status == 403  # no CSRF token either
