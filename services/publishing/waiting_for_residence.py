"""第21条の10の5 events waiting for the child's residence (policy.md, "Rejections leak nothing").

Such an event about a child whose residence at the event's time is unknown is not rejected: it waits in the
child's ``ResidenceQueue`` (outcome ``waiting``; the source's ``ResidenceWaitList`` lists it for the centres) and
is published by itself, in the same transaction, right after an event records the child's residence
(``released_by``); it then leaves the queue (``leave``), whatever becomes of it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from events.envelope import Envelope
from events.model import Recorded
from events.problems import Rejected
from events.store import ResidenceQueue, ResidenceWaitList
from services.publishing.batch import Batch
from services.publishing.parsing import parse_item

RESIDENCE_KINDS = frozenset({"child.registered", "residence.changed"})  # the events that release waiting ones


def release_needs(e: Recorded) -> list[UUID]:
    """The queue that ``e``, once accepted, releases events from: its child's, when it records the residence."""
    return [ResidenceQueue.create_id(e.child)] if e.kind in RESIDENCE_KINDS else []


def held_digest(batch: Batch, envelope: Envelope) -> str | None:
    """The digest of the content with which ``envelope``'s id already waits for the child's residence, if it does."""
    queue = batch.get(ResidenceQueue, envelope.child, create=False)
    held = queue.waiting.get(envelope.id) if queue is not None else None
    return held["digest"] if held is not None else None


def hold(batch: Batch, envelope: Envelope, canonical: dict[str, Any], digest: str, now: datetime) -> None:
    """Put ``envelope`` (its canonical form ``canonical``) in its child's queue and its source's wait list."""
    batch.get(ResidenceQueue, envelope.child).hold(envelope=canonical, digest=digest, arrived=now.isoformat())
    batch.get(ResidenceWaitList, envelope.source).hold(
        envelope_id=envelope.id,
        child=envelope.child,
        kind=envelope.kind,
        at=canonical["at"],
        arrived=now.isoformat(),
    )


def leave(batch: Batch, envelope: Envelope, now: datetime) -> None:
    """``envelope``, released and now published or refused, leaves its child's queue and its source's list."""
    queue = batch.get(ResidenceQueue, envelope.child, create=False)
    if queue is not None and envelope.id in queue.waiting:
        queue.release(envelope_id=envelope.id, released_at=now.isoformat())
    listed = batch.get(ResidenceWaitList, envelope.source, create=False)
    if listed is not None and envelope.id in listed.waiting:
        listed.release(envelope_id=envelope.id, child=envelope.child)


def released_by(child: str, batch: Batch, now: datetime) -> list[tuple[Envelope | Rejected, dict[str, Any]]]:
    """The events waiting in ``child``'s queue, in the order they arrived, to be published again now that the
    child's residence changed, each as (parsed, stored envelope); their times are checked against when they
    arrived."""
    queue = batch.get(ResidenceQueue, child, create=False)
    waiting = sorted(queue.waiting.values() if queue is not None else (), key=lambda w: w["arrived"])
    return [(parse_item(w["envelope"], max(now, datetime.fromisoformat(w["arrived"]))), w["envelope"]) for w in waiting]
