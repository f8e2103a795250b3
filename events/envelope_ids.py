"""The register of stored envelope ids: how a publish stays idempotent (policy.md, "The event envelope": the same
id twice is stored once; a different event under a stored id is an error).

One row per envelope stored, in the table ``tsunagu_envelope_ids`` of the store's database, written by the
recorder in the same transaction as the child's event (the library's hook for rows that must commit with the
events, ``_insert_events``, which its process recorders use for tracking rows): the envelope's key is the
primary key, so a second publisher of the same id fails on it and nothing of its batch is stored, even when the
two race. Nothing in a row can be read back into what it stands for: the key and the digest are HMACs under the
stream secret (``events.sealing.stream_id``), the stream is the child's stream id (an HMAC too). A row is a fact
about the log, not a source of truth: ``rows_from_log`` rebuilds every row from the children's events.

This replaces a stream per envelope id (an aggregate with one event, sealed and stored like a child's event):
the same guarantee at a fraction of the cost, since every publish writes one row per event.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from events.sealing import stream_id_once

TABLE = "tsunagu_envelope_ids"
FORMAT_TABLE = "tsunagu_store_format"  # one row: the format the store was brought to (events.store.STORE_FORMAT)


@dataclass(frozen=True)
class StoredEnvelope:
    """Where an envelope id was stored: the child's stream, the event's place in it (1 for the first event after
    the stream's creation), and the digest of what was stored under the id (as ``digest_mark``)."""

    key: UUID
    stream: UUID
    position: int
    digest: UUID

    def same_content(self, digest: str) -> bool:
        """Whether ``digest`` (``events.envelope.content_digest`` of a canonical envelope) is what was stored."""
        return digest_mark(digest) == self.digest


def envelope_key(envelope_id: str) -> UUID:
    """The primary key of an envelope id (an HMAC: the ids publishers choose cannot be read from the table)."""
    return stream_id_once(f"envelope:{envelope_id}")


def digest_mark(digest: str) -> UUID:
    """A content digest as kept in the table: an HMAC, so that it cannot be used to confirm a guessed content."""
    return stream_id_once(f"envelope-digest:{digest}")


PUBLISHED_TOPIC = "events.store:ChildRecord.Published"


def published_in_log(recorder: Any, mapper: Any, page: int = 1000) -> Iterator[list[Any]]:
    """The log's ``ChildRecord.Published`` events, opened, a page at a time (their keys loaded per page), for
    rebuilding what is kept beside them. Their envelope's routing fields and digest are under the hub's key, so
    erased children's events show them too; an event whose own key is gone is left out."""
    start = 1
    while True:
        notifications = recorder.select_notifications(start, page, topics=[PUBLISHED_TOPIC])
        if not notifications:
            return
        yield [event for event in mapper.to_domain_events(notifications) if "envelope" in vars(event)]
        start = notifications[-1].id + 1


def rows_from_log(recorder: Any, mapper: Any) -> Iterator[list[StoredEnvelope]]:
    """Every row of the register, rebuilt from the log, a page at a time (a store written before the register)."""
    for events in published_in_log(recorder, mapper):
        yield [
            StoredEnvelope(
                envelope_key(e.envelope["id"]), e.originator_id, e.originator_version - 1, digest_mark(e.digest)
            )
            for e in events
        ]


def columns(rows: Iterable[StoredEnvelope]) -> tuple[list[UUID], list[UUID], list[int], list[UUID]]:
    """The rows as four columns (the recorders insert arrays, or one tuple per row)."""
    keys, streams, positions, digests = [], [], [], []
    for row in rows:
        keys.append(row.key)
        streams.append(row.stream)
        positions.append(row.position)
        digests.append(row.digest)
    return keys, streams, positions, digests
