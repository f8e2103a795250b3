"""**Children's snapshots**: a decoded snapshot of each child's stream, so that a cold read (a child not in the
process's aggregate cache) opens one sealed snapshot and the few events stored after it, instead of every event
of the child one by one (an AES-GCM operation, a JSON read and a ``Recorded`` for each: 14–17 ms of CPU for a
500-event child, the p99 of ``bench/core.py``).

What a snapshot is: one row per child in ``tsunagu_child_snapshots`` (the child's stream id, the stream version
it holds, the sealed state). The state is what publishing gave the child's ``ChildRecord`` up to that version
(each published envelope with its audience, the record's creation and modification times), encoded as plain JSON
read by orjson alone (format 3), or with the store's transcoder when plain JSON does not carry it exactly (format 2,
the only format before session 8: ``SnapshotEncoding``), and sealed in **two layers**, as an event's content is (``events.sealing.SealingMapper``):
under **the child's own data key**, then that under **the hub's key**, both with the same associated data (the
snapshot format, ``ChildRecord.Published.class_version``, the stream and the version). So the only key id in
clear in the row is the hub's: the child's key id, which projection rows show in clear, never links a snapshot
row to them; a snapshot copied to another child's row or version, or taken before a change of format or of the
event class's version (an upcaster), does not open, and is replaced by the next one taken. Erasing the child
destroys the child's key, so the snapshot no longer opens (and ``HubStore.save`` deletes the row besides, after
the batch's keys are destroyed): the read then replays the events, exactly as it does for an erased child without
snapshots.

Derived data, migration-free: the events stay as they are; the table is created when a store opens and may be
emptied or dropped at any time (``drop``), and is filled again by reads. A store without snapshots (an older
store, ``tests/fixtures/*.db``) reads and verifies as before. ``audit verify`` never reads it (``services.audit``
replays events through ``HubStore.replayed``); only the read path does (``HubStore.read_child``).

**Best-effort, never in a read's way.** A snapshot can never fail, alter or delay the recording of a read: the
read path takes one only after the read's access record is appended (``services.reading.timeline``: ``keep``),
and ``keep`` and ``forget`` log and count (``failures``) any error instead of raising it; ``load`` falls back to
replaying the events on any error of the snapshot query (a dropped table, a timeout, a reset connection). A
snapshot that does not open for any reason but its key's destruction (altered, another store's, of another
format) is logged apart (a warning: it should not happen) and overwritten by the next one taken.

When a snapshot is taken (``HubStore.read_child`` says one is due, ``SnapshotDue``): after a cold load of a child
that replayed at least ``SNAPSHOT_AFTER`` events (all of them, or those after an older snapshot), by the read that
loaded it, once that read is recorded (the read waits for that write before it returns: on SQLite for another
writer's lock at most, on PostgreSQL for a destruction of the child's key in progress). Not on the publish path,
which appends a child's events without loading the child (``services.publishing.batch``): taking a snapshot there
would mean loading every child it publishes about. Only children that are read get one, and a child read again
and again in a process (warm, in the cache) costs nothing more; the next process to load it cold writes a newer
snapshot when the tail has grown past ``SNAPSHOT_AFTER``.

The views that decide many children at once (the ledgers, the agenda, the start page: ``services.casework.rows``)
load them the same way (``load_many``, one query for all) and take the snapshots their loads make due, once the
view is recorded (``keep_all``: in stream order, ``SNAPSHOT_BATCH`` to a transaction, each child on its own), after
``VIEW_SNAPSHOT_AFTER`` events (20) rather than 100: a view's snapshots share few commits, so each costs its sealing and its row (0.25–0.4 ms of CPU for
a child of 24 events), which the next cold load of that child pays back (1.0 → 0.27 ms of CPU, docs/benchmarks.md),
and a centre's children mostly have tens of events, not hundreds: at 100 the views would take none. A timeline read
writes its one snapshot in a transaction of its own (a durable commit), so it keeps the higher threshold.

Erasure, and what must never happen: a snapshot of a child's content sealed under a key that outlives the
child's erasure, or a snapshot that gives an erased child a new key: ``seal`` uses only the child's existing live
key (``DataKeys.seal_existing``) and the child is skipped when it has none. ``state_of`` never snapshots a record holding ``child.erased``, and ``take`` writes a snapshot in one
statement (``write``: ``INSERT … SELECT … WHERE``, no read-to-write upgrade on SQLite) only while the child's stream
is still at the snapshot's version and the child's key it is sealed under is not destroyed: if an erasure was
stored meanwhile, the stream is further on and nothing is written. On PostgreSQL the statement locks the key's
row ``FOR SHARE``: a destruction in progress makes it wait and then see the key destroyed (nothing written), and
a destruction that starts after it waits for its commit, after which ``forget`` deletes the row. On SQLite the
one writer at a time serialises them the same way.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, cast
from uuid import UUID

import orjson
from cryptography.exceptions import InvalidTag
from eventsourcing.persistence import StoredEvent

from events.sealing import HUB_SCOPE, KeyDestroyed, KeyUnknown, child_scope

if TYPE_CHECKING:
    from events.model import Recorded
    from events.store import ChildRecord, HubStore

SNAPSHOT_AFTER = 100  # a timeline read's cold load that replayed this many events writes a snapshot
VIEW_SNAPSHOT_AFTER = 20  # the same for a view's load of many children (``HubStore.load_children``): see below
SNAPSHOT_BATCH = 500  # a view's snapshots written in transactions of this many (``ChildSnapshots.keep_all``)
SNAPSHOT_FORMAT = 3  # what the sealed state holds and how it is encoded (``SnapshotEncoding``; in the associated data)
TRANSCODED_FORMAT = 2  # the format before (main until session 8): the store's transcoder; still read, and written
# for a state that plain JSON does not carry exactly (``SnapshotEncoding.encode``)

log = logging.getLogger(__name__)


class Loaded(NamedTuple):
    """What ``ChildSnapshots.load`` found: the record (None: no such stream), how many events were replayed for it,
    whether it came from a snapshot, and the sealed state of a snapshot row that did not open for another reason
    than its key's destruction (altered, another store's, another format: the next snapshot overwrites it)."""

    record: ChildRecord | None
    replayed: int
    from_snapshot: bool
    unopened: bytes | None


@dataclass(frozen=True)
class SnapshotDue:
    """A snapshot a cold read found due (``HubStore.read_child``), to ``keep`` once the read is recorded: the
    child's stream, the state (``ChildSnapshots.state_of``, read when it was loaded) and the row it may overwrite
    that did not open (``Loaded.unopened``)."""

    stream: UUID
    state: dict[str, Any]
    replacing: bytes | None


class SnapshotEncoding:
    """**A snapshot read by orjson alone** (format 3): how a snapshot's state is turned into bytes before sealing
    and back after opening, by format.

    What it replaces: format 2 encoded the state with the store's transcoder (``events.transcoding``) and decoded it
    with the transcoder's ``decode``, which before ``orjson.loads`` scans the whole text for what orjson might read
    otherwise (19 digits in a row, an escape, the library's ``_type_`` transcodings): for a 500-event child's 140 kB
    state that scan was two fifths of the decode (0.83 ms against 0.49 ms for ``orjson.loads`` alone, at load 4).

    Format 3 is plain JSON written by ``orjson.dumps`` and read by ``orjson.loads`` with nothing around it. Why it is
    exact: a state is written in format 3 only when ``orjson.loads`` of the bytes gives back a value **equal** to
    the state (checked when the snapshot is taken, once per ``SNAPSHOT_AFTER`` events replayed: about 0.8 ms more on
    that read, after it is recorded); so whatever JSON does not carry exactly (a ``datetime`` or ``Decimal`` the
    library transcoded, NaN, an integer past 64 bits, which ``orjson.dumps`` refuses) never is. Such a state is
    written in format 2, the transcoder's, as before: nothing is lost, it is only read more slowly.

    Which format a sealed snapshot is in is told by its associated data (``ChildSnapshots._aad`` holds the format):
    a snapshot opens under format 3's first, then format 2's (snapshots written before this format, by main: they
    open and give the same record). An altered snapshot opens under neither. ``tests/events/test_snapshot_format.py``
    checks format 3 against format 2 and against replaying every event (hypothesis)."""

    FORMATS = (SNAPSHOT_FORMAT, TRANSCODED_FORMAT)  # tried in this order when a snapshot is opened

    def __init__(self, transcoder: Any):
        self.transcoder = transcoder  # the store's (``events.transcoding.OrjsonTranscoder``): format 2

    def encode(self, state: dict[str, Any]) -> tuple[int, bytes]:
        """The format ``state`` is written in and its bytes: format 3 when plain JSON gives it back exactly, else
        format 2 (``state["format"]`` says which, in the bytes too)."""
        as_json = dict(state, format=SNAPSHOT_FORMAT)
        try:
            encoded = orjson.dumps(as_json)
        except (orjson.JSONEncodeError, TypeError):
            encoded = None
        if encoded is not None and orjson.loads(encoded) == as_json:
            return SNAPSHOT_FORMAT, encoded
        return TRANSCODED_FORMAT, self.transcoder.encode(dict(state, format=TRANSCODED_FORMAT))

    def decode(self, format: int, data: bytes) -> Any:
        """The state ``data`` holds, written in ``format``."""
        return orjson.loads(data) if format == SNAPSHOT_FORMAT else self.transcoder.decode(data)


def rebuilt_entries(published: list[list[Any]]) -> tuple[list[dict[str, Any]], list[Recorded]]:
    """**A snapshot's entries rebuilt with shared audiences**: the envelopes of a snapshot's ``published`` pairs
    (envelope, audience), and each one's ``Recorded`` (``events.store.recorded_from``), built in one pass, the
    entries of equal audiences (listed alike: a snapshot lists each sorted, ``state_of``) sharing **one** ``frozenset``.

    What it replaces: ``ChildRecord._add`` per pair (what publishing and replaying do), which made a frozenset of
    its own for every entry. A child's events have few distinct audiences (a 500-event probe child of
    ``bench.core``: 4), so a cold load made ~500 frozensets where a handful do; each is a container the garbage
    collector tracks and walks twice (its young collections) before it settles, as every object that stays in
    the aggregate cache does. Why it is the same: a ``frozenset`` is immutable and compared by value, so entries
    sharing one are equal to entries holding copies, and nothing can change one through another;
    ``recorded_from`` keeps a frozenset it is given as it is (``frozenset(a_frozenset)`` is that frozenset), and the
    envelopes are the snapshot's objects, as ``_add`` appended them. ``tests/events/test_snapshot_rebuild.py``
    checks the record against ``_add``'s on random snapshots (hypothesis) and that equal audiences share one
    object."""
    from events.store import recorded_from

    audiences: dict[tuple[str, ...], frozenset[str]] = {}
    envelopes: list[dict[str, Any]] = []
    entries: list[Recorded] = []
    for position, (envelope, audience) in enumerate(published, start=1):
        listed = tuple(audience)
        shared = audiences.get(listed)
        if shared is None:
            shared = audiences[listed] = frozenset(listed)
        envelopes.append(envelope)
        entries.append(recorded_from(envelope, shared, position))
    return envelopes, entries


class SnapshotTable:
    """What a store's two snapshot tables share (the children's, ``ChildSnapshots``, and the indexes',
    ``events.index_snapshots.IndexSnapshots``): the table's and the events table's names in the store's schema,
    the SQL placeholders, a stream id as the events table keeps it, the table created once and emptied (``drop``). A subclass names
    its ``TABLE`` and the ``COLUMNS`` after ``stream`` (``{blob}``: the binary type of the database)."""

    TABLE: ClassVar[str]
    COLUMNS: ClassVar[str]

    def __init__(self, store: HubStore):
        self.store = store
        self.datastore: Any = store.recorder.datastore  # the library's SQLite or PostgreSQL datastore
        self.postgres = store.postgres
        schema = getattr(self.datastore, "schema", None) if self.postgres else None
        self.table = f'"{schema}".{self.TABLE}' if schema else self.TABLE
        events_table = store.recorder.events_table_name
        self.events_table = f'"{schema}".{events_table}' if schema else events_table
        self._create_table()

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.postgres else text

    def _key(self, stream: UUID) -> Any:
        """The stream id as the events table keeps it (PostgreSQL: a uuid; SQLite: its hex)."""
        return stream if self.postgres else stream.hex

    def _snapshots_and_tails(self, query: str, params: Any) -> list[Any]:
        """The rows of the one statement that loads snapshots with the events after them: on PostgreSQL as binary
        rows, so that states come as bytes (as ``PostgresRecorder.select_events`` reads them), outside a
        transaction (the pool's connections are in autocommit); on SQLite in the datastore's read transaction."""
        if self.postgres:
            with self.datastore.get_connection() as conn, conn.cursor(binary=True) as cursor:
                cursor.execute(query, params)
                return list(cursor.fetchall())
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(query, params)
            return list(cursor.fetchall())

    def drop(self) -> int:
        """Delete every snapshot of the table (derived data: the loads that need them take them again); how many
        there were."""
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(f"SELECT COUNT(*) AS n FROM {self.table}")
            row = cursor.fetchone()
            count = int(row["n"]) if row is not None else 0
            cursor.execute(f"DELETE FROM {self.table}")
        return count

    def _create_table(self) -> None:
        id_type, blob = ("UUID", "BYTEA") if self.postgres else ("TEXT", "BLOB")
        with self.datastore.transaction(commit=True) as cursor:
            if self.postgres:  # processes opening a new database at once create it one after the other
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"tsunagu-snapshots:{self.table}"])
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (stream {id_type} PRIMARY KEY, "
                f"{self.COLUMNS.format(blob=blob)})"
            )


class ChildSnapshots(SnapshotTable):
    """The children's snapshots of one store (see the module docstring): ``load`` a child's record from its
    snapshot and the events after it, ``take`` one, ``forget`` a child's, ``drop`` them all."""

    TABLE = "tsunagu_child_snapshots"
    COLUMNS = "version BIGINT NOT NULL, state {blob} NOT NULL"

    def __init__(self, store: HubStore, after: int = SNAPSHOT_AFTER, view_after: int = VIEW_SNAPSHOT_AFTER):
        self.after = after  # a timeline read's cold load that replayed this many events takes one (``SNAPSHOT_AFTER``)
        self.view_after = view_after  # the same for a view's load of many children (``VIEW_SNAPSHOT_AFTER``)
        self.batch = SNAPSHOT_BATCH  # snapshots written in one transaction by ``keep_all``
        self.failures = 0  # errors of the snapshots' queries, logged and let go (best-effort: see the module docstring)
        self.loaded_from_snapshot = 0  # children ``load_many`` loaded from a snapshot that opened
        self.loaded_with_tail = 0  # of those, children with events stored after their snapshot
        self.encoding = SnapshotEncoding(store.mapper.transcoder)
        super().__init__(store)

    @staticmethod
    def _aad(stream: UUID, version: int, format: int = SNAPSHOT_FORMAT) -> bytes:
        """The associated data of both layers: the snapshot's format (``SnapshotEncoding``) and the class version
        of the events it decodes (``ChildRecord.Published.class_version``: a future upcaster makes older snapshots
        not open), the stream and the version."""
        from events.store import ChildRecord

        event_version = getattr(ChildRecord.Published, "class_version", 1)
        return f"tsunagu-child-snapshot\x00{format}\x00{event_version}\x00{stream}\x00{version}".encode()

    def _failed(self, what: str, stream: UUID | str, error: BaseException) -> None:
        """Log and count a failure of a snapshot query (best-effort: it never reaches a read)."""
        self.failures += 1
        log.warning("child snapshot: %s failed for stream %s (%s: %s)", what, stream, type(error).__name__, error)

    # --- reading ---------------------------------------------------------------------------------------------

    def load(self, stream: UUID, child: str | None = None) -> Loaded:
        """``load_many`` of one child (the read path's one way: ``HubStore.read_child``), its key fetched with its
        snapshot when ``child`` (the child's id) is given."""
        return self.load_many([stream], children={stream: child} if child is not None else None)[stream]

    def load_many(self, streams: Iterable[UUID], *, children: Mapping[UUID, str] | None = None) -> dict[UUID, Loaded]:
        """Each child's record as stored now, from its snapshot and the events stored after it, fetched for all
        of ``streams`` in one query (``_select``); from every event for a child that has no snapshot, or none that
        opens (then its events are fetched again, all of them, in one query for all such children), and for all of
        them when the snapshot query fails (any error: logged and counted). The one way children are loaded from
        their snapshots: a timeline read loads one (``load``), a view many (``HubStore.load_children``).

        ``children``: the child's id of streams whose child's key is fetched with the snapshot, in the same query
        (``_select``: **the child's key fetched with its snapshot**); the key of any other stream's snapshot is read
        when the snapshot is opened (``DataKeys.open``: a statement of its own unless the key is cached)."""
        from events.store import project
        from events.streams import events_after

        wanted = list(dict.fromkeys(streams))
        if not wanted:
            return {}
        try:
            snapshots, stored = self._select(wanted, children or {})
        except Exception as error:  # best-effort: the events are the record
            self._failed("load", wanted[0] if len(wanted) == 1 else f"{len(wanted)} streams", error)
            snapshots, stored = {}, events_after(self.store, dict.fromkeys(wanted, 0))
        opened: dict[UUID, tuple[ChildRecord | None, bytes | None]] = {
            stream: self._opened(stream, *snapshot) for stream, snapshot in snapshots.items()
        }
        again = [stream for stream, (record, _) in opened.items() if record is None]
        if again:  # a snapshot that did not open: every event of the child, as without one
            stored |= events_after(self.store, dict.fromkeys(again, 0))
        records = [event for stream in wanted for event in stored.get(stream, ())]
        events = iter(self.store.mapper.to_domain_events(records))  # every data key they need, in one go
        out = {}
        for stream in wanted:
            record, unopened = opened.get(stream, (None, None))
            tail = [next(events) for _ in stored.get(stream, ())]
            if record is not None:
                self.loaded_from_snapshot += 1
                self.loaded_with_tail += 1 if tail else 0
            out[stream] = Loaded(
                cast("ChildRecord | None", project(record, tail)), len(tail), record is not None, unopened
            )
        return out

    def _select(
        self, streams: list[UUID], children: Mapping[UUID, str]
    ) -> tuple[dict[UUID, tuple[int, bytes]], dict[UUID, list[StoredEvent]]]:
        """Each child's snapshot (version, sealed state), for those that have one, and each child's stored events
        after its snapshot's version (all of them without a snapshot), for all of ``streams`` in one query (one
        statement: the snapshots and the versions the events are read after are the same).

        **The child's key fetched with its snapshot**: for a stream named in ``children``, the snapshot's row comes
        with the row of the child's live key (``DataKeys``' table, found by its scope's hash, which the key table
        keeps, never the key id, which the snapshot row does not show), handed to ``DataKeys.loaded`` before the
        snapshot is opened, so that opening its inner layer (``DataKeys.open``) finds the key cached. What it
        replaces: the key's own statement when the snapshot is opened (``DataKeys._entry``: a round trip and
        0.15–0.3 ms of psycopg's CPU on a cold read). Why it is the same: the row is read as ``_entry`` reads it, in
        one statement with the snapshot (one snapshot of the data), and taken in as ``_entry`` takes it (a key this
        process has seen destroyed stays destroyed); a child with no live key (erased) gets no row, and its
        snapshot's key is read by ``_entry`` as before (destroyed: the snapshot does not open).
        ``tests/events/test_snapshot_format.py`` checks that a cold read takes the key in with its snapshot (as
        the scope's active key, which ``DataKeys.open`` alone does not) and loads the same record, and that an
        erased child's snapshot still does not open."""
        keys = self.store.keys
        scopes = [keys.scope_hash(child_scope(children[stream])) if stream in children else None for stream in streams]
        if self.postgres:
            wanted = "unnest(%s::uuid[]) AS w(id)"
            with_scope = "unnest(%s::uuid[], %s::text[]) AS w(id, scope)"
            params: tuple[Any, ...] = (streams, scopes, streams)
            at = with_scope_at = "w.id"
            scope = "w.scope"
        else:
            wanted = with_scope = "json_each(?) AS w"
            ids = [self._key(stream) for stream in streams]
            params = (json.dumps([[key, hashed] for key, hashed in zip(ids, scopes)]), json.dumps(ids))
            at, with_scope_at = "w.value", "json_extract(w.value, '$[0]')"
            scope = "json_extract(w.value, '$[1]')"
        query = self._sql(
            f"SELECT s.stream AS stream, 0 AS part, s.version AS version, '' AS topic, s.state AS state, "
            f"k.key_id AS key_id, k.scope AS scope, k.master_key AS master_key, k.wrapped AS wrapped, "
            f"k.destroyed_at AS destroyed_at "
            f"FROM {with_scope} JOIN {self.table} AS s ON s.stream = {with_scope_at} "
            f"LEFT JOIN {keys.table} AS k ON k.scope = {scope} AND k.destroyed_at IS NULL UNION ALL "
            f"SELECT t.originator_id, 1, t.originator_version, t.topic, t.state, NULL, NULL, NULL, NULL, NULL "
            f"FROM {wanted} "
            f"LEFT JOIN {self.table} AS s ON s.stream = {at} "
            f"JOIN {self.events_table} AS t ON t.originator_id = {at} "
            f"AND t.originator_version > COALESCE(s.version, 0) "
            f"ORDER BY stream, part, version"
        )
        now = time.monotonic()  # before the statement: the keys' rows are as fresh as from then (``DataKeys._entry``)
        rows = self._snapshots_and_tails(query, params)
        by_key = {str(self._key(stream)): stream for stream in streams}
        snapshots: dict[UUID, tuple[int, bytes]] = {}
        stored: dict[UUID, list[StoredEvent]] = {}
        fetched_keys = []
        for row in rows:
            stream = by_key[str(row["stream"])]
            if row["part"] == 0:
                snapshots[stream] = (int(row["version"]), bytes(row["state"]))
                if row["key_id"] is not None:
                    fetched_keys.append(row)
            else:
                stored.setdefault(stream, []).append(
                    StoredEvent(stream, int(row["version"]), row["topic"], bytes(row["state"]))
                )
        if fetched_keys:
            keys.loaded(fetched_keys, now)
        return snapshots, stored

    def _opened(self, stream: UUID, version: int, sealed: bytes) -> tuple[ChildRecord | None, bytes | None]:
        """The record a sealed snapshot holds (None when it does not open), and ``sealed`` again when it does not
        open for another reason than the destruction of the child's key (the erasure, expected: quiet): altered,
        not this store's, of another format (logged apart, a warning; the next snapshot taken overwrites it)."""
        try:
            return self._record(stream, version, self.unseal(stream, version, sealed)), None
        except KeyDestroyed:
            return None, None
        except Exception as error:  # InvalidTag, KeyUnknown, a state that does not decode
            log.warning(
                "child snapshot of stream %s (v%s) does not open (%s): altered, another store's, or of another "
                "format; the events are replayed and the next snapshot replaces it",
                stream,
                version,
                type(error).__name__,
            )
            return None, sealed

    def _record(self, stream: UUID, version: int, state: Any) -> ChildRecord:
        """The ``ChildRecord`` an opened snapshot's state holds (``ValueError``: not a snapshot of this version)."""
        from events.store import ChildRecord

        if (
            not isinstance(state, dict)
            or state.get("format") not in SnapshotEncoding.FORMATS
            or state.get("version") != version
        ):
            raise ValueError("not a snapshot of this format and version")
        envelopes, entries = rebuilt_entries(state["published"])
        record = object.__new__(ChildRecord)
        record.__dict__.update(
            _id=stream,
            _version=version,
            _created_on=datetime.fromisoformat(state["created_on"]),
            _modified_on=datetime.fromisoformat(state["modified_on"]),
            _pending_events=[],
            child=state["child"],
            entries=entries,
            envelopes=envelopes,
        )
        return record

    # --- writing ---------------------------------------------------------------------------------------------

    @staticmethod
    def state_of(record: ChildRecord) -> dict[str, Any] | None:
        """What a snapshot of ``record`` holds (read before the record can change: it may be in the aggregate
        cache, fast-forwarded by other threads), or None for a record that is not snapshotted (an erased child's).
        """
        version = record.version
        envelopes = list(record.envelopes)
        entries = list(record.entries)
        if len(entries) != len(envelopes) or version != len(entries) + 1:
            return None  # caught mid-way by a fast-forward, or an event that did not open: not a stream to keep
        if any(entry.kind == "child.erased" for entry in entries):
            return None
        return {
            "format": SNAPSHOT_FORMAT,
            "version": version,
            "child": record.child,
            "created_on": record.created_on.isoformat(),
            "modified_on": record.modified_on.isoformat(),
            "published": [[envelope, sorted(entry.audience)] for envelope, entry in zip(envelopes, entries)],
        }

    def seal(self, stream: UUID, state: dict[str, Any]) -> tuple[bytes, bytes]:
        """``state`` sealed in two layers (see the module docstring): under the child's **existing** key, then that
        under the hub's key; and the id of the child's key (which ``write`` checks is not destroyed). ``KeyUnknown``
        when the child has no live key (erased since it was loaded): a snapshot never creates a child's key
        (``DataKeys.seal_existing``)."""
        format, encoded = self.encoding.encode(state)
        aad = self._aad(stream, int(state["version"]), format)
        keys = self.store.keys
        inner = keys.seal_existing(child_scope(state["child"]), encoded, aad)
        return keys.seal(HUB_SCOPE, inner, aad), inner[1:17]

    def unseal(self, stream: UUID, version: int, sealed: bytes) -> Any:
        """The decoded state of a sealed snapshot: ``KeyDestroyed`` when the child was erased; ``InvalidTag`` or
        ``KeyUnknown`` when it was altered or is not this store's (or of another format or event class version)."""
        keys = self.store.keys
        for format in SnapshotEncoding.FORMATS:  # the format is told by the associated data it opens under
            aad = self._aad(stream, version, format)
            try:
                inner = keys.open(sealed, aad)
            except InvalidTag:
                if format == SnapshotEncoding.FORMATS[-1]:
                    raise
                continue
            state = self.encoding.decode(format, keys.open(inner, aad))
            if not isinstance(state, dict) or state.get("format") != format:
                raise ValueError(f"a snapshot opened as format {format} says it is of another")
            return state
        raise InvalidTag()  # no format (not reached: the last one raises)

    def keep(self, due: SnapshotDue) -> bool:
        """``keep_all`` of one snapshot (a timeline read's). Whether it was written."""
        return self.keep_all([due]) == 1

    def keep_all(self, dues: Iterable[SnapshotDue]) -> int:
        """``take`` the snapshots a read or a view found due, best-effort, once the read or the view is recorded
        (the one way the read path takes them): never raises, and how many were written.

        - **In stream order**, so that two processes' views over the same children take the rows' locks (the
          snapshot row, the child's key row ``FOR SHARE`` on PostgreSQL) in the same order: no deadlock.
        - **In transactions of ``batch`` snapshots** (``SNAPSHOT_BATCH``), so that an erasure of one of the
          children waits for one batch's commit at most, not a whole view's (thousands of children), and a writer
          on SQLite holds the lock as long.
        - **Each child on its own**: a child that cannot be sealed is skipped (quietly when it has no live key, its
          erasure stored since it was loaded; otherwise logged and counted, ``failures``), a batch that cannot be
          written is logged and counted; the other children's snapshots are written."""
        wanted = sorted(dues, key=lambda due: due.stream)
        written = 0
        for start in range(0, len(wanted), self.batch):
            sealed = [item for due in wanted[start : start + self.batch] if (item := self._sealed(due)) is not None]
            if not sealed:
                continue
            try:
                with self.datastore.transaction(commit=True) as cursor:
                    written += sum(
                        self._write(cursor, due.stream, int(due.state["version"]), state, child_key, due.replacing)
                        for due, state, child_key in sealed
                    )
            except Exception as error:
                self._failed("take", sealed[0][0].stream if len(sealed) == 1 else f"{len(sealed)} streams", error)
        return written

    def _sealed(self, due: SnapshotDue) -> tuple[SnapshotDue, bytes, bytes] | None:
        """``due`` and its state sealed (``seal``), or None when it cannot be: no live key of the child (erased
        since it was loaded: quiet), or any other error (logged and counted)."""
        try:
            return (due, *self.seal(due.stream, due.state))
        except (KeyUnknown, KeyDestroyed):
            log.debug("child snapshot: stream %s has no live key (erased since loaded): not taken", due.stream)
            return None
        except Exception as error:
            self._failed("seal", due.stream, error)
            return None

    def take(self, stream: UUID, state: dict[str, Any], *, replacing: bytes | None = None) -> bool:
        """Seal ``state`` (``state_of``) and ``write`` it as the child's snapshot. Whether it was written
        (``KeyUnknown``: the child has no live key)."""
        sealed, child_key = self.seal(stream, state)
        return self.write(stream, int(state["version"]), sealed, child_key, replacing=replacing)

    def write(
        self, stream: UUID, version: int, sealed: bytes, child_key: bytes, *, replacing: bytes | None = None
    ) -> bool:
        """Keep ``sealed`` as the child's snapshot at ``version`` (``_write``, in a transaction of its own). Whether
        it was written."""
        with self.datastore.transaction(commit=True) as cursor:
            return self._write(cursor, stream, version, sealed, child_key, replacing)

    def _write(
        self, cursor: Any, stream: UUID, version: int, sealed: bytes, child_key: bytes, replacing: bytes | None
    ) -> bool:
        """Keep ``sealed`` as the child's snapshot at ``version``, in one statement, only while the child's stream
        is at ``version`` and the child's key ``child_key`` (the inner layer's) is not destroyed (on PostgreSQL its
        row locked ``FOR SHARE``: see the module docstring), over an older snapshot or the row ``replacing`` that
        did not open (``Loaded.unopened``), never over a newer one. Whether it was written."""
        live = f"SELECT 1 FROM {self.store.keys.table} WHERE key_id = ? AND destroyed_at IS NULL"
        live += " FOR SHARE" if self.postgres else ""
        key = self._key(stream)
        cursor.execute(
            self._sql(
                f"INSERT INTO {self.table} (stream, version, state) SELECT ?, ?, ? "
                f"WHERE (SELECT MAX(originator_version) FROM {self.events_table} WHERE originator_id = ?) = ? "
                f"AND EXISTS ({live}) "
                f"ON CONFLICT (stream) DO UPDATE SET version = excluded.version, state = excluded.state "
                f"WHERE {self.TABLE}.version < excluded.version OR {self.TABLE}.state = ? RETURNING version"
            ),
            (key, version, sealed, key, version, child_key, replacing),
        )
        return cursor.fetchone() is not None

    def forget(self, stream: UUID) -> None:
        """Delete the child's snapshot (its erasure: the key already makes it unreadable; this tidies), best-effort:
        an error is logged and counted (``failures``), never raised (it must not stop the destruction of other
        children's keys)."""
        try:
            with self.datastore.transaction(commit=True) as cursor:
                cursor.execute(self._sql(f"DELETE FROM {self.table} WHERE stream = ?"), (self._key(stream),))
        except Exception as error:
            self._failed("forget", stream, error)

    def count(self) -> int:
        """How many children have a snapshot."""
        return self.status()[0]

    def status(self) -> tuple[int, int]:
        """How many snapshots there are, and how many bytes their sealed states take (``tsunagu snapshots
        status``)."""
        length = "octet_length" if self.postgres else "length"
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT COUNT(*) AS n, COALESCE(SUM({length}(state)), 0) AS size FROM {self.table}")
            row = cursor.fetchone()
            return (int(row["n"]), int(row["size"])) if row is not None else (0, 0)
