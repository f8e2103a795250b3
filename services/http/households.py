"""HTTP routes for households (世帯, meetings-and-services.md §3), acting as the token's organisation, role and
person: a centre links a child to one of its households and removes it (``household.joined`` / ``household.left``
through ``services.casework.households.Households``, the same publish path as ``POST /v1/events``), and a centre
(or a 児童相談所, for a child on the joint ledger) gets a child's household view: the household's other children,
each read once as the caller (decided by the policy, recorded) and shown as that read shows it. Anyone else gets an
empty view, and no read is made.

A refused command answers with the usual error object: 403 when the caller may not act (not a centre, or not the
centre of the child's residence: the same answer whether or not the hub knows the child), 409 when the child is
already in the household or not in it, 422 for missing or invalid input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from events.clock import JST
from services.auth.tokens import Principal
from services.casework.commands import Actor, Done
from services.casework.households import Households
from services.http.deps import HubDep, PublishDep, ReadDep, error_responses, refusals_as_errors
from services.schools.overdue import overdue_reports

router = APIRouter(prefix="/v1", tags=["households"])

FORBIDDEN = {"not_a_center", "not_authorised"}
CONFLICT = {"already_member", "not_a_member"}
ERRORS = error_responses(401, 403, 409, 422)
T = TypeVar("T")
HouseholdId = Annotated[str, Path(min_length=1, max_length=200, description="The centre's household id (世帯番号).")]
ChildId = Annotated[str, Path(min_length=1, max_length=200, description="The child's hub id.")]


def _actor(member: Principal) -> Actor:
    return Actor(member.org, member.role, member.user)


def _run(call: Callable[[], T]) -> T:
    """Run a command or view; its refusal as an API error whose status says why."""
    return refusals_as_errors(call, forbidden=FORBIDDEN, conflict=CONFLICT)


class MemberIn(BaseModel):
    child: Annotated[str, Field(min_length=1, max_length=200, description="The child's hub id.")]
    relation: str | None = Field(
        default=None, max_length=200, description="続柄 in the household: sibling, mother, newborn …"
    )


class DoneOut(BaseModel):
    """What a command published."""

    event: str
    kind: str
    child: str


def _done(done: Done) -> DoneOut:
    return DoneOut(event=done.event, kind=done.kind, child=done.child)


@router.post("/households/{household}/members", status_code=201, response_model=DoneOut, responses=ERRORS)
def join(household: HouseholdId, body: MemberIn, member: PublishDep, hub: HubDep) -> DoneOut:
    """Link a child to the token's centre's household (household.joined, basis internal)."""
    return _done(_run(lambda: Households(hub).join(_actor(member), body.child, household, body.relation)))


@router.delete("/households/{household}/members/{child}", response_model=DoneOut, responses=ERRORS)
def leave(household: HouseholdId, child: ChildId, member: PublishDep, hub: HubDep) -> DoneOut:
    """Remove a child from the token's centre's household (household.left, basis internal)."""
    return _done(_run(lambda: Households(hub).leave(_actor(member), child, household)))


@router.get("/children/{child}/household", responses=error_responses(401, 403))
def household_view(child: ChildId, member: ReadDep, hub: HubDep) -> dict[str, Any]:
    """The child's households and their other children (open cases, open alerts, overdue monthly reports), each
    child read once as the caller: ``access_records`` lists the reads made. Empty for an organisation that is not a
    centre or a 児童相談所."""
    today = hub.clock().astimezone(JST).date()
    view = Households(hub).view(
        _actor(member),
        child,
        overdue=lambda: overdue_reports(
            hub.store, hub.settings, reader=member.org, today=today, kept=hub.overdue_lines
        ),
    )
    return view.to_dict()
