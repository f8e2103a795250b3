"""Case work as forms (ui.md, centre item 3): register a 要対協 case, assign and remove members, share to the case
(第25条の2), record a review, change the 相談種別, close and transfer, and the case's own page.

Every form goes through ``CaseWork`` (``services.casework.commands``), the application service behind the API and
the command line: its checks, its recorded reads, its publish path. What it refuses is shown next to the field it
names, in Japanese, and in the summary at the top, with what was typed kept. After an action the worker is sent
(303) to the page they go to next, the case's or the child's, where a confirmation says what was done.

The case page is the case as its registering centre sees it: one recorded read of the child (purpose ``meeting``,
as ``CaseWork`` reads), from which the row and the case's history are built (``build_row``); the case index
(``case_entry``) says only which child to read and whether this centre registered the case.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from events.labels import CASE_TYPE_JA, CATEGORY_JA, STATUS_JA, label
from events.problems import Rejected
from services.casework.commands import Actor, CaseWork, Done
from services.casework.ledger import CENTER, CaseRow, build_row
from services.hub import Hub
from services.projections.cases import case_entry
from services.reading.timeline import TimelineEntry
from services.web import words
from services.web.pages import page, to_signin
from services.web.session import Person, signed_in

router = APIRouter(include_in_schema=False)

CASE_ID = Path(min_length=1, max_length=200)
FLASH = "flash"

ACTIONS: dict[str, tuple[str, ...]] = {  # each form of the case page and its fields (ids are "action-field")
    "assign": ("member",),
    "remove": ("member",),
    "share": ("summary", "proposal", "meeting_date"),
    "review": ("decision", "next_review"),
    "type": ("case_type",),
    "close": ("reason", "meeting"),
    "transfer": ("to",),
}
REGISTER_FIELDS = ("child", "category", "case_type", "case")
HISTORY_KINDS = (
    "case.registered",
    "case.member_assigned",
    "case.member_removed",
    "case.shared",
    "case.reviewed",
    "case.type_changed",
    "case.closed",
    "case.transferred",
    "case.transfer_acknowledged",
    "ledger.updated",
    "protection.started",
    "protection.ended",
)


def flash(request: Request, message: str) -> None:
    """A confirmation shown once, on the next page (``pages.page`` takes it from the session)."""
    request.session[FLASH] = message


def go(request: Request, message: str, to: str) -> RedirectResponse:
    flash(request, message)
    return RedirectResponse(to, status_code=303)


def case_href(case: str) -> str:
    return f"/ui/cases/{quote(case, safe='')}"


def child_href(child: str) -> str:
    return f"/ui/children/{quote(child, safe='')}"


def actor(person: Person) -> Actor:
    return Actor(person.org, person.role, person.user)


def is_centre(hub: Hub, person: Person) -> bool:
    org = hub.orgs().get(person.org)
    return org is not None and org.type == CENTER


def refused(request: Request, person: Person, message: str, status_code: int = 403) -> HTMLResponse:
    return page(
        request, "web/error.html", person, status_code=status_code, title="この画面は使えません", message=message
    )


NOT_A_CENTRE = "ケースの登録と操作は、こども家庭センター（要対協の調整機関）だけが行えます。"
UNKNOWN_CASE = "このケースは見つかりません。ケースを見られるのは、登録したセンターだけです。"


def errors_of(rejected: Rejected, fields: tuple[str, ...], prefix: str = "") -> dict[str, str]:
    """The command's problems by the form field they name (``prefix-field``); a problem about no field of the
    form (the case, the read, the organisation) is the form's own error (``prefix`` or ``form``)."""
    out: dict[str, str] = {}
    for problem in rejected.problems:
        name = problem.field if problem.field in fields else None
        key = (f"{prefix}-{name}" if prefix else name) if name else (prefix or "form")
        out[key] = f"{out[key]}　{problem.message_ja}" if key in out else problem.message_ja
    return out


def _run(call: Callable[[], Done]) -> tuple[Done | None, Rejected | None]:
    try:
        return call(), None
    except Rejected as rejected:
        return None, rejected


# --- Registering a case ----------------------------------------------------------------------------------------


def _register_page(
    request: Request,
    person: Person,
    form: dict[str, str],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return page(
        request,
        "web/case_new.html",
        person,
        status_code=status_code,
        title="ケースを登録する",
        form=form,
        errors=errors or {},
        CATEGORY_JA=CATEGORY_JA,
        CASE_TYPE_JA=CASE_TYPE_JA,
    )


@router.get("/ui/cases/new", response_class=HTMLResponse)
def new_case(request: Request, child: str = Query(default="", max_length=200)) -> Response:
    """The registration form (the child filled in when it comes from the child's page). Nothing is read."""
    person = signed_in(request)
    if person is None:
        return to_signin()
    if not is_centre(request.app.state.hub, person):
        return refused(request, person, NOT_A_CENTRE)
    return _register_page(request, person, {"child": child.strip()})


@router.post("/ui/cases/new", response_class=HTMLResponse)
def register_case(
    request: Request,
    child: str = Form(default="", max_length=200),
    category: str = Form(default="", max_length=100),
    case_type: str = Form(default="", max_length=100),
    case: str = Form(default="", max_length=100),
) -> Response:
    """ケース登録 (``CaseWork.register``), then the case's page, to add its members."""
    person = signed_in(request)
    if person is None:
        return to_signin()
    hub: Hub = request.app.state.hub
    if not is_centre(hub, person):
        return refused(request, person, NOT_A_CENTRE)
    form = {"child": child.strip(), "category": category, "case_type": case_type, "case": case.strip()}
    errors: dict[str, str] = {}
    if not form["child"]:
        errors["child"] = "児童IDを入力してください"
    if form["category"] not in CATEGORY_JA:
        errors["category"] = "要対協の区分（要保護児童・要支援児童・特定妊婦）を選んでください"
    if form["case_type"] not in CASE_TYPE_JA:
        errors["case_type"] = "相談種別を一覧から選んでください"
    if errors:
        return _register_page(request, person, form, errors, 422)
    done, rejected = _run(
        lambda: CaseWork(hub).register(
            actor(person),
            child=form["child"],
            category=form["category"],
            case_type=form["case_type"],
            case=form["case"] or None,
        )
    )
    if done is None:
        assert rejected is not None
        return _register_page(request, person, form, errors_of(rejected, REGISTER_FIELDS), 422)
    assert done.case is not None
    return go(
        request,
        f"ケース {done.case} を登録しました（{CATEGORY_JA[form['category']]}・{CASE_TYPE_JA[form['case_type']]}）。"
        "続けて、ケースのメンバー（関係機関）を追加してください。",
        case_href(done.case),
    )


# --- The case's page -------------------------------------------------------------------------------------------


class CaseView:
    """The case as its registering centre sees it, from one recorded read of the child."""

    def __init__(self, row: CaseRow, history: list[TimelineEntry], access_record: str, at: datetime):
        self.row = row
        self.history = history
        self.access_record = access_record
        self.at = at


def case_view(hub: Hub, person: Person, case: str) -> CaseView | tuple[int, str]:
    """The case, or why not (status and message): not a centre, not this centre's case (the same answer whether
    it does not exist or is another centre's), the read refused."""
    if not is_centre(hub, person):
        return 403, NOT_A_CENTRE
    entry = case_entry(hub.store, case)
    if entry is None or entry.registrar != person.org:
        return 404, UNKNOWN_CASE
    timeline = hub.timeline(org=person.org, role=person.role, child=entry.child, purpose="meeting", user=person.user)
    if not timeline.allowed:
        return 403, "この児童の記録を読むことが認められませんでした（この閲覧の試みも記録されています）。"
    at = datetime.fromisoformat(timeline.t)
    row = build_row(case, entry.child, timeline.entries, hub.orgs(), at)
    if row is None:
        return 404, UNKNOWN_CASE
    history = [e for e in timeline.entries if e.kind in HISTORY_KINDS and str(e.payload.get("case")) == case]
    return CaseView(row, history, timeline.access_record, at)


def _case_page(
    request: Request,
    person: Person,
    case: str,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    hub: Hub = request.app.state.hub
    view = case_view(hub, person, case)
    if isinstance(view, tuple):
        return refused(request, person, view[1], view[0])
    row = view.row
    orgs = hub.orgs()
    me = orgs[person.org]
    by_name = sorted(orgs.values(), key=lambda o: (words.ORG_TYPE_JA.get(o.type, o.type), o.name or o.id))
    candidates: dict[str, list[Any]] = {}
    for o in by_name:
        if o.id != person.org and o.id not in row.members:
            candidates.setdefault(words.ORG_TYPE_JA.get(o.type, o.type), []).append(o)
    centres = [
        o
        for o in by_name
        if o.type == CENTER and o.id != person.org and not (o.municipality and o.municipality == me.municipality)
    ]
    return page(
        request,
        "web/case.html",
        person,
        status_code=status_code,
        title=f"ケース {row.case}",
        r=row,
        history=view.history,
        access_record=view.access_record,
        candidates=candidates,
        centres=centres,
        errors=errors or {},
        form=form or {},
        today=view.at.date(),
        STATUS_JA=STATUS_JA,
        CATEGORY_JA=CATEGORY_JA,
        CASE_TYPE_JA=CASE_TYPE_JA,
        case_href=case_href,
    )


@router.get("/ui/cases/{case}", response_class=HTMLResponse)
def case_page(request: Request, case: str = CASE_ID) -> Response:
    """The case: status, category and 相談種別, members, reviews, what was shared, and the actions that fit."""
    person = signed_in(request)
    if person is None:
        return to_signin()
    return _case_page(request, person, case)


def _act(
    request: Request,
    case: str,
    action: str,
    form: dict[str, str],
    command: Callable[[CaseWork, Actor], Done],
    message: Callable[[Done], str],
    *,
    checks: dict[str, str] | None = None,
    to_child: bool = False,
) -> Response:
    """One action of the case page: the web's own checks (blank fields, all named at once), then the command;
    refused, the case page again with the errors and what was typed; done, the next page with a confirmation."""
    person = signed_in(request)
    if person is None:
        return to_signin()
    hub: Hub = request.app.state.hub
    if not is_centre(hub, person):
        return refused(request, person, NOT_A_CENTRE)
    kept = {f"{action}-{k}": v for k, v in form.items()}
    errors = {f"{action}-{k}": v for k, v in (checks or {}).items()}
    if not errors:
        done, rejected = _run(lambda: command(CaseWork(hub), actor(person)))
        if done is not None:
            return go(request, message(done), child_href(done.child) if to_child else case_href(case))
        assert rejected is not None
        if any(p.code == "unknown_case" or p.code == "not_a_center" for p in rejected.problems):
            return refused(request, person, UNKNOWN_CASE, 404)
        errors = errors_of(rejected, ACTIONS[action], action)
    return _case_page(request, person, case, errors=errors, form=kept, status_code=422)


def _org_name(request: Request, org: str) -> str:
    found = request.app.state.hub.orgs().get(org)
    return (found.name or found.id) if found else org


@router.post("/ui/cases/{case}/members", response_class=HTMLResponse)
def assign_member(request: Request, case: str = CASE_ID, member: str = Form(default="", max_length=200)) -> Response:
    member = member.strip()
    return _act(
        request,
        case,
        "assign",
        {"member": member},
        lambda work, by: work.assign_member(by, case, member),
        lambda done: (
            f"{_org_name(request, member)}をケース {case} のメンバーに追加しました。"
            "ケース共有した情報を、このメンバーも閲覧できます。"
        ),
        checks={} if member else {"member": "追加する機関を選んでください"},
    )


@router.post("/ui/cases/{case}/members/remove", response_class=HTMLResponse)
def remove_member(request: Request, case: str = CASE_ID, member: str = Form(default="", max_length=200)) -> Response:
    member = member.strip()
    return _act(
        request,
        case,
        "remove",
        {"member": member},
        lambda work, by: work.remove_member(by, case, member),
        lambda done: (
            f"{_org_name(request, member)}をケース {case} のメンバーから外しました。"
            "これから共有する情報は閲覧できません。"
        ),
        checks={} if member else {"member": "外す機関を選んでください"},
    )


@router.post("/ui/cases/{case}/share", response_class=HTMLResponse)
def share(
    request: Request,
    case: str = CASE_ID,
    summary: str = Form(default="", max_length=4000),
    proposal: str = Form(default="", max_length=10),
    meeting_date: str = Form(default="", max_length=40),
) -> Response:
    checks = {}
    if not summary.strip():
        checks["summary"] = "共有する内容を入力してください"
    if proposal and not meeting_date.strip():
        checks["meeting_date"] = "提案として共有するときは、会議の日付を入力してください"
    return _act(
        request,
        case,
        "share",
        {"summary": summary, "proposal": proposal, "meeting_date": meeting_date},
        lambda work, by: work.share(by, case, summary, proposal=bool(proposal), meeting_date=meeting_date or None),
        lambda done: (
            f"ケース {case} のメンバーに共有しました（児童福祉法第25条の2）。"
            + ("会議前の提案として示されます。" if proposal else "")
        ),
        checks=checks,
    )


@router.post("/ui/cases/{case}/review", response_class=HTMLResponse)
def review(
    request: Request,
    case: str = CASE_ID,
    decision: str = Form(default="", max_length=4000),
    next_review: str = Form(default="", max_length=40),
) -> Response:
    checks = {} if decision.strip() else {"decision": "検討結果（方針）を入力してください"}

    def message(done: Done) -> str:
        when = f"次回検討日は{words.wareki(next_review, with_time=False, western=True)}です。" if next_review else ""
        return f"ケース {case} の検討結果を記録しました。{when}"

    return _act(
        request,
        case,
        "review",
        {"decision": decision, "next_review": next_review},
        lambda work, by: work.review(by, case, decision, next_review.strip() or None),
        message,
        checks=checks,
    )


@router.post("/ui/cases/{case}/type", response_class=HTMLResponse)
def change_type(request: Request, case: str = CASE_ID, case_type: str = Form(default="", max_length=100)) -> Response:
    checks = {} if case_type in CASE_TYPE_JA else {"case_type": "新しい相談種別を一覧から選んでください"}
    return _act(
        request,
        case,
        "type",
        {"case_type": case_type},
        lambda work, by: work.change_type(by, case, case_type),
        lambda done: f"ケース {case} の相談種別を「{label(CASE_TYPE_JA, case_type)}」に変更しました。",
        checks=checks,
    )


@router.post("/ui/cases/{case}/close", response_class=HTMLResponse)
def close(
    request: Request,
    case: str = CASE_ID,
    reason: str = Form(default="", max_length=4000),
    meeting: str = Form(default="", max_length=400),
) -> Response:
    checks = {}
    if not reason.strip():
        checks["reason"] = "終結の理由を入力してください"
    if not meeting.strip():
        checks["meeting"] = "終結を決めた会議（例: 2026-09-30 実務者会議）を入力してください"
    return _act(
        request,
        case,
        "close",
        {"reason": reason, "meeting": meeting},
        lambda work, by: work.close(by, case, reason, meeting),
        lambda done: (
            f"ケース {case} を終結しました（{meeting.strip()}）。メンバーはこれ以降ケース共有の情報を閲覧できません。"
        ),
        checks=checks,
        to_child=True,
    )


@router.post("/ui/cases/{case}/transfer", response_class=HTMLResponse)
def transfer(request: Request, case: str = CASE_ID, to: str = Form(default="", max_length=200)) -> Response:
    to = to.strip()
    return _act(
        request,
        case,
        "transfer",
        {"to": to},
        lambda work, by: work.transfer(by, case, to),
        lambda done: f"ケース {case} を{_org_name(request, to)}へ移管しました。移管先は14日以内に受理します。",
        checks={} if to else {"to": "移管先のこども家庭センターを選んでください"},
    )
