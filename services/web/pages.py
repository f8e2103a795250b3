"""The pages of the staff UI that read: the start page and a child's page (and the address ``/``).

Each page is a function of the signed-in person (``session.signed_in``; without one, the sign-in page) and what
the hub lets them read: a child's page is one ``Hub.timeline`` read, decided by the policy and recorded with the
person's name before anything is shown (ui.md, "The same paths as everything else").
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from consent.policy import learns_of_withheld
from events.clock import JST
from services.auth.tokens import ROLE_SCOPES
from services.casework.inquiries import Inquiries
from services.casework.ledger import CATEGORY_JA, STATUS_JA
from services.hub import Hub
from services.projections.inquiries import org_inquiries
from services.templates import render
from services.web import casebook, words
from services.web import emergency_window as emergency
from services.web.session import Person, signed_in

router = APIRouter(include_in_schema=False)

ORG_HOME = {  # what each kind of organisation does first (ui.md, "Screens, by who uses them")
    "municipal_center": "centre",
    "child_guidance_center": "jiso",
    "school": "school",
    "nursery": "school",
    "service_provider": "provider",
    "prefecture_office": "prefecture",
}


def page(
    request: Request, template: str, person: Person | None, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """Render ``template`` in the layout: the person, their organisation and role in the header, the CSRF token
    for every form, the Japanese words, and the confirmation of what the person just did (``flash``, set by a
    form before it redirects; shown once)."""
    hub: Hub = request.app.state.hub
    orgs = hub.orgs()
    org = orgs.get(person.org) if person else None
    nav_home = ORG_HOME.get(org.type if org else "", "other")
    csrftoken = request.scope.get("csrftoken")
    flash = request.session.pop("flash", None) if person and "session" in request.scope else None
    return HTMLResponse(
        render(
            template,
            person=person,
            org=org,
            org_name=lambda i: (orgs[i].name or i) if i in orgs else i,
            role_ja=words.role_ja(person.role) if person else "",
            org_type_ja=words.ORG_TYPE_JA,
            csrftoken=csrftoken() if callable(csrftoken) else "",
            words=words,
            path=request.url.path,
            nav_home=nav_home,
            flash=flash,
            **context,
        ),
        status_code=status_code,
    )


def to_signin() -> RedirectResponse:
    return RedirectResponse("/ui/login", status_code=303)


def page_without_the_hub(
    request: Request, *, status_code: int, title: str, message: str, headers: dict[str, str] | None = None
) -> HTMLResponse:
    """An error page of the staff UI rendered **without reading the hub** (no person, no organisation in the
    header): the answer to a form or page the hub could not serve (``Busy``: other writers kept the records, or
    the event store did not answer) or whose body could not be read. ``page`` reads the registry for the header,
    which is the store that may be what failed; so this page names no one and links back to the start page. The
    API's error handlers use it for paths under ``/ui`` (``services.http.app``), where a person, not a program,
    reads the answer: in Japanese, as a page, not the API's JSON."""
    return HTMLResponse(
        render(
            "web/error.html",
            person=None,
            org=None,
            org_name=lambda i: i,
            role_ja="",
            org_type_ja=words.ORG_TYPE_JA,
            csrftoken="",
            words=words,
            path=request.url.path,
            nav_home="other",
            flash=None,
            title=title,
            message=message,
        ),
        status_code=status_code,
        headers=headers,
    )


@router.get("/")
def root(request: Request) -> Response:
    """The hub's address: the start page when signed in, else the sign-in page."""
    return RedirectResponse("/ui/" if signed_in(request) else "/ui/login", status_code=303)


@router.get("/ui", include_in_schema=False)
def ui_without_slash() -> Response:
    return RedirectResponse("/ui/", status_code=308)


@router.get("/ui/", response_class=HTMLResponse)
def start(request: Request) -> Response:
    """The organisation's start page: what there is to do, with links."""
    person = signed_in(request)
    if person is None:
        return to_signin()
    hub: Hub = request.app.state.hub
    org = hub.orgs().get(person.org)
    home = ORG_HOME.get(org.type if org else "", "other")
    counts = None
    reads = "read" in ROLE_SCOPES.get(person.role, frozenset())  # an administrator's start page reads no child
    if home in ("centre", "jiso") and reads:  # every count from one recorded read per child (casebook.overview)
        counts = casebook.overview(hub, person, hub.clock().astimezone(JST).date())
    # 事前照会: counted from the inquiry index (identifiers and dates), no read
    inquiries = Inquiries(hub)
    overdue = inquiries.overdue_count(person.org) if home == "centre" else 0
    waiting = sum(
        1
        for i in org_inquiries(hub.store, person.org).inquiries.values()
        if i["member"] == person.org and not i["answered_at"]
    )
    return page(
        request,
        "web/start.html",
        person,
        title="トップ",
        home=home,
        counts=counts,
        inquiries_overdue=overdue,
        inquiries_waiting=waiting,
    )


@router.get("/ui/open-child")
def open_child(child: str = Query(min_length=1, max_length=200)) -> Response:
    """The start page's form: open the child's page (the child id in the path, as a bookmark keeps it)."""
    return RedirectResponse(f"/ui/children/{quote(child.strip(), safe='')}", status_code=303)


@router.get("/ui/children/{child}", response_class=HTMLResponse)
def child_page(
    request: Request,
    child: str,
    kind: str | None = Query(default=None, max_length=100),
    since: str | None = Query(default=None, max_length=40),
    until: str | None = Query(default=None, max_length=40),
    purpose: str | None = Query(default=None, max_length=20),
) -> Response:
    """A child's record as the policy lets the reader see it: one recorded read, then the entries (filtered by
    kind and period here, after the read), each with who recorded it, when, and the rule it is read under.
    ``?purpose=emergency`` is the emergency read (緊急時アクセス), with a banner of the time left in the window."""
    person = signed_in(request)
    if person is None:
        return to_signin()
    emergency_read = purpose == "emergency"
    errors = {}
    period: dict[str, date | None] = {}
    for name, text in (("since", since), ("until", until)):
        try:
            period[name] = date.fromisoformat(text) if text else None
        except ValueError:
            period[name] = None
            errors[name] = "日付は 2026-05-12 の形で入力してください"
    hub: Hub = request.app.state.hub
    timeline = hub.timeline(
        org=person.org,
        role=person.role,
        child=child,
        purpose="emergency" if emergency_read else "support",
        user=person.user,
    )
    if not timeline.allowed and emergency_read and timeline.reason == "no_emergency_window":
        return page(
            request,
            "web/error.html",
            person,
            status_code=403,
            title="緊急時アクセスの期間外です",
            message=f"この児童について、あなたの機関が宣言した緊急時アクセスの期間（宣言から"
            f"{hub.settings.emergency_hours}時間）はありません。通常の閲覧は児童の記録のページから行えます"
            "（この閲覧の試みも記録されています）。",
        )
    if not timeline.allowed:
        return page(
            request,
            "web/error.html",
            person,
            status_code=403,
            title="閲覧できません",
            message="この記録を閲覧することは認められていません（この閲覧の試みも記録されています）。",
        )
    kinds = sorted({e.kind for e in timeline.entries}, key=words.kind_ja)
    shown = [
        e
        for e in timeline.entries
        if (not kind or e.kind == kind)
        and (period["since"] is None or datetime.fromisoformat(e.at).date() >= period["since"])
        and (period["until"] is None or datetime.fromisoformat(e.at).date() <= period["until"])
    ]
    cases = casebook.case_rows(timeline, hub)  # from the same one read, never the child's stream
    plans = casebook.plans_of(timeline)
    org = hub.orgs().get(person.org)
    withheld = timeline.withheld if learns_of_withheld(org) else None
    households = None if emergency_read else casebook.household_section(hub, person, timeline)
    return page(
        request,
        "web/child.html",
        person,
        status_code=422 if errors else 200,
        title=f"児童 {child} の記録",
        child=child,
        entries=shown,
        total=len(timeline.entries),
        withheld=withheld,
        kinds=kinds,
        kind=kind,
        since=since or "",
        until=until or "",
        errors=errors,
        access_record=timeline.access_record,
        cases=cases,
        plans=plans,
        now=datetime.fromisoformat(timeline.t),
        emergency_read=emergency_read,
        window=emergency.window(hub, person, timeline) if emergency_read else None,
        may_declare=emergency.may_declare(hub, person),
        may_plan=org is not None and org.type == "municipal_center",
        hours=hub.settings.emergency_hours,
        STATUS_JA=STATUS_JA,
        CATEGORY_JA=CATEGORY_JA,
        CASE_TYPE_JA=words.CASE_TYPE_JA,
        households=households,
        relations=list(words.RELATION_JA.items()),
    )
