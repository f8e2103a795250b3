"""Lookup streams kept in step with the log, written in the same transaction as the event that changes them.

A child's events live in the child's stream; some questions cross children ("which child is student 2026-0412
of this school?", "which children are on this centre's list?"). Each index is a function called for every
accepted event with the event as recorded and the publish ``Batch``; it updates its own aggregates through
``batch.get(...)`` so they are saved atomically with the event. Indexes never decide access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from consent.model import Recorded

if TYPE_CHECKING:
    from services.ingest import Batch

INDEXES: list[Callable[[Recorded, "Batch"], None]] = []
