"""**Indexes' snapshots**: a snapshot of a kept index whose history grows without bound (``SnapshottedIndex``: the
monthly report lines of one school and centre, ``services.projections.municipal_counts.ReportLines``), so that a
process that does not hold it in its cache (a new process, or after the cache let it go) opens one sealed snapshot
and the few events stored after it, instead of every event of its history (one ``LinesCounted`` a monthly file for
years: 104–110 ms of CPU for a one-row publish at 500 children and 48 months, against 45 ms on main, the s8-import
review's L2).

It follows the children's snapshots (``events.snapshots``, ``ChildSnapshots``): derived data in a table of its own
(``tsunagu_index_snapshots``: the stream, the version the snapshot holds, the class's topic, the sealed state),
created when a store opens, filled by loads, emptied by ``tsunagu snapshots drop`` at any time (the events are
never changed; ``audit verify`` never reads it); loaded with the events after it **in the query that loads the
streams anyway** (``stored_after``, which ``events.streams.load_many`` uses in place of ``events_after``: no query
more); taken **best-effort** by the load that replayed ``SNAPSHOT_AFTER`` events or more of such a stream (``keep``:
an error is logged and counted, never raised, and a snapshot that does not open is logged and its stream's events
replayed); a newer snapshot replaces an older one, never the other way round, and a snapshot that did not open
is replaced by the next one taken of its stream, whatever its version (``unopened``, as ``ChildSnapshots`` replaces
a row that did not open).

Sealed under **the hub's key alone**, with the snapshot's format, the class's topic and version, the stream and
the version as associated data (a snapshot copied to another stream or version, or to another class, does not
open). That is right only because an index that takes snapshots holds nothing an erasure must make unreadable:
``SnapshottedIndex`` is for aggregates whose events are themselves sealed under the hub's key (no child's content:
``events.sealing.SealingMapper.scope_of`` gives them the hub's scope), so a snapshot holds what their events hold,
as readable after an erasure as they are. (The report lines name no child, school or student: their keys are
digests; an erased child's line stays under the hub's key by the lead's rule of session 7.) A child's stream is
never one: its snapshots are ``events.snapshots``', under the child's key.

A snapshot is used only while the event of its version is still stored (``stored_after`` checks it in the query):
after a restore of the database to an earlier point, older events are replayed instead (drop the snapshots after a
restore anyway, deploy/RUNBOOK.md).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

import orjson
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic, resolve_topic

from events.sealing import HUB_SCOPE
from events.snapshots import SnapshotTable

if TYPE_CHECKING:
    from events.store import HubStore

INDEX_SNAPSHOT_FORMAT = 1  # what the sealed state holds (``IndexSnapshots.keep``; in the associated data)

log = logging.getLogger(__name__)


class SnapshottedIndex:
    """An aggregate that takes snapshots (``IndexSnapshots``): a load that replayed ``SNAPSHOT_AFTER`` of its events
    or more takes one. **Only for aggregates whose every event is sealed under the hub's key** (see the module):
    the snapshot is sealed under the hub's key alone. ``snapshot_state`` is its state as plain JSON values (checked
    exact when taken), ``restore_state`` sets it back; ``from_snapshot`` makes the aggregate of a version from it
    (as the library's snapshots do, without the library's per-class snapshot store)."""

    SNAPSHOT_AFTER: ClassVar[int] = 20

    def snapshot_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def restore_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    @classmethod
    def from_snapshot(
        cls, stream: UUID, version: int, created_on: datetime, modified_on: datetime, state: dict[str, Any]
    ) -> Any:
        """The aggregate at ``version`` that ``state`` holds."""
        aggregate = object.__new__(cls)
        aggregate.__dict__.update(
            _id=stream, _version=version, _created_on=created_on, _modified_on=modified_on, _pending_events=[]
        )
        aggregate.restore_state(state)
        return aggregate


class IndexSnapshots(SnapshotTable):
    """The indexes' snapshots of one store (see the module): ``stored_after`` loads them with the events after them,
    ``keep`` takes one, ``drop`` deletes them all."""

    TABLE = "tsunagu_index_snapshots"
    COLUMNS = "version BIGINT NOT NULL, topic TEXT NOT NULL, state {blob} NOT NULL"

    def __init__(self, store: HubStore):
        self.failures = 0  # errors taking a snapshot, logged and let go (best-effort)
        # The sealed states of the snapshots that did not open in this process, by stream, until ``keep`` replaces
        # them (the load that found one replays the stream's events, and so takes the next snapshot at the same
        # version, which the upsert lets over exactly that row). At most one a stream, and only for rows that did
        # not open (which should not happen: another format, key or class version, or an altered row).
        self.unopened: dict[UUID, bytes] = {}
        super().__init__(store)
        # PostgreSQL stores created with text ids (the library's option) are loaded without snapshots
        self.enabled = not self.postgres or getattr(self.datastore, "originator_id_type", "uuid") == "uuid"

    @staticmethod
    def _aad(stream: UUID, version: int, topic: str) -> bytes:
        cls = resolve_topic(topic)
        class_version = getattr(cls, "class_version", 1)
        return f"tsunagu-index-snapshot\x00{INDEX_SNAPSHOT_FORMAT}\x00{topic}\x00{class_version}\x00{stream}\x00{version}".encode()

    # --- reading ---------------------------------------------------------------------------------------------

    def stored_after(self, after: dict[UUID, int]) -> tuple[dict[UUID, Any], dict[UUID, list[StoredEvent]]]:
        """For each stream of ``after`` (stream -> the version a writer holds already, 0: none), in one query: the
        aggregate its snapshot holds, for a stream with 0 that has one that opens, and the stored events after
        the snapshot's version, or after the version given (what ``events.streams.events_after`` gives for the
        others). A snapshot that does not open is logged (it should not happen) and its stream's events fetched
        again, all of them (``events_after``)."""
        from events.streams import events_after

        if not self.enabled or not after:
            return {}, events_after(self.store, after)
        streams = list(after)
        uncached = [stream for stream in streams if after[stream] == 0]  # (none: the tails alone, the same query)
        exists = f"EXISTS (SELECT 1 FROM {self.events_table} AS e WHERE e.originator_id = s.stream AND e.originator_version = s.version)"
        if self.postgres:
            first = "unnest(%s::uuid[]) AS c(id)"
            every = "unnest(%s::uuid[], %s::bigint[]) AS w(id, after)"
            params: tuple[Any, ...] = (uncached, streams, [after[s] for s in streams])
            c_id, w_id, w_after, greatest = "c.id", "w.id", "w.after", "GREATEST"
        else:
            first, every = "json_each(?) AS c", "json_each(?) AS w"
            params = (json.dumps([s.hex for s in uncached]), json.dumps([[s.hex, after[s]] for s in streams]))
            c_id, w_id, w_after = "c.value", "json_extract(w.value, '$[0]')", "json_extract(w.value, '$[1]')"
            greatest = "MAX"
        query = self._sql(
            f"SELECT s.stream AS stream, 0 AS part, s.version AS version, s.topic AS topic, s.state AS state "
            f"FROM {first} JOIN {self.table} AS s ON s.stream = {c_id} AND {exists} UNION ALL "
            f"SELECT t.originator_id, 1, t.originator_version, t.topic, t.state FROM {every} "
            f"LEFT JOIN {self.table} AS s ON s.stream = {w_id} AND {w_after} = 0 AND {exists} "
            f"JOIN {self.events_table} AS t ON t.originator_id = {w_id} "
            f"AND t.originator_version > {greatest}({w_after}, COALESCE(s.version, 0)) "
            f"ORDER BY stream, part, version"
        )
        rows = self._snapshots_and_tails(query, params)
        by_key = {str(self._key(stream)): stream for stream in streams}
        snapshots: dict[UUID, Any] = {}
        stored: dict[UUID, list[StoredEvent]] = {}
        unopened: list[UUID] = []
        for row in rows:
            stream = by_key[str(row["stream"])]
            if row["part"] == 0:
                aggregate = self._opened(stream, int(row["version"]), str(row["topic"]), bytes(row["state"]))
                if aggregate is None:
                    unopened.append(stream)
                    self.unopened[stream] = bytes(row["state"])  # for ``keep`` to replace it (L1, s9-import review)
                else:
                    snapshots[stream] = aggregate
            else:
                stored.setdefault(stream, []).append(
                    StoredEvent(stream, int(row["version"]), row["topic"], bytes(row["state"]))
                )
        if unopened:  # every event of those streams, as if they had none
            stored.update(events_after(self.store, {stream: 0 for stream in unopened}))
        return snapshots, stored

    def _opened(self, stream: UUID, version: int, topic: str, sealed: bytes) -> Any | None:
        """The aggregate a sealed snapshot holds, or None (logged) when it does not open: altered, another store's,
        another class's or format."""
        try:
            cls = resolve_topic(topic)
            if not (isinstance(cls, type) and issubclass(cls, SnapshottedIndex)):
                raise ValueError(f"{topic} takes no snapshots")
            held = orjson.loads(self.store.keys.open(sealed, self._aad(stream, version, topic)))
            return cls.from_snapshot(
                stream,
                version,
                datetime.fromisoformat(held["created_on"]),
                datetime.fromisoformat(held["modified_on"]),
                held["state"],
            )
        except Exception as error:  # InvalidTag, KeyUnknown, TopicError, a state that does not decode
            log.warning(
                "index snapshot of stream %s (v%s) does not open (%s): its events are replayed and the next "
                "snapshot replaces it",
                stream,
                version,
                type(error).__name__,
            )
            return None

    # --- writing ---------------------------------------------------------------------------------------------

    def keep(self, aggregates: Iterable[Any]) -> int:
        """Take a snapshot of each of ``aggregates`` (``SnapshottedIndex``, as stored at their version: a load's,
        before anyone changed them), in one transaction, best-effort: never raises; how many were written. A newer
        snapshot replaces an older one, and any snapshot replaces a row of its stream that did not open in this
        process (``unopened``). A state that plain JSON does not give back exactly is not kept (logged and counted
        in ``failures``, as a seal that fails: a change to a snapshotted class that breaks it shows)."""
        rows: list[tuple[UUID, int, str, bytes]] = []
        for aggregate in aggregates:
            try:
                row = self._sealed(aggregate)
            except Exception as error:
                self._failed("seal", aggregate.id, error)
                continue
            if row is None:
                self._failed("seal", aggregate.id, ValueError("its state is not given back exactly by plain JSON"))
            else:
                rows.append(row)
        if not rows:
            return 0
        written = 0
        try:
            with self.datastore.transaction(commit=True) as cursor:
                for stream, version, topic, sealed in sorted(rows, key=lambda row: row[0]):
                    cursor.execute(
                        self._sql(
                            f"INSERT INTO {self.table} (stream, version, topic, state) VALUES (?, ?, ?, ?) "
                            f"ON CONFLICT (stream) DO UPDATE SET version = excluded.version, topic = excluded.topic, "
                            f"state = excluded.state WHERE {self.TABLE}.version < excluded.version "
                            f"OR {self.TABLE}.state = ? RETURNING version"
                        ),
                        (self._key(stream), version, topic, sealed, self.unopened.get(stream)),
                    )
                    written += cursor.fetchone() is not None
        except Exception as error:
            self._failed("take", f"{len(rows)} streams", error)
            return 0
        for stream, *_ in rows:  # replaced, or newer than it was: either way no longer this process's to replace
            self.unopened.pop(stream, None)
        return written

    def _sealed(self, aggregate: Any) -> tuple[UUID, int, str, bytes] | None:
        """The row of ``aggregate``'s snapshot: its state sealed under the hub's key (None: not exact as JSON)."""
        held = {
            "created_on": aggregate.created_on.isoformat(),
            "modified_on": aggregate.modified_on.isoformat(),
            "state": aggregate.snapshot_state(),
        }
        encoded = orjson.dumps(held)
        if orjson.loads(encoded) != held:
            return None
        topic = get_topic(type(aggregate))
        version = aggregate.version
        return (
            aggregate.id,
            version,
            topic,
            self.store.keys.seal(HUB_SCOPE, encoded, self._aad(aggregate.id, version, topic)),
        )

    def _failed(self, what: str, stream: UUID | str, error: BaseException) -> None:
        self.failures += 1
        log.warning("index snapshot: %s failed for %s (%s: %s)", what, stream, type(error).__name__, error)

    def status(self) -> tuple[int, int]:
        """How many index snapshots there are, and how many bytes their sealed states take."""
        length = "octet_length" if self.postgres else "length"
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT COUNT(*) AS n, COALESCE(SUM({length}(state)), 0) AS size FROM {self.table}")
            row = cursor.fetchone()
            return (int(row["n"]), int(row["size"])) if row is not None else (0, 0)
