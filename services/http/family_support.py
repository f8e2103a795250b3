"""HTTP routes for family-support services (家庭支援事業, meetings-and-services.md §2), acting as the token's
organisation, role and person: recommendations (利用勧奨) and their results, orders (措置), referrals to a provider,
monitoring from either side, the end of a service and the acknowledgement of a provider's report go through
``services.family_support.work.FamilySupport``; the overview (a centre's referrals with monitoring due,
recommendations, orders and the reports sent to it; a provider's referrals and its reports with their
acknowledgements), the centre's urgent inbox and the usage counts through ``SupportViews``, each built from the
caller's own recorded reads.

Refusals use the usual error object: 403 when the caller may not act, 404 for a referral or report unknown to it
(a made-up one answers like another organisation's), 409 when it has ended, 422 for missing or invalid input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter
from pydantic import BaseModel, Field

from events.dates import Day
from services.auth.tokens import Principal
from services.casework.commands import Actor, Done
from services.family_support.work import FamilySupport, SupportViews
from services.http.deps import HubDep, PublishDep, ReadDep, error_responses, refusals_as_errors

router = APIRouter(prefix="/v1/services", tags=["family-support services"])

FORBIDDEN = {"not_allowed_for_type", "unknown_organisation", "read_refused", "not_authorised"}
NOT_FOUND = {"unknown_referral", "unknown_report"}
CONFLICT = {"referral_ended"}
ERRORS = error_responses(401, 403, 404, 409, 422)
T = TypeVar("T")
Text = Annotated[str, Field(min_length=1, max_length=20_000)]
Ident = Annotated[str, Field(min_length=1, max_length=200)]


def _actor(p: Principal) -> Actor:
    return Actor(p.org, p.role, p.user)


def _run(call: Callable[[], T]) -> T:
    """Run a command or view; its refusal as an API error whose status says why."""
    return refusals_as_errors(call, forbidden=FORBIDDEN, not_found=NOT_FOUND, conflict=CONFLICT)


class DoneOut(BaseModel):
    """What a command published, and the recorded reads it made to check what was sent before."""

    event: str
    kind: str
    child: str
    access_records: list[str] = Field(default_factory=list)


def _done(done: Done) -> DoneOut:
    return DoneOut(event=done.event, kind=done.kind, child=done.child, access_records=done.access_records)


class RecommendIn(BaseModel):
    child: Ident
    service: Text
    form: Literal["oral", "written"] = Field(description="口頭 (oral) or 文書 (written)")
    reason: Text
    recommendation: Ident | None = Field(default=None, description="The recommendation's id; default: a new one.")


class ResultIn(BaseModel):
    child: Ident
    recommendation: Ident
    result: Literal["accepted", "declined", "no_answer"]
    note: Text | None = None


class OrderIn(BaseModel):
    child: Ident
    service: Text
    from_: Day = Field(alias="from")
    notice_date: Day
    order: Ident | None = None


class ReferIn(BaseModel):
    child: Ident
    provider: Ident = Field(description="The service_provider the referral goes to (to).")
    service: Text
    start: Day
    summary: Text = Field(description="What the provider needs to know.")
    frequency: Text | None = None
    referral: Ident | None = None


class MonitorIn(BaseModel):
    child: Ident
    observations: Text
    recommendation: Literal["continue", "extend", "change", "end"]


class EndIn(BaseModel):
    child: Ident
    reason: Text


class AcknowledgeIn(BaseModel):
    note: Text | None = Field(default=None, description="What the centre will do.")
    handled_by: Ident | None = None


@router.post("/recommendations", status_code=201, response_model=DoneOut, responses=ERRORS)
def recommend(body: RecommendIn, member: PublishDep, hub: HubDep) -> DoneOut:
    """利用勧奨 (service.recommended) as the token's centre."""
    return _done(_run(lambda: FamilySupport(hub).recommend(_actor(member), **body.model_dump())))


@router.post("/recommendations/results", status_code=201, response_model=DoneOut, responses=ERRORS)
def recommendation_result(body: ResultIn, member: PublishDep, hub: HubDep) -> DoneOut:
    """The result of a recommendation (service.recommendation_result)."""
    return _done(_run(lambda: FamilySupport(hub).record_result(_actor(member), **body.model_dump())))


@router.post("/orders", status_code=201, response_model=DoneOut, responses=ERRORS)
def order(body: OrderIn, member: PublishDep, hub: HubDep) -> DoneOut:
    """措置 (service.ordered)."""
    return _done(
        _run(
            lambda: FamilySupport(hub).order(
                _actor(member),
                child=body.child,
                service=body.service,
                from_=body.from_,
                notice_date=body.notice_date,
                order=body.order,
            )
        )
    )


@router.post("/referrals", status_code=201, response_model=DoneOut, responses=ERRORS)
def refer(body: ReferIn, member: PublishDep, hub: HubDep) -> DoneOut:
    """A referral to a provider (service.referred, basis commissioned, to the provider)."""
    return _done(_run(lambda: FamilySupport(hub).refer(_actor(member), **body.model_dump())))


@router.post("/referrals/{referral}/monitoring", status_code=201, response_model=DoneOut, responses=ERRORS)
def monitor(referral: Ident, body: MonitorIn, member: PublishDep, hub: HubDep) -> DoneOut:
    """Monitoring (service.monitoring) from the provider to the centre, or from the centre to the provider."""
    return _done(_run(lambda: FamilySupport(hub).monitor(_actor(member), referral=referral, **body.model_dump())))


@router.post("/referrals/{referral}/end", status_code=201, response_model=DoneOut, responses=ERRORS)
def end(referral: Ident, body: EndIn, member: PublishDep, hub: HubDep) -> DoneOut:
    """The end of the service (service.ended), told to the provider."""
    return _done(_run(lambda: FamilySupport(hub).end(_actor(member), referral=referral, **body.model_dump())))


@router.post("/reports/{report}/acknowledgement", status_code=201, response_model=DoneOut, responses=ERRORS)
def acknowledge(report: Ident, body: AcknowledgeIn, member: PublishDep, hub: HubDep) -> DoneOut:
    """Acknowledge a provider's report (report.acknowledged, to the report's source)."""
    return _done(_run(lambda: FamilySupport(hub).acknowledge(_actor(member), report=report, **body.model_dump())))


@router.get("", responses=ERRORS)
def overview(member: ReadDep, hub: HubDep) -> dict[str, Any]:
    """The caller's family-support work: a centre's referrals (monitoring due first), recommendations, orders and
    the reports sent to it; a provider's referrals and its reports with their acknowledgements."""
    return _run(lambda: SupportViews(hub).overview(member.org, role=member.role, user=member.user)).to_dict()


@router.get("/urgent", responses=ERRORS)
def urgent_inbox(member: ReadDep, hub: HubDep) -> dict[str, Any]:
    """The centre's urgent inbox: urgent provider reports not yet acknowledged, oldest first, with hours waited."""
    reports, reads = _run(lambda: SupportViews(hub).urgent_inbox(member.org, role=member.role, user=member.user))
    return {"reports": [r.to_dict() for r in reports], "access_records": reads}


@router.get("/counts", responses=ERRORS)
def counts(member: ReadDep, hub: HubDep) -> dict[str, Any]:
    """Usage per service and provider (children, visits, person-days) and time to acknowledge urgent reports."""
    return _run(lambda: SupportViews(hub).counts(member.org, role=member.role, user=member.user))
