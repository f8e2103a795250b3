"""Lookup streams kept in step with the log, written in the same transaction as the event that changes them.

A child's events live in the child's stream; some questions cross children ("which child is student 2026-0412
of this school?", "which children are on this centre's list?"). Each index is a function called for every
accepted event with the event as recorded and the publish ``Batch``; it updates its own aggregates through
``batch.get(...)`` so they are saved atomically with the event (or stages the event for an aggregate that records
a publish's entries at once, ``batch.stage``). Indexes never decide access.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from events.model import Recorded

if TYPE_CHECKING:
    from services.publishing.ingest import Batch

INDEXES: list[Callable[[Recorded, Batch], None]] = []

from services.projections.cases import keep_case_index  # noqa: E402  要対協 cases and plans per centre

INDEXES.append(keep_case_index)

from services.projections.identity_links import keep_identity_links  # noqa: E402  紐付け: (organisation, own number) -> child

INDEXES.append(keep_identity_links)

from services.projections.rosters import keep_school_lists  # noqa: E402  対象名簿・定期報告・日次出欠・連続欠席の通知

INDEXES.append(keep_school_lists)

from services.projections.admission_facts import keep_child_facts  # noqa: E402  what the publish rules read: residence, cases

INDEXES.append(keep_child_facts)
