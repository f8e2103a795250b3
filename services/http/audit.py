"""HTTP routes for auditors (監査・個人情報保護担当), under ``/v1/audit``: metadata about reads, never case content.

Every endpoint needs a token with the ``audit`` scope (403 ``insufficient_scope``) of an organisation registered
with type ``auditor`` (403 ``not_an_auditor`` otherwise, whatever the token's scopes); every query is recorded in
the auditor organisation's audit trail before its answer is returned (``services.audit.auditors``).

- ``GET  /v1/audit/children/{child}/reads?since&until``: who read the child, when, as whom, why, on which rules.
- ``GET  /v1/audit/records/{record_id}/reconstruction[?child]``: what that read returned, rebuilt from the log,
  with the digest proof that it is exact (``child`` only narrows the search to one child's log).
- ``GET  /v1/audit/children/{child}/reconstruction?org&at``: what ``org`` saw about the child at time ``at``.
- ``GET  /v1/audit/emergencies?since&until``: every emergency access, with the declared reason and findings.
- ``POST /v1/audit/emergencies/{record_id}/findings``: record a reviewer's finding (the reviewer is the caller).
- ``GET  /v1/audit/children/{child}/disclosure``: the family's disclosure report (開示) as JSON, or as a
  printable page with ``?format=html`` or ``Accept: text/html``.
- ``POST /v1/audit/policy-impact``: replay a period under changed settings; the reads whose decision would differ.

Dates are ``YYYY-MM-DD`` (a day in Japan; ``until`` includes that day) or ISO date-times; a bad one is 422 naming
the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from consent.policy import POLICY_VERSIONS
from services.audit.disclosure import disclosure_html
from services.audit.models import (
    ChildReads,
    Disclosure,
    Emergencies,
    EmergencyAccess,
    Finding,
    PolicyImpact,
    Reconstruction,
)
from services.audit.queries import NotFound, Period
from services.audit.service import Auditing
from services.audit.trail import Actor
from services.auth.tokens import Principal
from services.http.deps import ApiError, HubDep, MemberDep, error_responses, require_scope
from services.hub import Hub


def get_auditor(member: MemberDep, hub: HubDep) -> Principal:
    """The caller, acting for an organisation registered with type ``auditor``; 403 ``not_an_auditor`` otherwise.
    (Auditors' endpoints are for auditor organisations, whatever a token's scopes say.)"""
    org = hub.orgs().get(member.org)
    if org is None or org.type != "auditor":
        raise ApiError(
            403,
            "not_an_auditor",
            "only auditor organisations may use the audit endpoints",
            "監査・個人情報保護担当の機関だけが利用できます",
        )
    return member


AuditorDep = Annotated[Principal, Depends(get_auditor)]

SCOPE: list[Any] = [Depends(require_scope("audit"))]  # every auditors' endpoint needs the audit scope
router = APIRouter(prefix="/v1/audit", tags=["audit"], dependencies=SCOPE)

Child = Annotated[str, Path(min_length=1, max_length=200, description="The child's hub id.")]
RecordId = Annotated[str, Path(min_length=1, max_length=100, description="An access record's id.")]
Since = Annotated[str | None, Query(max_length=40, description="From this day (YYYY-MM-DD) or date-time.")]
Until = Annotated[str | None, Query(max_length=40, description="Up to this day, included, or before this date-time.")]
ERRORS = error_responses(401, 403, 422)


def _auditing(hub: Hub) -> Auditing:
    return Auditing(hub.store, hub.clock)


def _actor(principal: Principal) -> Actor:
    return Actor(org=principal.org, user=principal.user, via="http")


def _not_found(error: NotFound) -> ApiError:
    return ApiError(404, error.code, error.message, error.message_ja)


@router.get(
    "/children/{child}/reads",
    response_model=ChildReads,
    responses=ERRORS,
    summary="Who read a child's record (閲覧の記録)",
)
def reads_of_child(
    child: Child, auditor: AuditorDep, hub: HubDep, since: Since = None, until: Until = None
) -> ChildReads:
    """Every read of the child in the period, allowed or refused: reader, purpose, decision, rules, counts."""
    return _auditing(hub).reads_of_child(child, Period.of(since, until), actor=_actor(auditor))


@router.get(
    "/records/{record_id}/reconstruction",
    response_model=Reconstruction,
    responses=error_responses(401, 403, 404, 422),
    summary="What a past read returned (再現)",
)
def reconstruction(
    record_id: RecordId,
    auditor: AuditorDep,
    hub: HubDep,
    child: Annotated[
        str | None,
        Query(
            min_length=1, max_length=200, description=("The child the record is about: searches that child's log only.")
        ),
    ] = None,
) -> Reconstruction:
    """The read rebuilt from the log at the record's positions and settings, as metadata (ids, kinds, sources,
    times, rules, redacted field names); ``exact`` is true when its digest equals the one recorded then."""
    try:
        return _auditing(hub).reconstruct(record_id, child=child, actor=_actor(auditor))
    except NotFound as error:
        raise _not_found(error) from None


@router.get(
    "/children/{child}/reconstruction",
    response_model=Reconstruction,
    responses=error_responses(401, 403, 404, 422),
    summary="What an organisation saw at a time",
)
def reconstruction_at(
    child: Child,
    auditor: AuditorDep,
    hub: HubDep,
    org: Annotated[str, Query(min_length=1, max_length=200, description="The reader organisation.")],
    at: Annotated[str, Query(min_length=1, max_length=40, description="The time (date-time).")],
) -> Reconstruction:
    """The last read of the child by ``org`` made at or before ``at``, rebuilt as for a record id."""
    try:
        return _auditing(hub).reconstruct_at(org, child, at, actor=_actor(auditor))
    except NotFound as error:
        raise _not_found(error) from None


@router.get("/emergencies", response_model=Emergencies, responses=ERRORS, summary="Emergency accesses for review")
def emergencies(auditor: AuditorDep, hub: HubDep, since: Since = None, until: Until = None) -> Emergencies:
    """Every read allowed with purpose ``emergency`` in the period, with the declaration (its reason and window)
    and the reviewers' findings."""
    return _auditing(hub).emergency_accesses(Period.of(since, until), actor=_actor(auditor))


class FindingIn(BaseModel):
    finding: Finding = Field(description="justified, not_justified or needs_follow_up.")
    note: str = Field(default="", max_length=5000, description="The reviewer's note.")


@router.post(
    "/emergencies/{record_id}/findings",
    response_model=EmergencyAccess,
    responses=error_responses(401, 403, 404, 422),
    summary="Record a review finding",
)
def record_finding(record_id: RecordId, body: FindingIn, auditor: AuditorDep, hub: HubDep) -> EmergencyAccess:
    """The caller's finding on the emergency access, stored as an event; the same finding sent again is stored
    once. Returns the access with all its findings."""
    try:
        return _auditing(hub).record_finding(
            record_id, reviewer=auditor.user, finding=body.finding, note=body.note, actor=_actor(auditor)
        )
    except NotFound as error:
        raise _not_found(error) from None


@router.get(
    "/children/{child}/disclosure",
    response_model=Disclosure,
    responses={
        **ERRORS,
        200: {
            "content": {"text/html": {"schema": {"type": "string"}}},
            "description": "The report (JSON), or the printable page (HTML)",
        },
    },
    summary="The family's disclosure report (開示)",
)
def disclosure(
    child: Child,
    request: Request,
    auditor: AuditorDep,
    hub: HubDep,
    format: Annotated[
        Literal["json", "html"] | None,
        Query(description="json (default) or html; Accept: text/html also gives the page."),
    ] = None,
) -> Any:
    """Which organisations read the child's record, when and on what ground (refused reads included), grouped
    by organisation, in plain Japanese."""
    report = _auditing(hub).disclosure_report(child, actor=_actor(auditor))
    wants_html = format == "html" or (format is None and "text/html" in request.headers.get("accept", ""))
    if wants_html:
        return HTMLResponse(disclosure_html(report))
    return report


class ImpactIn(BaseModel):
    since: str | None = Field(default=None, max_length=40, description="From this day or date-time.")
    until: str | None = Field(default=None, max_length=40, description="Up to this day (included) or date-time.")
    settings: dict[str, Any] = Field(
        default_factory=dict, description='Settings to change, e.g. {"joint_ledger": true}.'
    )
    policy_version: Literal[POLICY_VERSIONS] | None = Field(  # type: ignore[valid-type]
        default=None, description="Replay under this policy version instead of the one each record names."
    )


@router.post("/policy-impact", response_model=PolicyImpact, responses=ERRORS, summary="Policy impact of settings")
async def policy_impact(body: ImpactIn, auditor: AuditorDep, hub: HubDep) -> PolicyImpact:
    """Replay every read of the period under its settings changed as given; the reads whose decision would
    differ, event by event (before: as decided under the settings of the time)."""
    period = Period.of(body.since, body.until)
    return await run_in_threadpool(
        lambda: _auditing(hub).policy_impact(period, body.settings, actor=_actor(auditor), version=body.policy_version)
    )
