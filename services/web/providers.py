"""The pages of 委託事業者 (service providers, ui.md / issue 14 item 5): a provider sends the centre that commissioned
it a usage report (``service.usage``: which service, from when, until when) or a visit report (``visit.report``:
the day and what was seen), with basis ``commissioned`` and ``to`` the chosen こども家庭センター.

Each form publishes through ``Hub.publish`` as the person's organisation (the same path as the API; the policy's
admission decides whether the provider may send to that centre). The provider is told what any publisher that is
not a centre is told (``events.problems.told_to``): that the report was received (受付), never whether the hub
knows the child. What the provider has sent about a child is on that child's page, one recorded read.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from consent.policy import learns_whether_published
from events.limits import MAX_TEXT_CHARS
from events.model import Org
from events.problems import told_to
from services.hub import Hub
from services.web.forms import posted_form
from services.web.pages import page, to_signin
from services.web.session import Person, signed_in

router = APIRouter(include_in_schema=False)

REPORTS = {  # form key -> (kind, Japanese name)
    "usage": ("service.usage", "利用状況の報告"),
    "visit": ("visit.report", "訪問の報告"),
}
FIELD_OF = {  # a problem's field (as the publish path names it) -> the form's field
    "usage": {
        "child": "u_who",
        "local_child": "u_who",
        "to": "u_to",
        "payload.service": "service",
        "payload.from": "u_from",
        "payload.to": "u_until",
    },
    "visit": {
        "child": "v_who",
        "local_child": "v_who",
        "to": "v_to",
        "payload.date": "v_date",
        "payload.observations": "observations",
        "payload.urgent_reason": "urgent_reason",
    },
}
FIRST_FIELD = {"usage": "service", "visit": "observations"}


def _provider(request: Request) -> Person | Response:
    person = signed_in(request)
    if person is None:
        return to_signin()
    hub: Hub = request.app.state.hub
    org = hub.orgs().get(person.org)
    if org is None or org.type != "service_provider":
        return page(
            request,
            "web/error.html",
            person,
            status_code=403,
            title="この画面は使えません",
            message="この画面は委託事業者が委託元のこども家庭センターへ報告を送るためのものです。",
        )
    return person


def _centres(hub: Hub, person: Person) -> list[Org]:
    """The こども家庭センター a provider may address: those of its own municipality first."""
    orgs = hub.orgs()
    own = orgs[person.org].municipality if person.org in orgs else None
    centres = [o for o in orgs.values() if o.type == "municipal_center"]
    return sorted(centres, key=lambda o: (o.municipality != own, o.name or o.id))


def _form(
    request: Request,
    person: Person,
    values: dict[str, Any],
    errors: dict[str, str],
    status_code: int = 200,
    receipt: dict[str, Any] | None = None,
) -> Response:
    hub: Hub = request.app.state.hub
    return page(
        request,
        "web/provider.html",
        person,
        status_code=status_code,
        title="委託元への報告",
        centres=_centres(hub, person),
        values=values,
        errors=errors,
        receipt=receipt,
    )


@router.get("/ui/provider", response_class=HTMLResponse)
def provider_page(request: Request) -> Response:
    """The two report forms (利用状況・訪問)."""
    person = _provider(request)
    if isinstance(person, Response):
        return person
    return _form(request, person, {}, {})


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _check(which: str, values: dict[str, str], centres: set[str]) -> dict[str, str]:
    """The form's own checks, each message naming its field in Japanese."""
    p = which[0]
    errors: dict[str, str] = {}
    if values[f"{p}_id_type"] not in ("child", "local_child"):
        errors[f"{p}_id_type"] = "児童の番号の種類を選んでください"
    if not values[f"{p}_who"]:
        errors[f"{p}_who"] = "児童の番号を入力してください"
    elif len(values[f"{p}_who"]) > 200:
        errors[f"{p}_who"] = "児童の番号は200文字までです"
    if values[f"{p}_to"] not in centres:
        errors[f"{p}_to"] = "報告先（委託元のこども家庭センター）を選んでください"
    if which == "usage":
        if not values["service"]:
            errors["service"] = "利用している事業を入力してください"
        elif len(values["service"]) > 200:
            errors["service"] = "事業の名前は200文字までです"
        start = _day(values["u_from"])
        if start is None:
            errors["u_from"] = "利用開始日を 2026-05-12 の形で入力してください"
        if values["u_until"]:
            end = _day(values["u_until"])
            if end is None:
                errors["u_until"] = "利用終了日を 2026-05-12 の形で入力してください"
            elif start is not None and end < start:
                errors["u_until"] = "利用終了日は利用開始日より後の日にしてください"
    else:
        if _day(values["v_date"]) is None:
            errors["v_date"] = "訪問日を 2026-05-12 の形で入力してください"
        if not values["observations"]:
            errors["observations"] = "訪問時の様子を入力してください"
        elif len(values["observations"]) > MAX_TEXT_CHARS:
            errors["observations"] = f"訪問時の様子は{MAX_TEXT_CHARS}文字までです"
        if values["urgent"] and not values["urgent_reason"]:  # 緊急: the centre must see why at once
            errors["urgent_reason"] = "緊急の場合は、緊急の理由を入力してください"
        elif len(values["urgent_reason"]) > MAX_TEXT_CHARS:
            errors["urgent_reason"] = f"緊急の理由は{MAX_TEXT_CHARS}文字までです"
    return errors


FIELDS = {
    "usage": ("u_id_type", "u_who", "u_to", "service", "u_from", "u_until"),
    "visit": ("v_id_type", "v_who", "v_to", "v_date", "observations", "urgent", "urgent_reason"),
}


@router.post("/ui/provider/{which}", response_class=HTMLResponse)
def send_report(
    request: Request, which: str, form: Annotated[FormData, posted_form(max_files=0, max_fields=20)]
) -> Response:
    """Publish the report as the person's organisation, basis ``commissioned``, ``to`` the chosen centre; then
    the receipt (受付) as a provider is told it, or the form again with each problem next to its field."""
    person = _provider(request)
    if isinstance(person, Response):
        return person
    if which not in REPORTS:
        return page(
            request,
            "web/error.html",
            person,
            status_code=404,
            title="ページが見つかりません",
            message="そのページはありません。",
        )
    values = {k: str(form.get(k) or "").strip() for k in FIELDS[which]}
    hub: Hub = request.app.state.hub
    errors = _check(which, values, {o.id for o in _centres(hub, person)})
    if errors:
        return _form(request, person, values, errors, 422)
    p = which[0]
    kind, kind_ja = REPORTS[which]
    if which == "usage":
        payload: dict[str, Any] = {"service": values["service"], "from": values["u_from"]}
        if values["u_until"]:
            payload["to"] = values["u_until"]
    else:
        payload = {"date": values["v_date"], "observations": values["observations"]}
        if values["urgent"]:
            payload |= {"urgent": True, "urgent_reason": values["urgent_reason"]}
    envelope: dict[str, Any] = {
        "id": f"ui-provider-{uuid.uuid4()}",
        "kind": kind,
        values[f"{p}_id_type"]: values[f"{p}_who"],
        "source": person.org,
        "basis": "commissioned",
        "to": values[f"{p}_to"],
        "at": hub.clock().isoformat(),
        "payload": payload,
    }
    [result] = hub.publish([envelope], publisher=person.org)
    result = told_to(result, learns_whether_published(hub.orgs().get(person.org)))
    if result.outcome == "rejected":
        for problem in result.problems:
            errors.setdefault(FIELD_OF[which].get(problem.field or "", FIRST_FIELD[which]), problem.message_ja)
        return _form(request, person, values, errors, 422)
    receipt = {
        "kind_ja": kind_ja,
        "id": result.id,
        "at": envelope["at"],
        "to": values[f"{p}_to"],
        "child": values[f"{p}_who"] if values[f"{p}_id_type"] == "child" else None,
        "urgent": bool(values.get("urgent")),
    }
    return _form(request, person, {}, {}, receipt=receipt)
