"""Reading aggregates (``aggregates.md``, "Who reads what"): who may read which municipalities, the table of one
measure (municipalities × months, with margins) with small cells suppressed everywhere but in the reader's own
municipality, and one record per request in the aggregate-access log, stored before anything is returned.

Readers: a ``prefecture_office`` reads the municipalities whose centres are of its prefecture; a
``municipal_center`` its own municipality, unsuppressed, and — to compare, as the practice documents describe
municipalities asking for their neighbours' figures — the other municipalities of its prefecture, suppressed; a
``child_guidance_center`` the municipalities it covers; everyone else (an auditor, a school …) nothing.

Not built yet: sums per 圏域 (``by=region``: the registry does not name regions yet).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from events.model import CENTER, JISO, Org
from events.store import HubStore
from services.aggregates import access_log
from services.aggregates.figures import kept, month_range
from services.aggregates.suppression import SHOWN, Entry, suppress
from services.projections.municipal_counts import MEASURES

PREFECTURE = "prefecture_office"


class AggregatesRefused(Exception):
    """The reader may read no aggregates, or asked for something that is not counted."""


@dataclass(frozen=True)
class Table:
    """One measure for some municipalities and months: ``entries`` rows × columns with margins (the last column
    the municipalities' totals over the months, the last row the months' totals; see ``suppression``)."""

    measure: str
    municipalities: list[str]  # the rows, in order
    months: list[str]  # the columns, in order
    entries: list[list[Entry]]
    own: str | None  # the reader's own municipality (shown whole), if it has one
    record: str  # the id of the access record


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

    def table(self, *, org: str, user: str | None, measure: str, first: str, last: str) -> Table:
        """The table of ``measure`` (a measure of ``MEASURES``, or ``measure:breakdown``) from month ``first`` to
        ``last`` for the municipalities ``org`` may read, suppressed; recorded before it is returned. A refusal
        is recorded too, then raised."""
        query = {"measure": measure, "from": first, "to": last, "by": "municipality"}
        orgs = dict(self.store.registry().orgs)
        reader = orgs.get(org)
        municipalities, own = readable(reader, orgs) if reader is not None else ([], None)
        base = measure.split(":", 1)[0]
        refusal = None
        if not municipalities:
            refusal = "この機関は集計を閲覧できません"
        elif base not in MEASURES:
            refusal = "集計項目が正しくありません"
        elif not (first <= last) or len(first) != 7 or len(last) != 7:
            refusal = "期間が正しくありません（YYYY-MM）"
        if refusal is not None:
            self._record(org, user, query, [], [], [], refusal)
            raise AggregatesRefused(refusal)
        months = month_range(first, last)
        cells = []
        for municipality in municipalities:
            figures = kept(self.store, municipality, through=last)
            cells.append([figures.get(month, {}).get(measure, 0) for month in months])
        own_rows = {i for i, m in enumerate(municipalities) if m == own}
        entries = suppress(cells, own_rows)
        record = self._record(org, user, query, municipalities, months, entries, None)
        return Table(measure, municipalities, months, entries, own, record)

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
