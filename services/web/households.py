"""Households (世帯) on a child's page (ui.md, centre item 2; meetings-and-services.md §3).

``casebook.household_section`` gives the child's page its households: for a centre (and a 児童相談所 for a child on the joint
ledger), each household's other children with their open cases, open alerts and overdue monthly reports, each
sibling read once through the read service as the signed-in person (``services.casework.households``); for
anyone else nothing, and no read. The forms link a child to one of the centre's households and remove it, through
``Households.join`` / ``leave`` (the same publish path as the API); a refusal is shown on the form's own page
with the field named and what was typed kept.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from events.labels import RELATION_JA
from events.problems import Rejected
from services.casework.commands import Actor
from services.casework.households import Households
from services.web.cases import child_href, go, is_centre, refused
from services.web.pages import page, to_signin
from services.web.session import Person, signed_in

router = APIRouter(include_in_schema=False)

RELATIONS = list(RELATION_JA.items())
NOT_A_CENTRE = "世帯の登録と削除は、こども家庭センターだけが行えます。"


def _form(
    request: Request,
    person: Person,
    action: str,
    values: dict[str, str],
    errors: dict[str, str],
    status_code: int = 422,
) -> Response:
    return page(
        request,
        "web/household_form.html",
        person,
        status_code=status_code,
        title="世帯への登録" if action == "join" else "世帯からの削除",
        action=action,
        values=values,
        errors=errors,
        relations=RELATIONS,
    )


def _centre_person(request: Request) -> Person | Response:
    person = signed_in(request)
    if person is None:
        return to_signin()
    if not is_centre(request.app.state.hub, person):
        return refused(request, person, NOT_A_CENTRE)
    return person


def _errors(rejected: Rejected) -> dict[str, str]:
    errors: dict[str, str] = {}
    for p in rejected.problems:
        name = p.field if p.field in ("child", "household", "relation") else "household"
        errors.setdefault(name, p.message_ja)
    return errors


@router.get("/ui/households/join", response_class=HTMLResponse)
def join_form(request: Request, child: str = "", household: str = "", back: str = "") -> Response:
    """The form on its own page (the child's page carries the same forms)."""
    person = _centre_person(request)
    if isinstance(person, Response):
        return person
    values = {"child": child[:200], "household": household[:200], "relation": "", "back": back[:200]}
    return _form(request, person, "join", values, {}, 200)


@router.post("/ui/households/join", response_class=HTMLResponse)
def join(
    request: Request,
    child: str = Form(default="", max_length=200),
    household: str = Form(default="", max_length=200),
    relation: str = Form(default="", max_length=100),
    back: str = Form(default="", max_length=200),
) -> Response:
    """Link a child to one of the centre's households (``household.joined``), then back to the child's page."""
    person = _centre_person(request)
    if isinstance(person, Response):
        return person
    values = {"child": child, "household": household, "relation": relation, "back": back}
    try:
        Households(request.app.state.hub).join(
            Actor(person.org, person.role, person.user), child, household, relation or None
        )
    except Rejected as rejected:
        return _form(request, person, "join", values, _errors(rejected))
    return go(
        request,
        f"児童 {child.strip()} を世帯「{household.strip()}」に登録しました。",
        child_href((back or child).strip()),
    )


@router.post("/ui/households/leave", response_class=HTMLResponse)
def leave(
    request: Request,
    child: str = Form(default="", max_length=200),
    household: str = Form(default="", max_length=200),
    back: str = Form(default="", max_length=200),
) -> Response:
    """Remove a child from one of the centre's households (``household.left``)."""
    person = _centre_person(request)
    if isinstance(person, Response):
        return person
    values: dict[str, Any] = {"child": child, "household": household, "relation": "", "back": back}
    try:
        Households(request.app.state.hub).leave(Actor(person.org, person.role, person.user), child, household)
    except Rejected as rejected:
        return _form(request, person, "leave", values, _errors(rejected))
    return go(
        request,
        f"児童 {child.strip()} を世帯「{household.strip()}」から外しました。",
        child_href((back or child).strip()),
    )
