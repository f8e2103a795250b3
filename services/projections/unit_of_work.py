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
from typing import Any, Protocol
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
