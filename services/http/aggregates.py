"""HTTP route for planners' aggregates (集計, ``aggregates.md``): ``GET /v1/aggregates``, one measure per
municipality (or 圏域) and month, as the token's organisation may read it (``services.aggregates.service``):
small cells of other municipalities hidden, every request (refusals too) recorded in the aggregate-access log
before anything is returned.

403 ``aggregates_refused`` for an organisation that reads no aggregates (a school, an auditor …); 422 naming the
field for a measure that is not counted or a bad period.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from services.aggregates.service import Aggregates, AggregatesRefused
from services.http.deps import ApiError, HubDep, ReadDep, error_responses
from services.projections.municipal_counts import MEASURES

router = APIRouter(prefix="/v1", tags=["aggregates"])
MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"


class AggregateRow(BaseModel):
    key: str = Field(description="The municipality code, or the 圏域's name (by=region); 計 for the totals row.")
    name: str = Field(description="The municipality's or 圏域's name as the registry has it.")
    cells: list[int | float | None] = Field(
        description="One figure per month, then the row's total (see `total`); null when hidden (or a median of "
        "no interval). A median may be a half."
    )
    labels: list[str] = Field(
        description="The same as shown: the figure, '<5' (small), '秘匿' (secondary, or a median of fewer than 5 "
        "intervals) or '－' (a median of no interval)."
    )


class AggregatesOut(BaseModel):
    measure: str
    by: Literal["municipality", "region"]
    months: list[str] = Field(description="The columns, YYYY-MM; each row's last cell is its total.")
    rows: list[AggregateRow] = Field(description="The municipalities or 圏域, then the totals row (計).")
    own: str | None = Field(description="The reader's own municipality, whose counts are never hidden.")
    total: Literal["sum", "last", "median"] = Field(
        description="How each row's last cell is made: sum (of the months), last (a level at month end: the "
        "period's last month-end, never a sum of month-ends) or median (of the period's intervals)."
    )
    access_record: str = Field(description="The id of this request's record in the aggregate-access log.")


@router.get(
    "/aggregates",
    response_model=AggregatesOut,
    responses=error_responses(401, 403, 422),
    summary="Aggregates per municipality or 圏域 and month (集計), small cells hidden",
)
def aggregates(
    member: ReadDep,
    hub: HubDep,
    measure: Annotated[
        str, Query(min_length=1, max_length=200, description=f"One of {', '.join(MEASURES)}, or measure:breakdown.")
    ],
    first: Annotated[str, Query(alias="from", pattern=MONTH, description="The first month, YYYY-MM.")],
    last: Annotated[str, Query(alias="to", pattern=MONTH, description="The last month, YYYY-MM.")],
    by: Annotated[Literal["municipality", "region"], Query(description="Rows per municipality or per 圏域.")] = (
        "municipality"
    ),
) -> AggregatesOut:
    try:
        table = Aggregates(hub.store, hub.clock).table(
            org=member.org, user=member.user, measure=measure, first=first, last=last, by=by
        )
    except AggregatesRefused as refused:
        if refused.field is None:
            raise ApiError(
                403, "aggregates_refused", "this organisation reads no aggregates", refused.message_ja
            ) from None
        raise ApiError(
            422, "invalid_request", f"{refused.field}: not valid", refused.message_ja, field=refused.field
        ) from None
    names = [*table.municipalities, "計"]
    return AggregatesOut(
        measure=table.measure,
        by=by,
        months=table.months,
        rows=[
            AggregateRow(
                key=key,
                name=key if key == "計" else table.row_name(key),
                cells=[e.value for e in row],
                labels=[e.label for e in row],
            )
            for key, row in zip(names, table.entries, strict=True)
        ],
        own=table.own,
        total=table.total,
        access_record=table.record,
    )
