"""Households (世帯, meetings-and-services.md §3): which children a centre linked into each of its households, over
time, kept with ``INDEXES`` in the publish transaction.

- ``Household``, per (centre, household id): every ``household.joined`` / ``household.left`` of it, in the order the
  hub recorded them. A household id is the centre's own (the events are ``internal``), so two centres using the
  same id keep two households. Who is a member at ``t`` is decided like a case membership (``consent.facts``): the
  child's latest join or leave with ``at`` <= ``t`` (ties: recorded last), so events arriving out of order count
  by their ``at``.
- ``ChildHouseholds``, per child: the (centre, household) pairs the child was ever linked into, so that a child's
  page finds its households without scanning.

Each change names its child, so it is sealed under the child's key (``events.sealing``) and gone once the child
is erased: an erased child leaves every household. Identifiers and times only, never content; never decides
access (every sibling shown is read through the read service: ``services.casework.households``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from events.direct_events import direct_events
from events.envelope_ids import published_in_log
from events.model import Org, Recorded
from events.sealing import stream_id
from events.store import HubStore, _CopiedOnWrite
from services.projections.unit_of_work import Projection, UnitOfWork

HOUSEHOLD_KINDS = frozenset({"household.joined", "household.left"})


@dataclass(frozen=True)
class Member:
    """A child in a household at some time: since when (the ``at`` of the join that holds), and as what."""

    child: str
    relation: str | None
    since: str
    event: str


@direct_events
class Household(_CopiedOnWrite, Aggregate):
    """One household of one centre: the joins and leaves of its children (values replaced, never changed)."""

    @staticmethod
    def create_id(centre: str, household: str) -> UUID:
        return stream_id(f"household:{centre}\x1f{household}")

    def __init__(self, centre: str, household: str):
        self.centre = centre
        self.household = household
        self.changes: tuple[dict[str, Any], ...] = ()  # {child, joined, at, relation, event}, in log order

    @event("MembershipChanged")
    def change(self, child: str, joined: bool, at: str, relation: str | None, event_id: str) -> None:
        """A join or leave; names the child, so it is sealed under the child's key."""
        self.changes = (
            *self.changes,
            {"child": child, "joined": joined, "at": at, "relation": relation, "event": event_id},
        )

    def members(self, t: datetime) -> list[Member]:
        """The children in the household at ``t``, in the order they first joined."""
        latest: dict[str, tuple[datetime, int, dict[str, Any]]] = {}
        for n, c in enumerate(self.changes):
            at = datetime.fromisoformat(c["at"])
            if at <= t and (c["child"] not in latest or (at, n) >= latest[c["child"]][:2]):
                latest[c["child"]] = (at, n, c)
        first = dict.fromkeys(c["child"] for c in self.changes if c["joined"])
        return [
            Member(child, c["relation"], c["at"], c["event"])
            for child in first
            if child in latest and (c := latest[child][2])["joined"]
        ]

    def is_member(self, child: str, t: datetime) -> bool:
        return any(m.child == child for m in self.members(t))


@direct_events
class ChildHouseholds(_CopiedOnWrite, Aggregate):
    """The households a child was ever linked into, as (centre, household id) pairs."""

    @staticmethod
    def create_id(child: str) -> UUID:
        return stream_id(f"child-households:{child}")

    def __init__(self, child: str):
        self.child = child
        self.households: tuple[tuple[str, str], ...] = ()

    @event("HouseholdAdded")
    def add(self, centre: str, household: str, child: str) -> None:
        if (centre, household) not in self.households:
            self.households = (*self.households, (centre, household))


def _household_of(e: Recorded) -> str | None:
    value = e.payload.get("household")
    return str(value) if value not in (None, "") else None


def household_needs(e: Recorded, orgs: Mapping[str, Org]) -> list[UUID]:
    """The household and the child's list of households, for a household event."""
    household = _household_of(e) if e.kind in HOUSEHOLD_KINDS else None
    if household is None:
        return []
    return [Household.create_id(e.source, household), ChildHouseholds.create_id(e.child)]


def keep_households(e: Recorded, batch: UnitOfWork) -> None:
    """Record an accepted ``household.joined`` / ``household.left`` on its household and the child's list."""
    household = _household_of(e) if e.kind in HOUSEHOLD_KINDS else None
    if household is None:
        return
    _apply(
        batch.get(Household, e.source, household),
        batch.get(ChildHouseholds, e.child),
        e.child,
        e.kind,
        e.at.isoformat(),
        e.payload.get("relation"),
        e.id,
    )


def _apply(
    household: Household, mine: ChildHouseholds, child: str, kind: str, at: str, relation: Any, event_id: str
) -> None:
    household.change(
        child=child,
        joined=kind == "household.joined",
        at=at,
        relation=str(relation) if relation not in (None, "") else None,
        event_id=event_id,
    )
    mine.add(centre=household.centre, household=household.household, child=child)


HOUSEHOLDS = Projection("世帯: the children of each centre's households", household_needs, keep_households)


# --- Lookups (identifiers only) ---------------------------------------------------------------------------


def household(store: HubStore, centre: str, household_id: str) -> Household:
    """The household for reading (an empty one when nothing was recorded)."""
    found = store.peek(Household.create_id(centre, household_id))
    return found if found is not None else Household(centre, household_id)


def households_of(store: HubStore, child: str, t: datetime, *, centre: str | None = None) -> list[Household]:
    """The households ``child`` is a member of at ``t`` (of ``centre`` only, if given)."""
    found = store.peek(ChildHouseholds.create_id(child))
    pairs = found.households if found is not None else ()
    out = [household(store, c, h) for c, h in pairs if centre is None or c == centre]
    return [h for h in out if h.is_member(child, t)]


def households_from_log(recorder: Any, mapper: Any) -> Iterator[Household | ChildHouseholds]:
    """The households rebuilt from the log's published events, as new aggregates to save (for a store whose
    index was lost or written before it was kept). Events whose content is gone (an erased child) are left out."""
    households: dict[tuple[str, str], Household] = {}
    children: dict[str, ChildHouseholds] = {}
    for published in published_in_log(recorder, mapper):
        for e in published:
            envelope = e.envelope
            payload = envelope.get("payload") or {}
            if envelope.get("kind") not in HOUSEHOLD_KINDS or not isinstance(payload, dict):
                continue
            household_id = payload.get("household")
            if household_id in (None, ""):
                continue
            source, child = str(envelope["source"]), str(envelope["child"])
            key = (source, str(household_id))
            if key not in households:
                households[key] = Household(*key)
            if child not in children:
                children[child] = ChildHouseholds(child)
            _apply(
                households[key],
                children[child],
                child,
                str(envelope["kind"]),
                str(envelope["at"]),
                payload.get("relation"),
                str(envelope["id"]),
            )
    yield from households.values()
    yield from children.values()
