"""The hub's administration (ui.md, "Hub administrator"; issue 14 item 7): the organisation registry with its
history, the deployment's settings with their history and a form to change one, and the adapters' clients.

Only a person acting in a role whose scopes include ``admin`` (``services.auth.tokens.ROLE_SCOPES``: the role
``hub_admin``) may open them; anyone else gets 403. Nothing here reads a child. A setting is changed through the
hub's ``SettingsSource.change`` (``services.administration.settings.change_settings``, as ``tsunagu settings set``
does), so the new value is in force in this process at once and in the others within seconds, without a restart.
"""

from __future__ import annotations

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from consent.model import InvalidSetting
from events.labels import SETTING_JA
from services.administration.settings import SETTING_NAMES, setting_from_text, settings_report
from services.auth.clients import list_clients
from services.auth.tokens import ROLE_SCOPES, SCOPES
from services.hub import Hub
from services.web.pages import page, to_signin
from services.web.session import Person, signed_in

router = APIRouter(include_in_schema=False)

SCOPE_JA = {"publish": "送信", "read": "閲覧", "audit": "監査", "admin": "管理"}


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


@router.get("/ui/admin/orgs", response_class=HTMLResponse)
def organisations(request: Request) -> Response:
    """Every registered organisation, by type, and the registry's history (each registration and change)."""
    person, refusal = _admin(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    hub: Hub = request.app.state.hub
    registry = hub.store.registry()
    orgs = sorted(registry.orgs.values(), key=lambda o: (o.type, o.name or o.id))
    return page(
        request,
        "web/admin_orgs.html",
        person,
        title="機関の登録",
        orgs=orgs,
        history=list(reversed(registry.history)),
    )


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


@router.get("/ui/admin/clients", response_class=HTMLResponse)
def clients(request: Request) -> Response:
    """The adapters' machine clients: organisation, scopes, state (never a secret or its hash)."""
    person, refusal = _admin(request)
    if person is None:
        return refusal  # type: ignore[return-value]
    hub: Hub = request.app.state.hub
    found = sorted((c.to_dict() for c in list_clients(hub.store)), key=lambda c: (c["org"], c["client_id"]))
    return page(
        request,
        "web/admin_clients.html",
        person,
        title="連携システム（クライアント）",
        clients=found,
        SCOPES=SCOPES,
        SCOPE_JA=SCOPE_JA,
    )
