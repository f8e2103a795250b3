"""What we shared, and who read it (共有した記録の閲覧状況, issue 14 item 8): ``/ui/shared`` (the latest reads of what
the person's organisation published, filterable by child and period, paged) and ``/ui/shared/{event_id}`` (one
event and who read it). Both ask ``services.audit.shared_reads``, which decides what the organisation may see: a
centre or 児相 every read by another organisation (organisation, role, time, rule, purpose); any other publisher
only whether and when the event's addressees first read it (「…が…に確認しました」).

**Not reads of a child.** These pages show ids and read metadata about the organisation's own events, which it has
the right to, and no content of any child's record (no payload, no other event, no reader's name): they are not
timeline reads and are not recorded in the children's access logs (the read service is for content).
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from events.labels import PURPOSE_JA
from events.problems import Rejected
from services.audit.queries import NotFound
from services.audit.shared_reads import Filters, SharedReads, full_view
from services.hub import Hub
from services.web.pages import page, to_signin
from services.web.session import Person, signed_in

router = APIRouter(include_in_schema=False)

PER_PAGE = 50
NOT_PUBLISHERS = ("auditor", "prefecture_office")  # they publish nothing about children
FORM_FIELD = {"from": "since", "to": "until"}  # a refusal's field -> the form's


def _publisher(request: Request) -> Person | Response:
    person = signed_in(request)
    if person is None:
        return to_signin()
    hub: Hub = request.app.state.hub
    org = hub.orgs().get(person.org)
    if org is None or org.type in NOT_PUBLISHERS:
        return page(
            request,
            "web/error.html",
            person,
            status_code=403,
            title="この画面は使えません",
            message="この画面は、児童について記録を送った機関が、その記録の閲覧状況を確かめるためのものです。",
        )
    return person


@router.get("/ui/shared", response_class=HTMLResponse)
def shared(
    request: Request,
    child: str = Query(default="", max_length=200),
    since: str = Query(default="", max_length=40),
    until: str = Query(default="", max_length=40),
    page_no: int = Query(default=1, alias="page", ge=1, le=100000),
) -> Response:
    """The latest reads of what the organisation shared, newest first."""
    person = _publisher(request)
    if not isinstance(person, Person):
        return person
    hub: Hub = request.app.state.hub
    errors: dict[str, str] = {}
    try:
        filters = Filters.of(child, since, until)
    except Rejected as rejected:
        for p in rejected.problems:
            errors.setdefault(FORM_FIELD.get(p.field or "", "since"), p.message_ja.split(": ", 1)[-1])
        filters = None
    answer = SharedReads(hub.store).latest(person.org, filters, page=page_no, per_page=PER_PAGE) if filters else None
    pages = max(1, -(-answer.total // PER_PAGE)) if answer else 1
    q = {"child": child, "since": since, "until": until}

    def query(**changed: object) -> str:
        return urlencode({k: v for k, v in {**q, **changed}.items() if v})

    return page(
        request,
        "web/shared.html",
        person,
        status_code=422 if errors else 200,
        title="共有した記録の閲覧状況",
        errors=errors,
        answer=answer,
        full=full_view(hub.orgs().get(person.org)),
        q=q,
        page_no=page_no,
        pages=pages,
        query=query,
        PURPOSE_JA=PURPOSE_JA,
    )


@router.get("/ui/shared/{event_id}", response_class=HTMLResponse)
def shared_event(request: Request, event_id: str) -> Response:
    """One event the organisation published, and who read it as the organisation may see it."""
    person = _publisher(request)
    if not isinstance(person, Person):
        return person
    hub: Hub = request.app.state.hub
    try:
        answer = SharedReads(hub.store).of_event(person.org, event_id[:200])
    except NotFound:
        return page(
            request,
            "web/error.html",
            person,
            status_code=404,
            title="記録が見つかりません",
            message="この機関が送った記録の中に、この記録はありません。",
        )
    return page(request, "web/shared_event.html", person, title="記録の閲覧状況", answer=answer, PURPOSE_JA=PURPOSE_JA)
