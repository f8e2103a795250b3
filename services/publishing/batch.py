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

from eventsourcing.persistence import IntegrityError

from events.envelope_ids import StoredEnvelope
from events.model import Org, Recorded
from events.store import ChildRecord, HubStore, RegistryAt, WeighedCache
from events.streams import cache_saved, events_after, forget_cached, load_many, stream_versions
from services.projections.admission_facts import ChildFacts
from services.projections.indexes import CHANGES_REAPPLIED, LINES_RECORDED_IN_TURN, RECORDED_IN_TURN
from services.projections.unit_of_work import OneEventPerPublish
from services.publishing.child_streams import ChildStream

EVENT_PLACE = ("originator_id", "originator_version", "timestamp")  # an event's place in its stream, not its fields


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
        the cache was cleared (an erasure) since the batch was made (``cache_generation``). The shared indexes
        (``RECORDED_IN_TURN`` and ``LINES_RECORDED_IN_TURN`` staged, ``CHANGES_REAPPLIED`` changed) are saved in
        their turn on their newest state (``record_staged_on_newest``, ``record_lines_on_newest``,
        ``reapply_on_newest``), everything else sealed before it; a child's facts and a case's tally store the
        publish's changes as one event each (``OneEventPerPublish.fold_pending``).

        A named mechanism, **sealed before the turn**: everything
        the batch saves but its shared indexes (its children's streams, their records and facts, plans, cases,
        rosters of one child, … up to 5,000 events) is sealed and encoded (``HubStore.seal``: the data keys made,
        each event sealed under its child's key) before the indexes' turn is taken; in the turn, only the few
        indexes are brought onto their newest state, sealed and stored with the rest, in one transaction
        (``InTurn.save_sealed``).

        What it replaces: the whole batch was sealed inside the turn (review of session 7, s7-publish MEDIUM-2),
        whose transaction stays open on the server, idle, holding the indexes' advisory locks, while Python
        works: every publisher of the same centres waited for the sealing of whole batches, and a stall there
        longer than the server's ``idle_in_transaction_session_timeout`` (5 s) ended the session. Why it is
        right: nothing sealed before the turn depends on it (only the indexes' versions are read in it), the
        events are stored in the same one transaction as before, and a conflict on a child's stream or an
        envelope id still fails the whole insert (``IntegrityError``: the batch is tried again). The order of the
        events in the insert: the batch's other aggregates', then the indexes' (an order across streams in one
        transaction that no reader relies on: each stream is read by its versions)."""
        in_turn = {
            (cls, key): e
            for (cls, key), e in self.staged.items()
            if cls in RECORDED_IN_TURN or cls in LINES_RECORDED_IN_TURN
        }
        for (cls, key), staged in self.staged.items():
            if (cls, key) not in in_turn:
                self.get(cls, *key).record_staged(staged)
        for aggregate in self.aggregates.values():
            if isinstance(aggregate, OneEventPerPublish):  # a child's facts, a case's tally: one event each
                aggregate.fold_pending()
        changed = [a for a in self.aggregates.values() if type(a) in CHANGES_REAPPLIED and a.pending_events]
        turn_ids = [cls.create_id(*key) for cls, key in in_turn] + [index.id for index in changed]
        before, appended, complete = self._to_save(exclude=set(turn_ids))
        sealed = self.store.seal(*before)
        if not turn_ids:
            self.store.save_sealed(sealed, envelopes=self.envelopes)
        else:
            with self.store.append_in_turn(turn_ids, read_heads=False, publish=True) as turn:
                self.record_staged_on_newest(in_turn, turn.versions)
                self.reapply_on_newest(changed, turn.versions)
                indexes = [self.aggregates[i] for i in dict.fromkeys(turn_ids)]
                turn.save_sealed(sealed, self.store.seal(*indexes), envelopes=self.envelopes)
            complete += indexes
        forget_cached(self.store, appended)
        if cache_generation(self.store) == self.cache_generation:
            cache_saved(self.store, complete, self.store.repository.cache)

    def _to_save(self, exclude: set[UUID]) -> tuple[list[Any], list[UUID], list[Any]]:
        """What the batch saves but the aggregates ``exclude``: the objects to save, the streams appended to
        without their aggregate (forgotten in the cache after the save) and the aggregates that hold everything
        saved (put in the cache)."""
        objects: list[Any] = []
        appended: list[UUID] = []
        complete: list[Any] = []
        for aggregate_id, aggregate in self.aggregates.items():
            if aggregate_id in exclude:
                continue
            if isinstance(aggregate, ChildStream):
                objects += aggregate.to_save()
                if aggregate.record is not None:
                    complete.append(aggregate.record)
                elif aggregate.events:
                    appended.append(aggregate.id)
            elif aggregate is not None:
                objects.append(aggregate)
                complete.append(aggregate)
        return objects, appended, complete

    def record_staged_on_newest(
        self, staged: Mapping[tuple[type[Any], tuple[Any, ...]], list[Recorded]], versions: Mapping[UUID, int]
    ) -> None:
        """A named mechanism, **staged indexes recorded in their turn**: record each staged index's events
        (``record_staged``) on the index as it is stored now, not as the batch loaded it.

        What it replaces: the batch recorded them on the copy it loaded before admitting anything, and a second
        publisher that saved to the same index meanwhile (every centre's ``ServiceDesk``, a municipality's
        ``MunicipalMonth``, an organisation's ``PublishedChildren``: shared by publishers of different children)
        made this batch's insert fail on the index's version, and the whole batch (up to 5,000 events) was
        admitted and projected again, or given up as ``Busy`` after 10 s. Now ``save`` takes the staged indexes'
        turn (``HubStore.append_in_turn``: one writer at a time per index, across processes; versions read under
        the locks) and, for an index that moved since the batch loaded it, loads it again (``load_many``: what
        is stored now, under the turn no other turn-taker can store more) before recording on it.

        Which indexes: ``services.projections.indexes.RECORDED_IN_TURN`` (``staged`` holds their staged events,
        ``versions`` their stored versions as the turn read them). Why it is right: those are written by
        ``record_staged`` only and not read while the publish runs, and ``record_staged`` decides from the
        index's state and the staged events alone; so
        recording on the newest state is what the batch would have recorded had it loaded the index after the
        other publisher's save, which is what the whole-batch retry did. The children's streams, the envelope
        ids and every other aggregate keep their optimistic check: a conflict there still retries the batch. An
        index found at another version than the turn read (a writer that took no turn) fails the save as
        before (``IntegrityError``: the batch is tried again)."""
        for (cls, key), events in staged.items():
            aggregate_id = cls.create_id(*key)
            index = self.get(cls, *key)
            stored = versions.get(aggregate_id, 0)  # 0: no event stored yet
            loaded_at = index.version - len(index.pending_events)  # 0: new in this batch
            if loaded_at != stored:
                if len(index.pending_events) > (1 if loaded_at == 0 else 0):  # changed otherwise than staged
                    raise IntegrityError(f"index {aggregate_id} moved and was changed in the batch")
                if cls in LINES_RECORDED_IN_TURN:
                    index = self.record_lines_on_newest(cls, key, index, loaded_at, stored)
                else:
                    index = self.reload_staged(cls, key, aggregate_id, stored)
            index.record_staged(events)

    def record_lines_on_newest(
        self, cls: type[Any], key: tuple[Any, ...], worked: Any, loaded_at: int, stored: int
    ) -> Any:
        """A named mechanism, **lines recorded in their turn when they moved apart**: for an index of lines of
        ``services.projections.indexes.LINES_RECORDED_IN_TURN`` (a (school, centre)'s ``ReportLines``) that
        another publisher saved to since this batch loaded it (at ``loaded_at``; ``stored`` as the turn read it),
        read the lines that publisher changed (its stored events after ``loaded_at``, ``lines_changed_by``); when
        none is among the lines this batch changed (``worked.lines_changed``, a line moved from its
        ``ReportLine`` included), load the index as stored now (``reload_staged``) and give it this batch's
        changes (``take_changes``), which ``Batch.record_staged_on_newest`` then records on it; else fail the
        save (``IntegrityError``: the whole batch is tried again, on the lines as stored).

        What it replaces: the index was saved with the batch's other aggregates on its optimistic check, and a
        publisher of the same school's other children that saved to it meanwhile made the whole batch (up to
        5,000 events) be admitted and projected again. Unlike the indexes of ``RECORDED_IN_TURN``, the lines are
        read by the publish (a report's counts depend on its line's state: a second report of a month counts
        nothing; a listing takes back what the line's old periods counted), so recording on the newest state is
        right only for lines whose state this publish worked from is still the stored one. Why it is right: a
        ``LinesCounted`` holds, per line, what the publish changed (months newly received, the municipality, the
        periods when they changed, a moved line whole), and its replay sets each of those lines from its own
        entry and the line's stored state alone, touching no other line; every count this publish staged came
        from the state of lines it changed or read. A line it changed and the other did not is stored as this
        publish found it, so its changes recorded on the newest index and its counts give what one publisher
        after the other gives. A line both changed is found here. A line this publish only read (a repeated
        report) is one child's line, read by an event of that child: another publisher of that child conflicts on
        the child's stream, whose check is kept. An event this mechanism does not know fails the save as well.
        Read in the turn, after the other's save committed (it saved in its turn), on one pooled connection at a
        time (the read, then the reload), as ``reload_staged`` alone."""
        aggregate_id = worked.id
        records = events_after(self.store, {aggregate_id: loaded_at}).get(aggregate_id, [])
        changed_since: set[str] = set()
        for stored_event in self.store.mapper.to_domain_events(records):
            lines = cls.lines_changed_by(stored_event)
            if lines is None:
                raise IntegrityError(f"index {aggregate_id} moved by an event that may have changed any line")
            changed_since |= lines
        if len(records) != stored - loaded_at:
            raise IntegrityError(f"index {aggregate_id} read at another version than its turn read ({stored})")
        if changed_since & worked.lines_changed():
            raise IntegrityError(f"index {aggregate_id}: a line this batch changed was changed meanwhile")
        fresh = self.reload_staged(cls, key, aggregate_id, stored)
        fresh.take_changes(worked)
        return fresh

    def reload_staged(self, cls: type[Any], key: tuple[Any, ...], aggregate_id: UUID, version: int) -> Any:
        """The index ``aggregate_id`` of ``cls`` as stored now, at ``version`` (0: none stored, a new one)."""
        fresh = load_many(self.store, [aggregate_id])[aggregate_id] if version else None
        if fresh is None:
            fresh = cls(*key)
        if fresh.version - len(fresh.pending_events) != version:
            raise IntegrityError(f"index {aggregate_id} loaded at another version than its turn read ({version})")
        self.aggregates[aggregate_id] = fresh
        return fresh

    def reapply_on_newest(self, changed: Iterable[Any], versions: Mapping[UUID, int]) -> None:
        """A named mechanism, **a shared index's changes re-applied on its newest state**: for each index of
        ``services.projections.indexes.CHANGES_REAPPLIED`` that this batch changed (``changed``) and that another
        publisher saved to since the batch loaded it (its version in ``versions``, read in the turn, is another),
        the batch's events on it are applied again, in order, on the index as stored now (``load_many``), each as
        the same event (class and fields) at the next version; the index is then saved as that.

        What it replaces: the whole batch admitted and projected again (or ``Busy`` after 10 s) because a centre's
        case index (``CenterCases``: one new case per new child), a centre's schools or a municipality's months
        moved under it. Why it is right: each change those indexes take in a publish is about the event's own
        child (a case, a plan, a transfer of that child: a change of another publisher is about other children,
        and a publisher of the same child conflicts on the child's stream, whose check is kept) or adds to a set
        (a school, a month: adding what is there already changes nothing); their events' bodies set keyed entries
        or add to sets, so applied on the newest state they give what the batch would have given had it loaded
        the index after the other publisher's save. An index that was new in the batch and was created meanwhile
        takes the batch's changes without its creation."""
        for index in changed:
            stored = versions.get(index.id, 0)
            loaded_at = index.version - len(index.pending_events)  # 0: new in this batch
            if loaded_at == stored:
                continue
            fresh = load_many(self.store, [index.id])[index.id] if stored else None
            if fresh is None or fresh.version != stored:
                raise IntegrityError(f"index {index.id} loaded at another version than its turn read ({stored})")
            for event in index.collect_events():
                if event.originator_version == 1:  # its creation: created meanwhile by the other publisher
                    continue
                fields = {k: v for k, v in vars(event).items() if k not in EVENT_PLACE}
                again = type(event)(
                    originator_id=fresh.id,
                    originator_version=fresh.version + 1,
                    timestamp=type(event).create_timestamp(),
                    **fields,
                )
                again.mutate(fresh)
                fresh.pending_events.append(again)
            self.aggregates[index.id] = fresh
