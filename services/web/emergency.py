"""緊急時アクセス (ui.md, centre item 10): a こども家庭センター or 児童相談所 declares an emergency about a child, with
a reason; for ``emergency_hours`` after the declaration the declaring organisation may read everything about the
child with purpose ``emergency`` (``consent.policy.rule_emergency``), each such read recorded and flagged for the
auditors' review.

The declaration is published through ``Hub.publish`` as the person's organisation (the same path as the API; the
policy's ``emergency_declared`` decides who may declare). The emergency read itself is the child's page with
``?purpose=emergency`` (``pages.child_page``), one recorded ``Hub.timeline`` read, with the banner built here.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from services.hub import Hub
from services.web.emergency_window import may_declare
from services.web.forms import posted_form
from services.web.pages import page, to_signin
from services.web.session import Person, signed_in

router = APIRouter(include_in_schema=False)
MAX_REASON = 4_000


def _form(
    request: Request,
    person: Person,
    child: str,
    values: dict[str, Any],
    errors: dict[str, str],
    status_code: int = 200,
) -> Response:
    hub: Hub = request.app.state.hub
    return page(
        request,
        "web/emergency_new.html",
        person,
        status_code=status_code,
        title=f"児童 {child} の緊急時アクセスを宣言する",
        child=child,
        values=values,
        errors=errors,
        hours=hub.settings.emergency_hours,
    )


def _declarer(request: Request) -> Person | Response:
    person = signed_in(request)
    if person is None:
        return to_signin()
    if not may_declare(request.app.state.hub, person):
        return page(
            request,
            "web/error.html",
            person,
            status_code=403,
            title="この画面は使えません",
            message="緊急時アクセスを宣言できるのは、こども家庭センターと児童相談所です。",
        )
    return person


@router.get("/ui/children/{child}/emergency", response_class=HTMLResponse)
def emergency_form(request: Request, child: str) -> Response:
    """The declaration form on its own page (the child's page carries the same form)."""
    person = _declarer(request)
    if isinstance(person, Response):
        return person
    return _form(request, person, child, {}, {})


@router.post("/ui/children/{child}/emergency", response_class=HTMLResponse)
def declare(
    request: Request, child: str, form: Annotated[FormData, posted_form(max_files=0, max_fields=5)]
) -> Response:
    """Publish ``emergency.declared`` with the reason, as the person's organisation; then the emergency read."""
    person = _declarer(request)
    if isinstance(person, Response):
        return person
    reason = str(form.get("reason") or "").strip()
    values = {"reason": reason}
    if not reason:
        return _form(request, person, child, values, {"reason": "緊急時アクセスの理由を入力してください"}, 422)
    if len(reason) > MAX_REASON:
        return _form(request, person, child, values, {"reason": f"理由は{MAX_REASON}文字までです"}, 422)
    if len(child) > 200:
        return _form(request, person, child[:200], values, {"reason": "児童IDが長すぎます"}, 422)
    hub: Hub = request.app.state.hub
    envelope: dict[str, Any] = {
        "id": f"ui-emergency-{uuid.uuid4()}",
        "kind": "emergency.declared",
        "child": child,
        "source": person.org,
        "basis": "internal",
        "at": hub.clock().isoformat(),
        "payload": {"reason": reason},
    }
    [result] = hub.publish([envelope], publisher=person.org)
    if result.outcome == "rejected":
        message = "この児童について緊急時アクセスを宣言することは認められませんでした。"
        if result.problems:
            message = result.problems[0].message_ja
        return _form(request, person, child, values, {"reason": message}, 422)
    if result.outcome not in ("accepted", "duplicate"):
        message = "この児童IDの児童はまだハブに登録されていないため、宣言は保留されました。児童IDを確認してください。"
        return _form(request, person, child, values, {"reason": message}, 422)
    return RedirectResponse(f"/ui/children/{quote(child, safe='')}?purpose=emergency", status_code=303)
