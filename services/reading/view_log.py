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
``registry_version``, ``settings`` and ``policy_version`` (what the view's reads were decided under, as an access
record names them), ``sample`` (up to ``SAMPLE`` consulted children, chosen by ``sample`` from the record's id, each with the stream
position its read was decided on: ``audit verify`` replays their reads at the record's time under its versions
and reports one the policy refuses, ``services.audit.replay.replay_view_samples``), ``consulted`` (``digest`` and
``count`` of the consulted set: the sorted ids of the children
whose decided read was allowed and went into the view's rows, totals, filters or counts; a refused read
contributes nothing and is not named) and ``shown`` (child -> the id of the access record of its read, for the
children the view showed; each is also in the consulted set). Each of those access records names the view record
back (its ``view``), so that ``audit verify`` sees a view record deleted (``services.audit.replay.
views_against_reads``); the signed anchor holds each view log's head (``services.audit.anchors``), so that the
last records of a chain, or a whole chain, cut off show too.

Consulted sets
--------------
A centre's views consult the same children again and again (every page of its ledger, every filter, the start
page: the centre's children decided for the reader), so the ids are stored once per distinct set, as a
``ConsultedSet`` stream keyed by the set's digest (``consulted_digest``), written in the view's transaction only
when no set with that digest is stored yet (``Appending.consulted_set``: one indexed look-up). The view record
carries the digest, covered by its chain hash; ``verify_chains`` checks that every digest named has its set and
that the set matches it. A view record is then a few hundred bytes whatever the number of children (a 2,000-child
record was ~31 KB before, see ``docs/benchmarks.md``), and a child's audit (``consulting``) opens the distinct
sets (few) and the small view records, not a big record per page load.

One chain per reader person (``ViewLog.create_id(org, user)``: the organisation and the signed-in user, or the
API client's ``user``; ``""`` for the organisation as a whole), like the access logs' one chain per child, so that
two people's views never contend on one head; ``sequence``, ``prev_hash`` and ``hash`` as in the access log
(``chain_hash``). The record is appended in the same transaction as the shown children's access records
(``TimelineReader.record(..., view=...)``): a view is logged exactly when its reads are. ``verify_chains``
(through ``services.audit.replay.verify``, ``tsunagu audit verify``) checks every chain.

Erasure: what survives, and why. A view record and a consulted set are sealed under the hub's key, not a
child's (their states name no ``child`` at the top: ``events.sealing.key_scope``), so they outlive a child's
crypto-erasure, exactly as access records do (policy.md, "access records about the child remain, without
content"): the erased child's id stays in the consulted sets that held it and, for a view that showed the child,
as a key of ``shown``; the view record keeps its ``query``. So whoever holds the hub's key can still read that the
erased child was among the children counted by, say, a ledger filtered on ``alerts=open`` (a filter paired with a
child's id), as the child's access records keep that a reader read the child and when. Nothing the child's reads
returned survives (a view record has no content: ids, the query, the time, the versions). That keeps an erased
child's disclosure and audit complete and every chain verifiable after an erasure; hiding the pairing (storing
for filtered views only the shown children's access-record ids) was not done: the consulted set would still name
the child, and the shown ids are what ``verify`` checks against the access records.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import get_topic

from consent.model import Reader, Settings
from consent.policy import POLICY_VERSION
from events.envelope import content_digest
from events.sealing import stream_id
from events.store import HubStore, _CopiedOnWrite
from events.streams import last_event, stored_of


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


class ConsultedSet(_CopiedOnWrite, Aggregate):
    """One distinct set of consulted children, stored once under its digest (``consulted_digest``) and named by
    every view record that consulted exactly these children (see the module docstring, "Consulted sets")."""

    @staticmethod
    def create_id(digest: str) -> UUID:
        return stream_id(f"consulted:{digest}")

    def __init__(self, digest: str, children: list[str]):
        self.digest = digest
        self.children = children


VIEW_TOPIC = get_topic(ViewLog.ViewRecorded)
SET_TOPIC = get_topic(ConsultedSet.Created)


def consulted_digest(children: Iterable[str]) -> str:
    """The digest a consulted set is stored under and a view record names: of its sorted, distinct ids."""
    return content_digest({"consulted": sorted(set(children))})


SAMPLE = 3  # consulted children per view record whose decision ``audit verify`` replays


def sample(record_id: str, children: Sequence[str]) -> list[str]:
    """The consulted children of view record ``record_id`` whose reads ``audit verify`` replays: up to ``SAMPLE``
    of the sorted ``children``, at places drawn from a hash of the record's (random) id: deterministic, so that
    verify can check the sample is this one, not foreseeable by whoever makes the view, and O(1) whatever the
    number of children (a view of 5,000 children does not hash each)."""
    ordered = sorted(children)
    if len(ordered) <= SAMPLE:
        return ordered
    seed = hashlib.sha256(record_id.encode()).digest()
    places: list[int] = []
    for i in range(0, len(seed), 4):
        place = int.from_bytes(seed[i : i + 4], "big") % len(ordered)
        while place in places:  # distinct places: the next one along
            place = (place + 1) % len(ordered)
        places.append(place)
        if len(places) == SAMPLE:
            break
    return sorted(ordered[p] for p in places)


def view_record(
    reader: Reader,
    view: str,
    query: Mapping[str, Any],
    consulted: Mapping[str, int],
    *,
    log_position: int,
    registry_version: int,
    settings: Settings,
    policy_version: str = POLICY_VERSION,
) -> dict[str, Any]:
    """A view's record before its shown reads are known and before chaining (``TimelineReader.record`` adds
    ``shown``, and ``Appending`` stores the consulted set and chains it). The consulted ids ride along under
    ``CONSULTED_IDS``, which ``Appending`` takes out: the record keeps only their digest and count.
    ``consulted``: each consulted child's stream position its read was decided on (``Decided.child_position``);
    the record keeps those of its ``sample`` (``replay`` in ``audit verify``)."""
    children = sorted(consulted)
    rid = str(uuid.uuid4())
    return {
        "id": rid,
        "view": view,
        "query": {k: v for k, v in query.items() if v not in (None, "")},
        "reader": {"org": reader.org, "role": reader.role, "user": reader.user},
        "purpose": reader.purpose,
        "t": reader.t.isoformat(),
        "log_position": log_position,
        "registry_version": registry_version,
        "settings": settings.to_dict(),
        "policy_version": policy_version,
        "consulted": {"digest": consulted_digest(children), "count": len(children)},
        "sample": {child: consulted[child] for child in sample(rid, children)},
        "shown": {},
        CONSULTED_IDS: children,
    }


CONSULTED_IDS = "_consulted_ids"  # in a record on its way to ``Appending`` only: never stored in a view record


def consulted_ids(store: HubStore, record: Mapping[str, Any]) -> list[str] | None:
    """The children a view record consulted: from its consulted set (``None`` when the set is not stored or does
    not open: ``verify`` reports it)."""
    consulted = record.get("consulted")
    if not isinstance(consulted, dict):
        return None
    found = store.get_or_none(ConsultedSet.create_id(str(consulted.get("digest"))))
    return list(found.children) if found is not None else None


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

    children: list[str] = field(init=False)
    _stored_set: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        reader = self.record["reader"]
        self.stream = ViewLog.create_id(reader["org"], reader.get("user"))
        self.record = dict(self.record)
        self.children = self.record.pop(CONSULTED_IDS, [])

    def consulted_set(self) -> list[Any]:
        """The view's consulted set to store with it, unless it is stored already (one indexed look-up; a view
        that consulted the same children as an earlier one, the usual case, stores nothing)."""
        if self._stored_set:
            return []
        digest = self.record["consulted"]["digest"]
        if self.store.recorder.select_events(ConsultedSet.create_id(digest), limit=1):
            self._stored_set = True
            return []
        return [ConsultedSet(digest, self.children)]

    def pending(self) -> list[Any]:
        pending = self.consulted_set()
        return pending + self._chained()

    def _chained(self) -> list[Any]:
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
    return stored_of(store, VIEW_TOPIC, until=until)


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
    sampled: list[dict[str, Any]] = field(default_factory=list)  # the intact records with a ``sample`` to replay


def verify_chains(store: HubStore, streams: Iterable[UUID] | None = None) -> Checked:
    """Every reader's chain checked (or the chains ``streams`` only, each whole: ``chains_naming``): see
    ``Checked``."""
    heads: dict[UUID, tuple[int, str]] = {}  # stream -> (the last sequence checked, its hash)
    broken: set[UUID] = set()
    checked = Checked()
    faults = checked.faults
    sets: dict[
        str, tuple[str, int, Any, Any]
    ] = {}  # digest -> the first record naming it (stream, sequence, id, count)
    stored_records = stored_views(store) if streams is None else _stored_in(store, streams)
    for stored in stored_records:
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
        consulted = record.get("consulted")
        if isinstance(consulted, dict):
            sets.setdefault(str(consulted.get("digest")), (str(stream), sequence + 1, rid, consulted.get("count")))
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
        if isinstance(record.get("sample"), dict):
            checked.sampled.append(record)
    faults += [f for digest, first in sets.items() if (f := _check_set(store, digest, *first)) is not None]
    return checked


def _stored_in(store: HubStore, streams: Iterable[UUID]) -> Iterator[Any]:
    """The stored view records of the readers' chains ``streams``, each chain in order (as stored: not opened)."""
    for stream in dict.fromkeys(streams):
        for stored in store.recorder.select_events(stream):
            if stored.topic == VIEW_TOPIC:
                yield stored


def chains_naming(store: HubStore, child: str, readers: Iterable[Mapping[str, Any]]) -> list[UUID]:
    """The readers' chains that ``tsunagu audit verify --child`` checks for ``child``: the chain of each reader in
    ``readers`` (the readers of the child's access records that name a view: their view records must be there) and
    of each reader whose view record consulted the child (``consulting``). Each is checked whole (a record's place in
    its chain is known only from the records before it). What this cannot see for one child: a chain cut off after
    the last record naming the child, or a whole chain deleted whose views never showed the child; the anchor
    (``services.audit.anchors``) catches both, and the whole log's verify checks every chain."""
    found = [ViewLog.create_id(str(r.get("org")), r.get("user")) for r in readers]
    for record in consulting(store, child):
        reader = record.get("reader")
        reader = reader if isinstance(reader, dict) else {}
        found.append(ViewLog.create_id(str(reader.get("org")), reader.get("user")))
    return list(dict.fromkeys(found))


def _check_set(store: HubStore, digest: str, stream: str, sequence: int, rid: Any, count: Any) -> ViewFault | None:
    """How the consulted set a view record names (by ``digest``, first named by record ``rid``) is not as named."""
    rows = store.recorder.select_events(ConsultedSet.create_id(digest), limit=1)  # as stored, not from a cache
    if not rows:
        return ViewFault(stream, sequence, rid, "missing", f"its consulted set {digest[:12]}… is not stored")
    try:
        found = store.mapper.to_domain_event(rows[0])
    except Exception as error:  # a damaged set is reported, never skipped
        return ViewFault(
            stream, sequence, rid, "unreadable", f"its consulted set does not open: {type(error).__name__}"
        )
    if consulted_digest(found.children) != digest or len(found.children) != count:
        return ViewFault(stream, sequence, rid, "edited", f"its consulted set {digest[:12]}… does not match its digest")
    return None


def stored_sets(store: HubStore) -> Iterator[Any]:
    """Every stored consulted set (as stored: not opened)."""
    return stored_of(store, SET_TOPIC)


def consulting(store: HubStore, child: str) -> list[dict[str, Any]]:
    """The view records that consulted ``child``, oldest first (readable ones; ``verify_chains`` reports the
    others): the distinct consulted sets are scanned for the child (few: one per distinct set of children a view
    covered), then the view records (small: they name their set by its digest) for those sets."""
    digests = set()
    for stored in stored_sets(store):
        try:
            found = store.mapper.to_domain_event(stored)
        except Exception:  # noqa: S112 - reported by verify_chains (the views naming it)
            continue
        if child in found.children:
            digests.add(found.digest)
    if not digests:
        return []
    out = []
    for stored in stored_views(store):
        try:
            record = store.mapper.to_domain_event(stored).record
        except Exception:  # noqa: S112 - reported by verify_chains
            continue
        consulted = record.get("consulted")
        if isinstance(consulted, dict) and consulted.get("digest") in digests:
            out.append(dict(record))
    return out
