"""The planners' pages (集計, ``aggregates.md``) for prefecture offices, centres and 児童相談所: one measure per
municipality and month (a table with the municipalities side by side, a month-series chart drawn on the server
as inline SVG, CSV for Excel), and the spring-survey table of a 年度 (one row per municipality, the year's
figures), each also as CSV.

Every table is read through ``services.aggregates.service.Aggregates`` with the signed-in person's name, so each
request is decided there (a school or an auditor is refused) and recorded in the aggregate-access log before
anything is shown; small cells of other municipalities arrive hidden. No page names a child, a case or a person.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import date
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from events.clock import JST
from events.labels import MEASURE_JA
from services.aggregates.figures import month_range
from services.aggregates.service import Aggregates, AggregatesRefused, Table
from services.aggregates.suppression import SHOWN
from services.hub import Hub
from services.projections.municipal_counts import MEASURES, MONTH_END
from services.web import words
from services.web.pages import page, to_signin
from services.web.session import Person, signed_in

router = APIRouter(include_in_schema=False)

SURVEY = (  # the spring survey's columns (都道府県の市町村調査), in its order
    "cases.registered",
    "cases.closed",
    "cases.open",
    "reviews.cases",
    "reviews.overdue",
    "plans.created",
    "consents.granted",
    "reports.received",
    "reports.missing",
    "alerts",
    "concerns",
    "notifications",
    "transfers.sent",
    "emergencies.declared",
    "services.referrals",
    "inquiries.sent",
)
HIDDEN_HEIGHT = 16  # a hidden cell's box: the same for every hidden cell, so that it tells no count
SERIES = 8  # the chart's colours (series-0 … series-7 in tsunagu.css); a ninth municipality takes the first again
TOTAL = "計"


def measure_ja(measure: str) -> str:
    return MEASURE_JA.get(measure, measure)


def month_ja(month: str) -> str:
    """2026-05 as 令和8年5月."""
    return words.wareki(date(int(month[:4]), int(month[5:]), 1), with_time=False).rsplit("月", 1)[0] + "月"


def fiscal_year(today: date) -> int:
    """The 年度 a day is in (April to March)."""
    return today.year if today.month >= 4 else today.year - 1


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: int
    label: str  # what the bar's title says (its text alternative)
    kind: str = "value"  # value | zero (a mark on the base line) | hidden (秘匿: a hatched box, its height no count)


@dataclass(frozen=True)
class Chart:
    """The month-series chart: per month, one bar per municipality side by side. A hidden cell (``<5`` or 秘匿)
    is drawn as a hatched box of one fixed height (``HIDDEN_HEIGHT``), never as a bar of a count, and its title
    says 秘匿; a zero is a mark on the base line."""

    width: int
    height: int
    bars: list[Bar]
    months: list[tuple[float, str]]  # x of each month's label, its text
    ticks: list[tuple[float, int]]  # y of each scale line, its value
    base: float


def chart(table: Table) -> Chart:
    """The SVG geometry of ``table``'s cells (not its margins)."""
    rows = table.entries[:-1]
    months = table.months
    top = math.ceil(max([e.value or 0 for row in rows for e in row[:-1]] + [1]))  # a median may be a half
    step = max(1, -(-top // 4))
    scale_top = step * 4
    left, plot_h, base = 48, 200, 220.0
    group = max(24, 12 * len(rows) + 12)
    width = left + group * len(months) + 16
    bars = []
    for j, month in enumerate(months):
        for i, (name, row) in enumerate(zip(table.municipalities, rows, strict=True)):
            entry = row[j]
            x = left + j * group + 6 + i * 12
            label = f"{table.row_name(name)} {month_ja(month)}: {entry.label}"
            if entry.status != SHOWN:
                label = f"{table.row_name(name)} {month_ja(month)}: 秘匿（{entry.label}、件数は示しません）"
                bars.append(Bar(x, base - HIDDEN_HEIGHT, 10, HIDDEN_HEIGHT, i % SERIES, label, "hidden"))
                continue
            if not entry.value:
                bars.append(Bar(x, base - 2, 10, 2, i % SERIES, label, "zero"))
                continue
            height = plot_h * entry.value / scale_top
            bars.append(Bar(x, base - height, 10, height, i % SERIES, label))
    return Chart(
        width=width,
        height=260,
        bars=bars,
        months=[(left + j * group + group / 2, month[2:].replace("-", "/")) for j, month in enumerate(months)],
        ticks=[(base - plot_h * k / 4, step * k) for k in range(5)],
        base=base,
    )


def csv_response(rows: list[list[str]], filename: str) -> Response:
    """CSV for Excel: UTF-8 with a BOM, CRLF lines."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return Response(
        ("\ufeff" + buffer.getvalue()).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _refused(request: Request, person: Person, refused: AggregatesRefused) -> Response:
    return page(
        request,
        "web/error.html",
        person,
        status_code=403 if refused.field is None else 422,
        title="集計を表示できません",
        message=f"{refused.message_ja}（この要求も記録されています）。",
    )


def _period(hub: Hub, first: str | None, last: str | None) -> tuple[str, str]:
    today = hub.clock().astimezone(JST).date()
    this = f"{today.year:04d}-{today.month:02d}"
    default_first = f"{today.year - 1:04d}-{today.month:02d}"
    return first or month_range(default_first, this)[1], last or this


def _read(request: Request, person: Person, measure: str, first: str, last: str, by: str) -> Table:
    hub: Hub = request.app.state.hub
    return Aggregates(hub.store, hub.clock).table(
        org=person.org, user=person.user, measure=measure, first=first, last=last, by=by
    )


@router.get("/ui/aggregates")
def aggregates_page(
    request: Request,
    measure: str = Query(default="cases.registered", max_length=100),
    first: str | None = Query(default=None, alias="from", max_length=7),
    last: str | None = Query(default=None, alias="to", max_length=7),
    by: str = Query(default="municipality", max_length=20),
    download: str | None = Query(default=None, max_length=10),
) -> Response:
    """One measure per municipality (or 圏域) and month: a table, a chart, and ``?download=csv`` for Excel."""
    person = signed_in(request)
    if person is None:
        return to_signin()
    first, last = _period(request.app.state.hub, first, last)
    try:
        table = _read(request, person, measure, first, last, by)
    except AggregatesRefused as refused:
        return _refused(request, person, refused)
    if download == "csv":
        return csv_response(table.as_rows(), f"aggregates-{measure}-{first}-{last}.csv")
    query: dict[str, Any] = {"measure": measure, "from": first, "to": last, "by": by}
    return page(
        request,
        "web/aggregates.html",
        person,
        title="集計",
        table=table,
        rows=table.as_rows(),
        chart=chart(table),
        measures=[(m, measure_ja(m)) for m in MEASURES],
        query=query,
        measure_name=measure_ja(measure),
        month_ja=month_ja,
        series=SERIES,
    )


@router.get("/ui/aggregates/survey")
def survey_page(
    request: Request,
    year: int | None = Query(default=None, ge=2000, le=2100),
    download: str | None = Query(default=None, max_length=10),
) -> Response:
    """The spring survey of a 年度 (April to March): one row per municipality, one column per figure of the year
    (a level, such as open cases, at the year's end); ``?download=csv`` for Excel. One recorded request per
    figure, each suppressed as its own table. A flow is the 年度's whole table (its totals shown wherever the
    fixed frame shows them); a state at month end is read at the 年度's end, or, for a 年度 in progress, at this
    month's end: the months to come hold only what is written ahead for them (reviews that will be overdue if
    nothing happens), which is no figure yet. The measures counted ahead into later months as flows (plans'
    91 days, reports expected) are left to the month table, where their months are named."""
    person = signed_in(request)
    if person is None:
        return to_signin()
    hub: Hub = request.app.state.hub
    today = hub.clock().astimezone(JST).date()
    year = year or fiscal_year(today)
    first, last = f"{year:04d}-04", f"{year + 1:04d}-03"
    in_progress = today <= date(year + 1, 3, 31)
    at = max(first, min(last, f"{today.year:04d}-{today.month:02d}")) if in_progress else last
    columns: list[Table] = []
    try:
        for measure in SURVEY:
            level = measure in MONTH_END  # a state at month end is read at one month's end; a flow the whole year
            columns.append(_read(request, person, measure, *((at, at) if level else (first, last)), "municipality"))
    except AggregatesRefused as refused:
        return _refused(request, person, refused)
    municipalities = columns[0].municipalities
    at_end = "（今月末）" if in_progress else "（年度末）"
    header = ["市町村", *(measure_ja(m) + (at_end if m in MONTH_END else "") for m in SURVEY)]
    body = [[columns[0].row_name(m), *(t.entries[i][-1].label for t in columns)] for i, m in enumerate(municipalities)]
    rows = [header, *body, [TOTAL, *(t.entries[-1][-1].label for t in columns)]]
    if download == "csv":
        return csv_response(rows, f"survey-{year}.csv")
    return page(
        request,
        "web/aggregates_survey.html",
        person,
        title="市町村調査表（年度の集計）",
        rows=rows,
        year=year,
        years=list(range(fiscal_year(today), fiscal_year(today) - 4, -1)),
        in_progress=in_progress,
        records=[t.record for t in columns],
    )
