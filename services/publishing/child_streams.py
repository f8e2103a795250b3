"""A child's stream as a publish appends to it, without loading it.

A publish asks once how far each of its children's streams has got (``events.streams.stream_versions``) and
appends ``ChildRecord.Published`` events at the next versions; a child with no stream yet gets a new aggregate.
A stream that moved meanwhile makes the insert fail on its (stream, version) key, and the publish tries again.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from events.model import Recorded
from events.store import ChildRecord


class ChildStream:
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
        """What saving the batch stores for this stream: the appended events, or the new aggregate."""
        return [*self.events, *([self.record] if self.record is not None else [])]
