"""The pages of status inquiries before a meeting (事前照会, meetings-and-services.md §1).

- ``/ui/rounds/new`` (a centre): the round form (the meeting's day and the due date; one action asks every member
  of every case due) and what is outstanding per member, overdue first (identifiers and dates: no child is read);
- ``/ui/inquiries`` (a member): its inbox, due first, each child read once through the read service;
- ``/ui/inquiries/{inquiry}`` (a member): one inquiry with the short answer form ("変わりなし" is one tick).

The forms go through ``services.casework.inquiries.Inquiries`` as the signed-in person, the same service as the API;
a refusal is shown next to its field in Japanese, nothing typed is lost, never a 500. An inquiry not addressed to
the person's organisation answers like one that does not exist.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from events.labels import CHECKLIST_JA
from events.model import CENTER
from events.problems import Rejected
from services.casework.commands import Actor
from services.casework.inquiries import Inquiries
from services.casework.ledger import day_of
from services.hub import Hub
from services.web import words
from services.web.cases import go
from services.web.forms import posted_form
from services.web.pages import page, to_signin
from services.web.session import Person, signed_in

router = APIRouter(include_in_schema=False)


def _errors(rejected: Rejected) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in rejected.problems:
        out.setdefault((p.field or "form").removeprefix("payload."), p.message_ja)
    return out


def _refused(request: Request, person: Person, message: str, status_code: int = 403) -> Response:
    return page(
        request, "web/error.html", person, status_code=status_code, title="この画面は使えません", message=message
    )


def _is_center(request: Request, person: Person) -> bool:
    hub: Hub = request.app.state.hub
    org = hub.orgs().get(person.org)
    return org is not None and org.type == CENTER


# --- The centre: the round and what is outstanding ------------------------------------------------------------


def _round_page(
    request: Request, person: Person, values: dict[str, str], errors: dict[str, str], status_code: int = 200
) -> Response:
    hub: Hub = request.app.state.hub
    outstanding = Inquiries(hub).outstanding(person.org)
    return page(
        request,
        "web/round_new.html",
        person,
        status_code=status_code,
        title="事前照会（会議前の状況確認）",
        values=values,
        errors=errors,
        outstanding=outstanding,
        overdue=sum(m["overdue"] for m in outstanding),
    )


@router.get("/ui/rounds/new", response_class=HTMLResponse)
def round_form(request: Request) -> Response:
    person = signed_in(request)
    if person is None:
        return to_signin()
    if not _is_center(request, person):
        return _refused(request, person, "事前照会を送れるのは市町村のこども家庭センターだけです。")
    hub: Hub = request.app.state.hub
    today = day_of(hub.clock())
    meeting = today + timedelta(days=7)
    values = {"meeting_date": meeting.isoformat(), "due": (meeting - timedelta(days=2)).isoformat()}
    return _round_page(request, person, values, {})


@router.post("/ui/rounds", response_class=HTMLResponse)
def send_round(request: Request, form: Annotated[FormData, posted_form(max_files=0, max_fields=10)]) -> Response:
    person = signed_in(request)
    if person is None:
        return to_signin()
    if not _is_center(request, person):
        return _refused(request, person, "事前照会を送れるのは市町村のこども家庭センターだけです。")
    values = {k: str(form.get(k) or "").strip()[:40] for k in ("meeting_date", "due")}
    hub: Hub = request.app.state.hub
    try:
        result = Inquiries(hub).send_round(
            Actor(person.org, person.role, person.user), values["meeting_date"], values["due"]
        )
    except Rejected as rejected:
        return _round_page(request, person, values, _errors(rejected), 422)
    meeting = words.wareki(date.fromisoformat(result.meeting_date), with_time=False, western=True)
    message = f"{meeting}の会議に向けて、事前照会を {len(result.sent)} 件送りました"
    if result.skipped:
        message += f"（この会議について照会済みの {len(result.skipped)} 件は送っていません）"
    return go(request, message + "。", "/ui/rounds/new")


# --- The member: the inbox and the answer ------------------------------------------------------------------------


@router.get("/ui/inquiries", response_class=HTMLResponse)
def inbox(request: Request) -> Response:
    person = signed_in(request)
    if person is None:
        return to_signin()
    if _is_center(request, person):
        return go(request, "センターの事前照会は、この画面で送り、未回答を確認します。", "/ui/rounds/new")
    hub: Hub = request.app.state.hub
    items, reads = Inquiries(hub).inbox(Actor(person.org, person.role, person.user), answered=True)
    waiting = [i for i in items if i.answer is None]
    done = [i for i in items if i.answer is not None]
    return page(
        request, "web/inquiries.html", person, title="事前照会（回答の依頼）", waiting=waiting, done=done, reads=reads
    )


def _answer_page(
    request: Request,
    person: Person,
    inquiry: str,
    values: dict[str, Any] | None,
    errors: dict[str, str],
    status_code: int = 200,
) -> Response:
    hub: Hub = request.app.state.hub
    try:
        item, reads = Inquiries(hub).item(Actor(person.org, person.role, person.user), inquiry)
    except Rejected as rejected:
        return page(
            request,
            "web/error.html",
            person,
            status_code=404,
            title="照会が見つかりません",
            message=rejected.problems[0].message_ja,
        )
    if values is None:
        previous = item.answer or {}
        attendance = previous.get("attendance") or {}
        values = {
            "no_change": bool(previous.get("no_change")),
            "observations": previous.get("observations", ""),
            "actions": previous.get("actions", ""),
            "concerns": previous.get("concerns", ""),
            "safety_scale": "" if previous.get("safety_scale") is None else str(previous["safety_scale"]),
            "days": str(attendance.get("days", "")),
            "absent": str(attendance.get("absent", "")),
            "absent_without_contact": str(attendance.get("absent_without_contact", "")),
            "checklist": list(previous.get("checklist") or []),
        }
    return page(
        request,
        "web/inquiry_answer.html",
        person,
        status_code=status_code,
        title=f"事前照会への回答（ケース {item.case}）",
        item=item,
        values=values,
        errors=errors,
        reads=reads,
        CHECKLIST_JA=CHECKLIST_JA,
        scales=range(11),
    )


@router.get("/ui/inquiries/{inquiry}", response_class=HTMLResponse)
def answer_form(request: Request, inquiry: str) -> Response:
    person = signed_in(request)
    if person is None:
        return to_signin()
    return _answer_page(request, person, inquiry[:200], None, {})


@router.post("/ui/inquiries/{inquiry}", response_class=HTMLResponse)
def answer(
    request: Request, inquiry: str, form: Annotated[FormData, posted_form(max_files=0, max_fields=40)]
) -> Response:
    person = signed_in(request)
    if person is None:
        return to_signin()
    inquiry = inquiry[:200]
    text = {k: str(form.get(k) or "").strip() for k in ("observations", "actions", "concerns")}
    short = {
        k: str(form.get(k) or "").strip()[:20] for k in ("safety_scale", "days", "absent", "absent_without_contact")
    }
    values: dict[str, Any] = {
        "no_change": form.get("no_change") == "1",
        **text,
        **short,
        "checklist": [str(c) for c in form.getlist("checklist")][:20],
    }
    hub: Hub = request.app.state.hub
    attendance = {k: short[k] for k in ("days", "absent", "absent_without_contact")}
    try:
        Inquiries(hub).answer(
            Actor(person.org, person.role, person.user),
            inquiry,
            no_change=values["no_change"],
            observations=text["observations"],
            actions=text["actions"],
            concerns=text["concerns"],
            safety_scale=short["safety_scale"],
            attendance=attendance,
            checklist=values["checklist"],
        )
    except Rejected as rejected:
        if rejected.problems[0].code == "unknown_inquiry":
            return _answer_page(request, person, inquiry, values, {})
        errors = {k.replace("attendance.", ""): v for k, v in _errors(rejected).items()}
        return _answer_page(request, person, inquiry, values, errors, 422)
    return go(request, f"照会 {inquiry} に回答しました。センターの会議の議題に表示されます。", "/ui/inquiries")
