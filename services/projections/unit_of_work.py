"""What a projection is given, and what it declares.

A projection keeps lookup aggregates in step with the log, in the transaction that records the event. The publish
path hands each accepted event to every projection with its *unit of work*: the aggregates of one publish, loaded
once and saved together (``services.publishing.batch.Batch`` is one). Projections type against the ``UnitOfWork``
protocol here and never import the publish path.

Each ``Projection`` also says, from the event alone (and the registry), which aggregates it will read or write
for it (``needs``), without running anything: the publish path loads the needs of a whole batch in one query
before it admits and projects its events. An aggregate a projection asks for that it did not declare is still
loaded, one query on its own: declaring keeps a publish fast, it does not make it correct.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol
from uuid import UUID

from eventsourcing.domain import Aggregate

from events.model import Org, Recorded


class UnitOfWork(Protocol):
    """The aggregates one publish touches, as a projection sees them."""

    @property
    def orgs(self) -> Mapping[str, Org]:
        """The registered organisations, as the publish found them."""
        ...

    def get(self, cls: type[Any], *key: Any, create: bool = True) -> Any:
        """The aggregate of ``cls`` for ``key`` as this publish sees it: the stored one, or a new one (``None``
        instead with ``create=False``)."""
        ...

    def add(self, aggregate: Aggregate) -> None:
        """Save ``aggregate`` (new) with the publish."""
        ...

    def stage(self, cls: type[Any], key: tuple[Any, ...], e: Recorded) -> None:
        """Record ``e`` on the aggregate of ``cls`` for ``key`` when the publish is saved, with every other event
        staged for it, in one event (``cls.record_staged``)."""
        ...


Needs = Callable[[Recorded, Mapping[str, Org]], list[UUID]]
"""The ids of the aggregates a projection reads or writes for an accepted event, given the registry."""


@dataclass(frozen=True)
class Projection:
    """A projection: ``needs`` (pure: which aggregates, see ``Needs``) and ``apply`` (keeps them in step with an
    accepted event, through the publish's unit of work)."""

    name: str
    needs: Needs
    apply: Callable[[Recorded, UnitOfWork], None]


class OneEventPerPublish:
    """A named mechanism, **one stored event per aggregate and publish**, for an aggregate that a publish reads
    as it changes it (``ChildFacts``: a fact of an earlier event of the batch counts when a later one is admitted;
    ``CaseTally``: a case's review counts from the state its registration in the same batch left).

    The projections change such an aggregate as before, one event per change, applied at once, so everything the
    publish reads in between is what it read before. When the publish is saved (``Batch.save``), ``fold_pending``
    replaces the changes the publish made (its pending events after the aggregate's creation, if they are all of
    the per-change kinds ``folded_fields`` knows) by one event of the class's ``FOLDED_EVENT``, whose fields
    ``folded_fields`` gives and whose replay gives the same state as the events it stands for, in their order.
    The aggregate's version becomes the folded event's; nothing else of its state changes (it already holds the
    publish's changes).

    What it replaces: one stored event per change (0.22 an envelope in a school's publish: ``FactRecorded`` per
    fact, ``ReviewDueCounted``, ``ReviewCounted`` … per case event), each sealed, inserted and written by the
    server. Why it is right: the folded event's replay equals the replay of the events it replaces (each sets
    or adds what it carries, in order), and it is sealed under the same key (its state, like theirs, names no
    child: ``events.sealing.key_scope``). Stores written before keep their per-change events, which replay as
    before; both kinds apply. ``tests/projections/test_one_event_per_publish.py`` checks the admissions, the
    counts and the stored state against the per-change events on generated batches."""

    FOLDED_EVENT: ClassVar[str]  # the name of the event that stands for a publish's changes

    def folded_fields(self, events: list[Any]) -> dict[str, Any] | None:
        """The fields of the ``FOLDED_EVENT`` that stands for ``events`` (this publish's changes, in order), or
        ``None`` when one of them is of a kind it does not fold (they are then stored as they are)."""
        raise NotImplementedError

    def fold_pending(self: Any) -> None:
        """Replace this publish's pending changes by one ``FOLDED_EVENT`` (see the class)."""
        pending = self._pending_events
        first = 1 if pending and pending[0].originator_version == 1 else 0  # the creation is stored as it is
        changes = pending[first:]
        if not changes:
            return
        fields = self.folded_fields(changes)
        if fields is None:
            return
        folded = getattr(type(self), self.FOLDED_EVENT)(
            originator_id=self.id,
            originator_version=changes[0].originator_version,
            timestamp=changes[-1].timestamp,
            **fields,
        )
        self._pending_events[first:] = [folded]
        self.version = folded.originator_version
        self.modified_on = folded.timestamp
