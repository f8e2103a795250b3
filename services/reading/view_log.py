"""The view log (一覧の閲覧記録): one record per view of many children (a ledger page, its CSV, the agenda, the start
page, the overdue list), naming every child the view *consulted* and the access records of those it *showed*.

Why: a view's totals, filters and counts are computed from reads decided by the policy for every child the view
covers (``services.casework.rows``), but only the children shown get an access record (``TimelineReader.record``).
Without this log an auditor could not see that a filtered count (「警告あり 12 人」) looked at a child that was
not on the page (review finding M2). With it, a child's audit trail and its 開示 report list each view that
consulted the child without showing it (「一覧の件数に含まれた」), with no content: the record names the child,
never what its read returned.

A record (``view_record``, before chaining): ``id``, ``view`` (``ledger``, ``joint-ledger``, ``ledger-csv``,
``agenda``, ``start-page``, ``overdue``, ...), ``query`` (the filters, sort and page, or the day), the reader
(``org``, ``role``, ``user``) and ``purpose``, ``t`` (the view's time, the shown reads' ``t``), ``log_position``,
``consulted`` (the sorted ids of the children whose decided read was allowed and went into the view's rows,
totals, filters or counts; a refused read contributes nothing and is not named) and ``shown`` (child -> the id of
the access record of its read, for the children the view showed; each is also in ``consulted``).

One chain per reader person (``ViewLog.create_id(org, user)``: the organisation and the signed-in user, or the
API client's ``user``; ``""`` for the organisation as a whole), like the access logs' one chain per child, so that
two people's views never contend on one head; ``sequence``, ``prev_hash`` and ``hash`` as in the access log
(``chain_hash``). The record is appended in the same transaction as the shown children's access records
(``TimelineReader.record(..., view=...)``): a view is logged exactly when its reads are. ``verify_chains``
(through ``services.audit.replay.verify``, ``tsunagu audit verify``) checks every chain.

Erasure: done as the access logs do it. A view record, like an access record, is sealed under the hub's key, not
a child's (its state names no ``child`` at the top: ``events.sealing.key_scope``), so it outlives a child's
crypto-erasure and keeps the erased child's id: policy.md, "access records about the child remain, without
content"; a view record has no content to begin with (ids, the query, the time). That keeps an erased child's
disclosure and audit complete and every chain verifiable after an erasure. (A view record stores the child's
plain id, exactly as an access record does; it names no event, no field and nothing a read returned.)

Finding the views that consulted one child scans the view logs (``consulting``): an audit query, rare; the
records are small (ids).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import get_topic

from consent.model import Reader
from events.envelope import content_digest
from events.sealing import stream_id
from events.store import HubStore, _CopiedOnWrite
from events.streams import last_event

PAGE = 500


class ViewLog(_CopiedOnWrite, Aggregate):
    """The views one reader person made, each record carrying the hash of the one before."""

    @staticmethod
    def create_id(org: str, user: str | None) -> UUID:
        return stream_id(f"views:{org}\x1f{user or ''}")

    def __init__(self, org: str, user: str):
        self.org = org
        self.user = user
        self.last_hash = ""
        self.count = 0

    @dataclass(frozen=True)  # declared, as ``AccessLog.ReadRecorded``: appended directly at the log's next version
    class ViewRecorded(Aggregate.Event):
        """One view record, chained to the one before."""

        record: dict[str, Any]

    @event(ViewRecorded)
    def record(self, record: dict[str, Any]) -> None:
        self.last_hash = record["hash"]
        self.count += 1


VIEW_TOPIC = get_topic(ViewLog.ViewRecorded)


def view_record(
    reader: Reader, view: str, query: Mapping[str, Any], consulted: Iterable[str], *, log_position: int
) -> dict[str, Any]:
    """A view's record before its shown reads are known and before chaining (``TimelineReader.record`` adds
    ``shown`` and chains it)."""
    return {
        "id": str(uuid.uuid4()),
        "view": view,
        "query": {k: v for k, v in query.items() if v not in (None, "")},
        "reader": {"org": reader.org, "role": reader.role, "user": reader.user},
        "purpose": reader.purpose,
        "t": reader.t.isoformat(),
        "log_position": log_position,
        "consulted": sorted(set(consulted)),
        "shown": {},
    }


def chain_hash(previous: str, record: Mapping[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k not in ("hash", "prev_hash")}
    return content_digest({"prev": previous, "record": body})


@dataclass
class Appending:
    """One view record on its way into its reader's chain, inside ``TimelineReader.record``'s transaction:
    ``pending()`` is what to save with the access records on each try (nothing when an earlier try's commit
    went through and only its answer was lost: the record is found by id after the head it had chained to)."""

    store: HubStore
    record: dict[str, Any]
    stream: UUID = field(init=False)
    _tried: int | None = field(default=None, init=False)  # the head version the last try chained to

    def __post_init__(self) -> None:
        reader = self.record["reader"]
        self.stream = ViewLog.create_id(reader["org"], reader.get("user"))

    def pending(self) -> list[Any]:
        if self._tried is None:
            head = last_event(self.store, self.stream)
        else:
            since = list(self.store.events.get(self.stream, gt=self._tried))
            if any(getattr(e, "record", {}).get("id") == self.record["id"] for e in since):
                return []
            head = since[-1] if since else last_event(self.store, self.stream)
        self._tried = head.originator_version if head is not None else 0
        last = head.record if isinstance(head, ViewLog.ViewRecorded) else None
        previous, sequence = (last["hash"], last["sequence"] + 1) if last else ("", 1)
        chained = dict(self.record, prev_hash=previous, sequence=sequence)
        chained["hash"] = chain_hash(previous, chained)
        if head is None:
            reader = self.record["reader"]
            log = ViewLog(reader["org"], reader.get("user") or "")
            log.record(record=chained)
            return [log]
        return [
            ViewLog.ViewRecorded(
                originator_id=self.stream,
                originator_version=head.originator_version + 1,
                timestamp=ViewLog.ViewRecorded.create_timestamp(),
                record=chained,
            )
        ]


def stored_views(store: HubStore, *, until: int | None = None) -> Iterator[Any]:
    """Every stored view record event, in the log's global order (up to log position ``until``, when given; as
    stored: not opened)."""
    start = 1
    while True:
        page = store.recorder.select_notifications(start, PAGE, stop=until, topics=[VIEW_TOPIC])
        yield from page
        if len(page) < PAGE:
            return
        start = page[-1].id + 1


@dataclass
class ViewFault:
    stream: str
    sequence: int
    record: str | None
    fault: str  # edited | missing | reordered | unreadable
    detail: str


@dataclass
class Checked:
    """What ``verify_chains`` found: the number of view records, the first fault of each reader's chain, and the
    ``shown`` access records of every readable view record (view record id -> child -> access record id), for
    the cross-check with the access records that name their view (``services.audit.replay.verify``)."""

    count: int = 0
    faults: list[ViewFault] = field(default_factory=list)
    shown: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)  # id -> (stream, child -> record)


def verify_chains(store: HubStore) -> Checked:
    """Every reader's chain checked: see ``Checked``."""
    heads: dict[UUID, tuple[int, str]] = {}  # stream -> (the last sequence checked, its hash)
    broken: set[UUID] = set()
    checked = Checked()
    faults = checked.faults
    for stored in stored_views(store):
        checked.count += 1
        stream = stored.originator_id
        sequence, previous = heads.get(stream, (0, ""))
        try:
            record = dict(store.mapper.to_domain_event(stored).record)
        except Exception as error:  # a damaged record is reported, never skipped
            if stream not in broken:
                faults.append(ViewFault(str(stream), sequence + 1, None, "unreadable", type(error).__name__))
                broken.add(stream)
            continue
        rid = record.get("id")
        reader = record.get("reader") or {}
        if isinstance(rid, str) and isinstance(record.get("shown"), dict):  # even after a break: it is stored
            checked.shown[rid] = (str(stream), dict(record["shown"]))
        if stream in broken:
            continue
        fault = None
        if record.get("hash") != chain_hash(str(record.get("prev_hash", "")), record):
            fault = ("edited", "the record's content does not match its hash")
        elif ViewLog.create_id(str(reader.get("org")), reader.get("user")) != stream:
            fault = ("reordered", "a record of another reader's views is stored in this chain")
        elif record.get("sequence") != sequence + 1:
            fault = ("missing", f"position #{sequence + 1} holds record #{record.get('sequence')}")
        elif record.get("prev_hash") != previous:
            fault = ("edited", "prev_hash is not the hash of the record before")
        if fault is not None:
            faults.append(ViewFault(str(stream), sequence + 1, rid, *fault))
            broken.add(stream)
            continue
        heads[stream] = (sequence + 1, record["hash"])
    return checked


def consulting(store: HubStore, child: str) -> list[dict[str, Any]]:
    """The view records that consulted ``child``, oldest first (readable ones; ``verify_chains`` reports the
    others)."""
    out = []
    for stored in stored_views(store):
        try:
            record = store.mapper.to_domain_event(stored).record
        except Exception:  # noqa: S112 - reported by verify_chains
            continue
        if child in record.get("consulted", ()):
            out.append(dict(record))
    return out
