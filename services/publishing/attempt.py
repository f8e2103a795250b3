"""One attempt at a batch: its events, one after the other, through the steps of a publish, in one transaction.

For each event: (1) parsed already, a rejection answers at once; (2) a local number is resolved to the hub
child (紐付け, ``linking``), or the event waits in the linking queue; an id stored before (or earlier in the
batch) answers ``duplicate`` or ``id_conflict``; (3) it is admitted (``admitting``), or rejected and quarantined,
or waits for the child's residence (``waiting_for_residence``); (4) appended to the child's stream with its id
registered (``appending``); (5) the projections keep their aggregates in step (``projecting``). An event that
records a child's residence releases the events waiting for it, which go through the same steps right after it.
Everything is held in the batch's unit of work (``batch``) and saved by the caller.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.persistence import IntegrityError

from consent.admission import AwaitsResidence
from consent.model import Settings
from events.envelope import Envelope
from events.envelope_ids import StoredEnvelope
from events.model import Recorded
from events.problems import Outcome, Problem, PublishResult, Rejected
from events.store import Quarantine, jsonable, recorded_from
from services.publishing import waiting_for_residence
from services.publishing.admitting import admit_in_batch
from services.publishing.appending import append
from services.publishing.batch import Batch
from services.publishing.linking import check_identity, resolve_local_child, waiting_problem
from services.publishing.projecting import project


@dataclass
class Work:
    """One event to publish: its place in the batch (``None``: released from a residence queue), as parsed, as
    sent, and as prepared before the batch loaded what it needs (at position 1; ``None``: not prepared)."""

    index: int | None
    item: Envelope | Rejected
    raw: Any
    prepared: Recorded | None = None


def id_conflict(envelope_id: str) -> Problem:
    """The problem of an id already used for another event."""
    return Problem(
        "id_conflict",
        f"id {envelope_id!r} is already used for another event",
        f"id「{envelope_id}」は別の内容のイベントで使われています",
        "id",
    )


class Attempt:
    """One attempt at a batch (see the module). ``stored``: the batch's ids already stored, when they were looked
    up (``look_up``; otherwise a stored id makes the transaction fail on the register of envelope ids)."""

    def __init__(
        self,
        batch: Batch,
        settings: Settings,
        now: datetime,
        *,
        look_up: bool,
        stored: dict[str, StoredEnvelope],
        publisher: str | None,
    ):
        self.batch = batch
        self.settings = settings
        self.now = now
        self.received_at = now.isoformat()  # as every event of the batch stores it
        self.look_up = look_up
        self.stored = stored
        self.publisher = publisher
        self.in_batch: dict[str, str] = {}  # id -> digest of what this batch accepted
        self.results: list[PublishResult] = []

    def run(self, work: Iterable[Work]) -> list[PublishResult]:
        """Publish ``work`` in order, each released event right after the event that released it; returns what
        became of the batch's own events."""
        todo = deque(work)
        while todo:
            todo.extendleft(reversed(self.publish(todo.popleft())))
        return self.results

    def publish(self, work: Work) -> list[Work]:
        """Take one event through the steps; returns the events it released."""
        if isinstance(work.item, Rejected):
            raw_id = work.raw.get("id") if isinstance(work.raw, dict) else None
            self.reject(work, work.item, str(raw_id) if raw_id else None, work.item.problems)
            return []
        envelope, prepared = work.item, work.prepared
        if envelope.local_child is not None:  # 紐付け: the source's own number, resolved through the centre's link
            try:
                resolved = resolve_local_child(envelope, self.batch, self.batch.orgs, self.now)
            except Rejected as rejected:
                self.reject(work, envelope, envelope.id, rejected.problems)
                return []
            if resolved is None:
                self.answer(work, envelope, "queued", [waiting_problem(envelope)])
                return []
            envelope, prepared = resolved, None
        assert envelope.child is not None  # parse_envelope: a child or a local number, resolved above
        canonical, digest = envelope.canonical(), envelope.digest()
        if self.answered_as_stored(work, envelope, digest):
            return []
        stream = self.batch.child(envelope.child)
        position = stream.next_position
        candidate = prepared.placed(position) if prepared is not None else recorded_from(canonical, [], position)
        try:
            check_identity(candidate, stream.known, self.batch.orgs, self.batch)
            audience = admit_in_batch(candidate, self.batch, self.settings)
        except Rejected as rejected:
            self.fail_if_stored(envelope)
            self.reject(work, envelope, envelope.id, rejected.problems)
            return []
        except AwaitsResidence:
            self.fail_if_stored(envelope)
            self.wait_for_residence(work, envelope, canonical, digest)
            return []
        entry = append(self.batch, candidate, canonical, digest, audience, self.received_at)
        project(entry, self.batch)
        self.in_batch[envelope.id] = digest
        self.answer(work, envelope, "accepted")
        if entry.kind not in waiting_for_residence.RESIDENCE_KINDS:
            return []
        return [
            Work(None, item, raw) for item, raw in waiting_for_residence.released_by(entry.child, self.batch, self.now)
        ]

    def answered_as_stored(self, work: Work, envelope: Envelope, digest: str) -> bool:
        """Answer ``duplicate`` (same content) or reject with ``id_conflict`` (other content) when ``envelope``'s
        id was accepted earlier in this batch or is stored (as far as this attempt looked); whether it did."""
        if envelope.id in self.in_batch:
            same = self.in_batch[envelope.id] == digest
        elif self.look_up and envelope.id in self.stored:
            same = self.stored[envelope.id].same_content(digest)
        else:
            return False
        if same:
            self.answer(work, envelope, "duplicate")
        else:
            self.reject(work, envelope, envelope.id, [id_conflict(envelope.id)])
        return True

    def fail_if_stored(self, envelope: Envelope) -> None:
        """Before refusing an event on an attempt that did not look ids up: a stored id means the event was sent
        again, a duplicate (or an id conflict) whatever admission says now; the attempt fails so that the next one,
        which looks every id up, decides it."""
        if not self.look_up and self.batch.store.stored_envelope(envelope.id) is not None:
            raise IntegrityError(f"id {envelope.id!r} is already stored")

    def wait_for_residence(self, work: Work, envelope: Envelope, canonical: dict[str, Any], digest: str) -> None:
        """Hold ``envelope`` until the child's residence is recorded (once per id; an id waiting with other
        content is an id conflict)."""
        held = waiting_for_residence.held_digest(self.batch, envelope)
        if held is not None and held != digest:
            self.reject(work, envelope, envelope.id, [id_conflict(envelope.id)])
            return
        if held is None:
            waiting_for_residence.hold(self.batch, envelope, canonical, digest, self.now)
        self.answer(work, envelope, "waiting")

    def answer(
        self,
        work: Work,
        item: Envelope | Rejected,
        outcome: Outcome,
        problems: list[Problem] | None = None,
        envelope_id: str | None = None,
    ) -> None:
        """Record what became of an event (``outcome``, with ``problems``): among the results for the batch's own
        events, under ``envelope_id`` (by default the envelope's); a released event that no longer waits leaves
        the residence queue."""
        if work.index is not None:
            answered_id = envelope_id if envelope_id is not None or isinstance(item, Rejected) else item.id
            self.results.append(PublishResult(work.index, answered_id, outcome, problems or []))
        elif isinstance(item, Envelope) and outcome != "waiting":
            waiting_for_residence.leave(self.batch, item, self.now)

    def reject(self, work: Work, item: Envelope | Rejected, envelope_id: str | None, problems: list[Problem]) -> None:
        """Answer ``rejected`` with ``problems`` and hold what was sent in the quarantine of its source (of the
        publisher, for the batch's own events sent by an authenticated organisation)."""
        self.answer(work, item, "rejected", problems, envelope_id)
        raw = work.raw
        source = self.publisher if work.index is not None and self.publisher else None
        source = source or (str(raw.get("source") or "unknown") if isinstance(raw, dict) else "unknown")
        self.batch.get(Quarantine, source).hold(
            raw=jsonable(raw if not isinstance(raw, Envelope) else raw.canonical()),
            problems=[p.to_dict() for p in problems],
            received_at=self.now.isoformat(),
        )
