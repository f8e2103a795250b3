"""The pages of family-support services (家庭支援事業, meetings-and-services.md §2).

A こども家庭センター: ``/ui/referrals`` (its referrals with the last monitoring and when monitoring is due, its
recommendations and orders, the reports providers sent it with their acknowledgement, and the forms to refer,
recommend, record a result, order, monitor, end and acknowledge); the urgent inbox is on its start page, with a
one-click acknowledgement (``/ui/urgent/acknowledge``). A 委託事業者: ``/ui/provider/referrals`` (the referrals made
to it, a monitoring form each, and the reports it sent with 確認済み/未確認).

Every form goes through ``services.family_support.work.FamilySupport`` (``Hub.publish``, the API's path); every
page reads each child it shows once, recorded (``SupportViews``). A refusal is shown next to its field in
Japanese, with what was typed kept.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from events.labels import (
    MONITORING_JA,
    RECOMMENDATION_FORM_JA,
    RECOMMENDATION_RESULT_JA,
    SERVICE_JA,
)
from events.model import CENTER
from events.problems import Rejected
from services.casework.commands import Actor, Done
from services.family_support.work import PROVIDER, FamilySupport, SupportViews
from services.hub import Hub
from services.web.cases import go
from services.web.centre import refused
from services.web.forms import posted_form
from services.web.pages import page, to_signin
from services.web.session import Person, signed_in

router = APIRouter(include_in_schema=False)

FORMS: dict[str, tuple[str, ...]] = {  # form -> its fields (a field's error is shown next to it)
    "refer": ("r_child", "r_provider", "r_service", "r_start", "r_frequency", "r_summary"),
    "recommend": ("c_child", "c_service", "c_form", "c_reason"),
    "result": ("s_child", "s_recommendation", "s_result", "s_note"),
    "order": ("o_child", "o_service", "o_from", "o_notice_date"),
    "monitor": ("m_referral", "m_observations", "m_recommendation"),
    "end": ("e_referral", "e_reason"),
}
PREFIX = {"refer": "r_", "recommend": "c_", "result": "s_", "order": "o_", "monitor": "m_", "end": "e_"}
FIELD_ALIASES = {"provider": "provider", "from": "from", "payload.from": "from", "to": "provider"}
DONE_JA = {
    "refer": "事業者へ依頼しました",
    "recommend": "利用勧奨を記録しました",
    "result": "利用勧奨の結果を記録しました",
    "order": "措置を記録しました",
    "monitor": "モニタリングを記録し、相手に送りました",
    "end": "サービスの終了を記録し、事業者に伝えました",
}


def _person(request: Request, org_type: str, refusal: str) -> Person | Response:
    person = signed_in(request)
    if person is None:
        return to_signin()
    org = request.app.state.hub.orgs().get(person.org)
    if org is None or org.type != org_type:
        return refused(request, person, refusal)
    return person


def _actor(person: Person) -> Actor:
    return Actor(person.org, person.role, person.user)


def _errors(rejected: Rejected, form: str) -> dict[str, str]:
    """Each problem next to the form's field it names (the command's field, or the payload's)."""
    fields = FORMS[form]
    errors: dict[str, str] = {}
    for p in rejected.problems:
        name = (p.field or "").removeprefix("payload.")
        name = FIELD_ALIASES.get(name, name)
        key = PREFIX[form] + ("referral" if name == "child" and form in ("monitor", "end") else name)
        errors.setdefault(key if key in fields else fields[0], p.message_ja)
    return errors


def _centre_page(
    request: Request,
    person: Person,
    *,
    status_code: int = 200,
    form: str | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    hub: Hub = request.app.state.hub
    try:
        views = SupportViews(hub).overview(person.org, role=person.role, user=person.user)
    except Rejected as rejected:
        return refused(request, person, rejected.problems[0].message_ja)
    providers = sorted((o for o in hub.orgs().values() if o.type == PROVIDER), key=lambda o: o.name or o.id)
    return page(
        request,
        "web/referrals.html",
        person,
        status_code=status_code,
        title="家庭支援事業（利用勧奨・措置・事業者への依頼）",
        views=views,
        providers=providers,
        services=list(SERVICE_JA.values()),
        forms_ja=RECOMMENDATION_FORM_JA,
        results_ja=RECOMMENDATION_RESULT_JA,
        monitoring_ja=MONITORING_JA,
        form=form,
        values=values or {},
        errors=errors or {},
    )


@router.get("/ui/referrals", response_class=HTMLResponse)
def referrals_page(request: Request) -> Response:
    """The centre's referrals (monitoring due first), recommendations, orders and the reports sent to it."""
    person = _person(request, CENTER, "この画面はこども家庭センターが家庭支援事業の依頼を管理するためのものです。")
    if isinstance(person, Response):
        return person
    return _centre_page(request, person)


def _run(hub: Hub, person: Person, form: str, v: dict[str, str]) -> Done:
    work, by = FamilySupport(hub), _actor(person)
    if form == "refer":
        return work.refer(
            by,
            child=v["r_child"],
            provider=v["r_provider"],
            service=v["r_service"],
            start=v["r_start"],
            summary=v["r_summary"],
            frequency=v["r_frequency"] or None,
        )
    if form == "recommend":
        return work.recommend(by, child=v["c_child"], service=v["c_service"], form=v["c_form"], reason=v["c_reason"])
    if form == "result":
        return work.record_result(
            by, child=v["s_child"], recommendation=v["s_recommendation"], result=v["s_result"], note=v["s_note"]
        )
    if form == "order":
        return work.order(
            by, child=v["o_child"], service=v["o_service"], from_=v["o_from"], notice_date=v["o_notice_date"]
        )
    if form == "monitor":
        child, _, referral = v["m_referral"].partition("::")  # the select's value: child::referral
        return work.monitor(
            by, child=child, referral=referral, observations=v["m_observations"], recommendation=v["m_recommendation"]
        )
    child, _, referral = v["e_referral"].partition("::")
    return work.end(by, child=child, referral=referral, reason=v["e_reason"])


def _act(request: Request, form: str, org_type: str, back: str, data: FormData) -> Response:
    person = _person(request, org_type, "この操作はこの機関の種類では使えません。")
    if isinstance(person, Response):
        return person
    if form not in FORMS or (org_type == PROVIDER and form != "monitor"):
        return refused(request, person, "そのページはありません。", 404)
    values = {k: str(data.get(k) or "").strip() for k in FORMS[form]}
    hub: Hub = request.app.state.hub
    try:
        done = _run(hub, person, form, values)
    except Rejected as rejected:
        errors = _errors(rejected, form)
        if org_type == PROVIDER:
            return _provider_page(request, person, status_code=422, values=values, errors=errors)
        return _centre_page(request, person, status_code=422, form=form, values=values, errors=errors)
    return go(request, f"{DONE_JA[form]}（児童 {done.child}）。", back)


@router.post("/ui/referrals/{form}", response_class=HTMLResponse)
def centre_act(
    request: Request, form: str, data: Annotated[FormData, posted_form(max_files=0, max_fields=20)]
) -> Response:
    """One of the centre's forms: refer, recommend, result, order, monitor, end."""
    return _act(request, form, CENTER, "/ui/referrals", data)


@router.post("/ui/urgent/acknowledge", response_class=HTMLResponse)
def acknowledge(request: Request, data: Annotated[FormData, posted_form(max_files=0, max_fields=10)]) -> Response:
    """報告の確認 in one click (the start page's urgent inbox, or the referrals page): told to the provider."""
    person = _person(request, CENTER, "報告を確認済みにできるのはこども家庭センターだけです。")
    if isinstance(person, Response):
        return person
    report = str(data.get("report") or "").strip()
    note = str(data.get("note") or "").strip() or None
    back = "/ui/referrals" if str(data.get("back") or "") == "referrals" else "/ui/"
    try:
        done = FamilySupport(request.app.state.hub).acknowledge(
            _actor(person), report=report, note=note, handled_by=person.name or person.user
        )
    except Rejected as rejected:
        return refused(request, person, rejected.problems[0].message_ja, 422)
    return go(request, f"報告を確認済みにしました。事業者に伝わります（児童 {done.child}）。", back)


def _provider_page(
    request: Request,
    person: Person,
    *,
    status_code: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    hub: Hub = request.app.state.hub
    views = SupportViews(hub).overview(person.org, role=person.role, user=person.user)
    context: dict[str, Any] = {"values": values or {}, "errors": errors or {}}
    return page(
        request,
        "web/provider_referrals.html",
        person,
        status_code=status_code,
        title="センターからの依頼と送った報告",
        views=views,
        monitoring_ja=MONITORING_JA,
        **context,
    )


@router.get("/ui/provider/referrals", response_class=HTMLResponse)
def provider_referrals(request: Request) -> Response:
    """The referrals made to the provider, and the reports it sent with 確認済み/未確認."""
    person = _person(request, PROVIDER, "この画面は委託事業者が依頼と送った報告を見るためのものです。")
    if isinstance(person, Response):
        return person
    return _provider_page(request, person)


@router.post("/ui/provider/referrals/monitor", response_class=HTMLResponse)
def provider_monitor(request: Request, data: Annotated[FormData, posted_form(max_files=0, max_fields=20)]) -> Response:
    """The provider's monitoring of a referral, to the centre that made it."""
    return _act(request, "monitor", PROVIDER, "/ui/provider/referrals", data)
