"""HTTP routes for status inquiries before a meeting (事前照会, meetings-and-services.md §1), acting as the token's
organisation, role and person, through ``services.casework.inquiries.Inquiries``: the centre's round and what is
outstanding per member; a member's inbox, one inquiry, and its answer.

A refusal answers with the usual error object: 403 when the caller may not act (not a centre), 404 for an inquiry
not addressed to the caller (the same whether it exists or not), 422 for missing or invalid input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from events.dates import Day
from services.casework.inquiries import Inquiries
from services.http import casework
from services.http.casework import ERRORS, _actor
from services.http.deps import HubDep, PublishDep, ReadDep, refusals_as_errors

router = APIRouter(prefix="/v1", tags=["status inquiries"])
T = TypeVar("T")
FORBIDDEN = casework.FORBIDDEN | {"not_a_center"}
NOT_FOUND = casework.NOT_FOUND | {"unknown_inquiry"}


def _run(call: Callable[[], T]) -> T:
    """Run a command or view; its refusal as an API error whose status says why."""
    return refusals_as_errors(call, forbidden=FORBIDDEN, not_found=NOT_FOUND, conflict=casework.CONFLICT)


InquiryId = Annotated[str, Path(min_length=1, max_length=200, description="The inquiry id.")]


class RoundIn(BaseModel):
    meeting_date: Day = Field(description="The meeting's day (実務者会議): the cases due on or before it are asked.")
    due: Day = Field(description="The day answers are due, between today and the meeting.")


class AttendanceIn(BaseModel):
    days: int = Field(ge=0, description="School or nursery days since the last answer")
    absent: int = Field(ge=0)
    absent_without_contact: int = Field(ge=0)


class AnswerIn(BaseModel):
    no_change: bool = Field(default=False, description="変わりなし: one tick; then observations may be left out")
    observations: str = Field(default="", max_length=20_000)
    actions: str = Field(default="", max_length=20_000, description="What the member did")
    concerns: str = Field(default="", max_length=20_000)
    safety_scale: int | None = Field(default=None, ge=0, le=10, description="0: not safe … 10: safe enough to close")
    attendance: AttendanceIn | None = None
    checklist: list[str] = Field(default_factory=list, description="Items of the 在宅支援アセスメント ticked")


@router.post("/inquiries/rounds", status_code=201, responses=ERRORS)
def send_round(body: RoundIn, member: PublishDep, hub: HubDep) -> dict[str, Any]:
    """Send a round (the token's centre): one inquiry.sent per (case due for review on or before the meeting,
    member), in one action; pairs already asked for the same meeting are skipped."""
    return _run(lambda: Inquiries(hub).send_round(_actor(member), body.meeting_date, body.due)).to_dict()


@router.get("/inquiries/outstanding", responses=ERRORS)
def outstanding(member: ReadDep, hub: HubDep) -> dict[str, Any]:
    """The token's centre's unanswered inquiries per member (identifiers and dates only), overdue ones counted."""
    members = _run(lambda: Inquiries(hub).outstanding(member.org))
    return {"center": member.org, "overdue": sum(m["overdue"] for m in members), "members": members}


@router.get("/inquiries", responses=ERRORS)
def inbox(
    member: ReadDep,
    hub: HubDep,
    answered: Annotated[bool, Query(description="Also the inquiries already answered")] = False,
) -> dict[str, Any]:
    """The inquiries addressed to the token's organisation, due first; each child read once (recorded)."""
    items, reads = _run(lambda: Inquiries(hub).inbox(_actor(member), answered=answered))
    return {"org": member.org, "inquiries": [i.to_dict() for i in items], "access_records": reads}


@router.get("/inquiries/{inquiry}", responses=ERRORS)
def one(inquiry: InquiryId, member: ReadDep, hub: HubDep) -> dict[str, Any]:
    item, reads = _run(lambda: Inquiries(hub).item(_actor(member), inquiry))
    return item.to_dict() | {"access_records": reads}


@router.post("/inquiries/{inquiry}/answer", status_code=201, responses=ERRORS)
def answer(inquiry: InquiryId, body: AnswerIn, member: PublishDep, hub: HubDep) -> dict[str, Any]:
    """Answer an inquiry addressed to the token's organisation (inquiry.answered to the centre that asked); a later
    answer supersedes the earlier one."""
    fields = body.model_dump()
    return _run(lambda: Inquiries(hub).answer(_actor(member), inquiry, **fields))
