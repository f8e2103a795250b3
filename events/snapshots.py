"""**Children's snapshots**: a decoded snapshot of each child's stream, so that a cold read (a child not in the
process's aggregate cache) opens one sealed snapshot and the few events stored after it, instead of every event
of the child one by one (an AES-GCM operation, a JSON read and a ``Recorded`` for each: 14–17 ms of CPU for a
500-event child, the p99 of ``bench/core.py``).

What a snapshot is: one row per child in ``tsunagu_child_snapshots`` (the child's stream id, the stream version
it holds, the sealed state). The state is what publishing gave the child's ``ChildRecord`` up to that version
(each published envelope with its audience, the record's creation and modification times), encoded with the
store's transcoder and sealed under **the child's own data key** (``events.sealing``), bound by associated data to
the stream and the version: a snapshot copied to another child's row or version does not open. Erasing the child
destroys that key, so the snapshot no longer opens (and ``HubStore.shred`` deletes the row besides): the read
then replays the events, exactly as it does for an erased child without snapshots.

Derived data, migration-free: the events stay as they are; the table is created when a store opens and may be
emptied or dropped at any time (``drop``), and is filled again by reads. A store without snapshots (an older
store, ``tests/fixtures/*.db``) reads and verifies as before. ``audit verify`` never reads it (``services.audit``
replays every child from its events through ``HubStore.replayed``, which uses neither the aggregate cache nor
a snapshot); only the read path does (``HubStore.read_child``).

When a snapshot is taken (``HubStore.read_child``): after a cold load of a child that replayed at least
``SNAPSHOT_AFTER`` events (all of them, or those after an older snapshot), by the read that loaded it. Not on the
publish path, which appends a child's events without loading the child (``services.publishing.batch``): taking
a snapshot there would mean loading every child it publishes about. Only children that are read get one, and a
child read again and again in a process (warm, in the cache) costs nothing more; the next process to load it cold
writes a newer snapshot when the tail has grown past ``SNAPSHOT_AFTER``.

Erasure, and what must never happen: a snapshot of a child's content sealed under a key that outlives the
child's erasure. ``take`` never snapshots a record holding ``child.erased``, and writes a snapshot only while
the child's stream is still at the snapshot's version, checked in the same transaction as the write: if an
erasure was stored meanwhile, the stream is further on and nothing is written. So the key a snapshot is sealed
under (the child's key active when it was sealed) was made before any erasure stored after the snapshot's
version, and is destroyed by it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from cryptography.exceptions import InvalidTag
from eventsourcing.persistence import StoredEvent

from events.sealing import KeyDestroyed, KeyUnknown, child_scope

if TYPE_CHECKING:
    from events.store import ChildRecord, HubStore

SNAPSHOT_AFTER = 100  # a cold load that replayed this many events writes a snapshot
SNAPSHOT_FORMAT = 1  # what the sealed state holds (a snapshot of another format is ignored: it is replayed)


class ChildSnapshots:
    """The children's snapshots of one store (see the module docstring): ``load`` a child's record from its
    snapshot and the events after it, ``take`` one, ``forget`` a child's, ``drop`` them all."""

    TABLE = "tsunagu_child_snapshots"

    def __init__(self, store: HubStore, after: int = SNAPSHOT_AFTER):
        self.store = store
        self.after = after  # a cold load that replayed this many events takes a snapshot (``SNAPSHOT_AFTER``)
        datastore = store.recorder.datastore
        self.datastore: Any = datastore  # the library's SQLite or PostgreSQL datastore
        self.postgres = type(store.recorder).__module__.endswith("postgres")
        schema = getattr(datastore, "schema", None) if self.postgres else None
        self.table = f'"{schema}".{self.TABLE}' if schema else self.TABLE
        events_table = store.recorder.events_table_name
        self.events_table = f'"{schema}".{events_table}' if schema else events_table
        self._create_table()

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.postgres else text

    def _key(self, stream: UUID) -> Any:
        """The stream id as the events table keeps it (PostgreSQL: a uuid; SQLite: its hex)."""
        return stream if self.postgres else stream.hex

    def _create_table(self) -> None:
        id_type, blob = ("UUID", "BYTEA") if self.postgres else ("TEXT", "BLOB")
        with self.datastore.transaction(commit=True) as cursor:
            if self.postgres:  # processes opening a new database at once create it one after the other
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"tsunagu-snapshots:{self.table}"])
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (stream {id_type} PRIMARY KEY, "
                f"version BIGINT NOT NULL, state {blob} NOT NULL)"
            )

    @staticmethod
    def _aad(stream: UUID, version: int) -> bytes:
        return f"tsunagu-child-snapshot\x00{SNAPSHOT_FORMAT}\x00{stream}\x00{version}".encode()

    # --- reading ---------------------------------------------------------------------------------------------

    def load(self, stream: UUID) -> tuple[ChildRecord | None, int, bool]:
        """The child's record as stored now (None: no such stream), how many events were replayed for it, and
        whether it came from a snapshot: from the child's snapshot and the events stored after it, fetched in one
        query; from every event when the child has no snapshot, or none that opens (its key destroyed: then the
        events are fetched again, all of them)."""
        from events.store import project

        snapshot, stored = self._select(stream)
        record = self._opened(stream, *snapshot) if snapshot is not None else None
        if snapshot is not None and record is None:
            stored = list(self.store.recorder.select_events(stream))
        events = self.store.mapper.to_domain_events(stored)
        return cast("ChildRecord | None", project(record, events)), len(events), record is not None

    def _select(self, stream: UUID) -> tuple[tuple[int, bytes] | None, list[StoredEvent]]:
        """The child's snapshot (version, sealed state), if any, and the stored events after its version (all of
        them without a snapshot), in one query."""
        key = self._key(stream)
        query = self._sql(
            f"SELECT 0 AS part, version, '' AS topic, state FROM {self.table} WHERE stream = ? UNION ALL "
            f"SELECT 1 AS part, originator_version AS version, topic, state FROM {self.events_table} "
            f"WHERE originator_id = ? AND originator_version > "
            f"COALESCE((SELECT version FROM {self.table} WHERE stream = ?), 0) ORDER BY part, version"
        )
        if self.postgres:  # states as bytes (binary rows), as PostgresRecorder.select_events reads them
            with self.datastore.get_connection() as conn, conn.cursor(binary=True) as cursor:
                cursor.execute(query, (key, key, key))
                rows = cursor.fetchall()
        else:
            with self.datastore.transaction(commit=False) as cursor:
                cursor.execute(query, (key, key, key))
                rows = cursor.fetchall()
        snapshot = None
        stored = []
        for row in rows:
            if row["part"] == 0:
                snapshot = (int(row["version"]), bytes(row["state"]))
            else:
                stored.append(StoredEvent(stream, int(row["version"]), row["topic"], bytes(row["state"])))
        return snapshot, stored

    def _opened(self, stream: UUID, version: int, sealed: bytes) -> ChildRecord | None:
        """The record a sealed snapshot holds, or None when it does not open (its key destroyed, or not this
        store's, or the snapshot altered or of another format)."""
        from events.store import ChildRecord

        keys = self.store.keys
        try:
            state = self.store.mapper.transcoder.decode(keys.open(sealed, self._aad(stream, version)))
        except (KeyDestroyed, KeyUnknown, InvalidTag):
            return None
        if not isinstance(state, dict) or state.get("format") != SNAPSHOT_FORMAT or state.get("version") != version:
            return None
        record = object.__new__(ChildRecord)
        record.__dict__.update(
            _id=stream,
            _version=1,
            _created_on=datetime.fromisoformat(state["created_on"]),
            _modified_on=datetime.fromisoformat(state["modified_on"]),
            _pending_events=[],
            child=state["child"],
            entries=[],
            envelopes=[],
        )
        for envelope, audience in state["published"]:
            record._add(envelope, audience)
        record.__dict__["_version"] = version
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

    def take(self, stream: UUID, state: dict[str, Any]) -> bool:
        """Seal ``state`` (``state_of``) under the child's key and keep it as the child's snapshot, unless the
        child's stream has moved past its version (checked in the write's transaction: see the module docstring)
        or a newer snapshot is kept already. Whether it was written."""
        version = int(state["version"])
        sealed = self.store.keys.seal(
            child_scope(state["child"]), self.store.mapper.transcoder.encode(state), self._aad(stream, version)
        )
        key = self._key(stream)
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                self._sql(
                    f"SELECT originator_version FROM {self.events_table} WHERE originator_id = ? "
                    "ORDER BY originator_version DESC LIMIT 1"
                ),
                (key,),
            )
            head = cursor.fetchone()
            if head is None or int(head["originator_version"]) != version:
                return False
            cursor.execute(
                self._sql(
                    f"INSERT INTO {self.table} (stream, version, state) VALUES (?, ?, ?) ON CONFLICT (stream) "
                    f"DO UPDATE SET version = excluded.version, state = excluded.state "
                    f"WHERE {self.TABLE}.version < excluded.version"
                ),
                (key, version, sealed),
            )
        return True

    def forget(self, stream: UUID) -> None:
        """Delete the child's snapshot (its erasure: the key already makes it unreadable; this tidies)."""
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(self._sql(f"DELETE FROM {self.table} WHERE stream = ?"), (self._key(stream),))

    def drop(self) -> int:
        """Delete every snapshot (derived data: reads take them again); how many there were."""
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(f"SELECT COUNT(*) AS n FROM {self.table}")
            row = cursor.fetchone()
            count = int(row["n"]) if row is not None else 0
            cursor.execute(f"DELETE FROM {self.table}")
        return count

    def count(self) -> int:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT COUNT(*) AS n FROM {self.table}")
            row = cursor.fetchone()
            return int(row["n"]) if row is not None else 0
