"""The aggregate-access log (集計の閲覧記録, ``aggregates.md``): every request for aggregates, granted or refused,
as one record (reader, person, query, time, the cells returned and which were hidden), each carrying the hash of
the one before, in one chain for the hub. ``verify_chain`` checks it; ``services.audit.replay.verify`` (``tsunagu
audit verify``, ``Hub.verify``) reports its faults with the access records'."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from events.envelope import content_digest
from events.sealing import stream_id
from events.store import HubStore, _CopiedOnWrite

ATTEMPTS = 5  # two requests appending at once: the second one retries on the new head


class AggregateAccessLog(_CopiedOnWrite, Aggregate):
    """The hub's one chain of aggregate requests."""

    @staticmethod
    def create_id() -> UUID:
        return stream_id("aggregate-access-log")

    def __init__(self) -> None:
        self.last_hash = ""
        self.count = 0

    @event("AggregateReadRecorded")
    def record(self, record: dict[str, Any]) -> None:
        self.last_hash = record["hash"]
        self.count += 1


def chain_hash(previous: str, record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k not in ("hash", "prev_hash")}
    return content_digest({"prev": previous, "record": body})


def append(store: HubStore, record: dict[str, Any]) -> dict[str, Any]:
    """Chain ``record`` to the log's head and store it; returns it as stored (with ``sequence`` and hashes)."""
    for attempt in range(ATTEMPTS):
        log = store.get_or_none(AggregateAccessLog.create_id()) or AggregateAccessLog()
        chained = {**record, "sequence": log.count + 1, "prev_hash": log.last_hash}
        chained["hash"] = chain_hash(log.last_hash, chained)
        log.record(record=chained)
        try:
            store.save(log)
            return chained
        except IntegrityError:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def records(store: HubStore) -> list[dict[str, Any]]:
    """Every stored record, in order."""
    events = store.repository.event_store.get(AggregateAccessLog.create_id())
    return [dict(e.record) for e in events if hasattr(e, "record")]


@dataclass
class ChainFault:
    sequence: int
    record: str | None
    fault: str  # edited | missing | reordered
    detail: str = field(default="")


def verify_chain(store: HubStore) -> tuple[int, list[ChainFault]]:
    """The number of records and the first fault of the chain (none when it holds)."""
    previous, found = "", records(store)
    for n, record in enumerate(found, start=1):
        if record.get("sequence") != n:
            return len(found), [ChainFault(n, record.get("id"), "reordered", f"sequence {record.get('sequence')}")]
        if record.get("prev_hash") != previous:
            return len(found), [ChainFault(n, record.get("id"), "missing", "prev_hash is not the record before")]
        if record.get("hash") != chain_hash(previous, record):
            return len(found), [ChainFault(n, record.get("id"), "edited", "hash does not match the record")]
        previous = record["hash"]
    return len(found), []
