"""HTTP routes for periodic reports from schools and nurseries (定期的な情報提供).

``GET /v1/reports/overdue``: the monthly reports that are due and missing, as the token's organisation may see
them (``consent.reports.may_see_listing``): a school or nursery its own target list, a centre the lists it
assigned. Each listed child's line is backed by the caller's own recorded read of the child's record
(``services.reports.recorded_overdue``).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from events.clock import JST
from events.dates import MonthText
from events.problems import Rejected
from services.http.deps import ApiError, HubDep, ReadDep, error_responses
from services.schools.overdue import recorded_overdue

router = APIRouter(prefix="/v1", tags=["periodic reports"])


class OverdueOut(BaseModel):
    school: str = Field(description="The school or nursery that owes the report.")
    centre: str = Field(description="The centre that assigned the target list.")
    month: str = Field(description="The month reported on (YYYY-MM).")
    due: date = Field(description="The last day on which it was on time (monthly_report_due_day of the next month).")
    student_no: str = Field(description="The school's own number for the child (児童生徒番号).")
    child: str = Field(description="The hub id of the child.")


class OverdueListOut(BaseModel):
    reader: str
    month: str | None
    overdue: list[OverdueOut]
    total: int = Field(description="How many overdue reports there are in all (every page).")
    page: int
    per_page: int | None = Field(description="The page's size (absent: every report on one page).")
    access_records: list[str] = Field(
        description="The access records of the reads behind the page, one per child on it (recorded before the answer)."
    )


@router.get(
    "/reports/overdue",
    response_model=OverdueListOut,
    responses=error_responses(401, 403, 422),
    summary="Monthly reports due and missing (未提出の月次報告)",
)
def overdue(
    member: ReadDep,
    hub: HubDep,
    month: Annotated[
        MonthText | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="Only this month (YYYY-MM).")
    ] = None,
    page: Annotated[int, Query(ge=1, le=100_000, description="The page (from 1).")] = 1,
    per_page: Annotated[
        int | None, Query(ge=1, le=500, description="Reports per page (absent: all of them, one page).")
    ] = None,
) -> OverdueListOut:
    try:
        found, records, total = recorded_overdue(
            hub,
            reader=member.org,
            role=member.role,
            user=member.user,
            month=month,
            today=hub.clock().astimezone(JST).date(),
            page=page,
            per_page=per_page,
        )
    except Rejected as rejected:
        first = rejected.problems[0]
        raise ApiError(403, first.code, first.message, first.message_ja) from None
    return OverdueListOut(
        reader=member.org,
        month=month,
        overdue=[OverdueOut(**r.to_dict()) for r in found],
        total=total,
        page=page,
        per_page=per_page,
        access_records=records,
    )
