"""The unit of work of one publish: the aggregates it touches, loaded once and saved together in one transaction.

``Batch`` is what the projections are handed (it satisfies ``services.projections.unit_of_work.UnitOfWork``).
Before a publish admits anything it learns its children's stream versions (``know_versions``) and loads, in one
query, every aggregate its steps declared they need (``load``); whatever was not declared is loaded when asked
for, one query each. ``save`` stores everything, the register of envelope ids included, in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from events.envelope_ids import StoredEnvelope
from events.model import Org, Recorded
from events.store import ChildRecord, HubStore, RegistryAt, WeighedCache
from events.streams import cache_saved, forget_cached, load_many, stream_versions
from services.projections.admission_facts import ChildFacts
from services.publishing.child_streams import ChildStream


def cache_generation(store: HubStore) -> int | None:
    """How many times the store's aggregate cache has been cleared so far (``WeighedCache.generation``; ``None``:
    a cache that is never cleared, or none), noted by a ``Batch`` when it is made, before its first load.

    What it is for: a batch loads aggregates opened with its children's keys (a centre's ``CenterCases`` holds
    every case of the centre) and, after a successful save, puts them in the cache (``cache_saved``). If an
    erasure reached this process meanwhile (``ErasureWatch`` clears the cache), what the batch loaded before it may
    hold the erased child's entries, and a kept index put back is never evicted: that child's case would be shown
    to this process's readers until the next erasure. ``WeighedCache.put`` refuses an aggregate from a thread whose
    last look-up was before the last clear, but a batch looks things up lazily during its attempt (``Batch.get``: a
    child or an index first needed late), and any such look-up after the clear made the put of everything the
    batch loaded before it go through. So the batch compares the generation noted when it was made with the
    cache's at its save: changed, it puts nothing (what it saved is in the store, and the next read loads it from
    there, under the keys that are left). This replaces relying on the thread's last look-up for the batch's
    save; ``WeighedCache.put``'s own check still guards every other put."""
    cache = store.repository.cache
    return cache.generation if isinstance(cache, WeighedCache) else None


class Batch:
    """The aggregates one publish touches, loaded once and saved together in one transaction. ``registry``: the
    organisations as the batch found them, for every event of the batch (no look-up per event)."""

    def __init__(self, store: HubStore, registry: RegistryAt):
        self.store = store
        self.registry = registry
        self.cache_generation = cache_generation(store)  # before the first load: see ``cache_generation``
        self.aggregates: dict[UUID, Any] = {}
        self.versions: dict[UUID, int] = {}
        self.asked: set[UUID] = set()
        self.child_ids: dict[str, UUID] = {}
        self.envelopes: list[StoredEnvelope] = []  # the envelope ids this batch stores (events.envelope_ids)
        self.staged: dict[tuple[type[Any], tuple[Any, ...]], list[Recorded]] = {}

    @property
    def orgs(self) -> Mapping[str, Org]:
        """The registered organisations, as the batch found them."""
        return self.registry.orgs

    def get(self, cls: type[Any], *key: Any, create: bool = True) -> Any:
        """The aggregate of ``cls`` for ``key`` as this batch sees it (a copy of the stored one, or new; ``None``
        with ``create=False`` when there is none). A child's stream is not an aggregate here: see ``child``."""
        aggregate_id = cls.create_id(*key)
        if aggregate_id not in self.aggregates:
            self.aggregates[aggregate_id] = load_many(self.store, [aggregate_id])[aggregate_id]
        if self.aggregates[aggregate_id] is None and create:
            self.aggregates[aggregate_id] = cls(*key)
        return self.aggregates[aggregate_id]

    def add(self, aggregate: Any) -> None:
        """Save the new ``aggregate`` with the batch."""
        self.aggregates[aggregate.id] = aggregate

    def stage(self, cls: type[Any], key: tuple[Any, ...], e: Recorded) -> None:
        """Record ``e`` on the aggregate of ``cls`` for ``key`` when the batch is saved, with every other event
        staged for it, in one event (``cls.record_staged``): for an index that takes many entries per publish and
        is not read while the publish runs."""
        self.staged.setdefault((cls, key), []).append(e)

    def streams_to_ask(self, children: Iterable[str]) -> list[UUID]:
        """The streams of ``children`` whose versions this batch does not know yet."""
        ids = [self.child_id(child) for child in dict.fromkeys(children)]
        return [i for i in ids if i not in self.asked and i not in self.aggregates]

    def know_versions(self, asked: Sequence[UUID], versions: Mapping[UUID, int]) -> None:
        """Take the stream versions of the streams ``asked`` (absent from ``versions``: no stream yet), learnt
        before their events are admitted."""
        self.versions.update(versions)
        self.asked.update(asked)

    def load(self, ids: Iterable[UUID]) -> None:
        """Load the aggregates ``ids`` that this batch has not loaded yet, in one query (``get`` then finds them)."""
        todo = [i for i in dict.fromkeys(ids) if i not in self.aggregates]
        self.aggregates.update(load_many(self.store, todo))

    def facts(self, child: str) -> list[Recorded]:
        """The child's earlier events that the admission rules read (``services.projections.admission_facts``),
        this batch's included."""
        facts = self.get(ChildFacts, child, create=False)
        return facts.entries if facts is not None else []

    def child_id(self, child: str) -> UUID:
        """The id of ``child``'s stream."""
        if child not in self.child_ids:
            self.child_ids[child] = ChildRecord.create_id(child)
        return self.child_ids[child]

    def child(self, child: str) -> ChildStream:
        """The child's stream as this batch appends to it."""
        stream_id = self.child_id(child)
        stream = self.aggregates.get(stream_id)
        if stream is None:
            if stream_id not in self.asked:  # a child named after the batch was read (紐付け, released events)
                self.know_versions([stream_id], stream_versions(self.store, [stream_id]))
            stream = self.aggregates[stream_id] = ChildStream(child, stream_id, self.versions.get(stream_id))
        return stream

    def save(self) -> None:
        """Store everything of the batch in one transaction, then bring the aggregate cache up to date, unless
        the cache was cleared (an erasure) since the batch was made (``cache_generation``)."""
        for (cls, key), staged in self.staged.items():
            self.get(cls, *key).record_staged(staged)
        objects: list[Any] = []
        appended: list[UUID] = []  # streams appended to without their aggregate
        complete: list[Any] = []  # aggregates that hold everything saved, for the cache
        for aggregate in self.aggregates.values():
            if isinstance(aggregate, ChildStream):
                objects += aggregate.to_save()
                if aggregate.record is not None:
                    complete.append(aggregate.record)
                elif aggregate.events:
                    appended.append(aggregate.id)
            elif aggregate is not None:
                objects.append(aggregate)
                complete.append(aggregate)
        cache = self.store.repository.cache
        self.store.save(*objects, envelopes=self.envelopes)
        forget_cached(self.store, appended)
        if cache_generation(self.store) == self.cache_generation:
            cache_saved(self.store, complete, cache)
