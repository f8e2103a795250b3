"""Step 5 of a publish: apply every projection (``services.projections.indexes.INDEXES``) to a recorded event,
in the same transaction. Each projection says beforehand which aggregates it needs (``projection_needs``), so
that a batch loads them all in one query."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from uuid import UUID

from events.model import Org, Recorded
from services.projections.indexes import INDEXES
from services.publishing.batch import Batch


def projection_needs(e: Recorded, orgs: Mapping[str, Org]) -> Iterable[UUID]:
    """The aggregates the projections will read or write for ``e`` once it is recorded."""
    for projection in INDEXES:
        yield from projection.needs(e, orgs)


def project(entry: Recorded, batch: Batch) -> None:
    """Keep every projection in step with the recorded ``entry``, through the batch."""
    for projection in INDEXES:
        projection.apply(entry, batch)
