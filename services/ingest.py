"""Publishing: validate, admit under the policy's publish rules, and append, idempotently, in one transaction.

Every adapter, the HTTP API, the CLI and the scenario runner publish through ``Ingest.publish``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Sequence

from eventsourcing.persistence import IntegrityError

from consent.admission import admit
from consent.model import Settings
from events.envelope import Envelope, parse_envelope
from events.problems import Outcome, Problem, PublishResult, Rejected
from events.store import ChildRecord, EnvelopeIndex, HubStore, Quarantine, jsonable, recorded_from
from services.identity import check_identity, resolve_local_child, waiting_problem
from services.indexes import INDEXES

MAX_BATCH = 5000


class Batch:
    """The aggregates one publish touches, loaded once and saved together in one transaction."""

    def __init__(self, store: HubStore):
        self.store = store
        self.aggregates: dict[Any, Any] = {}

    def get(self, cls: type, *key: Any, create: bool = True) -> Any:
        """The aggregate of ``cls`` for ``key`` as this batch sees it (a copy of the stored one, or new)."""
        aggregate_id = cls.create_id(*key)
        if aggregate_id not in self.aggregates:
            self.aggregates[aggregate_id] = self.store.get_or_none(aggregate_id)
        if self.aggregates[aggregate_id] is None and create:
            self.aggregates[aggregate_id] = cls(*key)
        return self.aggregates[aggregate_id]

    def add(self, aggregate: Any) -> None:
        self.aggregates[aggregate.id] = aggregate

    def save(self) -> None:
        self.store.save(*(a for a in self.aggregates.values() if a is not None))


class Ingest:
    def __init__(self, store: HubStore, settings: Settings, clock: Callable[[], datetime]):
        self.store = store
        self.settings = settings
        self.clock = clock

    def publish(self, items: Sequence[Any], *, publisher: str | None = None) -> list[PublishResult]:
        """Publish a batch. Each item is accepted, recognised as a duplicate of a stored event, or rejected with
        its problems (and kept in quarantine). Accepted events of one batch are stored in one transaction.

        ``publisher``: the authenticated organisation sending the batch (the HTTP API). An organisation
        publishes only as itself: an event whose ``source`` is another organisation is rejected
        (``source_mismatch``), and whatever it rejects is held in the publisher's quarantine."""
        if len(items) > MAX_BATCH:
            raise Rejected([Problem("batch_too_large", f"at most {MAX_BATCH} events per batch",
                                    f"一度に送れるのは{MAX_BATCH}件までです")])
        now = self.clock()
        parsed: list[Envelope | Rejected] = []
        for raw in items:
            try:
                parsed.append(parse_envelope(raw, now=now))
            except Rejected as rejected:
                parsed.append(rejected)
        if publisher is not None:
            parsed = [_as_publisher(raw, item, publisher) for raw, item in zip(items, parsed)]
        # First try without looking up each id (new events are the common case); a stored id makes the
        # transaction fail on the index stream, and the second pass looks every id up.
        for attempt, look_up in enumerate((False, True, True, True)):
            try:
                return self._publish_once(items, parsed, now, look_up=look_up, publisher=publisher)
            except IntegrityError:
                if attempt == 3:
                    raise
        raise AssertionError("unreachable")

    def _publish_once(self, items: Sequence[Any], parsed: list[Envelope | Rejected], now: datetime, *,
                      look_up: bool, publisher: str | None = None) -> list[PublishResult]:
        orgs = self.store.registry().orgs
        batch = Batch(self.store)
        in_batch: dict[str, str] = {}
        results: list[PublishResult] = []

        def reject(i: int, envelope_id: str | None, problems: list[Problem]) -> None:
            results.append(PublishResult(i, envelope_id, "rejected", problems))
            raw = items[i]
            source = publisher or (str(raw.get("source") or "unknown") if isinstance(raw, dict) else "unknown")
            batch.get(Quarantine, source).hold(raw=jsonable(raw if not isinstance(raw, Envelope) else raw.canonical()),
                                     problems=[p.to_dict() for p in problems], received_at=now.isoformat())

        for i, item in enumerate(parsed):
            if isinstance(item, Rejected):
                raw = items[i]
                reject(i, str(raw.get("id")) if isinstance(raw, dict) and raw.get("id") else None, item.problems)
                continue
            if item.local_child is not None:  # 紐付け: the source's own number, resolved through the centre's link
                try:
                    resolved = resolve_local_child(item, batch, orgs, now)
                except Rejected as rejected:
                    reject(i, item.id, rejected.problems)
                    continue
                if resolved is None:
                    results.append(PublishResult(i, item.id, "queued", [waiting_problem(item)]))
                    continue
                item = resolved
            canonical, digest = item.canonical(), item.digest()
            known = in_batch.get(item.id)
            if known is None and look_up:
                index = self.store.peek(EnvelopeIndex.create_id(item.id))
                known = index.digest if index is not None else None
            if known is not None:
                if known == digest:
                    results.append(PublishResult(i, item.id, "duplicate"))
                else:
                    reject(i, item.id, [Problem("id_conflict", f"id {item.id!r} is already used for another event",
                                                f"id「{item.id}」は別の内容のイベントで使われています", "id")])
                continue
            record = batch.get(ChildRecord, item.child)
            candidate = recorded_from(canonical, [], len(record.entries) + 1)
            try:
                check_identity(candidate, record.entries, orgs, batch)
                audience = admit(candidate, record.entries, orgs, self.settings)
            except Rejected as rejected:
                if not look_up and self.store.peek(EnvelopeIndex.create_id(item.id)) is not None:
                    # A stored id: the re-sent event is a duplicate (or an id conflict), whatever admission says
                    # now; the pass that looks every id up decides it.
                    raise IntegrityError(f"id {item.id!r} is already stored") from None
                reject(i, item.id, rejected.problems)
                continue
            record.publish(envelope=canonical, audience=sorted(audience), digest=digest, received_at=now.isoformat())
            batch.add(EnvelopeIndex(item.id, item.child, digest, len(record.entries)))
            for keep_index in INDEXES:
                keep_index(record.entries[-1], batch)
            in_batch[item.id] = digest
            results.append(PublishResult(i, item.id, "accepted"))
        batch.save()
        return results


def _as_publisher(raw: Any, item: Envelope | Rejected, publisher: str) -> Envelope | Rejected:
    """``item`` as published by ``publisher``: rejected with ``source_mismatch`` when its source is another
    organisation (checked before admission, and before its id is looked up)."""
    source = item.source if isinstance(item, Envelope) else (raw.get("source") if isinstance(raw, dict) else None)
    if source in (None, "", publisher):
        return item
    problem = Problem("source_mismatch", f"source {source!r} is not the publishing organisation {publisher!r}",
                      f"source「{source}」が送信元の機関（{publisher}）と一致しません。自機関のイベントだけを送れます",
                      "source")
    return Rejected([problem] + (item.problems if isinstance(item, Rejected) else []))
