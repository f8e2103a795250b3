"""The centre's pages (ui.md, "Centre"): the progress ledger (or a 児童相談所's joint ledger), the meeting agenda,
the linking queue, transfers and target lists.

Every view is the one the API answers, built by the same application services (``CaseViews``, ``linking``,
``CaseWork``) as the signed-in person: each child in it is read once through the read service, decided by the
policy and recorded with the person's name. Every form publishes through the same path as the API. A refusal
(``Rejected``) is shown in Japanese where the person is looking; bad query parameters are named, never a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar
from urllib.parse import parse_qsl
from uuid import uuid5

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from events.clock import JST
from events.labels import CHECKLIST_JA
from events.problems import Rejected
from events.store import NAMESPACE
from services.casework.agenda import agenda_csv, alert_text, attendance_text, concern_text, ledger_text, scale_text
from services.casework.commands import Actor, CaseWork
from services.casework.csv_export import csv_bytes
from services.casework.ledger import (
    CATEGORY_JA,
    CENTER,
    JISO,
    STATUS_JA,
    CaseRow,
    CaseViews,
    LedgerPage,
)
from services.casework.ledger_query import ALERTS_JA, ORDER_JA, REVIEW_JA, SORTS, LedgerQuery
from services.hub import Hub
from services.projections.rosters import CenterLists, SchoolRoster, peek
from services.publishing import linking
from services.web import words
from services.web.cases import flash
from services.web.pages import page, to_signin
from services.web.session import Person, signed_in

router = APIRouter(include_in_schema=False)
T = TypeVar("T")


def hub_today(hub: Hub) -> date:
    """Today in Japan, by the hub's clock."""
    return hub.clock().astimezone(JST).date()


def refused(request: Request, person: Person, message: str, status_code: int = 403) -> HTMLResponse:
    return page(
        request, "web/error.html", person, status_code=status_code, title="この画面は使えません", message=message
    )


def run(call: Callable[[], T]) -> tuple[T | None, str | None]:
    """Run an application service; its refusal as the first problem's Japanese message."""
    try:
        return call(), None
    except Rejected as rejected:
        return None, rejected.problems[0].message_ja


def org_type(hub: Hub, person: Person) -> str:
    org = hub.orgs().get(person.org)
    return org.type if org else ""


def _centre_person(request: Request, refusal: str) -> Person | Response:
    """The signed-in person of a こども家庭センター; otherwise the response to give instead (the sign-in page, or
    ``refusal`` as a 403 page)."""
    person = signed_in(request)
    if person is None:
        return to_signin()
    if org_type(request.app.state.hub, person) != CENTER:
        return refused(request, person, refusal)
    return person


# --- The progress ledger (進行管理台帳) and the joint ledger (共同管理台帳) ---------------------------------------


def _ledger(
    hub: Hub, person: Person, query: LedgerQuery, *, export: bool = False
) -> tuple[LedgerPage | None, str | None]:
    """The page of the person's ledger that ``query`` asks for: the joint ledger for a 児童相談所 (``export``: for
    the CSV file, so recorded as the view ``ledger-csv``)."""
    joint = org_type(hub, person) == JISO
    return run(
        lambda: CaseViews(hub).ledger(person.org, query, joint=joint, role=person.role, user=person.user, export=export)
    )


LEDGER_CSV_HEADER = [
    "ケース番号",
    "児童",
    "ふりがな",
    "登録センター",
    "状況",
    "要対協区分",
    "相談種別",
    "登録日",
    "前回検討日",
    "前回の方針",
    "次回検討予定日",
    "未検討の警告",
    "未検討の気づき・通告",
    "直近の出欠",
    "児相の評価",
    "一時保護",
    "メンバー",
]


def ledger_csv(rows: list[CaseRow], name: Callable[[str], str]) -> bytes:
    """The ledger as a CSV file for Excel (``csv_bytes``: UTF-8 with BOM, no cell taken as a formula)."""
    return csv_bytes(
        LEDGER_CSV_HEADER,
        (
            (
                r.case,
                r.child,
                r.name_kana,
                name(r.center),
                STATUS_JA.get(r.status, r.status),
                CATEGORY_JA.get(r.category, r.category),
                words.CASE_TYPE_JA.get(r.case_type, r.case_type),
                r.registered_at[:10],
                r.last_review["at"][:10] if r.last_review else "",
                r.last_review["decision"] if r.last_review else "",
                r.next_review,
                alert_text(r),
                concern_text(r),
                attendance_text(r),
                ledger_text(r),
                "一時保護中" if r.protection else "",
                "、".join(name(m) for m in r.members),
            )
            for r in rows
        ),
    )


def _org_names(hub: Hub) -> Callable[[str], str]:
    orgs = hub.orgs()
    return lambda i: (orgs[i].name or i) if i in orgs else i


JOINT_LEDGER = "/ui/joint-ledger"
NOT_A_JISO = "共同管理台帳の更新と一時保護の記録は、児童相談所だけが行えます。"


def _ledger_view(
    request: Request,
    person: Person,
    query: LedgerQuery,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    """The ledger's page: the progress ledger for a centre, the joint ledger (with its update and 一時保護 forms)
    for a 児童相談所. ``errors`` and ``form``: a refused update, shown next to its row's fields."""
    hub: Hub = request.app.state.hub
    ledger, problem = _ledger(hub, person, query)
    if ledger is None:
        return refused(request, person, problem or "")
    on = hub_today(hub)
    joint = ledger.kind == "joint"
    errors = query.errors | (errors or {})
    return page(
        request,
        "web/ledger.html",
        person,
        status_code=status_code if status_code != 200 else (422 if errors else 200),
        title="共同管理台帳" if joint else "進行管理台帳",
        joint=joint,
        here=JOINT_LEDGER if joint else "/ui/ledger",
        rows=ledger.rows,
        total=ledger.total,
        all_rows=ledger.all_rows,
        pages=ledger.pages,
        q=query,
        errors=errors,
        form=form or {},
        on=on,
        STATUS_JA=STATUS_JA,
        CATEGORY_JA=CATEGORY_JA,
        CASE_TYPE_JA=words.CASE_TYPE_JA,
        REVIEW_JA=REVIEW_JA,
        ALERTS_JA=ALERTS_JA,
        ORDER_JA=ORDER_JA,
        SORTS={k: v[0] for k, v in SORTS.items()},
        reads=len(ledger.reads),
    )


def _query(request: Request) -> LedgerQuery:
    return LedgerQuery({k: v[:200] for k, v in request.query_params.items()})


@router.get("/ui/ledger", response_class=HTMLResponse)
def ledger_page(request: Request) -> Response:
    """The progress ledger as a table: filtered, sorted and paged on the server. A 児童相談所 has the joint ledger
    instead, at its own address (the same page, with its forms)."""
    person = signed_in(request)
    if person is None:
        return to_signin()
    hub: Hub = request.app.state.hub
    if org_type(hub, person) == JISO:
        query = request.url.query
        return RedirectResponse(JOINT_LEDGER + (f"?{query}" if query else ""), status_code=303)
    return _ledger_view(request, person, _query(request))


@router.get(JOINT_LEDGER, response_class=HTMLResponse)
def joint_ledger_page(request: Request) -> Response:
    """The joint ledger (共同管理台帳) of a 児童相談所: the same table as the progress ledger, with a form per case
    to record its severity and status and to start or end 一時保護."""
    person = signed_in(request)
    if person is None:
        return to_signin()
    if org_type(request.app.state.hub, person) != JISO:
        return refused(request, person, "共同管理台帳を開けるのは、児童相談所だけです。")
    return _ledger_view(request, person, _query(request))


def _joint_act(
    request: Request,
    case: str,
    back: str,
    field_names: tuple[str, ...],
    form: dict[str, str],
    command: Callable[[CaseWork, Actor], object],
    message: str,
    checks: dict[str, str] | None = None,
) -> Response:
    """One form of the joint ledger: the command as the 児童相談所; refused, the ledger again with the refusal next
    to the row's field (``case-field``) and what was typed; done, the ledger with a confirmation."""
    person = signed_in(request)
    if person is None:
        return to_signin()
    hub: Hub = request.app.state.hub
    if org_type(hub, person) != JISO:
        return refused(request, person, NOT_A_JISO)
    params = dict(parse_qsl(back[:1000]))
    query = LedgerQuery({k: v[:200] for k, v in params.items()})
    errors = {f"{case}-{k}": v for k, v in (checks or {}).items()}
    if not errors:
        try:
            command(CaseWork(hub), Actor(person.org, person.role, person.user))
        except Rejected as rejected:
            for problem in rejected.problems:
                key = f"{case}-{problem.field if problem.field in field_names else field_names[0]}"
                errors[key] = f"{errors[key]}　{problem.message_ja}" if key in errors else problem.message_ja
        else:
            flash(request, message)
            return RedirectResponse(JOINT_LEDGER + (f"?{query.query()}" if query.query() else ""), status_code=303)
    kept = {f"{case}-{k}": v for k, v in form.items()}
    return _ledger_view(request, person, query, errors=errors, form=kept, status_code=422)


@router.post(JOINT_LEDGER + "/{case}/update", response_class=HTMLResponse)
def update_joint_ledger(
    request: Request,
    case: str = Path(min_length=1, max_length=200),
    severity: str = Form(default="", max_length=200),
    status: str = Form(default="", max_length=200),
    back: str = Form(default="", max_length=1000),
) -> Response:
    """共同管理台帳の更新: the case's severity (重症度) and status (状況), as ``CaseWork.update_ledger``."""
    severity, status = severity.strip(), status.strip()
    return _joint_act(
        request,
        case,
        back,
        ("severity", "status"),
        {"severity": severity, "status": status},
        lambda work, by: work.update_ledger(by, case, severity=severity or None, status=status or None),
        f"ケース {case} の重症度・状況を共同管理台帳に記録しました。",
    )


@router.post(JOINT_LEDGER + "/{case}/protection", response_class=HTMLResponse)
def record_protection(
    request: Request,
    case: str = Path(min_length=1, max_length=200),
    action: str = Form(default="", max_length=20),
    back: str = Form(default="", max_length=1000),
) -> Response:
    """一時保護の開始・解除, as ``CaseWork.protection``."""
    started = action == "start"
    return _joint_act(
        request,
        case,
        back,
        ("protection",),
        {},
        lambda work, by: work.protection(by, case, started=started),
        f"ケース {case} の一時保護の{'開始' if started else '解除'}を記録しました。",
        checks=None if action in ("start", "end") else {"protection": "一時保護の開始か解除かを選んでください"},
    )


@router.get("/ui/ledger.csv")
def ledger_csv_file(request: Request) -> Response:
    """The ledger as filtered and sorted on the page (every page), as CSV."""
    person = signed_in(request)
    if person is None:
        return to_signin()
    hub: Hub = request.app.state.hub
    query = LedgerQuery({k: v[:200] for k, v in request.query_params.items()}, per_page=None)
    ledger, problem = _ledger(hub, person, query, export=True)
    if ledger is None:
        return refused(request, person, problem or "")
    name = "joint-ledger" if ledger.kind == "joint" else "ledger"
    return Response(
        ledger_csv(ledger.rows, _org_names(hub)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}-{hub_today(hub).isoformat()}.csv"'},
    )


# --- The meeting agenda (実務者会議の議題) -----------------------------------------------------------------------


def _agenda_date(hub: Hub, text: str | None) -> tuple[date, str | None]:
    if not text:
        return hub_today(hub), None
    try:
        return date.fromisoformat(text), None
    except ValueError:
        return hub_today(hub), "会議の日付は 2026-05-12 の形で入力してください"


@router.get("/ui/agenda", response_class=HTMLResponse)
def agenda_page(request: Request, on: str | None = Query(default=None, alias="date", max_length=40)) -> Response:
    """The agenda of the meeting on ``date``: 要検討 first (with what changed since the last review), then 確認のみ;
    printable."""
    person = signed_in(request)
    if person is None:
        return to_signin()
    hub: Hub = request.app.state.hub
    day, error = _agenda_date(hub, on)
    if error:
        return page(
            request,
            "web/agenda.html",
            person,
            status_code=422,
            title="会議の議題",
            agenda=None,
            day=on or "",
            errors={"date": error},
        )
    agenda, problem = run(lambda: CaseViews(hub).agenda(person.org, day, role=person.role, user=person.user))
    if agenda is None:
        return refused(request, person, problem or "")
    return page(
        request,
        "web/agenda.html",
        person,
        title=f"会議の議題（{words.wareki(day, with_time=False, western=True)}）",
        agenda=agenda,
        day=day.isoformat(),
        on=day,
        errors={},
        groups=[
            (
                "要検討",
                "前回の検討以降に、新しい警告・気づき・通告、一時保護の開始・解除、児相の重症度の変更、照会への回答で"
                "心配なことや安全の尺度が3以下・前回から2以上の低下があったケース、または検討が30日を超えて遅れているケース",
                agenda.attention,
            ),
            ("確認のみ", "前回の検討以降に大きな変化のないケース", agenda.confirmation),
        ],
        CATEGORY_JA=CATEGORY_JA,
        CASE_TYPE_JA=words.CASE_TYPE_JA,
        alert_text=alert_text,
        attendance_text=attendance_text,
        ledger_text=ledger_text,
        scale_text=scale_text,
        CHECKLIST_JA=CHECKLIST_JA,
    )


@router.get("/ui/agenda.csv")
def agenda_csv_file(request: Request, on: str | None = Query(default=None, alias="date", max_length=40)) -> Response:
    person = signed_in(request)
    if person is None:
        return to_signin()
    hub: Hub = request.app.state.hub
    day, error = _agenda_date(hub, on)
    if error:
        return refused(request, person, error, 422)
    agenda, problem = run(lambda: CaseViews(hub).agenda(person.org, day, role=person.role, user=person.user))
    if agenda is None:
        return refused(request, person, problem or "")
    return Response(
        agenda_csv(agenda),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="agenda-{day.isoformat()}.csv"'},
    )


# --- The linking queue (紐付け待ち) -----------------------------------------------------------------------------


def _queue_page(
    request: Request,
    person: Person,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    outcome: Any = None,
    form: dict[str, str] | None = None,
) -> HTMLResponse:
    hub: Hub = request.app.state.hub
    records = linking.waiting(hub.store, person.org)
    return page(
        request,
        "web/queue.html",
        person,
        status_code=status_code,
        title="紐付け待ち",
        for_link=[w for w in records if w.reason == linking.WAITING_FOR_LINK],
        residence=[w for w in records if w.reason == linking.RESIDENCE_UNKNOWN],
        errors=errors or {},
        outcome=outcome,
        form=form or {},
    )


def _may_link_here(hub: Hub, person: Person) -> bool:
    return org_type(hub, person) in (CENTER, JISO)


@router.get("/ui/queue", response_class=HTMLResponse)
def queue_page(request: Request) -> Response:
    """What waits for a link (from whom, which number, since when; never what it says), and what waits for the
    child's residence; a form per number to link it to a child."""
    person = signed_in(request)
    if person is None:
        return to_signin()
    hub: Hub = request.app.state.hub
    if not _may_link_here(hub, person):
        return refused(request, person, "紐付け待ちの一覧は、こども家庭センターと児童相談所だけが使えます。")
    return _queue_page(request, person)


@router.post("/ui/queue/link", response_class=HTMLResponse)
def link_number(
    request: Request,
    org: str = Form(default="", max_length=200),
    local_number: str = Form(default="", max_length=200),
    child: str = Form(default="", max_length=200),
) -> Response:
    """Link the number to a child (``linking.link``: identity.linked through the publish path, then the waiting
    records re-published through it), and show what was released."""
    person = signed_in(request)
    if person is None:
        return to_signin()
    hub: Hub = request.app.state.hub
    if not _may_link_here(hub, person):
        return refused(request, person, "紐付けは、こども家庭センターと児童相談所だけが行えます。")
    form = {"org": org.strip(), "local_number": local_number.strip(), "child": child.strip()}
    errors = {}
    if not form["child"]:
        errors["child"] = "紐付ける児童のIDを入力してください"
    if form["org"] not in hub.orgs():
        errors["org"] = "番号の機関がハブに登録されていません"
    if not form["local_number"]:
        errors["local_number"] = "番号を指定してください"
    if errors:
        return _queue_page(request, person, status_code=422, errors=errors, form=form)
    outcome, problem = run(
        lambda: linking.link(
            hub, center=person.org, org=form["org"], local_number=form["local_number"], child=form["child"]
        )
    )
    if outcome is None:
        return _queue_page(request, person, status_code=422, errors={"child": problem or ""}, form=form)
    if outcome.refused:
        messages = "、".join(p.message_ja for p in outcome.link.problems) if outcome.link else ""
        return _queue_page(request, person, status_code=422, errors={"child": messages}, form=form)
    return _queue_page(request, person, outcome=outcome, form=form)


# --- Transfers (ケース移管) -------------------------------------------------------------------------------------


def _transfers_page(
    request: Request, person: Person, *, status_code: int = 200, errors: dict[str, str] | None = None, done: Any = None
) -> HTMLResponse:
    hub: Hub = request.app.state.hub
    found, problem = run(lambda: CaseViews(hub).transfers(person.org, overdue_only=False))
    if found is None:
        return refused(request, person, problem or "")
    return page(
        request,
        "web/transfers.html",
        person,
        status_code=status_code,
        title="ケース移管",
        outgoing=[t for t in found if t["direction"] == "out"],
        incoming=[t for t in found if t["direction"] == "in"],
        errors=errors or {},
        done=done,
    )


@router.get("/ui/transfers", response_class=HTMLResponse)
def transfers_page(request: Request) -> Response:
    """Transfers sent and received (identifiers and dates, from the case index), the 14-day limit, and the
    acknowledgement of an incoming one."""
    person = signed_in(request)
    if person is None:
        return to_signin()
    return _transfers_page(request, person)


@router.post("/ui/transfers/acknowledge", response_class=HTMLResponse)
def acknowledge(request: Request, case: str = Form(default="", max_length=200)) -> Response:
    """移管の受理 (``CaseWork.acknowledge_transfer``: the package read, recorded, then the event published)."""
    person = signed_in(request)
    if person is None:
        return to_signin()
    hub: Hub = request.app.state.hub
    if not case.strip():
        return _transfers_page(request, person, status_code=422, errors={"case": "受理するケースを選んでください"})
    done, problem = run(
        lambda: CaseWork(hub).acknowledge_transfer(Actor(person.org, person.role, person.user), case.strip())
    )
    if done is None:
        return _transfers_page(request, person, status_code=422, errors={"case": problem or ""})
    return _transfers_page(request, person, done=done)


# --- Target lists (対象名簿) -----------------------------------------------------------------------------------


def _lists_page(
    request: Request,
    person: Person,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    message: str = "",
) -> HTMLResponse:
    hub: Hub = request.app.state.hub
    orgs = hub.orgs()
    schools = sorted((o for o in orgs.values() if o.type in ("school", "nursery")), key=lambda o: o.id)
    listings = []
    for school in peek(hub.store, CenterLists, person.org).schools:
        listings += [
            x for x in peek(hub.store, SchoolRoster, school).all() if x.centre == person.org and x.removed_at is None
        ]
    # Each listed child is shown: one recorded read each, and a line only when that read shows its listing.
    shown = []
    reads = {}
    for child in dict.fromkeys(x.child for x in listings):
        reads[child] = hub.timeline(org=person.org, role=person.role, child=child, purpose="support", user=person.user)
    for x in listings:
        timeline = reads[x.child]
        ids = {e.id for e in timeline.entries} if timeline.allowed else set()
        if x.assigned_id not in ids:
            continue
        reports = [
            e
            for e in timeline.entries
            if e.kind == "attendance.monthly" and e.source == x.school and e.to in (None, person.org)
        ]
        latest = max((str(e.payload.get("month")) for e in reports), default="")
        shown.append({"listing": x, "latest": latest, "reports": len(reports)})
    shown.sort(key=lambda s: (s["listing"].school, s["listing"].student_no))
    return page(
        request,
        "web/lists.html",
        person,
        status_code=status_code,
        title="対象名簿",
        shown=shown,
        schools=schools,
        errors=errors or {},
        form=form or {},
        message=message,
    )


@router.get("/ui/lists", response_class=HTMLResponse)
def lists_page(request: Request) -> Response:
    """The children the centre listed at schools and nurseries (by the school's number, from which month), with
    the school's latest monthly report; forms to list a child and to remove a listing."""
    person = _centre_person(request, "対象名簿は、こども家庭センターだけが使えます。")
    if isinstance(person, Response):
        return person
    return _lists_page(request, person)


def _publish_listing(hub: Hub, person: Person, kind: str, child: str, payload: dict[str, str]) -> list[str]:
    """Publish a target-list event as the centre through ``Hub.publish`` (the API's path); its problems."""
    school = payload["school"]
    at = hub.clock().isoformat()
    key = "\x1f".join((kind, person.org, school, payload["student_no"], child, at))
    envelope = {
        "id": f"{kind}:{uuid5(NAMESPACE, key)}",
        "kind": kind,
        "child": child,
        "source": person.org,
        "basis": "cwa-25-3",
        "to": school,
        "at": at,
        "payload": payload,
    }
    result = hub.publish([envelope], publisher=person.org)[0]
    if result.outcome in ("accepted", "duplicate"):
        return []
    return [p.message_ja for p in result.problems] or [f"登録できませんでした（{result.outcome}）"]


@router.post("/ui/lists", response_class=HTMLResponse)
def list_child(
    request: Request,
    school: str = Form(default="", max_length=200),
    student_no: str = Form(default="", max_length=200),
    child: str = Form(default="", max_length=200),
    from_month: str = Form(default="", max_length=20),
) -> Response:
    person = _centre_person(request, "対象名簿は、こども家庭センターだけが使えます。")
    if isinstance(person, Response):
        return person
    hub: Hub = request.app.state.hub
    form = {
        "school": school.strip(),
        "student_no": student_no.strip(),
        "child": child.strip(),
        "from_month": from_month,
    }
    errors = {}
    org = hub.orgs().get(form["school"])
    if org is None or org.type not in ("school", "nursery"):
        errors["school"] = "学校・園を選んでください"
    if not form["student_no"]:
        errors["student_no"] = "学校・園での児童生徒番号を入力してください"
    if not form["child"]:
        errors["child"] = "児童IDを入力してください"
    if form["from_month"] and not (len(form["from_month"]) == 7 and form["from_month"][4] == "-"):
        errors["from_month"] = "開始月は 2026-05 の形で入力してください"
    if not errors:
        payload = {"school": form["school"], "student_no": form["student_no"]}
        if form["from_month"]:
            payload["from_month"] = form["from_month"]
        problems = _publish_listing(hub, person, "target_list.assigned", form["child"], payload)
        if not problems:
            return _lists_page(request, person, message=f"児童 {form['child']} を対象名簿に登録しました。")
        errors["child"] = "、".join(problems)
    return _lists_page(request, person, status_code=422, errors=errors, form=form)


@router.post("/ui/lists/remove", response_class=HTMLResponse)
def unlist_child(
    request: Request,
    school: str = Form(default="", max_length=200),
    student_no: str = Form(default="", max_length=200),
    child: str = Form(default="", max_length=200),
) -> Response:
    person = _centre_person(request, "対象名簿は、こども家庭センターだけが使えます。")
    if isinstance(person, Response):
        return person
    hub: Hub = request.app.state.hub
    if not (school and student_no and child):
        return _lists_page(request, person, status_code=422, errors={"remove": "削除する登録を選んでください"})
    problems = _publish_listing(hub, person, "target_list.removed", child, {"school": school, "student_no": student_no})
    if problems:
        return _lists_page(request, person, status_code=422, errors={"remove": "、".join(problems)})
    return _lists_page(request, person, message=f"児童 {child} を対象名簿から削除しました。")
