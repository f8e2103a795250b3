"""Which children each organisation published about (発信元別の児童索引), kept with ``INDEXES``.

A lookup only: per publishing organisation (an event's ``source``), the hub ids of the children it published at
least one event about, with the ``at`` of the first. It answers "whose records hold what this organisation
shared?" for ``services.audit.shared_reads`` (what we shared, and who read it) without scanning the log: that
service then loads only those children's streams and access logs. Identifiers only; it never decides access.

The children an organisation published about for the first time in one publish are recorded as one event
(``ChildrenIndexed``, staged by ``Batch.stage``), each entry carrying the child's id and sealed under the child's
key (``events.sealing.PER_CHILD``), so an erased child leaves the index with its key. Stores written before hold
one event per (organisation, child) (``ChildIndexed``, sealed whole under the child's key), and replay as they
did. Written in the publish transaction from the events as recorded (``services/projections/indexes.py``); a
store written before it was kept gets it from the log (``published_children_from_log``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from events.direct_events import direct_events
from events.envelope_ids import published_in_log
from events.model import Org, Recorded
from events.sealing import stream_id
from events.store import HubStore, _CopiedOnWrite
from services.projections.unit_of_work import Projection, UnitOfWork


@direct_events
class PublishedChildren(_CopiedOnWrite, Aggregate):
    """The children one organisation published about: child -> the ``at`` of its first event about the child.
    Values are replaced, never changed in place (the store copies aggregates one level deep)."""

    @staticmethod
    def create_id(source: str) -> UUID:
        return stream_id(f"published-children:{source}")

    def __init__(self, source: str):
        self.source = source
        self.children: dict[str, str] = {}

    @event("ChildrenIndexed")
    def add_children(self, per_child: list) -> None:
        """The children one publish named for the first time, in order, each with the ``at`` of its first event;
        each entry is sealed under its child's key (``events.sealing.PER_CHILD``), and left out once that child
        is erased."""
        for entry in per_child:
            self.children[entry["child"]] = entry["at"]

    def record_staged(self, events: list[Recorded]) -> None:
        """Record the children of the events a publish staged for this organisation (``Batch.stage``) that it had
        not published about before, as one event: the first event's ``at`` for each. It replaces one
        ``add_child`` per new child (a school's first monthly file: one stored event per row)."""
        first: dict[str, str] = {}
        for e in events:
            if e.child not in self.children and e.child not in first:
                first[e.child] = e.at.isoformat()
        if first:
            self.add_children(per_child=[{"child": child, "at": at} for child, at in first.items()])

    # One event per child: what stores written before ``add_children`` hold, and what a rebuild from the log
    # (``published_children_from_log``) makes.
    @event("ChildIndexed")
    def add_child(self, child: str, at: str) -> None:
        self.children[child] = at


def published_needs(e: Recorded, orgs: Mapping[str, Org]) -> list[UUID]:
    """The aggregate ``keep_published`` reads or writes for ``e``: its source's index."""
    return [PublishedChildren.create_id(e.source)] if e.child else []


def keep_published(e: Recorded, batch: UnitOfWork) -> None:
    """Index: source -> the children it published about (``PUBLISHED_CHILDREN``)."""
    if not e.child:
        return
    batch.stage(PublishedChildren, (e.source,), e)  # a publish's new children of one source: one event


PUBLISHED_CHILDREN = Projection("children per publishing organisation", published_needs, keep_published)


def published_children(store: HubStore, source: str) -> dict[str, str]:
    """The children ``source`` published about (child -> first ``at``); empty when it published nothing."""
    found = store.peek(PublishedChildren.create_id(source))
    return dict(found.children) if found is not None else {}


def published_children_from_log(recorder: Any, mapper: Any) -> list[PublishedChildren]:
    """The index rebuilt from the log (a store written before it was kept)."""
    indexes: dict[str, PublishedChildren] = {}
    for published in published_in_log(recorder, mapper):
        for e in published:
            envelope = e.envelope
            source, child = envelope.get("source"), envelope.get("child")
            if not isinstance(source, str) or not isinstance(child, str) or not child:
                continue
            index = indexes.setdefault(source, PublishedChildren(source))
            if child not in index.children:
                index.add_child(child=child, at=str(envelope.get("at", "")))
    return list(indexes.values())
