"""HTTP routes for 要対協 case work, acting as the token's organisation, role and person.

Cases (register, members, share, review, 相談種別, close, transfer and its acknowledgement), the joint ledger's
updates, support plans and consent go through ``services.casework.CaseWork``; the progress ledger, the joint
ledger, the meeting agenda (JSON, CSV, printable HTML), plans due and transfers through
``services.caseledger.CaseViews``: every view is built from the caller's own policy-decided, recorded reads.

A refused command answers with the usual error object: 403 when the caller may not act on it, 404 when the case,
plan or transfer is unknown to it, 409 when its state does not allow it, 422 for missing or invalid input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from events.dates import Day
from services.auth.tokens import Principal
from services.casework.agenda import agenda_csv, agenda_html
from services.casework.commands import Actor, CaseWork, Done
from services.casework.ledger import CaseViews
from services.casework.ledger_query import LedgerQuery
from services.http.deps import ApiError, HubDep, PublishDep, ReadDep, error_responses, refusals_as_errors

router = APIRouter(prefix="/v1", tags=["case work"])

FORBIDDEN = {"not_a_center", "not_registrar", "not_ledger_party", "not_a_jiso", "not_allowed_for_type", "read_refused"}
NOT_FOUND = {"unknown_case", "unknown_plan", "no_transfer", "unknown_consent", "unknown_child"}
CONFLICT = {
    "case_closed",
    "case_transferred",
    "case_exists",
    "plan_exists",
    "already_member",
    "not_a_member",
    "already_acknowledged",
    "already_withdrawn",
    "already_protected",
    "not_protected",
    "same_case_type",
    "joint_ledger_off",
    "not_on_ledger",
    "package_not_readable",
}
ERRORS = error_responses(401, 403, 404, 409, 422)

T = TypeVar("T")
CaseId = Annotated[str, Path(min_length=1, max_length=200, description="The case number.")]
PlanId = Annotated[str, Path(min_length=1, max_length=200, description="The plan number.")]
Text = Annotated[str, Field(min_length=1, max_length=20_000)]
TextOrList = Text | list[Text]


def _actor(member: Principal) -> Actor:
    return Actor(member.org, member.role, member.user)


def _run(call: Callable[[], T]) -> T:
    """Run a command or view; its refusal as an API error whose status says why."""
    return refusals_as_errors(call, forbidden=FORBIDDEN, not_found=NOT_FOUND, conflict=CONFLICT)


class DoneOut(BaseModel):
    """What a command published, and the recorded reads it made to check the case's state."""

    event: str
    kind: str
    child: str
    case: str | None = None
    plan: str | None = None
    version: int | None = None
    access_records: list[str] = Field(default_factory=list)


def _done(done: Done) -> DoneOut:
    return DoneOut(**done.to_dict())


# --- Cases ------------------------------------------------------------------------------------------------


class CaseIn(BaseModel):
    child: Text
    category: Literal["youhogo", "youshien", "tokutei_ninpu"] = Field(
        description="要保護児童 (youhogo), 要支援児童 (youshien), 特定妊婦 (tokutei_ninpu)"
    )
    case_type: Text = Field(description="相談種別, e.g. abuse_neglect, neglect")
    case: str | None = Field(default=None, max_length=200, description="The case number; default: a new one.")


class MemberIn(BaseModel):
    member: Text


class ShareIn(BaseModel):
    summary: Text
    proposal: bool = Field(
        default=False, description="The centre's proposal for a case 確認のみ at a meeting; names meeting_date."
    )
    meeting_date: Day | None = Field(default=None, description="The meeting's date; required with proposal.")


class ReviewIn(BaseModel):
    decision: Text
    next_review: Day | None = None


class TypeIn(BaseModel):
    case_type: Text


class CloseIn(BaseModel):
    reason: Text
    meeting: Text = Field(description="The meeting that decided the closure, e.g. 2026-09-30 実務者会議")


class TransferIn(BaseModel):
    to: Text = Field(description="The centre of the municipality the family moved to.")


class LedgerIn(BaseModel):
    severity: str | None = None
    status: str | None = None


class ProtectionIn(BaseModel):
    started: bool = Field(description="true: 一時保護開始, false: 解除")


@router.post("/cases", status_code=201, response_model=DoneOut, responses=ERRORS)
def register_case(body: CaseIn, member: PublishDep, hub: HubDep) -> DoneOut:
    """Register a 要対協 case (case.registered) as the token's centre."""
    return _done(
        _run(
            lambda: CaseWork(hub).register(
                _actor(member), child=body.child, category=body.category, case_type=body.case_type, case=body.case
            )
        )
    )


@router.post("/cases/{case}/members", status_code=201, response_model=DoneOut, responses=ERRORS)
def assign_member(case: CaseId, body: MemberIn, member: PublishDep, hub: HubDep) -> DoneOut:
    return _done(_run(lambda: CaseWork(hub).assign_member(_actor(member), case, body.member)))


@router.delete("/cases/{case}/members/{org}", response_model=DoneOut, responses=ERRORS)
def remove_member(
    case: CaseId, org: Annotated[str, Path(min_length=1, max_length=200)], member: PublishDep, hub: HubDep
) -> DoneOut:
    return _done(_run(lambda: CaseWork(hub).remove_member(_actor(member), case, org)))


@router.post("/cases/{case}/shares", status_code=201, response_model=DoneOut, responses=ERRORS)
def share(case: CaseId, body: ShareIn, member: PublishDep, hub: HubDep) -> DoneOut:
    """Share with the case's members (case.shared, basis cwa-25-2)."""
    return _done(
        _run(
            lambda: CaseWork(hub).share(
                _actor(member), case, body.summary, proposal=body.proposal, meeting_date=body.meeting_date
            )
        )
    )


@router.post("/cases/{case}/reviews", status_code=201, response_model=DoneOut, responses=ERRORS)
def review(case: CaseId, body: ReviewIn, member: PublishDep, hub: HubDep) -> DoneOut:
    return _done(_run(lambda: CaseWork(hub).review(_actor(member), case, body.decision, body.next_review)))


@router.post("/cases/{case}/type", status_code=201, response_model=DoneOut, responses=ERRORS)
def change_type(case: CaseId, body: TypeIn, member: PublishDep, hub: HubDep) -> DoneOut:
    """Change the 相談種別."""
    return _done(_run(lambda: CaseWork(hub).change_type(_actor(member), case, body.case_type)))


@router.post("/cases/{case}/close", status_code=201, response_model=DoneOut, responses=ERRORS)
def close(case: CaseId, body: CloseIn, member: PublishDep, hub: HubDep) -> DoneOut:
    """Close the case (終結) with the reason and the meeting that decided it."""
    return _done(_run(lambda: CaseWork(hub).close(_actor(member), case, body.reason, body.meeting)))


@router.post("/cases/{case}/transfer", status_code=201, response_model=DoneOut, responses=ERRORS)
def transfer(case: CaseId, body: TransferIn, member: PublishDep, hub: HubDep) -> DoneOut:
    """Transfer the case to the new municipality's centre (ケース移管)."""
    return _done(_run(lambda: CaseWork(hub).transfer(_actor(member), case, body.to)))


@router.get("/cases/{case}/transfer/package", responses=ERRORS)
def transfer_package(case: CaseId, member: ReadDep, hub: HubDep) -> dict[str, Any]:
    """The hand-over package as the receiving centre may read it (rule TRANSFER); the read is recorded."""
    transfer_, timeline = _run(lambda: CaseWork(hub).transfer_package(_actor(member), case))
    return {"transfer": transfer_, "timeline": timeline.to_dict()}


@router.post("/cases/{case}/transfer/acknowledge", status_code=201, response_model=DoneOut, responses=ERRORS)
def acknowledge(case: CaseId, member: PublishDep, hub: HubDep) -> DoneOut:
    """Acknowledge receipt of a transferred case (case.transfer_acknowledged), as the receiving centre."""
    return _done(_run(lambda: CaseWork(hub).acknowledge_transfer(_actor(member), case)))


@router.post("/cases/{case}/ledger", status_code=201, response_model=DoneOut, responses=ERRORS)
def update_ledger(case: CaseId, body: LedgerIn, member: PublishDep, hub: HubDep) -> DoneOut:
    """Update the joint ledger (共同管理台帳), as the registering centre or the covering 児童相談所."""
    return _done(
        _run(lambda: CaseWork(hub).update_ledger(_actor(member), case, severity=body.severity, status=body.status))
    )


@router.post("/cases/{case}/protection", status_code=201, response_model=DoneOut, responses=ERRORS)
def protection(case: CaseId, body: ProtectionIn, member: PublishDep, hub: HubDep) -> DoneOut:
    """Record the start or end of 一時保護 on the joint ledger (児童相談所 only)."""
    return _done(_run(lambda: CaseWork(hub).protection(_actor(member), case, started=body.started)))


# --- Views ------------------------------------------------------------------------------------------------


def ledger_query(
    page: Annotated[str, Query(max_length=10, description="The page, from 1.")] = "",
    per_page: Annotated[str, Query(max_length=10, description="Rows per page, 1-500 (default 50).")] = "",
    sort: Annotated[
        str,
        Query(
            max_length=40, description="case, child, status, category, case_type, registered or next_review (default)."
        ),
    ] = "",
    order: Annotated[str, Query(max_length=10, description="asc (default) or desc.")] = "",
    status: Annotated[str, Query(max_length=40, description="open, closed or transferred.")] = "",
    category: Annotated[str, Query(max_length=40, description="要対協区分: youhogo, youshien or tokutei_ninpu.")] = "",
    case_type: Annotated[str, Query(max_length=60, description="相談種別.")] = "",
    review: Annotated[str, Query(max_length=20, description="due (this month) or overdue.")] = "",
    alerts: Annotated[str, Query(max_length=20, description="open, concerns or any.")] = "",
    member: Annotated[str, Query(max_length=200, description="Only cases this organisation is a member of.")] = "",
) -> LedgerQuery:
    """The ledger's filters, sort and page from the query string; a value that is not a choice is refused (422)."""
    query = LedgerQuery(
        {
            "page": page,
            "per_page": per_page,
            "sort": sort,
            "order": order,
            "status": status,
            "category": category,
            "case_type": case_type,
            "review": review,
            "alerts": alerts,
            "member": member,
        }
    )
    if query.errors:
        raise ApiError(
            422,
            "invalid_query",
            "invalid ledger query: " + ", ".join(sorted(query.errors)),
            "　".join(query.errors.values()),
            field=sorted(query.errors)[0],
        )
    return query


LedgerQueryDep = Annotated[LedgerQuery, Depends(ledger_query)]


@router.get("/ledger", responses=ERRORS)
def progress_ledger(member: ReadDep, hub: HubDep, query: LedgerQueryDep) -> dict[str, Any]:
    """A page of the token's centre's progress ledger (進行管理台帳), filtered and sorted on the server: ``rows``
    (one recorded read per child shown, ``access_records``), ``total`` kept by the filters, ``page``, ``per_page``."""
    return _run(lambda: CaseViews(hub).ledger(member.org, query, role=member.role, user=member.user)).to_dict()


@router.get("/joint-ledger", responses=ERRORS)
def joint_ledger(member: ReadDep, hub: HubDep, query: LedgerQueryDep) -> dict[str, Any]:
    """A page of the token's 児童相談所's joint ledger (共同管理台帳): the abuse cases of the municipalities it
    covers, filtered, sorted and paged as ``/v1/ledger``."""
    return _run(
        lambda: CaseViews(hub).ledger(member.org, query, joint=True, role=member.role, user=member.user)
    ).to_dict()


@router.get("/agenda", responses=ERRORS | {200: {"content": {"application/json": {}, "text/csv": {}, "text/html": {}}}})
def agenda(
    member: ReadDep,
    hub: HubDep,
    on: Annotated[Day, Query(alias="date", description="The meeting day.")],
    format: Annotated[Literal["json", "csv", "html"], Query(description="json, csv (Excel) or html")] = "json",
) -> Any:
    """The agenda of the practitioners' meeting (実務者会議) on ``date``: the cases due or overdue, those with new
    alerts or concerns since their last review first, each with its changes since that review."""
    result = _run(lambda: CaseViews(hub).agenda(member.org, on, role=member.role, user=member.user))
    if format == "csv":
        return Response(
            agenda_csv(result),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="agenda-{on.isoformat()}.csv"'},
        )
    if format == "html":
        return HTMLResponse(agenda_html(result, {o.id: o.name or o.id for o in hub.orgs().values()}))
    return result.to_dict()


@router.get("/transfers", responses=ERRORS)
def transfers(
    member: ReadDep,
    hub: HubDep,
    all: Annotated[bool, Query(description="Every transfer, not only the overdue ones.")] = False,
) -> list[dict[str, Any]]:
    """Transfers the token's centre sent or received that were not acknowledged within 14 days."""
    return _run(lambda: CaseViews(hub).transfers(member.org, overdue_only=not all))


# --- Support plans and consent ------------------------------------------------------------------------------


class PlanIn(BaseModel):
    child: Text
    wishes: TextOrList = Field(description="意向")
    issues: TextOrList = Field(description="課題")
    supports: TextOrList = Field(description="支援の種類及び内容")
    review_due: Day = Field(description="見直し時期")
    plan: str | None = Field(default=None, max_length=200)


class PlanVersionIn(BaseModel):
    wishes: TextOrList
    issues: TextOrList
    supports: TextOrList
    review_due: Day


class ConsentIn(BaseModel):
    version: int = Field(ge=1)
    recipients: list[Text] = Field(min_length=1)
    signed_by: Text
    valid_until: Day | None = None


@router.post("/plans", status_code=201, response_model=DoneOut, responses=ERRORS)
def create_plan(body: PlanIn, member: PublishDep, hub: HubDep) -> DoneOut:
    return _done(
        _run(
            lambda: CaseWork(hub).create_plan(
                _actor(member),
                child=body.child,
                wishes=body.wishes,
                issues=body.issues,
                supports=body.supports,
                review_due=body.review_due,
                plan=body.plan,
            )
        )
    )


@router.post("/plans/{plan}/versions", status_code=201, response_model=DoneOut, responses=ERRORS)
def revise_plan(plan: PlanId, body: PlanVersionIn, member: PublishDep, hub: HubDep) -> DoneOut:
    return _done(
        _run(
            lambda: CaseWork(hub).revise_plan(
                _actor(member),
                plan,
                wishes=body.wishes,
                issues=body.issues,
                supports=body.supports,
                review_due=body.review_due,
            )
        )
    )


@router.post("/plans/{plan}/consents", status_code=201, response_model=DoneOut, responses=ERRORS)
def grant_consent(plan: PlanId, body: ConsentIn, member: PublishDep, hub: HubDep) -> DoneOut:
    return _done(
        _run(
            lambda: CaseWork(hub).grant_consent(
                _actor(member),
                plan,
                version=body.version,
                recipients=body.recipients,
                signed_by=body.signed_by,
                valid_until=body.valid_until,
            )
        )
    )


@router.post("/plans/{plan}/consents/{consent}/withdraw", status_code=201, response_model=DoneOut, responses=ERRORS)
def withdraw_consent(
    plan: PlanId, consent: Annotated[str, Path(min_length=1, max_length=200)], member: PublishDep, hub: HubDep
) -> DoneOut:
    return _done(_run(lambda: CaseWork(hub).withdraw_consent(_actor(member), plan, consent)))


@router.post("/plans/{plan}/refusals", status_code=201, response_model=DoneOut, responses=ERRORS)
def refuse_consent(plan: PlanId, member: PublishDep, hub: HubDep) -> DoneOut:
    """The family refused to share the plan: support goes on, nothing is shared."""
    return _done(_run(lambda: CaseWork(hub).refuse_consent(_actor(member), plan)))


@router.get("/plans/due", responses=ERRORS)
def plans_due(
    member: ReadDep,
    hub: HubDep,
    on: Annotated[Day, Query(alias="date", description="List plans due on or before this day.")],
) -> dict[str, Any]:
    plans, reads = _run(lambda: CaseViews(hub).plans_due(member.org, on, role=member.role, user=member.user))
    now = hub.clock()
    return {"date": on.isoformat(), "plans": [p.to_dict(now) for p in plans], "access_records": reads}
