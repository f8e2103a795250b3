"""What the publish-time rules read about a child, kept apart from the child's record (``ChildFacts``).

``consent.admission`` and ``consent.authority`` decide whether an event may be published, and its direct
audience, from the child's earlier *facts* only (``consent.authority.is_fact``: registration and changes of
residence, cases and their members, closures and transfers, plans and consents, emergencies, erasure, and every
通告). Reading them from the child's whole stream meant loading and decrypting every event the hub holds about the
child; ``ChildFacts`` keeps just those events, one small stream per child, written by ``keep_child_facts`` (an
entry of ``services.projections.indexes.INDEXES``) in the same transaction as the event, so the publish rules see exactly what
the child's stream would show them. Every fact kept was published with authority (policy version 2): the publish
path rejects the others, and a store written under version 1 gets its facts rebuilt from the log with the
unauthorised ones left out (``facts_from_log``).

A fact holds the event's routing fields and the payload fields the policy reads (``events.kinds.POLICY_FIELDS``:
the residence code, the case, its type), nothing else. Like those fields of the child's own events it is sealed
under the hub's key, so that an erasure leaves the rules able to decide (policy.md, "Erasure": nothing about
the child is shown; events about an erased child are still admitted or refused by the same rules): a fact's
state names no child on purpose (``events.sealing.key_scope``).

Stores written before the facts existed get them from the log when opened (``rows_from_log``). Never decides
access.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from consent.authority import ACKNOWLEDGED_REPORT_KINDS, authorised_facts, is_fact
from consent.model import Settings
from events.direct_events import direct_events
from events.envelope_ids import published_in_log
from events.kinds import POLICY_FIELDS
from events.model import Org, Recorded
from events.sealing import stream_id
from events.store import HubStore, _CopiedOnWrite, recorded_from
from services.projections.unit_of_work import OneEventPerPublish, Projection, UnitOfWork


def fact_of(envelope: Mapping[str, Any], position: int) -> dict[str, Any]:
    """What a fact keeps of a recorded event (``envelope``, at ``position`` in the child's stream)."""
    fact = {
        key: envelope[key]
        for key in ("id", "kind", "source", "basis", "at", "function", "to")
        if envelope.get(key) is not None
    }
    fact["payload"] = {k: v for k, v in (envelope.get("payload") or {}).items() if k in POLICY_FIELDS}
    fact["position"] = position
    return fact


@direct_events
class ChildFacts(OneEventPerPublish, _CopiedOnWrite, Aggregate):
    """The child's facts that the publish-time rules read (``consent.authority.is_fact``), each published with
    authority, in the order the hub recorded them, as ``Recorded`` events with the child's positions.

    A publish adds each fact at once (``record``: a fact of an earlier event of the batch counts for a later one
    as it is admitted) and stores them as one ``FactsRecorded`` (``OneEventPerPublish``); stores written before
    hold one ``FactRecorded`` a fact, which replays as before."""

    FOLDED_EVENT = "FactsRecorded"
    FactRecorded: ClassVar[type[Any]]  # made by ``@event`` below; named here for ``folded_fields``

    @staticmethod
    def create_id(child: str) -> UUID:
        # "facts-v2": the facts of policy version 2, authorised only (version 1 kept fewer kinds under "facts:").
        return stream_id(f"facts-v2:{child}")

    def __init__(self, child: str):
        self.child = child
        self.entries: list[Recorded] = []

    @event("FactRecorded")
    def record(self, fact: dict) -> None:  # the state names no child: sealed under the hub's key (see above)
        """Add ``fact``, keeping ``entries`` in the child's stream order (a fact added by an upgrade, after
        later ones, goes to its place: ``report_facts_from_log``)."""
        self._insert(fact)

    @event("FactsRecorded")
    def record_all(self, facts: list[dict]) -> None:  # as ``record``: the state names no child (the hub's key)
        """Add ``facts`` in their order, each as ``record`` adds it: the replay of the one event that stands for a
        publish's ``FactRecorded`` events (made by ``fold_pending`` from them; the publish itself calls ``record``)."""
        for fact in facts:
            self._insert(fact)

    def _insert(self, fact: dict) -> None:
        entry = recorded_from(dict(fact, child=self.child), [], fact["position"])
        at = len(self.entries)
        while at and self.entries[at - 1].position > entry.position:
            at -= 1
        self.entries.insert(at, entry)

    def folded_fields(self, events: list[Any]) -> dict[str, Any] | None:
        """The ``FactsRecorded`` that stands for the ``FactRecorded`` events ``events`` (``OneEventPerPublish``):
        their facts in their order; ``None`` when one of them is another event."""
        if any(type(e) is not self.FactRecorded for e in events):
            return None
        return {"facts": [e.fact for e in events]}


def child_facts_needs(e: Recorded, orgs: Mapping[str, Org]) -> list[UUID]:
    """The child's facts, when ``e`` is a fact (``keep_child_facts`` adds it to them)."""
    return [ChildFacts.create_id(e.child)] if is_fact(e.kind, e.basis) else []


def keep_child_facts(e: Recorded, batch: UnitOfWork) -> None:
    """A fact (accepted, hence published with authority) is added to the child's facts (``CHILD_FACTS``)."""
    if is_fact(e.kind, e.basis):
        envelope = {
            "id": e.id,
            "kind": e.kind,
            "source": e.source,
            "basis": e.basis,
            "at": e.at.isoformat(),
            "function": e.function,
            "to": e.to,
            "payload": e.payload,
        }
        batch.get(ChildFacts, e.child).record(fact=fact_of(envelope, e.position))


CHILD_FACTS = Projection("what the publish rules read: residence, cases", child_facts_needs, keep_child_facts)


def facts_from_log(recorder: Any, mapper: Any, orgs: Mapping[str, Org], settings: Settings) -> Iterator[ChildFacts]:
    """The facts of every child, rebuilt from the log's published events (for a store written before they were
    kept, or under policy version 1): new aggregates, to be saved. Only the facts whose source had authority
    count (``consent.authority.authorised_facts``, under the registry ``orgs`` and ``settings``). The fields
    they keep are readable for erased children too."""
    by_child: dict[str, list[tuple[dict[str, Any], Recorded]]] = {}
    for published in published_in_log(recorder, mapper):
        for e in published:
            envelope = e.envelope
            if not is_fact(str(envelope.get("kind")), str(envelope.get("basis"))):
                continue
            fact = fact_of(envelope, e.originator_version - 1)
            by_child.setdefault(str(envelope["child"]), []).append(
                (fact, recorded_from(dict(fact, child=str(envelope["child"])), [], fact["position"]))
            )
    for child, facts in by_child.items():
        kept = {e.position for e in authorised_facts([e for _, e in facts], orgs, settings)}
        aggregate = ChildFacts(child)
        for fact, e in facts:
            if e.position in kept:
                aggregate.record(fact=fact)
        yield aggregate


def report_facts_from_log(store: HubStore) -> list[ChildFacts]:
    """Store format 5: the providers' reports (``visit.report``, ``service.usage`` under ``commissioned``) became
    facts with the meeting cycle (``report.acknowledged`` names one, ``consent.authority.report_acknowledged``),
    but a store written before kept none of the reports it already held, so they could not be acknowledged. The
    children's facts with the reports the log holds and the facts lack, added at their place in the stream
    order: the aggregates to save (each report is accepted, hence published with authority)."""
    reports: dict[str, list[dict[str, Any]]] = {}
    for published in published_in_log(store.recorder, store.mapper):
        for e in published:
            envelope = e.envelope
            if envelope.get("basis") == "commissioned" and envelope.get("kind") in ACKNOWLEDGED_REPORT_KINDS:
                reports.setdefault(str(envelope["child"]), []).append(fact_of(envelope, e.originator_version - 1))
    changed = []
    for child, facts in reports.items():
        aggregate = store.get_or_none(ChildFacts.create_id(child)) or ChildFacts(child)
        kept = {e.id for e in aggregate.entries}
        missing = [fact for fact in facts if fact["id"] not in kept]
        for fact in missing:
            aggregate.record(fact=fact)
        if missing:
            changed.append(aggregate)
    return changed
