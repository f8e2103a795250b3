"""Support plans and the family's consent as forms (ui.md, centre item 6): the centre's plans with those due for
review, a new plan, and a page per plan (its versions, its consents) with the forms to revise it, to record the
family's consent to share a version, its withdrawal, or a refusal.

Every form calls ``CaseWork`` (the same commands as ``tsunagu plan …`` and the API), which reads the child through
the read service and publishes through ``Hub.publish``; its refusals (``Rejected``) are shown as field errors in
Japanese next to the field they name. Every page that shows a plan reads its child once through ``Hub.timeline``
as the signed-in person (recorded with their name) and builds the plan from what that read returned.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from events.clock import JST
from events.problems import Rejected
from services.casework.commands import Actor, CaseWork
from services.casework.ledger import CENTER, PlanState, plan_states
from services.hub import Hub
from services.projections.cases import center_cases
from services.reading.timeline import Timeline, TimelineEntry
from services.web import casebook
from services.web.forms import posted_form
from services.web.pages import page, to_signin
from services.web.session import Person, signed_in

router = APIRouter(include_in_schema=False)

MAX_TEXT = 4_000
PLAN_FIELDS = {  # the plan's fields, in the words of the practice
    "wishes": "本人・保護者の意向",
    "issues": "課題",
    "supports": "支援の種類及び内容",
}
# Which form field a command's problem belongs to (``Problem.field``); anything else goes to the summary.
FIELD_OF = {
    "review_due": "review_due",
    "signed_by": "signed_by",
    "recipients": "recipients",
    "valid_until": "valid_until",
    "version": "version",
    "consent": "consent",
    "plan": "plan",
    "child": "child",
}
RECIPIENT_TYPES = ("school", "nursery", "service_provider", "medical", "health_center", "municipal_department")
DONE_JA = {
    "created": "サポートプランを作成しました（第1版）。",
    "revised": "サポートプランを改訂しました。これまでの同意は、同意した版だけを対象とします。",
    "consented": "同意を記録しました。指定した機関は、この版を閲覧できます。",
    "withdrawn": "同意の撤回を記録しました。提供先は今後この同意によって閲覧できません。",
    "refused": "同意しないことを記録しました。プランは共有されません。",
}


def _centre(request: Request) -> Person | Response:
    """The signed-in person of a こども家庭センター; anyone else is told this page is not theirs."""
    person = signed_in(request)
    if person is None:
        return to_signin()
    hub: Hub = request.app.state.hub
    org = hub.orgs().get(person.org)
    if org is None or org.type != CENTER:
        return page(
            request,
            "web/error.html",
            person,
            status_code=403,
            title="この画面は使えません",
            message="サポートプランと同意は、こども家庭センターの職員が扱います。",
        )
    return person


def _actor(person: Person) -> Actor:
    return Actor(person.org, person.role, person.user)


def _today(hub: Hub) -> date:
    return hub.clock().astimezone(JST).date()


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _problems(rejected: Rejected, default: str) -> dict[str, str]:
    errors: dict[str, str] = {}
    for p in rejected.problems:
        name = FIELD_OF.get((p.field or "").removeprefix("payload."), default)
        errors.setdefault(name, p.message_ja)
    return errors


def _text(form: FormData, name: str) -> str:
    return str(form.get(name) or "").strip()


def _plan_values(form: FormData) -> tuple[dict[str, str], dict[str, str]]:
    """The plan's fields from a form, and an error per missing or too long field (named in Japanese)."""
    values = {name: _text(form, name) for name in (*PLAN_FIELDS, "review_due")}
    errors: dict[str, str] = {}
    for name, ja in PLAN_FIELDS.items():
        if not values[name]:
            errors[name] = f"{ja}を入力してください（1行に1項目）"
        elif len(values[name]) > MAX_TEXT:
            errors[name] = f"{ja}は{MAX_TEXT}文字までです"
    if not values["review_due"]:
        errors["review_due"] = "見直し時期を入力してください（例: 2027-03-31）"
    else:
        try:
            date.fromisoformat(values["review_due"])
        except ValueError:
            errors["review_due"] = "見直し時期は 2027-03-31 の形で入力してください"
    return values, errors


# --- The centre's plans ------------------------------------------------------------------------------------------


@router.get("/ui/plans", response_class=HTMLResponse)
def plans_page(request: Request, due: str | None = Query(default=None, max_length=10)) -> Response:
    """The centre's support plans (each child read once, recorded), those due for review by the month's end
    first; ``?due=1`` shows only those."""
    person = _centre(request)
    if isinstance(person, Response):
        return person
    hub: Hub = request.app.state.hub
    today = _today(hub)
    month_end = casebook._month_end(today)
    rows: list[dict[str, Any]] = []
    for child in dict.fromkeys(center_cases(hub.store, person.org).plans.values()):
        timeline = casebook.read(hub, person, child)
        if not timeline.allowed:
            continue
        now = datetime.fromisoformat(timeline.t)
        for plan in plan_states(timeline.entries, person.org, child).values():
            is_due = bool(plan.review_due) and date.fromisoformat(str(plan.review_due)) <= month_end
            rows.append({"plan": plan, "due": is_due, "shared": plan.shared_version(now)})
    rows.sort(key=lambda r: (not r["due"], r["plan"].review_due or "9999", r["plan"].plan))
    only_due = due == "1"
    shown = [r for r in rows if r["due"]] if only_due else rows
    return page(
        request,
        "web/plans.html",
        person,
        title="今月末までに見直すサポートプラン" if only_due else "サポートプラン",
        rows=shown,
        only_due=only_due,
        due_count=sum(1 for r in rows if r["due"]),
        today=today,
    )


@router.get("/ui/plans/new", response_class=HTMLResponse)
def new_plan_page(request: Request, child: str = Query(default="", max_length=200)) -> Response:
    person = _centre(request)
    if isinstance(person, Response):
        return person
    return _new_form(request, person, {"child": child.strip()}, {})


def _new_form(
    request: Request, person: Person, values: dict[str, str], errors: dict[str, str], status_code: int = 200
) -> Response:
    return page(
        request,
        "web/plan_new.html",
        person,
        status_code=status_code,
        title="サポートプランを作成する",
        values=values,
        errors=errors,
        fields=PLAN_FIELDS,
    )


@router.post("/ui/plans/new", response_class=HTMLResponse)
def create_plan(request: Request, form: Annotated[FormData, posted_form(max_files=0, max_fields=20)]) -> Response:
    """サポートプラン第1版, through ``CaseWork.create_plan``; then the plan's page."""
    person = _centre(request)
    if isinstance(person, Response):
        return person
    values, errors = _plan_values(form)
    values["child"] = _text(form, "child")
    if not values["child"]:
        errors["child"] = "児童IDを入力してください"
    elif len(values["child"]) > 200:
        errors["child"] = "児童IDは200文字までです"
    if errors:
        return _new_form(request, person, values, errors, 422)
    work = CaseWork(request.app.state.hub)
    try:
        done = work.create_plan(
            _actor(person),
            child=values["child"],
            wishes=_lines(values["wishes"]),
            issues=_lines(values["issues"]),
            supports=_lines(values["supports"]),
            review_due=values["review_due"],
        )
    except Rejected as rejected:
        return _new_form(request, person, values, _problems(rejected, "child"), 422)
    return RedirectResponse(f"/ui/plans/{quote(str(done.plan), safe='')}?done=created", status_code=303)


# --- A plan ------------------------------------------------------------------------------------------------------


def _recipients(hub: Hub) -> list[Any]:
    """The organisations a family may name in a consent, from the registry, by type and name."""
    orgs = [o for o in hub.orgs().values() if o.type in RECIPIENT_TYPES]
    return sorted(orgs, key=lambda o: (RECIPIENT_TYPES.index(o.type), o.name or o.id))


def _plan_view(request: Request, person: Person, plan: str) -> tuple[PlanState, Timeline] | None:
    """The plan as its author sees it, from one recorded read of its child; None when it is not this centre's."""
    hub: Hub = request.app.state.hub
    child = center_cases(hub.store, person.org).plans.get(plan)
    if child is None:
        return None
    timeline = casebook.read(hub, person, child)
    state = plan_states(timeline.entries, person.org, child).get(plan) if timeline.allowed else None
    return (state, timeline) if state else None


def _plan_page(
    request: Request,
    person: Person,
    plan: str,
    *,
    errors: dict[str, str] | None = None,
    form: str = "",
    values: dict[str, Any] | None = None,
    done: str | None = None,
    status_code: int = 200,
) -> Response:
    view = _plan_view(request, person, plan)
    if view is None:
        return page(
            request,
            "web/error.html",
            person,
            status_code=404,
            title="プランが見つかりません",
            message=f"プラン「{plan[:80]}」はこのセンターが作成したプランではありません。",
        )
    state, timeline = view
    hub: Hub = request.app.state.hub
    by_event: dict[str, TimelineEntry] = {e.id: e for e in timeline.entries}
    versions = sorted(
        (
            {**v, "entry": e, "items": {name: _as_list(e.payload.get(name)) if e else [] for name in PLAN_FIELDS}}
            for v in state.versions
            for e in [by_event.get(v["event"])]
        ),
        key=lambda v: -int(v["version"]),
    )
    latest = versions[0]["entry"]
    now = datetime.fromisoformat(timeline.t)
    revise = {name: "\n".join(_as_list(latest.payload.get(name))) if latest else "" for name in PLAN_FIELDS}
    revise["review_due"] = ""
    consent: dict[str, Any] = {"version": str(state.latest_version), "recipients": []}
    if form == "revise" and values:
        revise = values
    if form == "consent" and values:
        consent = values
    return page(
        request,
        "web/plan.html",
        person,
        status_code=status_code,
        title=f"サポートプラン {state.plan}",
        plan=state,
        versions=versions,
        fields=PLAN_FIELDS,
        active={c["event"] for c in state.active_consents(now)},
        shared=state.shared_version(now),
        recipients=_recipients(hub),
        errors=errors or {},
        form=form,
        revise=revise,
        consent=consent,
        done=DONE_JA.get(done or ""),
        access_record=timeline.access_record,
    )


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


@router.get("/ui/plans/{plan}", response_class=HTMLResponse)
def plan_page(request: Request, plan: str, done: str | None = Query(default=None, max_length=20)) -> Response:
    person = _centre(request)
    if isinstance(person, Response):
        return person
    return _plan_page(request, person, plan, done=done)


def _after(plan: str, done: str) -> Response:
    return RedirectResponse(f"/ui/plans/{quote(plan, safe='')}?done={done}", status_code=303)


@router.post("/ui/plans/{plan}/revise", response_class=HTMLResponse)
def revise_plan(
    request: Request, plan: str, form: Annotated[FormData, posted_form(max_files=0, max_fields=20)]
) -> Response:
    person = _centre(request)
    if isinstance(person, Response):
        return person
    values, errors = _plan_values(form)
    if errors:
        return _plan_page(request, person, plan, errors=errors, form="revise", values=values, status_code=422)
    try:
        CaseWork(request.app.state.hub).revise_plan(
            _actor(person),
            plan,
            wishes=_lines(values["wishes"]),
            issues=_lines(values["issues"]),
            supports=_lines(values["supports"]),
            review_due=values["review_due"],
        )
    except Rejected as rejected:
        errors = _problems(rejected, "wishes")
        return _plan_page(request, person, plan, errors=errors, form="revise", values=values, status_code=422)
    return _after(plan, "revised")


@router.post("/ui/plans/{plan}/consent", response_class=HTMLResponse)
def grant_consent(
    request: Request, plan: str, form: Annotated[FormData, posted_form(max_files=0, max_fields=200)]
) -> Response:
    """同意: the version the family signed, the organisations they agreed to share it with, who signed, until."""
    person = _centre(request)
    if isinstance(person, Response):
        return person
    values: dict[str, Any] = {name: _text(form, name) for name in ("version", "signed_by", "valid_until")}
    values["recipients"] = [str(v) for v in form.getlist("recipients")][:100]
    errors: dict[str, str] = {}
    if not values["version"].isdigit() or not 0 < int(values["version"]) < 10_000:
        errors["version"] = "同意した版を選んでください"
    if not values["recipients"]:
        errors["recipients"] = "共有先の機関を1つ以上選んでください"
    if not values["signed_by"]:
        errors["signed_by"] = "同意書に署名した人（例: 母）を入力してください"
    elif len(values["signed_by"]) > 200:
        errors["signed_by"] = "署名した人は200文字までです"
    if values["valid_until"]:
        try:
            date.fromisoformat(values["valid_until"])
        except ValueError:
            errors["valid_until"] = "有効期限は 2027-03-31 の形で入力してください"
    if not errors:
        try:
            CaseWork(request.app.state.hub).grant_consent(
                _actor(person),
                plan,
                version=int(values["version"]),
                recipients=values["recipients"],
                signed_by=values["signed_by"],
                valid_until=values["valid_until"] or None,
            )
            return _after(plan, "consented")
        except Rejected as rejected:
            errors = _problems(rejected, "recipients")
    return _plan_page(request, person, plan, errors=errors, form="consent", values=values, status_code=422)


@router.post("/ui/plans/{plan}/withdraw", response_class=HTMLResponse)
def withdraw_consent(
    request: Request, plan: str, form: Annotated[FormData, posted_form(max_files=0, max_fields=5)]
) -> Response:
    person = _centre(request)
    if isinstance(person, Response):
        return person
    consent = _text(form, "consent")[:200]
    try:
        CaseWork(request.app.state.hub).withdraw_consent(_actor(person), plan, consent)
    except Rejected as rejected:
        errors = {"consent": rejected.problems[0].message_ja}
        return _plan_page(request, person, plan, errors=errors, form="withdraw", status_code=422)
    return _after(plan, "withdrawn")


@router.post("/ui/plans/{plan}/refuse", response_class=HTMLResponse)
def refuse_consent(request: Request, plan: str) -> Response:
    person = _centre(request)
    if isinstance(person, Response):
        return person
    try:
        CaseWork(request.app.state.hub).refuse_consent(_actor(person), plan)
    except Rejected as rejected:
        return _plan_page(
            request, person, plan, errors={"refuse": rejected.problems[0].message_ja}, form="refuse", status_code=422
        )
    return _after(plan, "refused")
