"""The event store on the ``eventsourcing`` library.

Streams (aggregates):

- ``ChildRecord``: one stream per child; each published event is one ``Published`` domain event carrying the
  envelope and the direct audience fixed at publication.
- ``OrgRegistry``: the organisations, as a history of registrations and updates.
- ``AccessLog``: one stream per child of access records, each chained to the previous one by hash.
- ``Quarantine``: what could not be accepted, with the reasons, per publishing organisation (each held input
  sealed under the key of the child, or of the source's number, it names: ``Quarantine.hold``).
- ``LinkingQueue``: per publishing organisation, records waiting for their number to be linked (紐付け待ち).
- ``ResidenceQueue``: per child, 第21条の10の5 events waiting for the child's residence to be recorded.

Beside the streams, the register of stored envelope ids (``events.envelope_ids``), written by the recorder in the
same transaction as the child's event, so that an id is stored once (idempotent publish) and a reused id with
other content is caught, even when two publishers race.

The library's notification log is the global order. SQLite (a file) is the embedded default; PostgreSQL is
selected by a ``postgresql://`` URL. Both go through the same code.

Every process keeps decrypted aggregates (``WeighedCache``) and data keys (``events.sealing.DataKeys``) in memory;
``ErasureWatch`` makes another process's erasure reach them within ``ERASURE_CHECK_SECONDS``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from threading import Condition, Lock
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlparse
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application, Cache, LRUCache, ProcessingEvent
from eventsourcing.domain import Aggregate, OriginatorIDError, OriginatorVersionError, event
from eventsourcing.persistence import EventStore, Notification, Recording, StoredEvent

from events.envelope_ids import StoredEnvelope, envelope_key, rows_from_log
from events.index_snapshots import IndexSnapshots
from events.model import Org, Recorded
from events.problems import Busy
from events.retry import RETRY_AFTER_SECONDS, TURN_WAIT_SETTING, turn_wait_seconds
from events.sealing import (
    DataKeys,
    Keyring,
    SealingMapper,
    chain_head_of,
    child_scope,
    configure_stream_ids,
    local_scope,
    stream_id,
)
from events.snapshots import ChildSnapshots, Loaded, SnapshotDue

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # for annotations only: a SQLite store does not load the PostgreSQL driver
    from events.postgres import PostgresRecorder
    from events.sqlite import SQLiteRecorder

NAMESPACE = uuid5(NAMESPACE_URL, "https://tsunagu.example/streams")

# What a store's tables hold beside the streams, by format (recorded in the store; an older store is brought up to
# date when opened): 1, the register of envelope ids (events.envelope_ids); 2, the children's admission facts
# (services.projections.admission_facts, rebuilt by services.publishing.ingest).
ENVELOPE_IDS_FORMAT = 1
STORE_FORMAT = 6  # 3: the children's facts of policy version 2 (services.projections.admission_facts), the plan index;
# 4: the children per publishing organisation (services.projections.published); 5: the planners' counts and their
# tallies (services.projections.municipal_counts), made from the log by services.aggregates.figures.correct, which
# the composition root (services.hub) hands the publish path as an upgrade, and the providers' reports among the
# children's facts (admission_facts.report_facts_from_log); 6: every monthly report line in its (school, centre)'s
# ReportLines, none read from a ReportLine stream (services.aggregates.report_lines, also an upgrade of services.hub)
DEFAULT_DATABASE = "sqlite:///tsunagu.db"
ERASURE_OWED_GRACE_SECONDS = 600.0  # a destruction owed whose erasure is not stored is dropped this old (below)
ERASURE_OWED_SWEEP_SECONDS = 60.0  # how often, at most, a running process sweeps the destructions owed (below)
ERASURE_CHECK_SECONDS = 2.0  # how often, at most, a process looks for erasures made by other processes


def recorded_from(envelope: dict[str, Any], audience: Iterable[str], position: int) -> Recorded:
    """The ``Recorded`` of a stored envelope at ``position`` with its direct ``audience`` (a list as stored, or a
    ``frozenset``, which is kept as it is: shared by a snapshot's entries, ``events.snapshots.rebuilt_entries``).

    **Recorded built directly**: its fields set in the instance's dict, without the frozen dataclass's
    constructor (which sets each of the twelve fields through ``object.__setattr__``): a third of the time, and
    every load of a child's stream makes one per event (from its events or from its snapshot,
    ``events.snapshots``). ``tests/events/test_snapshots.py`` checks it gives what the constructor gives."""
    recorded = object.__new__(Recorded)
    recorded.__dict__.update(
        position=position,
        id=envelope["id"],
        kind=envelope["kind"],
        child=envelope["child"],
        source=envelope["source"],
        basis=envelope["basis"],
        at=datetime.fromisoformat(envelope["at"]),
        payload=envelope.get("payload") or {},
        audience=frozenset(audience),
        function=envelope.get("function"),
        to=envelope.get("to"),
        sensitive=tuple(envelope.get("sensitive") or ()),
    )
    return recorded


class _CopiedOnWrite:
    """Writers work on a copy of a cached aggregate (the library deep-copies on ``get``). Entries are immutable
    values, so one level of copying is enough and keeps a 500-event stream cheap to copy."""

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        clone = object.__new__(type(self))
        for key, value in self.__dict__.items():
            clone.__dict__[key] = (
                list(value) if isinstance(value, list) else (dict(value) if isinstance(value, dict) else value)
            )
        return clone


class ChildRecord(_CopiedOnWrite, Aggregate):
    """Everything published about one child, in the order the hub recorded it."""

    @staticmethod
    def create_id(child: str) -> UUID:
        return stream_id(f"child:{child}")

    def __init__(self, child: str):
        self.child = child
        self.entries: list[Recorded] = []
        self.envelopes: list[dict[str, Any]] = []

    @dataclass(frozen=True)  # what the library's metaclass makes it, said for the checker (as the library does)
    class Published(Aggregate.Event):
        """One envelope published about the child (declared, rather than made by ``@event`` from the method, so
        that the publish path and the checker know its fields; the stored topic is the same)."""

        envelope: dict[str, Any]
        audience: list[str]
        digest: str
        received_at: str

        def mutate(self, aggregate: Any) -> Any:
            """**Published, projected directly**: what the library's ``CanMutateAggregate.mutate`` does with this
            event (the same checks of the stream and the version, with the same errors; ``ChildRecord._add``,
            which is ``publish``'s body; then the version and the time modified), without what its ``@event``
            machinery does for every event: a dict of the event's fields filtered by the method's signature
            (``filter_kwargs_for_method_params``) and a bound method to call with them. Every load of a child's
            stream runs this once per event: a fifth of a cold 500-event load.
            ``tests/events/test_store_cache.py`` checks it against the library's ``mutate``."""
            assert aggregate is not None
            if self.originator_id != aggregate.id:
                raise OriginatorIDError(self.originator_id, aggregate.id)
            next_version = aggregate.version + 1
            if self.originator_version != next_version:
                raise OriginatorVersionError(self.originator_version, next_version)
            aggregate._add(self.envelope, self.audience)
            aggregate.version = self.originator_version
            aggregate.modified_on = self.timestamp
            return aggregate

    @event(Published)
    def publish(self, envelope: dict[str, Any], audience: list[str], digest: str, received_at: str) -> None:
        self._add(envelope, audience)

    def _add(self, envelope: dict[str, Any], audience: list[str]) -> None:
        """What publishing ``envelope`` to ``audience`` changes in the record (``publish``, ``Published.mutate``)."""
        self.envelopes.append(envelope)
        self.entries.append(recorded_from(envelope, audience, len(self.entries) + 1))

    def as_stored(self) -> ChildStream:
        """The child's stream at the version this record is at now, copied so that it cannot change (``ChildStream``).

        A record in the aggregate cache is one object shared by every thread of the process, and a read of the
        same child in another thread fast-forwards it **in place** (``HubStore.peek``: ``Published.mutate``
        appends the envelope, then the entry, then sets the version). What a read decides on, and the version it
        is recorded and kept under, must be one and the same stream, so a read takes this copy first:
        ``version`` is read first, then the first ``version - 1`` entries and envelopes (the created event is
        version 1, each published envelope one more). The lists only ever grow at their end and the version is set
        after both appends, so at the version read the lists hold at least that many, and those are exactly the
        stream's events at that version, whatever another thread appends meanwhile."""
        version = self.version
        count = version - 1
        entries = tuple(self.entries[:count])
        envelopes = tuple(self.envelopes[:count])
        if len(entries) != count or len(envelopes) != count:
            raise RuntimeError(f"child record at version {version} holds {len(entries)} entries, not {count}")
        return ChildStream(self.child, version, entries, envelopes)


@dataclass(frozen=True)
class ChildStream:
    """A child's stream as stored at one version, copied from its record (``ChildRecord.as_stored``): what a read
    is decided on and kept under (``services.reading.timeline.decide``, ``services.reading.kept``)."""

    child: str
    version: int
    entries: tuple[Recorded, ...]
    envelopes: tuple[dict[str, Any], ...]


REGISTRY_ID = uuid5(NAMESPACE, "org-registry")  # a fixed, public name: nothing to hide


@dataclass(frozen=True)
class RegistryAt:
    """The registry as one version of it: ``version`` (the ``OrgRegistry``'s aggregate version; 1 is the empty
    registry) and ``orgs``, the organisations registered at that version (a read-only mapping).

    **The registry readers decide on, one immutable value.** What a read is decided on and what its access record
    names (``registry_version``) must be one and the same registry. The cached ``OrgRegistry`` is shared by every
    thread of the process and fast-forwarded by whichever thread loads it next (the library's repository, under a
    lock readers do not take); when it kept a dict changed in place and a version beside it, a reader could decide
    on organisations that changed under it, or pair one version's organisations with another's number, and record
    a decision ``audit verify`` cannot replay (review s7-read, HIGH 1 and MEDIUM 1). Now ``OrgRegistry._apply``
    builds the next value whole (a new dict, the next version) and puts it in place with **one attribute
    assignment**, which another thread sees either entirely before or entirely after: a reader that takes
    ``OrgRegistry.current`` once (``HubStore.registry``, ``HubStore.registry_at_position``) holds a registry no
    thread can change, and decides and records under it. It replaces the aggregate's ``orgs`` dict and its
    ``version`` read separately. The cost: each change copies the dict of organisations (``docs/benchmarks.md``,
    session 7, "After the review": the replay of a registry of a few thousand organisations)."""

    version: int
    orgs: MappingProxyType[str, Org]


class OrgRegistry(_CopiedOnWrite, Aggregate):
    """The organisations registered in the hub, with their history (each change is one version). What readers
    use is ``current`` (``RegistryAt``), replaced whole on each change."""

    @staticmethod
    def create_id() -> UUID:
        return REGISTRY_ID

    def __init__(self) -> None:
        self.current = RegistryAt(1, MappingProxyType({}))  # the empty registry is the aggregate's version 1
        self.history: list[dict[str, Any]] = []
        self.changed_by: list[str | None] = []  # who made each change of ``history`` (None: before it was kept)

    @event("OrgRegistered")
    def register(self, org: dict[str, Any], by: str | None = None) -> None:
        self._apply(org, by)

    @event("OrgUpdated")
    def update(self, org: dict[str, Any], by: str | None = None) -> None:
        self._apply(org, by)

    def _apply(self, org: dict[str, Any], by: str | None) -> None:
        """Keep the change in the history and put the next ``RegistryAt`` in place by one assignment (the library
        applies the event before it sets ``version``, so the event's version is ``self.version + 1``)."""
        self.history.append(org)
        self.changed_by.append(by)
        orgs = self.current.orgs.copy()  # the dict's own copy (``dict(proxy)`` iterates the proxy: 20 times slower)
        orgs[org["id"]] = Org.from_dict(org)
        self.current = RegistryAt(self.version + 1, MappingProxyType(orgs))

    def orgs_at(self, version: int) -> dict[str, Org]:
        """The registry as it was at aggregate version ``version`` (1 is the empty registry)."""
        orgs: dict[str, Org] = {}
        for org in self.history[: max(version - 1, 0)]:
            orgs[org["id"]] = Org.from_dict(org)
        return orgs


class AccessLog(_CopiedOnWrite, Aggregate):
    """The access records about one child, each carrying the hash of the one before (a per-child chain)."""

    @staticmethod
    def create_id(child: str) -> UUID:
        return stream_id(f"access:{child}")

    def __init__(self, child: str):
        self.child = child
        self.last_hash = ""
        self.count = 0

    @dataclass(frozen=True)  # what the library's metaclass makes it, said for the checker (as the library does)
    class ReadRecorded(Aggregate.Event):
        """One access record, chained to the one before (declared, rather than made by ``@event`` from the
        method, because the read path appends it directly at the log's next version; the stored topic is the
        same). ``record``: the access record as stored, in either of its forms (``services.reading.record_form``:
        form 1 before session 10, form 2 after); both carry ``hash`` and ``sequence`` under those names."""

        record: dict[str, Any]

        @staticmethod
        def chain_head(state: dict[str, Any]) -> dict[str, Any] | None:
            """What of the record is stored in the clear beside its sealed state (``events.sealing.CLEAR_HEAD``):
            what the next record is chained to, its ``hash`` and ``sequence`` (None: a record without them, not
            chained, stored whole as any other event)."""
            return chain_head_of(state.get("record"))

    @event(ReadRecorded)
    def record(self, record: dict[str, Any]) -> None:
        self.last_hash = record["hash"]
        self.count += 1


class Quarantine(_CopiedOnWrite, Aggregate):
    """Inputs from one organisation that could not be accepted, kept with their reasons for correction."""

    @staticmethod
    def create_id(source: str) -> UUID:
        return stream_id(f"quarantine:{source}")

    def __init__(self, source: str):
        self.source = source
        self.held: list[dict[str, Any]] = []

    @event("Held")
    def hold(
        self, raw: Any, problems: list[dict[str, Any]], received_at: str, about: dict[str, Any] | None = None
    ) -> None:
        """Hold ``raw`` with its ``problems``. ``about``: whom the input names when the caller knows it and
        ``raw`` does not say it in an envelope's fields (a school file's row: the child on the target list,
        ``{"child": …}``, or the school's number, ``{"source": …, "local_child": …}``): the held input is then
        sealed under that child's or that number's key (``events.sealing.key_scope``) and goes with its
        erasure. An input that names no child the hub knows is held under the hub's key."""
        self.held.append({"raw": raw, "problems": problems, "received_at": received_at})


class LinkingQueue(_CopiedOnWrite, Aggregate):
    """紐付け待ち: records from one organisation that name the child by its own number before a centre linked that
    number, each with its digest and when it arrived. They leave when published (``services.publishing.linking``)."""

    @staticmethod
    def create_id(source: str) -> UUID:
        return stream_id(f"linking-queue:{source}")

    def __init__(self, source: str):
        self.source = source
        self.waiting: dict[str, dict[str, Any]] = {}  # envelope id -> {envelope, digest, arrived}

    @event("Queued")
    def hold(self, envelope: dict[str, Any], digest: str, arrived: str) -> None:
        self.waiting[envelope["id"]] = {"envelope": envelope, "digest": digest, "arrived": arrived}

    @event("Released")
    def release(self, envelope_id: str, released_at: str) -> None:
        self.waiting.pop(envelope_id, None)


class ResidenceQueue(_CopiedOnWrite, Aggregate):
    """居住地待ち: 第21条の10の5 events about one child, received while the child's residence at their time was not
    recorded (policy.md: they are not rejected, they wait). Each waits with its digest and when it arrived, and
    leaves when the hub publishes it by itself after the centre records where the child lives
    (``services.publishing.ingest``). Its entries name the child: sealed under the child's key like the child's events."""

    @staticmethod
    def create_id(child: str) -> UUID:
        return stream_id(f"residence-queue:{child}")

    def __init__(self, child: str):
        self.child = child
        self.waiting: dict[str, dict[str, Any]] = {}  # envelope id -> {envelope, digest, arrived}

    @event("Waiting")
    def hold(self, envelope: dict[str, Any], digest: str, arrived: str) -> None:
        self.waiting[envelope["id"]] = {"envelope": envelope, "digest": digest, "arrived": arrived}

    @event("Released")
    def release(self, envelope_id: str, released_at: str) -> None:
        self.waiting.pop(envelope_id, None)


class ResidenceWaitList(_CopiedOnWrite, Aggregate):
    """The ``ResidenceQueue`` entries of one publishing organisation, for the centres that list what waits
    (``services.identity.waiting``): ids, kinds and times, no content. Each entry names its child, so it is sealed
    under the child's key."""

    @staticmethod
    def create_id(source: str) -> UUID:
        return stream_id(f"residence-wait-list:{source}")

    def __init__(self, source: str):
        self.source = source
        self.waiting: dict[str, dict[str, Any]] = {}  # envelope id -> {child, kind, at, arrived}

    @event("Waiting")
    def hold(self, envelope_id: str, child: str, kind: str, at: str, arrived: str) -> None:
        self.waiting[envelope_id] = {"child": child, "kind": kind, "at": at, "arrived": arrived}

    @event("Released")
    def release(self, envelope_id: str, child: str) -> None:
        self.waiting.pop(envelope_id, None)


def project(aggregate: Any | None, domain_events: Iterable[Any]) -> Any | None:
    """The library's ``project_aggregate`` without its per-event ``isinstance`` check against a runtime protocol,
    which takes 10 µs per event on Python 3.11 (5 ms of a 500-event child's load). Every event here is one of the
    library's aggregate events, or ``Shredded``: all of them mutate."""
    for domain_event in domain_events:
        aggregate = domain_event.mutate(aggregate)
    return aggregate


def cache_weight(aggregate: Any) -> int:
    """How much of the aggregate cache an aggregate takes: one, plus one per entry of each collection it holds (a
    child's events, a school's listings, a month's reports …), about a kilobyte of memory each."""
    return 1 + sum(
        len(value) for value in vars(aggregate).values() if isinstance(value, (list, dict, tuple, set, frozenset))
    )


class WeighedCache(Cache[UUID, Any]):
    """The aggregate cache: the least recently used aggregates go first, when there are more than ``maxsize`` or
    when together they weigh more than ``max_weight`` (``cache_weight``). The library's ``LRUCache`` counts
    aggregates only, and the hub's vary from one entry (a new child) to thousands (a school's target list, a
    child with years of records): 5,000 of them could take a few hundred megabytes or tens of gigabytes. Weighing
    them bounds the memory of every hub process, whatever it reads or imports, and keeps no more decrypted case
    content in memory than needed. An aggregate fast-forwarded in the cache is weighed again when next asked for.
    Thread-safe, like the library's.

    **The kept indexes** (``kept``: the classes of the hub's shared indexes, declared in one place,
    ``services.projections.indexes.SHARED_INDEXES``, which ``services.hub.Hub`` hands to the store) are held
    apart (``indexes``), outside ``maxsize`` and ``max_weight``: children's reads and imports never evict them,
    and they are never evicted for weight at all. Why: a centre's case index, its service desk, the published
    children, the rosters and the registry are loaded by every publish batch and every centre view, and each
    grows with the centre's cases; in a shared LRU budget they were the heaviest entries, so past about 5,000
    cases in a centre (20,000: the service desk alone weighed more than the whole default budget) they were
    evicted and replayed from all their events on every batch and view (docs/benchmarks.md, "Cost at 500, 5,000
    and 20,000 cases": an 11.7 s start page, a build falling to 274 events/s). Fast-forwarding keeps them current
    (``events.streams``), so once loaded they cost no replay again.
    What bounds their memory is the hub's own content, not a setting: they hold at most the store's indexes,
    which grow with the cases and organisations (about 6 entries a case in its centre's indexes, measured at about
    430 bytes an entry: 2.5–3 KB a case; README, ``TSUNAGU_AGGREGATE_CACHE_WEIGHT``; deploy/README.md "Memory per
    process"), plus the registry's organisations and the monthly counts (a few hundred entries a municipality and
    month). ``index_weight`` says how much they weigh now.

    ``clear`` empties both after an erasure (``ErasureWatch``): the indexes hold entries sealed under children's
    keys too. An aggregate that a thread began to load before the clear (with a key destroyed meanwhile) must not
    come back in afterwards: each thread's last look-up notes the cache's ``generation`` (how many clears so far),
    and ``put`` refuses an aggregate from a thread whose last look-up was before the last clear (the library and
    ``events.streams`` always look up before they load and put). A writer that looks up more between its loads and
    its put (a publish batch) compares ``generation`` itself, from before its first load
    (``services.publishing.batch.cache_generation``). ``before_use``, when set, runs before each
    look-up (the store's ``ErasureWatch.check``)."""

    def __init__(
        self,
        maxsize: int,
        max_weight: int,
        before_use: Callable[[], None] | None = None,
        kept: tuple[type, ...] = (),
    ):
        super().__init__()
        self.maxsize = maxsize
        self.max_weight = max_weight
        self.entries: OrderedDict[UUID, tuple[Any, int]] = OrderedDict()  # children, listings …: bounded, LRU
        self.weight = 0
        self.kept = frozenset(kept)
        self.indexes: dict[UUID, tuple[Any, int]] = {}  # the kept indexes: never evicted but by ``clear``
        self.index_weight = 0
        self.lock = Lock()
        self.generation = 0
        self.before_use = before_use
        self._looked_up = threading.local()  # .generation: the generation at this thread's last look-up

    def keep(self, kept: tuple[type, ...]) -> None:
        """Hold aggregates of these classes as kept indexes from now on (those already cached move over)."""
        with self.lock:
            self.kept = frozenset(kept)
            for key in [key for key, (value, _) in self.entries.items() if type(value) in self.kept]:
                value, weight = self.entries.pop(key)
                self.weight -= weight
                self.indexes[key] = (value, weight)
                self.index_weight += weight

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is cached (kept index or not), without a look-up (nothing moves, nothing is checked)."""
        return key in self.indexes or key in self.entries

    def clear(self) -> None:
        """Forget every cached aggregate, kept indexes too, and refuse those being loaded now (see the class
        docstring)."""
        with self.lock:
            self.generation += 1
            self.entries.clear()
            self.weight = 0
            self.indexes.clear()
            self.index_weight = 0

    def get(self, key: UUID, *, evict: bool = False) -> Any:
        if self.before_use is not None and not evict:
            self.before_use()
        with self.lock:
            if evict:
                if key in self.indexes:
                    value, weight = self.indexes.pop(key)
                    self.index_weight -= weight
                    return value
                value, weight = self.entries.pop(key)
                self.weight -= weight
                return value
            self._looked_up.generation = self.generation
            held = self.indexes.get(key)
            if held is not None:
                value, weight = held
                now = cache_weight(value)
                if now != weight:
                    self.indexes[key] = (value, now)
                    self.index_weight += now - weight
                return value
            value, weight = self.entries[key]  # KeyError: not cached
            self.entries.move_to_end(key)
            now = cache_weight(value)
            if now != weight:
                self.entries[key] = (value, now)
                self.weight += now - weight
                self._shrink()
            return value

    def put(self, key: UUID, value: Any | None) -> None:
        if value is None:
            return
        weight = cache_weight(value)
        with self.lock:
            if getattr(self._looked_up, "generation", self.generation) != self.generation:
                return  # loaded before the last clear: it may hold erased content
            if type(value) in self.kept:
                old = self.indexes.get(key)
                if old is not None:
                    self.index_weight -= old[1]
                self.indexes[key] = (value, weight)
                self.index_weight += weight
                return
            old = self.entries.pop(key, None)
            if old is not None:
                self.weight -= old[1]
            self.entries[key] = (value, weight)
            self.weight += weight
            self._shrink()

    def _shrink(self) -> None:
        """Drop the least recently used entries while over a bound (the newest one always stays)."""
        while len(self.entries) > 1 and (len(self.entries) > self.maxsize or self.weight > self.max_weight):
            _, (_, weight) = self.entries.popitem(last=False)
            self.weight -= weight


class ErasureWatch:
    """How another process's erasure reaches this one's memory within ``ERASURE_CHECK_SECONDS`` (about 2 s).

    ``child.erased`` destroys the child's data keys in the key table (``HubStore.shred``), and the same
    transaction appends the destroyed key ids to the register of erasures (``tsunagu_erasures``, positions 1, 2, …
    in commit order: ``DataKeys.destroy``). But a process that opened the child before still holds, in memory, the
    unwrapped keys (``DataKeys``) and aggregates decrypted with them (``WeighedCache``: a school's target list, a
    month's reports, a centre's transfers …), which no later event of theirs would change.

    ``check`` runs before either cache is used (``before_use``). Most calls only read the clock. Once the last look
    is ``ERASURE_CHECK_SECONDS`` old, it reads the register after the last position it saw: one query on the
    register's primary key, which finds nothing until someone erases. When it finds rows, it forgets their keys
    (``DataKeys.forget``) and then empties the aggregate cache (``WeighedCache.clear``), since any cached aggregate
    may hold what those keys sealed (erasures are rare: reloading is cheaper than keeping track of which key opened
    what). Keys first, so that nothing reloaded after the clear opens with a destroyed key.

    Why it is correct: every use of a cached key or aggregate comes after a check that finished at most
    ``ERASURE_CHECK_SECONDS`` (plus one query) before; an erasure committed before that check's query is in the
    register (positions commit in order, so none is skipped), so what it destroyed has left this process's memory.
    Keys or aggregates loaded by a request that began before the check are not let back in (``DataKeys`` refuses a
    key it saw destroyed, ``WeighedCache.put`` an aggregate loaded before the clear). A process starts at the
    register's current position: it has nothing in memory yet, and destroyed keys no longer open."""

    def __init__(self, keys: DataKeys, on_erasure: Callable[[], None], interval: float = ERASURE_CHECK_SECONDS):
        self.keys = keys
        self.on_erasure = on_erasure
        self.interval = interval
        self.position = keys.erasure_position()
        self.due = time.monotonic() + interval
        self._lock = Lock()

    def check(self) -> None:
        """Look for erasures by other processes, when the last look is ``interval`` old (else nothing)."""
        if time.monotonic() < self.due or not self._lock.acquire(blocking=False):
            return  # checked recently, or another thread is checking right now
        try:
            self._look()
        finally:
            self._lock.release()

    def check_now(self) -> int:
        """Look now (waiting for a look another thread is making); how many destroyed keys were new to this
        process. The position only moves forward: every look is made under the watch's lock."""
        with self._lock:
            return self._look()

    def _look(self) -> int:
        """Read the register after ``position`` and forget what it names (the caller holds ``_lock``)."""
        self.due = time.monotonic() + self.interval
        position, destroyed = self.keys.erasures_after(self.position)
        if position > self.position:
            self.keys.forget(destroyed)
            self.on_erasure()
            self.position = position
        return len(destroyed)


ERASURE_OWED_JOIN_SECONDS = 10.0  # how long ``HubStore.close`` waits for a sweep under way


def _sweep_owed_while_open(store_ref: Callable[[], HubStore | None], closing: threading.Event, interval: float) -> None:
    """A named mechanism, **the running sweep of destructions owed**: a daemon thread the store starts when it
    opens (``HubStore.__init__``, after the opening's own sweep) and ``HubStore.close`` stops, which runs
    ``HubStore.destroy_keys_owed`` every ``interval`` seconds (``ERASURE_OWED_SWEEP_SECONDS``). Without it an
    erasure stored whose keys were not destroyed (its answer lost and never sent again, its process killed) kept
    its keys in every running process until some process opened the store (review of session 8, MEDIUM 1).

    Why this place is safe: the thread is its own caller. It never runs inside a turn (``append_in_turn``), a
    store transaction or the erasure watch's lock, since none of those is held by this thread when it wakes: the
    sweep takes what it needs (its reads, ``shred``'s transaction, the watch's lock through ``check_now``) as any
    request thread does, one after another. It never runs within itself: one thread, one sweep at a time. It
    never fails a request: it is no request's thread, and ``destroy_keys_owed`` catches, logs and counts what
    fails; anything else it meets is logged and the next interval tried. It holds the store only weakly between
    sweeps, so that a store nobody closed can still be collected (the thread then ends)."""
    while not closing.wait(interval):
        store = store_ref()
        if store is None:
            return
        try:
            store.destroy_keys_owed()
        except Exception:  # destroy_keys_owed catches its own; this is the thread's last guard
            log.exception("the sweep of destructions owed failed; tried again in %s s", interval)
        del store


class SealedEventStore(EventStore[UUID]):
    """The library's event store, loading the data keys of a stream's stored events in one go before it opens
    them (``SealingMapper.to_domain_events``), instead of one key-table query per key."""

    mapper: SealingMapper

    def get(
        self,
        originator_id: Any,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Iterator[Any]:
        stored = self.recorder.select_events(originator_id=originator_id, gt=gt, lte=lte, desc=desc, limit=limit)
        return iter(self.mapper.to_domain_events(stored))


class _StreamTurns:
    """The process's half of ``HubStore.append_in_turn``: which streams a writer of the process holds
    (``holders``); a writer takes its streams in their order, so that writers on common streams queue and writers
    on others go on. Shared by every hub of the process (two hubs on one SQLite file as well).

    The wait is bounded: a writer that has not taken every stream by ``deadline`` (``time.monotonic``) gives back
    those it took and raises ``Busy`` (503 with ``Retry-After``), having done nothing. Without the bound, the
    threads of a process queued here behind a writer waiting for the database's lock of a stream held by another
    process, each for as long as that one (``docs/benchmarks.md``, "Bounded request threads"). The holders are
    kept by stream under one ``Condition`` (not a fixed set of ``threading.Lock``, as before session 7), so that
    ``waiting_for`` can tell how many writers wait for a stream."""

    def __init__(self) -> None:
        self.changed = Condition()  # guards holders and waiting; notified when a writer gives streams back
        self.holders: set[UUID] = set()
        self.waiting: Counter[UUID] = Counter()  # the writers of the process waiting here, by stream

    @contextmanager
    def held(self, streams: Iterable[UUID], deadline: float) -> Iterator[None]:
        taken: list[UUID] = []
        try:
            with self.changed:
                for stream in sorted(set(streams), key=lambda s: s.int):
                    self._take(stream, deadline)
                    taken.append(stream)
            yield
        finally:
            if taken:
                with self.changed:
                    self.holders.difference_update(taken)
                    self.changed.notify_all()

    def _take(self, stream: UUID, deadline: float) -> None:
        """Take ``stream`` (under ``changed``), waiting for its holder; ``Busy`` once ``deadline`` has passed."""
        if stream not in self.holders:
            self.holders.add(stream)
            return
        self.waiting[stream] += 1
        try:
            while stream in self.holders:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Busy.contended(RETRY_AFTER_SECONDS)
                self.changed.wait(left)
            self.holders.add(stream)
        finally:
            self.waiting[stream] -= 1
            if not self.waiting[stream]:
                del self.waiting[stream]

    def waiting_for(self, stream: UUID) -> int:
        """How many writers of the process wait here for ``stream``'s turn."""
        with self.changed:
            return self.waiting[stream]


_STREAM_TURNS = _StreamTurns()


class TurnConnections:
    """A named mechanism, **turns bounded below the pool**: the turns of one store (``HubStore.append_in_turn`` on
    PostgreSQL) holding a pooled connection at once are at most ``limit`` (the pool's maximum less one), and of
    them a publish's turns at most ``publish_limit`` (half the pool less one, at least 1). A turn takes its slots
    before it asks the pool for the turn's connection and gives them back once the turn has ended (committed or
    rolled back, the connection returned).

    What it is for: a turn holds one pooled connection for its whole block, and its block may ask the pool for
    one more: a publish's turn loads an index another publisher moved (``Batch.reload_staged``,
    ``reapply_on_newest``: ``load_many``), makes a data key while sealing the indexes (``DataKeys.ensure``,
    the erasure watch's look), destroys an erased child's keys after its insert (``shred``); an access
    record's turn reads the records stored since its last try (``timeline``: ``events.get``) and makes the
    log's key in its ``save``. With every pooled connection held by such a turn, none was ever returned: the
    whole process stalled for the pool's connect timeout (30 s), every turn and every other request of the
    process failed (review of s8-publish, MEDIUM 1: 22 publishes at once on moved indexes, 22 failed).

    Why the bound guarantees progress: a turn's block asks for at most one more connection at a time and
    returns it before it asks again (each of the uses above is one statement or one transaction on its own
    connection), and nothing in a turn waits for another turn of the process while holding that second
    connection. With at most ``limit`` < ``pool_max`` turns holding a connection, at least one connection is
    never held by a turn's block: it is held by a second-connection step or by a request outside a turn, both of
    which end without waiting for a turn's block, so it is returned and handed to the next waiter (a request
    outside a turn that waits in the database for a row a turn's transaction inserted waits at most until the
    server's idle-in-transaction limit, 5 s, ends that transaction: ``Busy``).

    Why a publish's turns have a bound of their own: a publish's turn may wait long for another process's
    (the same centres' indexes) and its block is the longest; had they the same bound as every turn, ten
    publishes waiting would make every timeline read of the process wait for a slot to record its access
    (review of s8-publish, LOW 1a: reads 2.6–4.4 s behind publishes, 0.05 s before the bound). Bounded at half
    the pool less one, they leave the access records' turns at least half the pool's slots, and reads and other
    requests outside turns the connections no turn holds.

    The wait for a slot is part of the turn's wait (one deadline, TSUNAGU_TURN_LOCK_TIMEOUT): not had by then,
    ``Busy`` (503 with ``Retry-After``) before anything is held in the database, never an unbounded wait. It
    replaces nothing: before, turns took connections from the pool without a bound. Per store, since the pool
    is the store's (two hubs of one process, as the tests make them, each have their own). The pool needs at
    least 2 connections (1 turn and its second)."""

    def __init__(self, pool_max: int):
        if pool_max < 2:
            raise ValueError(f"a PostgreSQL store needs a pool of at least 2 connections (has {pool_max})")
        self.limit = pool_max - 1
        self.publish_limit = max(1, pool_max // 2 - 1)
        self.slots = threading.BoundedSemaphore(self.limit)
        self.publish_slots = threading.BoundedSemaphore(self.publish_limit)

    @contextmanager
    def held(self, deadline: float, *, publish: bool = False) -> Iterator[None]:
        """A slot for a turn (and first a publish's slot, for a publish's turn), waited for until ``deadline``
        (``time.monotonic``), then ``Busy``."""
        with ExitStack() as taken:
            for slots in (self.publish_slots, self.slots) if publish else (self.slots,):
                if not slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    raise Busy.contended(RETRY_AFTER_SECONDS)
                taken.callback(slots.release)
            yield


@dataclass
class Sealed:
    """Events sealed and encoded for storing (``HubStore.seal``), not stored yet: the events with their aggregates
    (the library's ``ProcessingEvent``), each event as stored (``stored``, in the same order), and the children
    whose ``child.erased`` is among them (``erased``: their keys are destroyed once it is stored)."""

    processing: ProcessingEvent[UUID]
    stored: list[StoredEvent]
    erased: list[str]


@dataclass(frozen=True)
class ChainHead:
    """A hash-chained log's last record as its next writer needs it: the stream's version, the record's ``hash``
    and ``sequence`` (``""`` and 0: the stream holds no record yet, only its creation). What
    ``HubStore.append_in_turn`` gives with ``chain_heads``."""

    originator_version: int
    hash: str
    sequence: int


@dataclass
class InTurn:
    """What ``HubStore.append_in_turn`` gives its block: each stream's last event (``heads``; a stream with no
    event is absent), read while the streams are held, and ``save`` (``HubStore.save``, in the held transaction on
    PostgreSQL)."""

    heads: dict[UUID, Any]
    save: Callable[..., Any]
    versions: dict[UUID, int]  # each stream's version (its last event's), read with the heads; absent: no event
    save_sealed: Callable[..., Any]  # HubStore.save_sealed, in the held transaction on PostgreSQL


class HubStore(Application[UUID]):
    """The hub's event-sourced application: the streams above on one recorder, every event sealed under its
    child's data key or the hub's (``events.sealing``), and a child's keys destroyed once its erasure is stored."""

    name = "tsunagu"
    mapper: SealingMapper  # construct_mapper
    recorder: SQLiteRecorder | PostgresRecorder  # store_env selects one (APPLICATION_RECORDER_TOPIC)
    env = {
        "AGGREGATE_CACHE_MAXSIZE": "5000",
        "AGGREGATE_CACHE_WEIGHT": "50000",  # WeighedCache: about 50-100 MB (TSUNAGU_AGGREGATE_CACHE_WEIGHT)
        "TRANSCODER_TOPIC": "events.transcoding:OrjsonTranscoder",
    }

    shared_indexes: tuple[type, ...] = ()  # kept apart in the cache (keep_shared_indexes)
    turns = _STREAM_TURNS  # the process's half of append_in_turn (a test gives a hub others, as another process's)
    turn_connections: TurnConnections  # on PostgreSQL: the turns holding one of the store's pooled connections at once

    def __init__(self, env: dict[str, str] | None = None, *, keyring: Keyring | None = None):
        self.turn_wait = turn_wait_seconds(os.environ.get(TURN_WAIT_SETTING))  # append_in_turn's bound
        self.keyring = keyring if keyring is not None else Keyring.from_config()
        configure_stream_ids(self.keyring.stream_secret)
        super().__init__(env)
        datastore = self.recorder.datastore
        postgres = self.postgres = type(self.recorder).__module__.endswith("postgres")  # else SQLite
        if postgres:
            from events.postgres import check_before_use

            check_before_use(datastore)
            self.turn_connections = TurnConnections(datastore.pool.max_size)  # type: ignore[union-attr]  # on PostgreSQL
        self.keys = DataKeys(
            datastore, self.keyring, postgres=postgres, schema=getattr(datastore, "schema", None) if postgres else None
        )
        self.mapper.attach(self.keys)
        self.erasures = ErasureWatch(self.keys, self._forget_cached)
        self.keys.before_use = self.erasures.check
        self.keys.on_sealed_for_erased = self._forget_cached  # DataKeys.ensure: no readable copy kept here either
        self._new_cache()
        self.format = self._open_format()
        self.child_snapshots = ChildSnapshots(self)
        self.index_snapshots = IndexSnapshots(self)  # the indexes' snapshots (events.index_snapshots)
        self.destructions_failed = 0  # destructions owed that a sweep could not make (destroy_keys_owed)
        self.owed_sweeps = 0  # sweeps of the destructions owed made (destroy_keys_owed), the opening's included
        self.destroy_keys_owed()
        self._owed_sweeper = threading.Thread(
            target=_sweep_owed_while_open,
            args=(weakref.ref(self), self.closing, ERASURE_OWED_SWEEP_SECONDS),
            name="tsunagu-erasures-owed",
            daemon=True,
        )
        self._owed_sweeper.start()

    def close(self) -> None:
        """Stop the sweep of destructions owed (waiting for a sweep under way), then close the store."""
        self.closing.set()
        sweeper = getattr(self, "_owed_sweeper", None)
        if sweeper is not None and sweeper.is_alive() and sweeper is not threading.current_thread():
            sweeper.join(timeout=ERASURE_OWED_JOIN_SECONDS)
        super().close()

    def _chain_heads(self, stored: Sequence[StoredEvent]) -> dict[UUID, ChainHead]:
        """The ``ChainHead`` of each hash-chained log whose last stored event is among ``stored``: from its clear
        chain head (``SealingMapper.clear_head``), else (a record stored before those, or the log's creation
        alone) from the opened event. ``tests/events/test_clear_heads.py`` checks the two agree."""
        heads: dict[UUID, ChainHead] = {}
        closed = []
        for last in stored:
            clear = self.mapper.clear_head(last)
            if clear is None:
                closed.append(last)
            else:
                stream = UUID(str(last.originator_id))
                heads[stream] = ChainHead(last.originator_version, clear["hash"], clear["sequence"])
        for opened in self.mapper.to_domain_events(closed) if closed else ():
            record = getattr(opened, "record", None)
            heads[opened.originator_id] = (
                ChainHead(opened.originator_version, record["hash"], record["sequence"])
                if isinstance(record, dict)
                else ChainHead(opened.originator_version, "", 0)
            )
        return heads

    @contextmanager
    def append_in_turn(
        self, streams: Iterable[UUID], *, read_heads: bool = True, publish: bool = False, chain_heads: bool = False
    ) -> Iterator[InTurn]:
        """A named mechanism: append to ``streams`` one writer at a time per stream, across every process on this
        store, reading their heads once the turn is taken. For writers that chain to a stream's last event (the
        access logs, each record carrying its predecessor's hash) and that optimistic concurrency alone would
        starve: a ledger page appends to 50 children's logs at once, and under 50 staff sessions nearly every
        such append lost a race to another page or a timeline read and retried until its budget ran out
        (``bench/load.py``).

        The turn: first this process's lock of each stream (``_StreamTurns``: threads of one process wait here,
        without a database connection), then, on PostgreSQL, a transaction holding each stream's transaction-level
        advisory lock (``PostgresRecorder.streams_locked``), in one order, in which the heads are read (in the
        message that begins it) and the block's ``save`` appends and commits (one round trip: the turn in two
        messages), which releases the locks; a block that saves nothing commits when it ends, one that raises
        rolls back. The block saves once (its save ends the turn). On SQLite, which one process uses, the
        process's locks alone, and ``save`` is the store's.
        Writers on disjoint streams go on side by side; writers on common streams queue for the time of an
        append. On PostgreSQL, the turns of the store holding a pooled connection at once are fewer than the
        pool's connections, and a publish's (``publish``) half the pool less one (``TurnConnections``: a block may
        ask the pool for one more connection). Keep the block short (chain
        and save): the heads are current only inside it. The appends keep their optimistic check on each stream's
        version (a writer that does not take its turn is refused, as before); a failed block holds nothing afterwards (cached aggregates of the streams are dropped).

        **The turn's wait is bounded** (``turn_wait``, TSUNAGU_TURN_LOCK_TIMEOUT, default 5 s, ``events.retry``):
        a writer that has not got its turn by then, the process's locks and the database's together, raises
        ``Busy`` (503 with ``Retry-After``; the command line exits 75) before it has appended anything; its
        transaction is rolled back, so that no access record is stored without its content being returned and no
        content returned without its record. On PostgreSQL the rest of the wait is one deadline for all the turn's
        locks at the database (``PostgresRecorder.streams_locked``). Replaces an unbounded wait
        (PostgreSQL's ``lock_timeout`` 0, ``Lock.acquire()``), under which one frozen holder in another process
        kept every request thread of this one waiting.

        ``read_heads`` False: the block is given the streams' versions only (``heads`` empty), their last events
        not opened (a publish's staged indexes, ``services.publishing.batch.Batch.save``: a head there may hold
        an entry per child, each sealed under its child's key).

        ``chain_heads`` True: the streams are hash-chained logs (the access logs), and ``heads`` holds each one's
        ``ChainHead`` (what the next record is chained to), read from the head's clear chain head without opening
        it (``events.sealing.CLEAR_HEAD``; a record stored before those is opened, as before)."""
        wanted = list(dict.fromkeys(streams))
        deadline = time.monotonic() + self.turn_wait
        with self.turns.held(wanted, deadline):
            if not self.postgres:
                from events.streams import last_event, last_events, last_stored, stream_versions

                if not read_heads:
                    yield InTurn({}, self.save, stream_versions(self, wanted), self.save_sealed)
                    return
                if chain_heads:
                    chained = self._chain_heads(last_stored(self, wanted))
                    versions = {i: h.originator_version for i, h in chained.items()}
                    yield InTurn(dict(chained), self.save, versions, self.save_sealed)
                    return
                if len(wanted) == 1:  # one query instead of two: a timeline read's one log
                    head = last_event(self, wanted[0])
                    found = {wanted[0]: head} if head is not None else {}
                else:
                    found = last_events(self, wanted)
                yield InTurn(found, self.save, {i: e.originator_version for i, e in found.items()}, self.save_sealed)
                return
            try:
                with (
                    self.turn_connections.held(deadline, publish=publish),
                    self.recorder.streams_locked(  # type: ignore[union-attr]
                        wanted,
                        wait=max(0.001, deadline - time.monotonic()),  # what is left of the turn's wait
                    ) as (conn, stored),
                ):
                    heads: dict[UUID, Any] = (
                        dict(self._chain_heads(stored))
                        if chain_heads
                        else {e.originator_id: e for e in self.mapper.to_domain_events(stored)}
                        if read_heads
                        else {}
                    )
                    versions = {UUID(str(e.originator_id)): e.originator_version for e in stored}  # uuid or text
                    yield InTurn(
                        heads,
                        lambda *objs, **kw: self.save(*objs, held=conn, **kw),
                        versions,
                        lambda *parts, **kw: self.save_sealed(*parts, held=conn, **kw),
                    )
            except BaseException:
                self._forget_streams(wanted)
                raise

    def _forget_streams(self, streams: Iterable[UUID]) -> None:
        """Drop ``streams`` from the aggregate cache (a save whose transaction did not commit may have put them)."""
        cache = self.repository.cache
        if cache is None:
            return
        for stream in streams:
            try:
                cache.get(stream, evict=True)
            except KeyError:
                pass

    def _open_format(self) -> int:
        """The store's format (``STORE_FORMAT``), after bringing a store older than the register of envelope ids
        up to it: a new store is of the latest format; one written before the format was kept is format 0."""
        found = self.recorder.store_format()
        if found is None:
            self.recorder.set_store_format(0 if self.log_position() else STORE_FORMAT)
            found = self._recorded_format()  # another process may have said more meanwhile
        if found < ENVELOPE_IDS_FORMAT:
            for rows in rows_from_log(self.recorder, self.mapper):
                self.recorder.insert_envelopes(rows)
            found = ENVELOPE_IDS_FORMAT
            self.recorder.set_store_format(found)
        return found

    @contextmanager
    def one_upgrade_at_a_time(self) -> Iterator[int]:
        """A named mechanism, **one store upgrade at a time**: held around a store format step (``services.publishing.
        ingest.Ingest``, which runs the steps when it opens an older store), it yields the store's format as
        recorded once this process holds the turn, so that a process that waited for another's step finds the
        format it reached and runs nothing. On PostgreSQL the turn is an advisory lock on a connection of its own,
        held until the step ends (the server lets it go if the process dies); SQLite lets one writer at a time
        anyway, and there the steps stay safe to run twice.

        What it replaces: every process that opened an older store (N API workers and the ingest workers at a
        deploy) ran the whole step at once, each reading the whole log (format 6's move took 36 s of CPU for 2.1
        million stored events on a quiet machine, and more under load: s9-import review L2)."""
        if not self.postgres:
            self.format = self._recorded_format()
            yield self.format
            return
        import psycopg

        env = self.env
        with psycopg.connect(
            host=env["POSTGRES_HOST"],
            port=env["POSTGRES_PORT"],
            dbname=env["POSTGRES_DBNAME"],
            user=env["POSTGRES_USER"],
            password=env.get("POSTGRES_PASSWORD", ""),
            autocommit=True,
        ) as conn:
            schema = env.get("POSTGRES_SCHEMA") or "public"
            conn.execute("SELECT pg_advisory_lock(hashtext(%s))", [f"tsunagu-store-upgrade:{schema}"])
            self.format = self._recorded_format()
            yield self.format

    def mark_format(self, format: int) -> None:
        """Record that the store was brought to ``format`` (by the layer that keeps what that format adds)."""
        self.recorder.set_store_format(format)
        self.format = self._recorded_format()

    def _recorded_format(self) -> int:
        """The store's format, once one was recorded (the highest recorded: another process may have said more)."""
        found = self.recorder.store_format()
        assert found is not None, "a format was recorded before"
        return found

    def construct_mapper(self) -> SealingMapper:
        return SealingMapper(transcoder=self.construct_transcoder())

    def construct_event_store(self) -> SealedEventStore:
        return SealedEventStore(mapper=self.mapper, recorder=self.recorder)

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        """Save aggregates (or domain events) in one transaction; the data keys they need are made first, in one
        transaction for the batch; after a stored ``child.erased``, the child's keys are destroyed. ``seal`` then
        ``save_sealed``: see there."""
        return self.save_sealed(self.seal(*objs), **kwargs)

    def seal(self, *objs: Any) -> Sealed:
        """The first half of ``save``: collect the events of ``objs`` (aggregates, or domain events), make the data
        keys they need (one transaction for all), and seal and encode each as it will be stored. Nothing is stored:
        ``save_sealed`` stores one or more of these in one transaction.

        Why in two halves: a publish seals its children's streams and every aggregate it does not save in its
        indexes' turn before it takes that turn, so that the turn's transaction, open on the server, waits for
        the Python of the few indexes only (``services.publishing.batch.Batch.save``).

        The library's ``Application.save`` tells aggregates from events with ``isinstance`` against runtime
        protocols, which costs about 6 µs per object on Python 3.11 (a publish saves one or two per event). Every
        object saved here is one of the library's aggregates or one of their events, so this collects them with a
        plain class check."""
        processing: ProcessingEvent[UUID] = ProcessingEvent()
        for obj in objs:
            if isinstance(obj, Aggregate):
                processing.events.extend(obj.collect_events())
                processing.aggregates[obj.id] = obj
            elif obj is not None:
                processing.events.append(obj)
        pending = processing.events
        self.keys.ensure(scope for e in pending for scope in SealingMapper.scopes_of(e, vars(e)))
        erased = [
            e.envelope["child"]
            for e in pending
            if isinstance(e, ChildRecord.Published) and e.envelope.get("kind") == "child.erased"
        ]
        # the note of the destruction owed, committed before the erasure can be (``destroy_keys_owed``)
        self.keys.owe_destruction([ChildRecord.create_id(child).hex for child in erased])
        return Sealed(processing, [self.mapper.to_stored_event(e) for e in pending], erased)

    def save_sealed(self, *parts: Sealed, **kwargs: Any) -> list[Recording[UUID]]:
        """The second half of ``save``: store the sealed ``parts`` (``seal``), in their order, in one transaction
        (``held``: the turn's, ``append_in_turn``), then record, snapshot and notify exactly as the library's
        ``Application.save`` does (``EventStore.put``, ``_record``); after a stored ``child.erased``, destroy the
        child's keys (``shred``)."""
        processing: ProcessingEvent[UUID] = ProcessingEvent()
        stored: list[StoredEvent] = []
        for part in parts:
            processing.events.extend(part.processing.events)
            processing.aggregates.update(part.processing.aggregates)
            stored += part.stored
        pending = processing.events
        erased = [child for part in parts for child in part.erased]
        notification_ids = self.recorder.insert_events(stored, tracking=processing.tracking, **kwargs)
        recordings: list[Recording[UUID]] = []
        if notification_ids:
            assert len(notification_ids) == len(stored)
            for domain_event, s, notification_id in zip(pending, stored, notification_ids, strict=True):
                notification = Notification(
                    originator_id=s.originator_id,
                    originator_version=s.originator_version,
                    topic=s.topic,
                    state=s.state,
                    id=notification_id,
                )
                recordings.append(Recording(domain_event, notification))
        if self.repository.cache and not self.repository.fastforward:  # as the library's _record
            for aggregate_id, aggregate in processing.aggregates.items():
                self.repository.cache.put(aggregate_id, aggregate)
        self._take_snapshots(processing)
        self._notify(recordings)
        for child in erased:
            self.shred(child)
        for child in erased:  # after every destruction of the batch; best-effort (it never raises)
            self.child_snapshots.forget(ChildRecord.create_id(child))
        return recordings

    def shred(self, child: str) -> int:
        """Crypto-shredding: destroy the data keys of ``child`` and of every own number linked to it (by
        ``identity.linked``, or by a school's target list: the number its file rows give), and forget every
        cached aggregate that may hold what they sealed, and move this process's ``ErasureWatch`` past it at once
        (what is kept above the store, ``services.reading.kept``, follows the watch's position); other processes
        forget theirs through the register of erasures (``ErasureWatch``). How many keys were destroyed. (``save`` then deletes the child's snapshot,
        ``events.snapshots``, which the destroyed key already makes unreadable.) Once the keys are destroyed, the
        note that they were owed (``DataKeys.owe_destruction``, written by ``seal``) is removed."""
        scopes = [child_scope(child)]
        record = self.get_or_none(ChildRecord.create_id(child))
        for entry in record.entries if record is not None else []:
            if entry.kind in ("identity.linked", "identity.unlinked"):
                scopes.append(local_scope(str(entry.payload.get("org")), str(entry.payload.get("local_number"))))
            elif entry.kind in ("target_list.assigned", "target_list.removed") and entry.payload.get("student_no"):
                scopes.append(
                    local_scope(str(entry.payload.get("school") or entry.to), str(entry.payload.get("student_no")))
                )
        destroyed = self.keys.destroy(scopes)
        self.keys.settle_destruction(ChildRecord.create_id(child).hex)
        if destroyed:  # what they sealed opens no more: forget what this process opened with them
            self._forget_cached()  # (none destroyed: an erasure finished before, sent again; nothing to forget)
        try:  # this process's own erasure seen at once (the reads kept above the store follow the watch)
            self.erasures.check_now()
        except Exception:  # the erasure has committed: best-effort, the watch's next look (about 2 s) catches up
            log.exception("erasure of %s stored; this process's erasure watch will see it at its next look", child)
        return destroyed

    def destroy_keys_of_erasure(self, stream: UUID) -> bool:
        """Destroy the keys of the child of ``stream`` if a ``child.erased`` of it is stored (``shred``, then its
        snapshot deleted, as ``save`` does after storing one); whether one is. Idempotent: keys destroyed before
        are not found again, so a second call destroys nothing. Errors are raised (the caller decides).

        Used where the destruction that followed the erasure's commit may have been missed: a ``child.erased``
        answered ``duplicate`` (``services.publishing.ingest.Ingest.publish``: the first answer was lost, the
        keys may live) and the sweep of destructions owed (``destroy_keys_owed``)."""
        record = self.replayed(stream)
        if record is None or not any(entry.kind == "child.erased" for entry in record.entries):
            return False
        self.shred(record.child)
        self.child_snapshots.forget(stream)
        return True

    def destroy_keys_owed(self) -> int:
        """A named mechanism, **the sweep of destructions owed**: for each note in the register of destructions
        owed (``DataKeys.owe_destruction``, written before an erasure is stored, removed once its keys are
        destroyed), destroy the keys if the erasure is stored (``destroy_keys_of_erasure``), and drop a note
        whose erasure is not stored once it is ``ERASURE_OWED_GRACE_SECONDS`` old (its save failed; a younger one
        may be a save under way in another process). How many erasures it finished.

        Run when the store opens, and then at most every ``ERASURE_OWED_SWEEP_SECONDS`` while it is open
        (``_sweep_owed_while_open``): it finishes an erasure whose process died between the erasure's commit and
        the destruction of its keys, or whose COMMIT's answer was lost and which nobody sent again, before this
        process reads anything, and within that interval in a running one. When nothing is owed (almost always) it
        is one query on an empty table. It never fails: a destruction it could not make is logged and counted
        (``destructions_failed``), its note kept, and tried again at the next sweep or by the erasure's next
        ``duplicate`` answer while the note is owed."""
        self.owed_sweeps += 1
        try:
            owed = self.keys.destructions_owed()
        except Exception:
            self.destructions_failed += 1
            log.exception("the register of destructions owed could not be read; it will be read at the next sweep")
            return 0
        finished = 0
        now = datetime.now(UTC)
        for stream, owed_at in owed:
            try:
                if self.destroy_keys_of_erasure(UUID(stream)):
                    finished += 1
                    log.warning("an erasure stored without its keys destroyed was finished (stream %s)", stream)
                elif (now - owed_at).total_seconds() > ERASURE_OWED_GRACE_SECONDS:
                    self.keys.settle_destruction(stream, owed_at)  # never stored (a save since wrote a newer note)
            except Exception:
                self.destructions_failed += 1
                log.exception(
                    "the keys owed destruction for stream %s could not be destroyed; tried again later", stream
                )
        return finished

    def _forget_cached(self) -> None:
        """Forget every cached aggregate (after an erasure: they may hold what its keys sealed)."""
        cache = self.repository.cache
        if isinstance(cache, WeighedCache):
            cache.clear()
        elif cache is not None:
            self._new_cache()

    def _new_cache(self) -> None:
        """A new, empty aggregate cache (``WeighedCache``) in place of the repository's (unless it has none)."""
        if isinstance(self.repository.cache, (LRUCache, WeighedCache)):
            self.repository.cache = WeighedCache(
                int(self.env.get("AGGREGATE_CACHE_MAXSIZE") or 5000),
                int(self.env.get("AGGREGATE_CACHE_WEIGHT") or 50000),
                before_use=self.erasures.check,
                kept=self.shared_indexes,
            )

    def keep_shared_indexes(self, classes: tuple[type, ...]) -> None:
        """Keep aggregates of ``classes`` in the aggregate cache apart from the rest, never evicted but by an
        erasure (``WeighedCache``, "the kept indexes"); the hub declares them
        (``services.projections.indexes.SHARED_INDEXES``)."""
        self.shared_indexes = tuple(classes)
        cache = self.repository.cache
        if isinstance(cache, WeighedCache):
            cache.keep(self.shared_indexes)

    def get_or_none(self, aggregate_id: UUID) -> Any | None:
        try:
            return self.repository.get(aggregate_id, projector_func=project)
        except AggregateNotFoundError:
            return None

    def peek(self, aggregate_id: UUID) -> Any | None:
        """The cached aggregate itself, for reading only: never trigger events on it (use ``get_or_none``)."""
        try:
            return self.repository.get(aggregate_id, deepcopy_from_cache=False, projector_func=project)
        except AggregateNotFoundError:
            return None

    def read_child(self, child: str) -> tuple[ChildRecord | None, SnapshotDue | None]:
        """The child's record for a read (``peek``: never trigger events on it), using the **children's
        snapshots** (``events.snapshots``): a cached record is fast-forwarded as ``peek`` does; one not cached is
        loaded from its snapshot and the events stored after it (one query), or, when it has no snapshot that
        opens (none taken yet, an erased child's), replayed from every event as the repository would, and cached.

        And the snapshot due, if any: a load that replayed at least ``child_snapshots.after`` events
        (``events.snapshots.SNAPSHOT_AFTER``) makes one due, which the caller hands to ``child_snapshots.keep``
        **after** the read is recorded (a snapshot never fails or delays the recording of a read). For the read
        path only: ``audit verify`` replays events (``replayed``) and never trusts a snapshot."""
        stream = ChildRecord.create_id(child)
        cache = self.repository.cache
        if cache is None:
            return self.peek(stream), None
        try:
            cache.get(stream)  # a look-up first (WeighedCache: nothing loaded before an erasure's clear goes in)
            return self.peek(stream), None
        except KeyError:
            pass
        loaded = self.child_snapshots.load(stream, child)  # the child's key fetched with its snapshot
        due = self._snapshot_due(stream, loaded, self.child_snapshots.after)  # read before it is cached (may change)
        cache.put(stream, loaded.record)
        return loaded.record, due

    def load_children(self, children: Mapping[UUID, str]) -> tuple[dict[UUID, ChildRecord | None], list[SnapshotDue]]:
        """Children's records for a view that decides many of them at once (``services.casework.rows``), as
        stored now, **not put in the aggregate cache** (the view keeps what it derives; 5,000 children would push
        the children read one by one out of it), using the **children's snapshots** as ``read_child`` does: a
        record in the cache is copied and brought up to date with the events after it
        (``events.streams.load_many``: one query for all of them); the others are loaded from their snapshots and
        the events after them, or from every event when a child's snapshot does not open
        (``ChildSnapshots.load_many``: one query for all of them, **each child's key fetched with its snapshot**,
        so that opening 5,000 snapshots does not read 5,000 keys one statement at a time). ``children``: each
        child's stream and the child's id. None: no such stream. And the snapshots due
        (``_snapshot_due``: after ``child_snapshots.view_after`` events, ``events.snapshots.VIEW_SNAPSHOT_AFTER``),
        which the view hands to ``child_snapshots.keep_all`` **after** it is recorded. Not for ``audit verify``
        (``replayed``)."""
        from events.streams import load_many

        wanted = list(children)
        cache = self.repository.cache
        cached = (
            [stream for stream in wanted if stream in cache]
            if isinstance(cache, WeighedCache) and self.repository.fastforward
            else []
        )  # one evicted meanwhile is replayed by load_many from all its events (right, only slower)
        records: dict[UUID, ChildRecord | None] = load_many(self, cached, keep=False) if cached else {}
        dues = []
        loading = [stream for stream in wanted if stream not in records]
        for stream, loaded in self.child_snapshots.load_many(loading, children=children).items():
            records[stream] = loaded.record
            due = self._snapshot_due(stream, loaded, self.child_snapshots.view_after)
            if due is not None:
                dues.append(due)
        return records, dues

    def _snapshot_due(self, stream: UUID, loaded: Loaded, after: int) -> SnapshotDue | None:
        """The snapshot a load makes due (``events.snapshots``): one that replayed at least ``after`` events
        (``child_snapshots.after`` for a timeline read, ``view_after`` for a view), of a record that is snapshotted
        (``ChildSnapshots.state_of``, read now)."""
        if loaded.record is None or loaded.replayed < after:
            return None
        state = ChildSnapshots.state_of(loaded.record)
        return SnapshotDue(stream, state, loaded.unopened) if state is not None else None

    def replayed(self, aggregate_id: UUID) -> Any | None:
        """The aggregate from every one of its stored events, neither the aggregate cache nor a snapshot used
        (the cache may hold a child's record loaded from its snapshot, ``read_child``): what ``audit verify``
        replays reads on. None: no such stream."""
        return project(None, self.events.get(aggregate_id))

    def stored_envelopes(self, envelope_ids: Iterable[str]) -> dict[str, StoredEnvelope]:
        """Where each of ``envelope_ids`` that is stored was stored (``events.envelope_ids``), in one query."""
        keys = {envelope_key(envelope_id): envelope_id for envelope_id in dict.fromkeys(envelope_ids)}
        return {keys[row.key]: row for row in self.recorder.select_envelopes(list(keys))}

    def stored_envelope(self, envelope_id: str) -> StoredEnvelope | None:
        """Where ``envelope_id`` was stored, or None when no event was stored under it."""
        return self.stored_envelopes([envelope_id]).get(envelope_id)

    def registry(self) -> RegistryAt:
        """The registry for reading (not for changing): one version of it, fixed (``RegistryAt``)."""
        registry = self.peek(REGISTRY_ID)
        return registry.current if registry is not None else OrgRegistry().current

    def log_position(self) -> int:
        return self.recorder.max_notification_id() or 0

    def registry_at_position(self) -> tuple[RegistryAt, int]:
        """The registry for reading (``registry``) and the log position (``log_position``), read after it.

        **The registry and the log position in one statement.** A read needs both; asked one after the other they
        are two statements (the repository's fast-forward of the cached registry, then the log's maximum
        notification id), each a round trip and 0.3–0.5 ms of psycopg's CPU. Here, when the registry is in the
        aggregate cache and the cache is fast-forwarded, the cached registry's ``current`` is taken once, before
        the statement, and one statement (``position_and_later``, one snapshot of the table) reads the log
        position and whether the registry has events after that value's version: when it has none, that value is
        what the repository's fast-forward would return (no event to apply), and the position is read after
        everything it holds, as ``log_position`` after ``registry`` would be. What is returned is that value, not
        the cached aggregate, which another thread may fast-forward in place after the statement (review s7-read,
        MEDIUM 1: the read would be decided under a version stored after its position). When it has some (the
        registry changed since it was cached, rare) or is not cached (a process's first read), this is
        ``registry`` and then ``log_position``: the library's fast-forward, under its lock, then the position.
        ``tests/events/test_registry_at_position.py`` checks it against the two (hypothesis: registry changes
        and other events in any order, from this store and another process's; and another thread's fast-forward
        right after the statement)."""
        repository = self.repository
        cache = repository.cache
        if cache is not None and repository.fastforward:
            try:
                cached = cache.get(REGISTRY_ID)
            except KeyError:
                cached = None
            if isinstance(cached, OrgRegistry):
                registry = cached.current  # once: what the statement checks is what the read decides on
                position, later = self.recorder.position_and_later(REGISTRY_ID, registry.version)
                if not later:
                    return registry, position
        return self.registry(), self.log_position()


def store_env(database: str | None) -> dict[str, str]:
    """The ``eventsourcing`` environment for a database URL.

    ``sqlite:///path/to/file.db`` (default ``sqlite:///tsunagu.db``), ``sqlite:///:memory:``, or
    ``postgresql://user:password@host:port/dbname[?schema=name]``.
    """
    url = database or os.environ.get("TSUNAGU_DATABASE_URL") or DEFAULT_DATABASE
    if url.startswith("sqlite:"):
        # sqlite:///relative.db, sqlite:////absolute/path.db, sqlite:///:memory:
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path or ":memory:",
            "APPLICATION_RECORDER_TOPIC": "events.sqlite:SQLiteRecorder",
        }
    if url.startswith(("postgresql:", "postgres:")):
        parsed = urlparse(url)
        query = parse_qs(parsed.query)
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(parsed.path.lstrip("/")) or "postgres",
            "POSTGRES_HOST": parsed.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parsed.port or 5432),
            "POSTGRES_USER": unquote(parsed.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parsed.password or ""),
            "POSTGRES_POOL_SIZE": "10",
            "POSTGRES_MAX_OVERFLOW": "10",
            # A pooled connection is checked before it is handed out (events.postgres.check_before_use): after a
            # PostgreSQL restart the processes go on without one failed request per pooled connection.
            "POSTGRES_PRE_PING": "y",
            "APPLICATION_RECORDER_TOPIC": "events.postgres:PostgresRecorder",  # no pipeline; envelope ids
        }
        if "schema" in query:
            env["POSTGRES_SCHEMA"] = query["schema"][0]
        return env
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///FILE or postgresql://…")


def ensure_postgres_schema(env: dict[str, str]) -> None:
    """Create the PostgreSQL schema named in the URL, if any (the library creates tables, not schemas)."""
    schema = env.get("POSTGRES_SCHEMA")
    if not schema:
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(
        host=env["POSTGRES_HOST"],
        port=env["POSTGRES_PORT"],
        dbname=env["POSTGRES_DBNAME"],
        user=env["POSTGRES_USER"],
        password=env["POSTGRES_PASSWORD"],
        autocommit=True,
    ) as conn:
        # one process at a time (several opening a new database at once would race on the catalogue)
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", [f"tsunagu-create-schema:{schema}"])
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


def open_store(database: str | None = None, *, keyring: Keyring | None = None) -> HubStore:
    env = store_env(database)
    ensure_postgres_schema(env)
    if env.get("PERSISTENCE_MODULE") == "eventsourcing.sqlite" and env["SQLITE_DBNAME"] != ":memory:":
        directory = os.path.dirname(os.path.abspath(env["SQLITE_DBNAME"]))
        os.makedirs(directory, exist_ok=True)
    return HubStore(env=env, keyring=keyring)


def jsonable(value: Any) -> Any:
    """Any parsed input (YAML dates included) as plain JSON values, for keeping what was rejected."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return json.loads(text.encode("utf-8", "replace").decode("utf-8"))  # lone surrogates become "?"
