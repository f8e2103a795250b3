"""Publishing: validate, admit under the policy's publish rules, and append, idempotently, in one transaction.

Every adapter, the HTTP API, the CLI and the scenario runner publish through ``Ingest.publish``.

A publish never loads a child's stream. It asks once how far each of the batch's children's streams has got
(``events.streams.stream_versions``) and appends ``ChildRecord.Published`` events at the next versions (a new
child's stream starts as a new aggregate). The admission rules (``consent.admission``, ``consent.authority``) read
a child's earlier facts only (``consent.authority.is_fact``), which ``services.facts.ChildFacts`` keeps per child,
in step with the stream and in the same transaction; they are loaded, for all the children of a batch whose events
need them, in one query. A 第21条の10の5 event about a child whose residence is not recorded yet waits in the
child's ``ResidenceQueue`` (outcome ``waiting``) and is published by itself once it is (``_release_waiting``). Everything of one batch is saved in one transaction; a stream that moved
meanwhile makes the insert fail on its (stream, version) key, and ``publish`` tries again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from consent.admission import AwaitsResidence, admit
from consent.model import Settings
from events.envelope import Envelope, parse_envelope
from events.envelope_ids import StoredEnvelope, digest_mark, envelope_key
from events.model import Recorded
from events.problems import Problem, PublishResult, Rejected
from events.retry import retry_conflicts
from events.store import (
    STORE_FORMAT,
    ChildRecord,
    HubStore,
    Quarantine,
    ResidenceQueue,
    ResidenceWaitList,
    jsonable,
    recorded_from,
)
from events.streams import cache_saved, forget_cached, load_many, stream_versions
from services.administration.settings import SettingsSource
from services.projections.admission_facts import ChildFacts, facts_from_log
from services.projections.cases import CaseEntry, PlanEntry, plan_entries_from_log
from services.projections.indexes import INDEXES
from services.publishing.linking import check_identity, resolve_local_child, waiting_problem

MAX_BATCH = 5000


class _ChildStream:
    """One child's stream as a publish batch appends to it: ``version`` is the stream's version when the batch
    looked, and the batch's events for the child are ``ChildRecord.Published`` events at the next versions. A
    child with no stream yet gets a new aggregate (``record``), which takes the child's events instead."""

    def __init__(self, child: str, stream_id: UUID, version: int | None):
        self.id = stream_id
        self.version = version
        self.events: list[Any] = []
        self.record: ChildRecord | None = ChildRecord(child) if version is None else None

    @property
    def head(self) -> int:
        """The stream's version after what this batch appended so far."""
        if self.record is not None:
            return self.record.version
        assert self.version is not None
        return self.version + len(self.events)

    @property
    def next_position(self) -> int:
        """The child position of the next event: 1 for the first event after the stream's creation (version 1),
        so the version the stream has reached (``ChildRecord`` records nothing but ``Published`` events)."""
        return self.head

    @property
    def known(self) -> bool:
        """Whether the hub has recorded anything about the child before the next event."""
        return self.next_position > 1

    def append(
        self, envelope: dict[str, Any], audience: list[str], digest: str, received_at: str, candidate: Recorded
    ) -> Recorded:
        """Append one published event; returns it as recorded (with its child position). ``candidate``: the event
        as admission saw it (``envelope`` at the next position, without its audience)."""
        position = self.next_position
        if self.record is not None:
            self.record.publish(envelope=envelope, audience=audience, digest=digest, received_at=received_at)
            return self.record.entries[-1]
        self.events.append(
            ChildRecord.Published(
                originator_id=self.id,
                originator_version=self.head + 1,
                timestamp=ChildRecord.Published.create_timestamp(),
                envelope=envelope,
                audience=audience,
                digest=digest,
                received_at=received_at,
            )
        )
        return candidate.placed(position, frozenset(audience))

    def to_save(self) -> list[Any]:
        return [*self.events, *([self.record] if self.record is not None else [])]


@dataclass
class _Prepared:
    """An envelope as ``Ingest._forecast`` prepared it (see there)."""

    envelope: Envelope
    recorded: Recorded
    decision: frozenset[str] | Rejected | None  # None: the rules read the child's facts


class _NeedsHistory(Exception):
    """Raised by ``_UNREAD`` when an admission rule reads the child's earlier events."""


class _Unread(Sequence[Recorded]):
    """Stands for a child's earlier events where they must not be read (see ``Ingest._forecast``)."""

    def __len__(self) -> int:
        raise _NeedsHistory

    def __getitem__(self, index: Any) -> Any:
        raise _NeedsHistory

    def __iter__(self) -> Iterator[Recorded]:
        raise _NeedsHistory

    def __reversed__(self) -> Iterator[Recorded]:
        raise _NeedsHistory

    def __contains__(self, value: object) -> bool:
        raise _NeedsHistory

    def __bool__(self) -> bool:
        raise _NeedsHistory


_UNREAD = _Unread()


class _Anything:
    """What a forecast hands an index for an aggregate: accepts every use and does nothing."""

    def __getattr__(self, name: str) -> Any:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self

    def __getitem__(self, key: Any) -> Any:
        return self

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __contains__(self, value: object) -> bool:
        return False

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = object.__hash__


_ANYTHING = _Anything()


class _Forecast:
    """A stand-in for the ``Batch`` that only notes which aggregates the indexes ask for (see
    ``Ingest._forecast``)."""

    def __init__(self, registry: Any):
        self.registry = registry
        self.ids: list[UUID] = []

    def get(self, cls: type, *key: Any, create: bool = True) -> Any:
        self.ids.append(cls.create_id(*key))
        return _ANYTHING if create else None

    def stage(self, cls: type, key: tuple[Any, ...], e: Recorded) -> None:
        self.ids.append(cls.create_id(*key))

    def add(self, aggregate: Any) -> None:
        pass


class _IdsInBatch:
    """``consent.authority.IdsInUse`` for a publish: whether a case or plan id is registered for any child,
    from the indexes as this batch sees them (its own earlier events included)."""

    def __init__(self, batch: Batch):
        self.batch = batch

    def case_registered(self, case: str) -> bool:
        return self.batch.get(CaseEntry, case, create=False) is not None

    def plan_created(self, plan: str) -> bool:
        return self.batch.get(PlanEntry, plan, create=False) is not None


class _IdsUnread:
    """Stands for the ids in use where they must not be read (see ``Ingest._forecast``)."""

    def case_registered(self, case: str) -> bool:
        raise _NeedsHistory

    def plan_created(self, plan: str) -> bool:
        raise _NeedsHistory


class Batch:
    """The aggregates one publish touches, loaded once and saved together in one transaction. ``registry``: the
    organisations as the batch found them, for every event of the batch (no look-up per event)."""

    def __init__(self, store: HubStore, registry: Any):
        self.store = store
        self.registry = registry
        self.aggregates: dict[Any, Any] = {}
        self.versions: dict[UUID, int] = {}
        self.asked: set[UUID] = set()
        self.child_ids: dict[str, UUID] = {}
        self.envelopes: list[StoredEnvelope] = []  # the envelope ids this batch stores (events.envelope_ids)
        self.staged: dict[tuple[type, tuple[Any, ...]], list[Recorded]] = {}

    def get(self, cls: type, *key: Any, create: bool = True) -> Any:
        """The aggregate of ``cls`` for ``key`` as this batch sees it (a copy of the stored one, or new). A
        child's stream is not an aggregate here: see ``child``."""
        aggregate_id = cls.create_id(*key)
        if aggregate_id not in self.aggregates:
            self.aggregates[aggregate_id] = load_many(self.store, [aggregate_id])[aggregate_id]
        if self.aggregates[aggregate_id] is None and create:
            self.aggregates[aggregate_id] = cls(*key)
        return self.aggregates[aggregate_id]

    def add(self, aggregate: Any) -> None:
        self.aggregates[aggregate.id] = aggregate

    def stage(self, cls: type, key: tuple[Any, ...], e: Recorded) -> None:
        """Record ``e`` on the aggregate of ``cls`` for ``key`` when the batch is saved, with every other event
        staged for it, in one event (``cls.record_staged``): for an index that takes many entries per publish and
        is not read while the publish runs."""
        self.staged.setdefault((cls, key), []).append(e)

    def ask_versions(self, children: Sequence[str]) -> None:
        """Learn the stream versions of ``children`` in one query (before their events are admitted)."""
        ids = [self.child_id(child) for child in dict.fromkeys(children)]
        ids = [i for i in ids if i not in self.asked and i not in self.aggregates]
        self.versions.update(stream_versions(self.store, ids))
        self.asked.update(ids)

    def prefetch(self, ids: Sequence[UUID]) -> None:
        """Load the aggregates ``ids`` that this batch has not loaded yet, in one query (``get`` then finds them)."""
        todo = [i for i in dict.fromkeys(ids) if i not in self.aggregates]
        self.aggregates.update(load_many(self.store, todo))

    def facts(self, child: str) -> list[Recorded]:
        """The child's earlier events that the admission rules read (``services.projections.admission_facts``), this batch's included."""
        facts = self.get(ChildFacts, child, create=False)
        return facts.entries if facts is not None else []

    def child_id(self, child: str) -> UUID:
        if child not in self.child_ids:
            self.child_ids[child] = ChildRecord.create_id(child)
        return self.child_ids[child]

    def child(self, child: str) -> _ChildStream:
        """The child's stream as this batch appends to it."""
        stream_id = self.child_id(child)
        stream = self.aggregates.get(stream_id)
        if stream is None:
            if stream_id not in self.asked:
                self.versions.update(stream_versions(self.store, [stream_id]))
                self.asked.add(stream_id)
            stream = self.aggregates[stream_id] = _ChildStream(child, stream_id, self.versions.get(stream_id))
        return stream

    def save(self) -> None:
        for (cls, key), staged in self.staged.items():
            self.get(cls, *key).record_staged(staged)
        objects: list[Any] = []
        appended: list[UUID] = []  # streams appended to without their aggregate
        complete: list[Any] = []  # aggregates that hold everything saved, for the cache
        for aggregate in self.aggregates.values():
            if isinstance(aggregate, _ChildStream):
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
        cache_saved(self.store, complete, cache)


class Ingest:
    def __init__(self, store: HubStore, settings: SettingsSource, clock: Callable[[], datetime]):
        self.store = store
        self.settings_source = settings
        self.clock = clock
        if store.format < STORE_FORMAT:
            # Written before the children's facts of policy version 2 and the plan index were kept (or under
            # version 1): make them from the log, the facts with authority only.
            orgs = store.registry().orgs
            rebuilt = [
                *facts_from_log(store.recorder, store.mapper, orgs, self.settings),
                *plan_entries_from_log(store.recorder, store.mapper),
            ]
            for aggregate in rebuilt:
                try:
                    store.save(aggregate)
                except IntegrityError:
                    pass  # another process opening the store made it first
            store.mark_format(STORE_FORMAT)

    @property
    def settings(self) -> Settings:
        """The deployment's settings in force now (``services.settings.SettingsSource``)."""
        return self.settings_source.current()

    def publish(self, items: Sequence[Any], *, publisher: str | None = None) -> list[PublishResult]:
        """Publish a batch. Each item is accepted, recognised as a duplicate of a stored event, or rejected with
        its problems (and kept in quarantine). Accepted events of one batch are stored in one transaction.

        ``publisher``: the authenticated organisation sending the batch (the HTTP API). An organisation
        publishes only as itself: an event whose ``source`` is another organisation is rejected
        (``source_mismatch``), and whatever it rejects is held in the publisher's quarantine."""
        if len(items) > MAX_BATCH:
            raise Rejected(
                [
                    Problem(
                        "batch_too_large",
                        f"at most {MAX_BATCH} events per batch",
                        f"一度に送れるのは{MAX_BATCH}件までです",
                    )
                ]
            )
        now = self.clock()
        parsed: list[Envelope | Rejected] = []
        for raw in items:
            try:
                parsed.append(parse_envelope(raw, now=now))
            except Rejected as rejected:  # kept as a value: without the traceback, which holds this frame
                parsed.append(rejected.with_traceback(None))
        if publisher is not None:
            parsed = [_as_publisher(raw, item, publisher) for raw, item in zip(items, parsed)]
        # First try without looking up each id (new events are the common case); a stored id makes the
        # transaction fail on the register of envelope ids, and the next passes look every id up. A stream that
        # moved meanwhile fails the same way: tried again with backoff within the budget, then Busy (503).
        passes = 0

        def publish_once() -> list[PublishResult]:
            nonlocal passes
            passes += 1
            return self._publish_once(items, parsed, now, look_up=passes > 1, publisher=publisher)

        return retry_conflicts(publish_once)

    def _publish_once(
        self,
        items: Sequence[Any],
        parsed: list[Envelope | Rejected],
        now: datetime,
        *,
        look_up: bool,
        publisher: str | None = None,
    ) -> list[PublishResult]:
        """One attempt at the batch, in one transaction, event after event. When an event records a child's
        residence, the 第21条の10の5 events waiting for it (``ResidenceQueue``) are published by themselves right
        after it, in the same transaction, and leave the queue (policy.md: once the centre records where the child
        lives); they are not among the results, which answer the batch's own events."""
        registry = self.store.registry()
        orgs = registry.orgs
        batch = Batch(self.store, registry)
        ids = _IdsInBatch(batch)
        batch.ask_versions([item.child for item in parsed if isinstance(item, Envelope) and item.child])
        facts, aggregates, prepared = self._forecast(parsed, registry)
        batch.prefetch([ChildFacts.create_id(child) for child in facts] + aggregates)
        stored_ids: dict[str, StoredEnvelope] = {}
        if look_up:  # every id of the batch looked up at once
            stored_ids = self.store.stored_envelopes(item.id for item in parsed if isinstance(item, Envelope))
        in_batch: dict[str, str] = {}
        results: list[PublishResult] = []

        # The events to publish, in order: the batch's own (index, parsed, raw), and released ones (index None)
        # put right after the event that released them.
        work: deque[tuple[int | None, Envelope | Rejected, Any]] = deque(
            (i, item, items[i]) for i, item in enumerate(parsed)
        )

        def answer(result: PublishResult, item: Envelope | Rejected) -> None:
            if result.index is not None:
                results.append(result)
            elif isinstance(item, Envelope) and result.outcome != "waiting":  # released: it leaves the queue
                queue = batch.get(ResidenceQueue, item.child, create=False)
                if queue is not None and item.id in queue.waiting:
                    queue.release(envelope_id=item.id, released_at=now.isoformat())
                listed = batch.get(ResidenceWaitList, item.source, create=False)
                if listed is not None and item.id in listed.waiting:
                    listed.release(envelope_id=item.id, child=item.child)

        def reject(i: int | None, envelope_id: str | None, problems: list[Problem], raw: Any, item: Any) -> None:
            answer(PublishResult(i, envelope_id, "rejected", problems), item)
            source = publisher if i is not None and publisher else None
            source = source or (str(raw.get("source") or "unknown") if isinstance(raw, dict) else "unknown")
            batch.get(Quarantine, source).hold(
                raw=jsonable(raw if not isinstance(raw, Envelope) else raw.canonical()),
                problems=[p.to_dict() for p in problems],
                received_at=now.isoformat(),
            )

        while work:
            i, item, raw = work.popleft()
            if isinstance(item, Rejected):
                reject(
                    i, str(raw.get("id")) if isinstance(raw, dict) and raw.get("id") else None, item.problems, raw, item
                )
                continue
            if item.local_child is not None:  # 紐付け: the source's own number, resolved through the centre's link
                try:
                    resolved = resolve_local_child(item, batch, orgs, now)
                except Rejected as rejected:
                    reject(i, item.id, rejected.problems, raw, item)
                    continue
                if resolved is None:
                    answer(PublishResult(i, item.id, "queued", [waiting_problem(item)]), item)
                    continue
                item = resolved
            ready = prepared.get(i) if i is not None else None
            if ready is not None and ready.envelope is not item:
                ready = None  # resolved from local_child since: prepare it again
            canonical = item.canonical()
            digest = item.digest()
            same: bool | None = None  # whether the id was stored with this content (None: not stored)
            if item.id in in_batch:
                same = in_batch[item.id] == digest
            elif look_up and item.id in stored_ids:
                same = stored_ids[item.id].same_content(digest)
            if same is not None:
                if same:
                    answer(PublishResult(i, item.id, "duplicate"), item)
                else:
                    reject(
                        i,
                        item.id,
                        [
                            Problem(
                                "id_conflict",
                                f"id {item.id!r} is already used for another event",
                                f"id「{item.id}」は別の内容のイベントで使われています",
                                "id",
                            )
                        ],
                        raw,
                        item,
                    )
                continue
            stream = batch.child(item.child)
            position = stream.next_position
            candidate = ready.recorded.placed(position) if ready is not None else recorded_from(canonical, [], position)
            try:
                check_identity(candidate, stream.known, orgs, batch)
                decided = ready.decision if ready is not None else None
                if isinstance(decided, Rejected):
                    raise decided
                audience = (
                    decided
                    if decided is not None
                    else admit(candidate, batch.facts(item.child), orgs, self.settings, ids)
                )
            except (Rejected, AwaitsResidence) as refused:
                if not look_up and self.store.stored_envelope(item.id) is not None:
                    # A stored id: the re-sent event is a duplicate (or an id conflict), whatever admission says
                    # now; the pass that looks every id up decides it.
                    raise IntegrityError(f"id {item.id!r} is already stored") from None
                if isinstance(refused, Rejected):
                    reject(i, item.id, refused.problems, raw, item)
                    continue
                queue = batch.get(ResidenceQueue, item.child)
                held = queue.waiting.get(item.id)
                if held is not None and held["digest"] != digest:
                    reject(
                        i,
                        item.id,
                        [
                            Problem(
                                "id_conflict",
                                f"id {item.id!r} is already used for another event",
                                f"id「{item.id}」は別の内容のイベントで使われています",
                                "id",
                            )
                        ],
                        raw,
                        item,
                    )
                    continue
                if held is None:
                    queue.hold(envelope=canonical, digest=digest, arrived=now.isoformat())
                    batch.get(ResidenceWaitList, item.source).hold(
                        envelope_id=item.id,
                        child=item.child,
                        kind=item.kind,
                        at=canonical["at"],
                        arrived=now.isoformat(),
                    )
                answer(PublishResult(i, item.id, "waiting"), item)
                continue
            entry = stream.append(canonical, sorted(audience), digest, now.isoformat(), candidate)
            batch.envelopes.append(
                StoredEnvelope(envelope_key(item.id), stream.id, entry.position, digest_mark(digest))
            )
            for keep_index in INDEXES:
                keep_index(entry, batch)
            in_batch[item.id] = digest
            answer(PublishResult(i, item.id, "accepted"), item)
            if entry.kind in ("child.registered", "residence.changed"):
                work.extendleft(reversed(self._released_by(entry.child, batch, now)))
        batch.save()
        return results

    @staticmethod
    def _released_by(child: str, batch: Batch, now: datetime) -> list[tuple[None, Envelope | Rejected, Any]]:
        """The events waiting in ``child``'s ``ResidenceQueue``, in the order they arrived, to be published again
        now that the child's residence changed; their times are checked against when they arrived."""
        queue = batch.get(ResidenceQueue, child, create=False)
        released: list[tuple[None, Envelope | Rejected, Any]] = []
        for w in sorted(queue.waiting.values() if queue is not None else (), key=lambda w: w["arrived"]):
            try:
                envelope: Envelope | Rejected = parse_envelope(
                    w["envelope"], now=max(now, datetime.fromisoformat(w["arrived"]))
                )
            except Rejected as rejected:
                envelope = rejected.with_traceback(None)
            released.append((None, envelope, w["envelope"]))
        return released

    def _forecast(
        self, parsed: Sequence[Envelope | Rejected], registry: Any
    ) -> tuple[list[str], list[UUID], dict[int, _Prepared]]:
        """What the batch will need to load, so that it is loaded in one query instead of one per aggregate: the
        children whose facts the admission rules read (found by trying each event's rules on earlier events that
        must not be read), and the aggregates the indexes ask for (found by running them on stand-ins that do
        nothing). The indexes and the rules that read the facts run for real in ``_publish_once``, on the real
        facts and aggregates; whatever was not foreseen is loaded when asked for.

        Also returns, per envelope, the event as it would be recorded, and the admission decision when the rules
        decided without reading earlier events (``admit`` is pure: on the real facts it decides the same)."""
        children: list[str] = []
        orgs = registry.orgs
        forecast = _Forecast(registry)
        prepared: dict[int, _Prepared] = {}
        for i, item in enumerate(parsed):
            if not isinstance(item, Envelope) or not item.child:
                continue
            e = recorded_from(item.canonical(), [], 1)
            decision: frozenset[str] | Rejected | None
            try:
                decision = admit(e, _UNREAD, orgs, self.settings, _IdsUnread())
            except (_NeedsHistory, AwaitsResidence):
                decision = None
                children.append(item.child)
            except Rejected as rejected:
                decision = rejected.with_traceback(None)  # a value, kept without the frames
            prepared[i] = _Prepared(item, e, decision)
            if isinstance(decision, Rejected):
                continue
            for keep_index in INDEXES:
                try:
                    keep_index(e, forecast)  # type: ignore[arg-type]
                except Exception:  # noqa: BLE001 - a stand-in may not behave like the aggregate: no forecast
                    pass
        return children, forecast.ids, prepared


def _as_publisher(raw: Any, item: Envelope | Rejected, publisher: str) -> Envelope | Rejected:
    """``item`` as published by ``publisher``: rejected with ``source_mismatch`` when its source is another
    organisation (checked before admission, and before its id is looked up)."""
    source = item.source if isinstance(item, Envelope) else (raw.get("source") if isinstance(raw, dict) else None)
    if source in (None, "", publisher):
        return item
    problem = Problem(
        "source_mismatch",
        f"source {source!r} is not the publishing organisation {publisher!r}",
        f"source「{source}」が送信元の機関（{publisher}）と一致しません。自機関のイベントだけを送れます",
        "source",
    )
    return Rejected([problem] + (item.problems if isinstance(item, Rejected) else []))
