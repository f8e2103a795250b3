"""**Remembered access-log heads**: each child's access-log head (stream version, last hash, sequence) kept in the
reading process, so that a read chains its access record without reading and decoding the log's last record.

A read appends one access record after its child's log head: it needs the head's version (the insert goes at the
next one), and the last record's ``hash`` and ``sequence`` (the chain). Reading them costs a query and the
decoding of the whole last record (its decision lists every event of the child: 0.4–0.9 ms for a 500-event
child), on every read. The head this process wrote last is usually still the head, so it is kept here
(``AccessHeads``) and used instead, and the store confirms it at no cost: the insert at the remembered version + 1
is refused by the stream's (id, version) key if any other writer (another process, another thread, a view's bulk
append) has appended since, and the read's retry (``TimelineReader.record``, ``events.retry``) then reads the
head from the store as before. A remembered head is therefore never trusted beyond the insert's own optimistic
check: a stale one costs one refused insert, never a wrong chain.

What may make a remembered head wrong other than a newer append: nothing the hub does. Access records are sealed
under the hub's key, so an erasure does not turn the head into a ``Shredded`` placeholder; the log is append-only.
(A store restored from a backup under a running process is not a case: processes are restarted after a restore,
``deploy/README``.)

Bounded: the last ``MAX_HEADS`` children read (about 200 bytes each); thread-safe; a head is only ever replaced by
a later one (two threads of one process finishing out of order cannot move it back)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock
from typing import Any
from uuid import UUID

from events.store import AccessLog

MAX_HEADS = 65_536


@dataclass(frozen=True)
class Head:
    """An access log's head: the stream version of its last event, the last record's hash and sequence."""

    version: int
    hash: str
    sequence: int

    def as_event(self, stream: UUID) -> AccessLog.ReadRecorded:
        """The head in the form ``TimelineReader`` chains to (a stored last event): only ``hash`` and ``sequence``
        of its record are read."""
        return AccessLog.ReadRecorded(
            originator_id=stream,
            originator_version=self.version,
            timestamp=AccessLog.ReadRecorded.create_timestamp(),
            record={"hash": self.hash, "sequence": self.sequence},
        )


class AccessHeads:
    """The remembered heads of one process's access logs (see the module docstring)."""

    def __init__(self, max_heads: int = MAX_HEADS):
        self.max_heads = max_heads
        self._heads: OrderedDict[UUID, Head] = OrderedDict()
        self._lock = Lock()

    def get(self, stream: UUID) -> Head | None:
        with self._lock:
            head = self._heads.get(stream)
            if head is not None:
                self._heads.move_to_end(stream)
            return head

    def forget(self, stream: UUID) -> None:
        with self._lock:
            self._heads.pop(stream, None)

    def saved(self, pending: list[Any]) -> None:
        """Remember the heads left by ``pending``, just committed: new logs (``AccessLog`` aggregates) and
        records appended to existing ones (``AccessLog.ReadRecorded`` events)."""
        last: dict[UUID, Head] = {}
        for item in pending:
            if isinstance(item, AccessLog):
                last[item.id] = Head(item.version, item.last_hash, item.count)
            elif isinstance(item, AccessLog.ReadRecorded):
                last[item.originator_id] = Head(item.originator_version, item.record["hash"], item.record["sequence"])
        with self._lock:
            for stream, head in last.items():
                known = self._heads.get(stream)
                if known is None or known.version < head.version:
                    self._heads[stream] = head
                    self._heads.move_to_end(stream)
            while len(self._heads) > self.max_heads:
                self._heads.popitem(last=False)
