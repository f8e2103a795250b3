"""What the publish-time rules read about a child, kept apart from the child's record (``ChildFacts``).

``consent.admission`` decides an event's direct audience from the child's earlier events of a few kinds only
(``ADMISSION_FACTS``: registration and changes of residence, registered cases). Reading them from the child's
whole stream meant loading and decrypting every event the hub holds about the child, for every concern under
21-10-5 from a child the process had not cached; ``ChildFacts`` keeps just those events, one small stream per
child, written by ``keep_child_facts`` (an entry of ``services.indexes.INDEXES``) in the same transaction as the
event, so the publish rules see exactly what the child's stream would show them.

A fact holds the event's routing fields and the payload fields the policy reads (``consent.facts.POLICY_FIELDS``:
the residence code, the case, its type), nothing else. Like those fields of the child's own events it is sealed
under the hub's key, so that an erasure leaves the rules able to decide (policy.md, "Erasure": nothing about
the child is shown; events about an erased child are still admitted or refused by the same rules): a fact's
state names no child on purpose (``events.sealing.key_scope``).

Stores written before the facts existed get them from the log when opened (``rows_from_log``). Never decides
access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Mapping
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from consent.admission import ADMISSION_FACTS
from consent.facts import POLICY_FIELDS
from consent.model import Recorded
from events.envelope_ids import published_in_log
from events.sealing import stream_id
from events.store import _CopiedOnWrite, recorded_from

if TYPE_CHECKING:
    from services.ingest import Batch


def fact_of(envelope: Mapping[str, Any], position: int) -> dict[str, Any]:
    """What a fact keeps of a recorded event (``envelope``, at ``position`` in the child's stream)."""
    fact = {key: envelope[key] for key in ("id", "kind", "source", "basis", "at", "function", "to")
            if envelope.get(key) is not None}
    fact["payload"] = {k: v for k, v in (envelope.get("payload") or {}).items() if k in POLICY_FIELDS}
    fact["position"] = position
    return fact


class ChildFacts(_CopiedOnWrite, Aggregate):
    """The child's events that the publish-time rules read (``consent.admission.ADMISSION_FACTS``), in the
    order the hub recorded them, as ``Recorded`` events with the child's positions."""

    @staticmethod
    def create_id(child: str) -> UUID:
        return stream_id(f"facts:{child}")

    def __init__(self, child: str):
        self.child = child
        self.entries: list[Recorded] = []

    @event("FactRecorded")
    def record(self, fact: dict) -> None:  # the state names no child: sealed under the hub's key (see above)
        self.entries.append(recorded_from(dict(fact, child=self.child), [], fact["position"]))


def keep_child_facts(e: Recorded, batch: Batch) -> None:
    """The ``INDEXES`` entry: an event of an admission-fact kind is added to the child's facts."""
    if e.kind in ADMISSION_FACTS:
        envelope = {"id": e.id, "kind": e.kind, "source": e.source, "basis": e.basis, "at": e.at.isoformat(),
                    "function": e.function, "to": e.to, "payload": e.payload}
        batch.get(ChildFacts, e.child).record(fact=fact_of(envelope, e.position))


def facts_from_log(recorder: Any, mapper: Any) -> Iterator[ChildFacts]:
    """The facts of every child, rebuilt from the log's published events (for a store written before they were
    kept): new aggregates, to be saved. The fields they keep are readable for erased children too."""
    by_child: dict[str, ChildFacts] = {}
    for published in published_in_log(recorder, mapper):
        for e in published:
            if e.envelope.get("kind") not in ADMISSION_FACTS:
                continue
            child = str(e.envelope["child"])
            facts = by_child.get(child)
            if facts is None:
                facts = by_child[child] = ChildFacts(child)
            facts.record(fact=fact_of(e.envelope, e.originator_version - 1))
    yield from by_child.values()
