"""HTTP routes for what an organisation shared, and who read it (共有した記録の閲覧状況), under ``/v1/shared``.

The caller's own organisation (from the token) is the publisher; scope ``read``. Metadata only, never content
(``services.audit.shared_reads`` says who sees what: a centre or 児童相談所 every read of what it published by
another organisation; any other publisher only its addressees' first reads, as receipts).

- ``GET /v1/shared/reads?child&from&to&page&per_page``: the latest reads, newest first, one page. ``from`` and
  ``to`` bound the time of the read (``YYYY-MM-DD``, a day in Japan, ``to`` included; or ISO date-times). A child
  the caller never published about gives the same empty page as an unknown id.
- ``GET /v1/shared/events/{event_id}/reads``: one event the caller published, and who read it; 404 alike for an
  unknown event and another organisation's.

These answers are not reads of a child (no content of any record): they are not recorded as timeline reads.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.concurrency import run_in_threadpool

from services.audit.queries import NotFound
from services.audit.shared_reads import MAX_PER_PAGE, EventReads, Filters, SharedReads, SharedReadsPage
from services.http.deps import ApiError, HubDep, ReadDep, error_responses

router = APIRouter(prefix="/v1/shared", tags=["what we shared"])


@router.get(
    "/reads",
    response_model=SharedReadsPage,
    responses=error_responses(401, 403, 422),
    summary="Who read what we shared (共有した記録の閲覧状況)",
)
async def shared_reads(
    member: ReadDep,
    hub: HubDep,
    child: Annotated[str | None, Query(max_length=200, description="Only this child's (hub id).")] = None,
    since: Annotated[
        str | None, Query(alias="from", max_length=40, description="Reads from this day (YYYY-MM-DD) or date-time.")
    ] = None,
    until: Annotated[
        str | None, Query(alias="to", max_length=40, description="Reads up to this day, included, or date-time.")
    ] = None,
    page: Annotated[int, Query(ge=1, le=100000, description="The page, from 1.")] = 1,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE, description="Rows per page.")] = 50,
) -> SharedReadsPage:
    filters = Filters.of(child, since, until)  # Rejected: 422 naming from / to
    return await run_in_threadpool(SharedReads(hub.store).latest, member.org, filters, page=page, per_page=per_page)


@router.get(
    "/events/{event_id}/reads",
    response_model=EventReads,
    responses=error_responses(401, 403, 404, 422),
    summary="Who read one event we published (記録ごとの閲覧状況)",
)
async def event_reads(
    member: ReadDep,
    hub: HubDep,
    event_id: Annotated[str, Path(min_length=1, max_length=200, description="The event's id.")],
) -> EventReads:
    try:
        return await run_in_threadpool(SharedReads(hub.store).of_event, member.org, event_id)
    except NotFound as error:
        raise ApiError(404, error.code, error.message, error.message_ja) from None
