"""The hub's administration (ui.md, "Hub administrator"; issue 14 item 7): the organisation registry with its
history and the loading of an organisations file (the diff shown first, then applied as shown), the deployment's
settings with their history and a form to change one, the adapters' clients (add, rotate the secret, disable; a
secret is shown once), and the API's signing keys (rotate, retire).

Only a person acting in a role whose scopes include ``admin`` (``services.auth.tokens.ROLE_SCOPES``: the role
``hub_admin``) may open them; anyone else gets 403. Nothing here reads a child. A setting is changed through the
hub's ``SettingsSource.change`` (``services.administration.settings.change_settings``, as ``tsunagu settings set``
does), so the new value is in force in this process at once and in the others within seconds, without a restart.
Every change goes through the service the command line uses (``services.administration.organisations``,
``services.auth.clients``, ``services.auth.tokens.SigningKeys``): one way to do each thing.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from consent.model import InvalidSetting
from events.labels import ORG_FIELD_JA, SETTING_JA
from events.limits import MAX_BODY_BYTES, MiB
from events.problems import Rejected
from events.store import REGISTRY_ID, OrgRegistry
from services.administration.organisations import OrgDiff, diff_orgs, load_orgs, read_orgs_file
from services.administration.settings import SETTING_NAMES, setting_from_text, settings_report
from services.audit import anchors
from services.auth.clients import add_client, disable_client, list_clients, rotate_secret
from services.auth.tokens import (
    ACCESS_TOKEN_LIFETIME,
    LEEWAY_SECONDS,
    ROLE_SCOPES,
    SCOPES,
    KeyFileError,
    SigningKeys,
)
from services.hub import Hub
from services.web.cases import flash
from services.web.forms import posted_form
from services.web.pages import page, to_signin
from services.web.security import multipart_token_ok
from services.web.session import Person, signed_in

router = APIRouter(include_in_schema=False)

log = logging.getLogger("tsunagu.admin")

SCOPE_JA = {"publish": "送信", "read": "閲覧", "audit": "監査", "admin": "管理"}
SCOPE_HINT_JA = {
    "publish": "出来事の送信、ケースの操作",
    "read": "規則が認める範囲での閲覧",
    "audit": "閲覧記録の監査",
    "admin": "ハブの管理",
}
ORGS_LOAD = "/ui/admin/orgs/load"
ORGS_APPLY = "/ui/admin/orgs/apply"
ONCE_KEPT = 20  # how many used one-time form marks a session remembers (``_once_used``)


def _admin(request: Request) -> tuple[Person | None, Response | None]:
    person = signed_in(request)
    if person is None:
        return None, to_signin()
    if "admin" not in ROLE_SCOPES.get(person.role, frozenset()):
        return None, page(
            request,
            "web/error.html",
            person,
            status_code=403,
            title="この画面は使えません",
            message="ハブの管理者だけが利用できる画面です。",
        )
    return person, None


def _orgs_page(
    request: Request,
    person: Person,
    *,
    status_code: int = 200,
    problems: list[str] | None = None,
) -> HTMLResponse:
    hub: Hub = request.app.state.hub
    registry = hub.store.get_or_none(REGISTRY_ID) or OrgRegistry()  # a copy: its organisations and history agree
    orgs = sorted(registry.current.orgs.values(), key=lambda o: (o.type, o.name or o.id))
    errors = {"file": f"ファイルに誤りがあります（{len(problems)} 件）。何も登録していません"} if problems else {}
    return page(
        request,
        "web/admin_orgs.html",
        person,
        status_code=status_code,
        title="機関の登録",
        orgs=orgs,
        history=list(reversed(registry.history)),
        changed_by=list(reversed(registry.changed_by)),
        errors=errors,
        problems=problems or [],
        limit_mb=MAX_BODY_BYTES // MiB,
    )


@router.get("/ui/admin/orgs", response_class=HTMLResponse)
def organisations(request: Request) -> Response:
    """Every registered organisation, by type, the registry's history (each registration and change), and the
    form to load an organisations file."""
    person, refusal = _admin(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    return _orgs_page(request, person)


def _diff_page(
    request: Request, person: Person, diff: OrgDiff, items: list[Any], *, status_code: int = 200, moved: bool = False
) -> HTMLResponse:
    return page(
        request,
        "web/admin_orgs_diff.html",
        person,
        status_code=status_code,
        title="機関登録ファイルの確認",
        diff=diff,
        content=json.dumps(items, ensure_ascii=False, default=str),
        ORG_FIELD_JA=ORG_FIELD_JA,
        errors={"apply": "確認した後に機関の登録が変更されました"} if moved else {},
        moved=moved,
    )


@router.post(ORGS_LOAD, response_class=HTMLResponse)
def load_organisations_file(
    request: Request, form: Annotated[FormData, posted_form(max_files=1, max_fields=5)]
) -> Response:
    """An organisations file sent from the registry's page (multipart: its CSRF token is checked here): nothing
    is applied; the page shows what loading it would add and change, field by field, with a button that applies
    exactly that (the registry's version goes with it). A bad file: every problem, by row and field in
    Japanese."""
    person, refusal = _admin(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    if not multipart_token_ok(request, form):
        return page(
            request,
            "web/error.html",
            person,
            status_code=403,
            title="送信できませんでした",
            message="画面の有効期限が切れました。ページを開き直してから、もう一度送ってください。",
        )
    file = form.get("file")
    if not isinstance(file, UploadFile) or not file.filename:
        return _orgs_page(request, person, status_code=422, problems=["読み込む機関登録ファイルを選んでください"])
    data = file.file.read()
    hub: Hub = request.app.state.hub
    try:
        items = read_orgs_file(data)
        diff = diff_orgs(hub.store, items)
    except Rejected as rejected:
        return _orgs_page(request, person, status_code=422, problems=[p.message_ja for p in rejected.problems])
    return _diff_page(request, person, diff, items)


@router.post(ORGS_APPLY, response_class=HTMLResponse)
def apply_organisations_file(
    request: Request,
    content: str = Form(default="", max_length=MAX_BODY_BYTES),
    version: str = Form(default="", max_length=20),
) -> Response:
    """Apply the file shown on the confirmation page, if the registry is still at the version it was compared
    with; otherwise nothing is applied and the new diff is shown, with why."""
    person, refusal = _admin(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    hub: Hub = request.app.state.hub
    try:
        items = read_orgs_file(content.encode("utf-8"))
        expected = int(version) if version.isdigit() else -1
        result = load_orgs(hub.store, items, by=person.user, expected_version=expected)
    except Rejected as rejected:
        if rejected.code != "registry_moved":
            return _orgs_page(request, person, status_code=422, problems=[p.message_ja for p in rejected.problems])
        try:
            diff = diff_orgs(hub.store, items)
        except Rejected as again:
            return _orgs_page(request, person, status_code=422, problems=[p.message_ja for p in again.problems])
        return _diff_page(request, person, diff, items, status_code=409, moved=True)
    log.info(
        "organisations file loaded by %s: registered %s, updated %s",
        person.user,
        ",".join(result.registered) or "-",
        ",".join(result.updated) or "-",
    )
    flash(
        request,
        f"機関登録ファイルを読み込みました（新規登録 {len(result.registered)} 件、変更 {len(result.updated)} 件）。",
    )
    return RedirectResponse("/ui/admin/orgs", status_code=303)


def _settings_page(
    request: Request,
    person: Person,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    done: str = "",
) -> HTMLResponse:
    hub: Hub = request.app.state.hub
    report = settings_report(hub.store)
    return page(
        request,
        "web/admin_settings.html",
        person,
        status_code=status_code,
        title="設定",
        report=report,
        history=list(reversed(report["history"])),
        SETTING_JA=SETTING_JA,
        SETTING_NAMES=SETTING_NAMES,
        errors=errors or {},
        values=values or {},
        done=done,
    )


@router.get("/ui/admin/settings", response_class=HTMLResponse)
def settings_page(request: Request, changed: str = Query(default="", max_length=100)) -> Response:
    person, refusal = _admin(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    return _settings_page(request, person, done=changed if changed in SETTING_NAMES else "")


@router.post("/ui/admin/settings", response_class=HTMLResponse)
def change_setting(
    request: Request, name: str = Form(default="", max_length=100), value: str = Form(default="", max_length=100)
) -> Response:
    """Change one setting (checked as ``tsunagu settings set`` checks it), recorded with the person's name."""
    person, refusal = _admin(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    values = {"name": name, "value": value}
    if name not in SETTING_NAMES:
        return _settings_page(
            request, person, status_code=422, errors={"name": "変更する設定を選んでください"}, values=values
        )
    if not value.strip():
        return _settings_page(
            request, person, status_code=422, errors={"value": "新しい値を入力してください"}, values=values
        )
    hub: Hub = request.app.state.hub
    try:
        new = setting_from_text(name, value)
        hub.settings_source.change({name: new}, by=person.user, at=hub.clock(), org=person.org)
    except InvalidSetting as error:
        return _settings_page(request, person, status_code=422, errors={"value": error.message_ja}, values=values)
    return RedirectResponse(f"/ui/admin/settings?changed={name}", status_code=303)


def _clients_page(
    request: Request,
    person: Person,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    notice: str = "",
) -> HTMLResponse:
    hub: Hub = request.app.state.hub
    found = sorted((c.to_dict() for c in list_clients(hub.store)), key=lambda c: (c["org"], c["client_id"]))
    orgs = sorted(hub.orgs().values(), key=lambda o: (o.type, o.name or o.id))
    return page(
        request,
        "web/admin_clients.html",
        person,
        status_code=status_code,
        title="連携システム（クライアント）",
        clients=found,
        orgs=orgs,
        SCOPES=SCOPES,
        SCOPE_JA=SCOPE_JA,
        SCOPE_HINT_JA=SCOPE_HINT_JA,
        errors=errors or {},
        values=values or {"scopes": ["publish"]},
        once=secrets.token_urlsafe(12),
        notice=notice,
    )


@router.get("/ui/admin/clients", response_class=HTMLResponse)
def clients(request: Request) -> Response:
    """The adapters' machine clients: organisation, scopes, state (never a secret or its hash), a form to add
    one, and for each enabled one a form to give it a new secret and one to disable it."""
    person, refusal = _admin(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    return _clients_page(request, person)


def _once_used(request: Request, once: str) -> bool:
    """Whether this form (its one-time mark) was already sent in this session: a reloaded result page sends it
    again, and must neither add or rotate again nor show a secret again."""
    used: list[str] = list(request.session.get("admin_once") or [])
    return bool(once) and once in used


def _use_once(request: Request, once: str) -> None:
    used: list[str] = list(request.session.get("admin_once") or [])
    request.session["admin_once"] = (used + [once])[-ONCE_KEPT:]


ALREADY_SENT = "この送信は既に処理されています。秘密の値は一度だけ表示され、再び表示することはできません。"


def _secret_page(request: Request, person: Person, client: Any, secret: str, *, new: bool) -> HTMLResponse:
    """The one page that shows a secret: never cached, never stored, never logged."""
    response = page(
        request,
        "web/admin_client_secret.html",
        person,
        title="クライアントを登録しました" if new else "秘密の値を更新しました",
        client=client.to_dict(),
        secret=secret,
        new=new,
        SCOPE_JA=SCOPE_JA,
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@router.post("/ui/admin/clients", response_class=HTMLResponse)
def add_client_form(
    request: Request,
    org: str = Form(default="", max_length=200),
    scopes: Annotated[list[str] | None, Form()] = None,
    once: str = Form(default="", max_length=40),
) -> Response:
    """Register a client for an organisation (``services.auth.clients.add_client``, as ``tsunagu clients add``);
    its secret is shown on the result page, once."""
    person, refusal = _admin(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    if _once_used(request, once):
        return _clients_page(request, person, status_code=409, notice=ALREADY_SENT)
    chosen = [s[:20] for s in (scopes or [])[:10]]
    values = {"org": org, "scopes": chosen}
    errors: dict[str, str] = {}
    if not org:
        errors["org"] = "機関を選んでください"
    if not chosen:
        errors["scopes"] = "権限を1つ以上選んでください"
    if errors:
        return _clients_page(request, person, status_code=422, errors=errors, values=values)
    hub: Hub = request.app.state.hub
    try:
        client, secret = add_client(hub, org=org, scopes=chosen, by=person.user)
    except Rejected as rejected:
        for problem in rejected.problems:
            key = problem.field if problem.field in ("org", "scopes") else "org"
            errors[key] = f"{errors[key]}　{problem.message_ja}" if key in errors else problem.message_ja
        return _clients_page(request, person, status_code=422, errors=errors, values=values)
    _use_once(request, once)
    log.info("client %s added for %s by %s", client.client_id, client.org, person.user)
    return _secret_page(request, person, client, secret, new=True)


@router.post("/ui/admin/clients/{client_id}/rotate", response_class=HTMLResponse)
def rotate_client_secret(request: Request, client_id: str, once: str = Form(default="", max_length=40)) -> Response:
    """Give the client a new secret (``services.auth.clients.rotate_secret``): the old one stops working at once;
    the new one is shown once."""
    person, refusal = _admin(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    if _once_used(request, once):
        return _clients_page(request, person, status_code=409, notice=ALREADY_SENT)
    hub: Hub = request.app.state.hub
    try:
        client, secret = rotate_secret(hub, client_id[:100], by=person.user)
    except Rejected as rejected:
        return _clients_page(
            request, person, status_code=422, errors={f"row-{client_id[:100]}": rejected.problems[0].message_ja}
        )
    _use_once(request, once)
    log.info("client %s: secret rotated by %s", client.client_id, person.user)
    return _secret_page(request, person, client, secret, new=False)


@router.post("/ui/admin/clients/{client_id}/disable", response_class=HTMLResponse)
def disable_client_form(request: Request, client_id: str, confirm: str = Form(default="", max_length=10)) -> Response:
    """Disable the client (``services.auth.clients.disable_client``): no new tokens, its tokens refused now. The
    list's button asks first (a page saying what it stops, with the button that does it, ``confirm=yes``)."""
    person, refusal = _admin(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    hub: Hub = request.app.state.hub
    if confirm != "yes":
        found = {c.client_id: c for c in list_clients(hub.store) if c.enabled}.get(client_id[:100])
        if found is None:
            return _clients_page(
                request, person, status_code=422, errors={f"row-{client_id[:100]}": "有効なクライアントではありません"}
            )
        return page(
            request,
            "web/admin_client_disable.html",
            person,
            title="クライアントの無効化の確認",
            client=found.to_dict(),
            SCOPE_JA=SCOPE_JA,
        )
    try:
        client = disable_client(hub, client_id[:100], by=person.user)
    except Rejected as rejected:
        return _clients_page(
            request, person, status_code=422, errors={f"row-{client_id[:100]}": rejected.problems[0].message_ja}
        )
    log.info("client %s disabled by %s", client.client_id, person.user)
    flash(request, f"クライアント {client.client_id} を無効化しました。このクライアントのトークンは今から使えません。")
    return RedirectResponse("/ui/admin/clients", status_code=303)


# --- Signing keys -------------------------------------------------------------------------------------------


def _signing_keys(request: Request) -> SigningKeys | None:
    """The key file the running server signs and verifies with (``tsunagu serve --key-file``), or ``None`` when
    its keys are not kept in a file (then they cannot be changed here)."""
    keys = getattr(getattr(request.app.state, "verifier", None), "keys", None)
    return keys if isinstance(keys, SigningKeys) else None


RETIRE_WAIT = ACCESS_TOKEN_LIFETIME + timedelta(seconds=LEEWAY_SECONDS)


def _keys_page(
    request: Request, person: Person, *, status_code: int = 200, errors: dict[str, str] | None = None
) -> HTMLResponse:
    keys = _signing_keys(request)
    infos = []
    if keys is not None:
        try:
            infos = list(reversed(keys.keys()))  # the newest (the one that signs) first
        except KeyFileError as error:
            errors = {"keys": error.message_ja} | (errors or {})
    return page(
        request,
        "web/admin_keys.html",
        person,
        status_code=status_code,
        title="署名鍵",
        keys=infos,
        in_file=keys is not None,
        retire_after={i.kid: i.replaced + RETIRE_WAIT for i in infos if i.replaced is not None},
        errors=errors or {},
    )


@router.get("/ui/admin/keys", response_class=HTMLResponse)
def signing_keys_page(request: Request) -> Response:
    """The API's token signing keys (``tsunagu keys list``): which one signs, since when the others stopped, and
    the forms to add a new one and to retire an old one."""
    person, refusal = _admin(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    return _keys_page(request, person)


@router.post("/ui/admin/keys/rotate", response_class=HTMLResponse)
def rotate_signing_key(request: Request) -> Response:
    """A new signing key (``SigningKeys.rotate``, as ``tsunagu keys rotate``): it signs from now on, in every
    process on the same key file within a second; the old ones keep verifying until retired."""
    person, refusal = _admin(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    keys = _signing_keys(request)
    if keys is None:
        return _keys_page(
            request, person, status_code=409, errors={"rotate": "この構成では署名鍵を画面から変更できません"}
        )
    try:
        key = keys.rotate()
    except KeyFileError as error:
        return _keys_page(request, person, status_code=409, errors={"rotate": error.message_ja})
    log.info("signing key %s added by %s", key.kid, person.user)
    flash(request, f"新しい署名鍵 {key.kid} を追加しました。今後のトークンはこの鍵で署名されます。")
    return RedirectResponse("/ui/admin/keys", status_code=303)


@router.post("/ui/admin/keys/retire", response_class=HTMLResponse)
def retire_signing_key(request: Request, kid: str = Form(default="", max_length=200)) -> Response:
    """Retire a key that no longer signs (``SigningKeys.retire``, as ``tsunagu keys retire``): refused for the
    key that signs, for one whose tokens may still be in use, and for the one that signed the newest anchor
    (``services.audit.anchors.retire_signing_key``); its refusal stands next to its row."""
    person, refusal = _admin(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    keys = _signing_keys(request)
    if keys is None:
        return _keys_page(
            request, person, status_code=409, errors={"rotate": "この構成では署名鍵を画面から変更できません"}
        )
    try:
        anchors.retire_signing_key(request.app.state.hub.store, keys, kid)
    except KeyFileError as error:
        return _keys_page(request, person, status_code=422, errors={f"retire-{kid}": error.message_ja})
    log.info("signing key %s retired by %s", kid, person.user)
    flash(request, f"署名鍵 {kid} を廃止しました。この鍵で署名されたトークンは今から使えません。")
    return RedirectResponse("/ui/admin/keys", status_code=303)
