"""Reading aggregates (``aggregates.md``, "Who reads what"): who may read which municipalities, the table of one
measure (municipalities × months, with margins) with small cells suppressed everywhere but in the reader's own
municipality, and one record per request in the aggregate-access log, stored before anything is returned.

Readers: a ``prefecture_office`` reads the municipalities whose centres are of its prefecture; a
``municipal_center`` its own municipality, unsuppressed, and — to compare, as the practice documents describe
municipalities asking for their neighbours' figures — the other municipalities of its prefecture, suppressed; a
``child_guidance_center`` the municipalities it covers; everyone else (an auditor, a school …) nothing.

``by="region"``: the rows are the 圏域 of the registry's regions (``services.administration.regions``), each
the sum of the readable municipalities in it (a municipality in no 圏域 under ``NO_REGION``), the margins' row the
prefecture's total; every row is another municipality's, so a sum of 1–4 is hidden like any other count, and so
is every sum that holds an entry hidden in the municipalities' table of the same query (else the sum minus the
shown municipalities would give it back); secondary suppression then runs on the 圏域 table.

**One pattern whatever the query (fixed frames).** Suppression per table alone would let two queries be
subtracted: April–June minus April–May of one municipality is June, which may be hidden; and two periods could
hide different secondary cells of one month. So every query is cut out of fixed tables, one per 年度 (April to
March): all the reader's municipalities (or 圏域) × the year's twelve months, with the 年度 totals and the months'
totals as margins, suppressed once (``_frame``). A query's cells and month totals are that table's entries, hidden
or shown as they are there, the same in every query. Its row totals are the 年度 totals when it asks for exactly one
年度; for any other period a row total of another municipality is shown only when none of its cells in the period
is hidden (it is then the sum of what is shown, and tells nothing new), and the grand total only when no month total
of the period is hidden. Every number a reader gets is thus an entry of one frame, hidden as the frame hides it,
or a sum of shown entries.

**Row totals (``Table.total``).** A flow's row total is the sum of its months (``sum``, as above). A level at
month end (open cases, reviews overdue …) is not summed: adding month-ends means nothing, so its row total is the
period's last month-end, the same entry as that month's cell, hidden where it is (``last``); the totals row's
likewise. A median (``MEDIANS``, days between reviews) is not a count: its cells are the median of the
intervals counted in the municipality and month, its row total the median of the period's intervals, its
column total that of every row's; another municipality's median (or a 圏域's) is shown only where at least 5
intervals (``THRESHOLD``) lie behind it, else hidden as ``秘匿`` (``median``). Medians are never added, so no
subtraction gives one back and no secondary suppression runs; a median of no interval is ``－``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from events.model import CENTER, JISO, Org
from events.store import HubStore
from services.administration.regions import Regions, regions
from services.administration.settings import SettingsSource
from services.aggregates import access_log
from services.aggregates.figures import kept, month_range
from services.aggregates.suppression import SECONDARY, SHOWN, THRESHOLD, Entry, suppress
from services.projections.municipal_counts import MEASURES, MEDIANS, MONTH_END, median_days

PREFECTURE = "prefecture_office"
BY = ("municipality", "region")
NO_REGION = "（圏域なし）"
Total = Literal["sum", "last", "median"]
TOTAL_JA: dict[Total, str] = {
    "sum": "計",
    "last": "期末",
    "median": "期間の中央値",
}  # the heading of a row total (Table.total)


def total_of(measure: str) -> Total:
    """How ``measure``'s row totals are made (see the module): ``sum``, ``last`` (a level) or ``median``."""
    base = measure.split(":", 1)[0]
    return "median" if base in MEDIANS else "last" if base in MONTH_END else "sum"


class AggregatesRefused(Exception):
    """The reader may read no aggregates (``field`` None), or asked for something that is not counted (``field``
    the query's field at fault: measure, from, to, by)."""

    def __init__(self, message_ja: str, field: str | None = None):
        super().__init__(message_ja)
        self.message_ja = message_ja
        self.field = field


@dataclass(frozen=True)
class Table:
    """One measure for some municipalities and months: ``entries`` rows × columns with margins (the last column
    the municipalities' totals over the months, the last row the months' totals; see ``suppression``)."""

    measure: str
    municipalities: list[str]  # the rows, in order (municipality codes, or 圏域 names when by == "region")
    months: list[str]  # the columns, in order
    entries: list[list[Entry]]
    own: str | None  # the reader's own municipality (shown whole), if it has one
    record: str  # the id of the access record
    by: str = "municipality"
    regions: Regions = Regions()
    total: Total = "sum"  # how the row totals are made (total_of): sum, last (a level's last month-end), median

    @property
    def total_ja(self) -> str:
        """The heading of the row totals' column (and of the totals row): 計, 期末 or 期間の中央値."""
        return TOTAL_JA[self.total]

    @property
    def totals_row_ja(self) -> str:
        """The heading of the totals row: 計 (the rows added up), or 全体 for a median (of every row's intervals)."""
        return "全体" if self.total == "median" else "計"

    def as_rows(self) -> list[list[str]]:
        """The table as text, as every output shows it (page, CSV, CLI): a header row (市町村 or 圏域, the months,
        the row totals' heading), one row per municipality or 圏域 by name, then the totals row."""
        header = ["市町村" if self.by == "municipality" else "圏域", *self.months, self.total_ja]
        body = [
            [self.row_name(m), *(e.label for e in row)]
            for m, row in zip(self.municipalities, self.entries, strict=False)
        ]
        return [header, *body, [self.totals_row_ja, *(e.label for e in self.entries[-1])]]

    def row_name(self, row: str) -> str:
        """A row's name: the municipality's name from the registry (its code when none), or the 圏域's."""
        return self.regions.name(row) if self.by == "municipality" else row


def readable(reader: Org, orgs: dict[str, Org]) -> tuple[list[str], str | None]:
    """The municipalities ``reader`` may read aggregates of, and its own (never suppressed)."""
    centres = {o.municipality: o for o in orgs.values() if o.type == CENTER and o.municipality}
    if reader.type == PREFECTURE and reader.prefecture:
        return sorted(m for m, o in centres.items() if o.prefecture == reader.prefecture), None
    if reader.type == CENTER and reader.municipality:
        same = {m for m, o in centres.items() if reader.prefecture and o.prefecture == reader.prefecture}
        return sorted(same | {reader.municipality}), reader.municipality
    if reader.type == JISO:
        return sorted(set(reader.covers)), None
    return [], None


class Aggregates:
    def __init__(self, store: HubStore, clock: Callable[[], datetime]):
        self.store = store
        self.clock = clock

    def table(
        self, *, org: str, user: str | None, measure: str, first: str, last: str, by: str = "municipality"
    ) -> Table:
        """The table of ``measure`` (a measure of ``MEASURES``, or ``measure:breakdown``) from month ``first`` to
        ``last`` for the municipalities ``org`` may read, suppressed; recorded before it is returned. A refusal
        is recorded too, then raised. ``by="region"`` sums the municipalities per 圏域 (see the module)."""
        query = {"measure": measure, "from": first, "to": last, "by": by}
        orgs = dict(self.store.registry().orgs)
        reader = orgs.get(org)
        municipalities, own = readable(reader, orgs) if reader is not None else ([], None)
        base = measure.split(":", 1)[0]
        refusal: AggregatesRefused | None = None
        if not municipalities:
            refusal = AggregatesRefused("この機関は集計を閲覧できません")
        elif base not in MEASURES:
            refusal = AggregatesRefused("集計項目が正しくありません", "measure")
        elif not _month(first):
            refusal = AggregatesRefused("開始月が正しくありません（YYYY-MM）", "from")
        elif not _month(last) or last < first:
            refusal = AggregatesRefused("終了月が正しくありません（YYYY-MM、開始月以後）", "to")
        elif by not in BY:
            refusal = AggregatesRefused("集計の単位は municipality（市町村）か region（圏域）です", "by")
        if refusal is not None:
            self._record(org, user, query, [], [], [], refusal.message_ja)
            raise refusal
        months = month_range(first, last)
        known = regions(self.store)
        own_rows = {i for i, m in enumerate(municipalities) if m == own}
        total = total_of(measure)
        if total == "median":
            rows, entries = self._medians(measure, months, municipalities, own_rows, known, by)
            own = own if by == "municipality" else None
            record = self._record(org, user, query, rows, months, entries, None)
            return Table(measure, rows, months, entries, own, record, by, known, total)
        frames: dict[
            str, tuple[list[str], list[list[Entry]], list[str]]
        ] = {}  # 年度 -> (its months, its suppressed grid)
        for year in dict.fromkeys(fiscal_year(m) for m in months):
            frames[year] = self._frame(measure, year, municipalities, own_rows, known, by)
        rows = municipalities if by == "municipality" else frames[fiscal_year(months[0])][2]
        if by == "region":
            own, own_rows = None, set()
        entries = _cut(frames, months, len(rows), own_rows)
        if total == "last":  # a level's total is its last month-end, hidden as that cell is (see the module)
            entries = [[*line[:-1], line[-2]] for line in entries]
        record = self._record(org, user, query, rows, months, entries, None)
        return Table(measure, rows, months, entries, own, record, by, known, total)

    def _medians(
        self, measure: str, months: list[str], municipalities: list[str], own_rows: set[int], known: Regions, by: str
    ) -> tuple[list[str], list[list[Entry]]]:
        """The rows and the grid of a median measure (see the module): per row and month the counts of each
        number of days, merged per 圏域 with ``by="region"``; a row total over the months, a column total over
        the rows."""
        prefix, _ = MEDIANS[measure.split(":", 1)[0]]
        counted: list[list[dict[str, int]]] = []
        for municipality in municipalities:
            figures = kept(self.store, municipality, through=months[-1])
            counted.append(
                [{k: n for k, n in figures.get(month, {}).items() if k.startswith(prefix)} for month in months]
            )
        rows = municipalities
        if by == "region":
            region_of = [known.region_of.get(m, NO_REGION) for m in municipalities]
            order = [r for names in known.regions.values() for r in names] + [NO_REGION]
            rows = [r for r in order if r in region_of]
            counted = [
                [
                    _merged(line[j] for line, r in zip(counted, region_of, strict=True) if r == region)
                    for j in range(len(months))
                ]
                for region in rows
            ]
            own_rows = set()
        own_all = bool(rows) and all(i in own_rows for i in range(len(rows)))
        grid = []
        for i, line in enumerate(counted):
            grid.append(
                [_median_entry([cell], prefix, i in own_rows) for cell in line]
                + [_median_entry(line, prefix, i in own_rows)]
            )
        columns = [[line[j] for line in counted] for j in range(len(months))]
        grid.append(
            [_median_entry(cells, prefix, own_all) for cells in columns]
            + [_median_entry([c for line in counted for c in line], prefix, own_all)]
        )
        return rows, grid

    def _frame(
        self, measure: str, year: str, municipalities: list[str], own_rows: set[int], known: Regions, by: str
    ) -> tuple[list[str], list[list[Entry]], list[str]]:
        """The fixed table of ``measure`` for the 年度 starting in April of ``year``, suppressed once (see the
        module): its months, its grid of entries with margins, and its rows' names."""
        months = month_range(f"{year}-04", f"{int(year) + 1:04d}-03")
        due_day = SettingsSource(self.store).current().monthly_report_due_day  # reports on time: the overdue rule
        cells = []
        for municipality in municipalities:
            figures = kept(self.store, municipality, through=months[-1], due_day=due_day)
            cells.append([figures.get(month, {}).get(measure, 0) for month in months])
        entries = suppress(cells, own_rows)
        if by == "region":  # a 圏域's sum is hidden where one of its municipalities' entries is (see the module)
            names, sums, force = _per_region(municipalities, cells, known, entries)
            return months, suppress(sums, set(), force), names
        return months, entries, municipalities

    def _record(
        self,
        org: str,
        user: str | None,
        query: dict[str, Any],
        municipalities: list[str],
        months: list[str],
        entries: list[list[Entry]],
        refusal: str | None,
    ) -> str:
        rid = str(uuid.uuid4())
        access_log.append(
            self.store,
            {
                "id": rid,
                "org": org,
                "user": user,
                "query": query,
                "at": self.clock().isoformat(),
                "rows": municipalities,
                "columns": months,
                "cells": [[e.label for e in row] for row in entries],
                "suppressed": [[i, j] for i, row in enumerate(entries) for j, e in enumerate(row) if e.status != SHOWN],
                "refused": refusal,
            },
        )
        return rid


def _merged(histograms: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for histogram in histograms:
        for key, n in histogram.items():
            out[key] = out.get(key, 0) + n
    return out


def _median_entry(histograms: list[dict[str, int]], prefix: str, own: bool) -> Entry:
    """The median of the intervals counted in ``histograms``: shown in the reader's own row, or where at least
    ``THRESHOLD`` intervals lie behind it, else hidden (秘匿); ``－`` when there is none."""
    merged = _merged(histograms)
    n = sum(merged.values())
    if n and not own and n < THRESHOLD:
        return Entry(None, SECONDARY)
    return Entry(median_days(merged, prefix))


def fiscal_year(month: str) -> str:
    """The 年度 of ``month`` (``YYYY-MM``), by the year of its April."""
    year = int(month[:4])
    return f"{year - 1 if int(month[5:7]) < 4 else year:04d}"


def _cut(
    frames: dict[str, tuple[list[str], list[list[Entry]], list[str]]],
    months: list[str],
    rows: int,
    own_rows: set[int],
) -> list[list[Entry]]:
    """The query's grid (``rows`` + margins) × (``months`` + total), cut out of the fixed frames: cells and month
    totals as the frames have them; row totals and the grand total as the module says."""
    grid: list[list[Entry]] = []
    for i in range(rows + 1):
        line = []
        for month in months:
            frame_months, entries, _ = frames[fiscal_year(month)]
            line.append(entries[i][frame_months.index(month)])
        grid.append(line)
    [only] = frames.values() if len(frames) == 1 else [None]
    whole_year = only is not None and only[0] == months
    for i, line in enumerate(grid):
        if whole_year:
            assert only is not None
            line.append(only[1][i][-1])
            continue
        hidden = any(e.value is None for e in line)
        total = sum(e.value or 0 for e in line)
        shown = i in own_rows or not hidden or (i == rows and all(r in own_rows for r in range(rows)))
        line.append(Entry(total) if shown else Entry(None, SECONDARY))
    return grid


def _month(text: str) -> bool:
    return len(text) == 7 and text[4] == "-" and text[:4].isdigit() and text[5:].isdigit() and "01" <= text[5:] <= "12"


def _per_region(
    municipalities: list[str], cells: list[list[int]], known: Regions, entries: list[list[Entry]]
) -> tuple[list[str], list[list[int]], set[tuple[int, int]]]:
    """The rows summed per 圏域, in the registry's order (then ``NO_REGION`` for municipalities in none), and the
    entries of that grid to hide whatever their sum: those holding an entry hidden in the municipalities' table
    ``entries`` (its row totals, and its totals row as the prefecture's), so that a 圏域's sum minus the shown
    municipalities never gives a hidden count back."""
    order = [r for names in known.regions.values() for r in names] + [NO_REGION]
    sums: dict[str, list[int]] = {}
    hidden: dict[str, set[int]] = {}
    for i, (municipality, row) in enumerate(zip(municipalities, cells, strict=True)):
        region = known.region_of.get(municipality, NO_REGION)
        total = sums.setdefault(region, [0] * len(row))
        for j, n in enumerate(row):
            total[j] += n
        hidden.setdefault(region, set()).update(j for j, e in enumerate(entries[i]) if e.status != SHOWN)
    names = [r for r in order if r in sums]
    force = {(i, j) for i, r in enumerate(names) for j in hidden[r]}
    force |= {(len(names), j) for j, e in enumerate(entries[-1]) if e.status != SHOWN}
    return names, [sums[r] for r in names], force
