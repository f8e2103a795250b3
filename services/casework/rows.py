"""Rows decided ahead (``LedgerRowCache``): how the ledgers and the agenda cost what they show, not the centre's
size.

A ledger row is built from a policy-decided read of the child as the reader (``build_row``). Deciding that read is
what costs (the child's events, the policy, the row); recording it is one append. The reads are kept decided ahead
by the reading layer's one mechanism for it (``services.reading.kept.KeptReads``, shared with ``TimelineReader.read``:
per reader organisation, role, purpose and child, the read with everything it depends on: the child's stream
version, the registry version, the settings, the policy version, ``valid_until`` and the ``t`` it was decided at),
and the rows built from a read are kept with it (``KeptRead.derived``, under ``("row", case)``), so that they go
when it goes.

A view asks ``ahead`` for the rows of the cases it covers (and, for the start page, for the reads of other
children, purpose ``support``: ``Ahead.derive`` keeps what a view computes from a read with it): every child's
stream version comes from the ``VersionWatch`` (below), rows whose dependencies all hold are taken as kept, the
others are decided again (their streams loaded in one query) and kept. Stale is never shown, since the check runs on every view; nothing is kept current in the publish path,
so several processes each keep their own and none can be wrong. Nothing here is shown or recorded: the view then
records one read per child it shows (``Ahead.record``, in bulk through ``TimelineReader.record``), with the kept
decision, content digest and child position, at the view's ``t``: the same record a ``TimelineReader.read`` at that
moment would make, which ``audit verify`` replays exactly; and, in the same transaction, one record in the reader's
view log naming every child whose decided read went into the view (``Ahead.consulted``) and the records of those
shown (``services.reading.view_log``), so that a count or a filter over children not shown is on record too.

The stream versions (``VersionWatch``, an explicit mechanism for speed): a view needs the current version of
every child it covers, which one query over all of them gives (``events.streams.stream_versions``), at a cost that
grows with the centre. The watch instead keeps the versions it has seen, with the log position (the highest
notification id) they are current at; on each view it reads the log position and only the notifications stored
after the one it knew (their stream ids and versions), and asks the store directly only for children it has never
seen. So a view costs what changed since the last view, not the centre's size. It is right because every append
is a notification in one ordered log: SQLite writes one transaction at a time, and the library's PostgreSQL
recorder locks the events table for each insert, so notification ids are committed in order and nothing appears
later below a position already read. After many changes (more than ``catch_up`` notifications since the last
view, e.g. an import) it asks for the versions directly again rather than reading them all.

The children's streams are loaded for deciding without being put in the aggregate cache
(``events.store.HubStore.load_children``): what is needed of them is kept here, and a view of 5,000 children would
otherwise push the children read one by one out of it. A child not in the aggregate cache is loaded from its
snapshot and the events after it (``events.snapshots``: one query for all the children decided again, one sealed
snapshot opened each instead of every event), or from every event when it has none that opens. A child whose load
replayed at least ``VIEW_SNAPSHOT_AFTER`` events gets a snapshot, as a timeline read's child does: taken once the
view is recorded (``Ahead.record_children``, after the view's transaction), best-effort, in stream order and in
transactions of ``SNAPSHOT_BATCH`` (``ChildSnapshots.keep_all``). Why the views take them too: after a restart (or once the decisions kept
here expire) the views are what loads most children cold, thousands at a time, and a child only ever seen in the
ledgers would otherwise be replayed from every event by each new process.

What is kept is decrypted content: an erasure seen by this process (``events.store.ErasureWatch``) empties every
kept read (``KeptReads``), and the stream versions watched here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from threading import Lock
from typing import Any, TypeVar
from uuid import UUID

from consent.model import Reader, Settings
from events.model import Org
from events.snapshots import SnapshotDue
from events.store import ChildRecord, HubStore
from events.streams import stream_versions
from services.casework.ledger import CaseRow, build_row
from services.reading.kept import KeptRead
from services.reading.timeline import TimelineReader
from services.reading.view_log import view_record

PURPOSE = "meeting"  # the ledgers and the agenda are read for the 要対協's meetings
T = TypeVar("T")


class VersionWatch:
    """The current version of children's streams, kept at a log position and advanced by the notifications stored
    after it (see the module docstring)."""

    def __init__(self, store: HubStore, catch_up: int = 20_000):
        self.store = store
        self.catch_up = catch_up
        self._versions: dict[UUID, int] = {}
        self._position: int | None = None
        self._lock = Lock()

    def clear(self) -> None:
        with self._lock:
            self._versions.clear()
            self._position = None

    def versions(self, ids: Iterable[UUID]) -> dict[UUID, int]:
        """The version of each of ``ids`` that has events, as stored now (at least as recent as the log position
        read on entry)."""
        wanted = list(ids)
        now = self.store.log_position()
        with self._lock:
            position, known = self._position, self._versions
            if position is not None and now - position > self.catch_up:
                position = None
            if position is None:
                known.clear()
            elif now > position:
                for n in self.store.recorder.select_notifications(
                    position, now - position, stop=now, inclusive_of_start=False
                ):
                    stream = n.originator_id
                    if isinstance(stream, UUID) and stream in known:
                        known[stream] = max(known[stream], n.originator_version)
            self._position = now
            missing = [i for i in wanted if i not in known]
        found = stream_versions(self.store, missing) if missing else {}
        with self._lock:
            for i in missing:
                self._versions[i] = max(self._versions.get(i, 0), found.get(i, 0))
            return {i: v for i in wanted if (v := self._versions.get(i, 0))}


@dataclass
class Ahead:
    """The rows of a view's cases for one reader at ``t``, each from a decision valid at ``t``; ``record`` records
    the reads of the children a view shows."""

    reader: Reader
    rows: list[CaseRow]
    kept: dict[str, KeptRead]  # child -> its decided read
    registry_version: int
    settings: Settings
    recorder: TimelineReader
    store: HubStore
    snapshots_due: list[SnapshotDue] = field(default_factory=list)  # taken once the view is recorded

    def record(self, rows: Sequence[CaseRow], view: str, query: Mapping[str, Any]) -> list[str]:
        """One access record per child of ``rows`` (in their order), all in one transaction with the view's
        record (``record_children``); their ids."""
        return self.record_children((r.child for r in rows), view, query)

    def consulted(self) -> dict[str, int]:
        """The children whose decided read went into this view: every child decided for it whose read is
        allowed (a refused read gives no row, no count and no content), each with the stream position its read
        was decided on."""
        return {
            child: item.decided.child_position for child, item in self.kept.items() if item.decided.decision.allowed
        }

    def record_children(self, children: Iterable[str], view: str, query: Mapping[str, Any]) -> list[str]:
        """One access record per child of ``children`` (in their order) and the view's record in the reader's
        view log (``services.reading.view_log``: ``view`` and its ``query``, every child ``consulted``, the
        records of those shown), all in one transaction; the access records' ids."""
        wanted = list(dict.fromkeys(children))
        position = self.store.log_position()
        record = view_record(
            self.reader,
            view,
            query,
            self.consulted(),
            log_position=position,
            registry_version=self.registry_version,
            settings=self.settings,
        )
        records = self.recorder.record(
            [(self.reader, self.kept[child].decided) for child in wanted],
            log_position=position,
            registry_version=self.registry_version,
            settings=self.settings,
            view=record,
        )
        due, self.snapshots_due = self.snapshots_due, []  # after the view is recorded, best-effort (never raises)
        self.store.child_snapshots.keep_all(due)
        return [r["id"] for r in records]

    def derive(self, child: str, key: Any, make: Callable[[KeptRead], T]) -> T:
        """What a view computes from ``child``'s kept read (``make(kept)``, at the time it was decided, which
        holds now), computed once per decision and ``key`` (the view and whatever else it depends on, such as
        the day)."""
        item = self.kept[child]
        if key not in item.derived:
            item.derived[key] = make(item)
        value: T = item.derived[key]
        return value


class LedgerRowCache:
    """Rows decided ahead: see the module docstring. The reads are ``recorder.kept`` (``KeptReads``)."""

    def __init__(self, store: HubStore, recorder: TimelineReader):
        self.store = store
        self.recorder = recorder
        self.kept = recorder.kept
        self._ids: dict[str, UUID] = {}  # child -> its stream id (an HMAC each: made once per process)
        self.versions = VersionWatch(store)
        self._erasures = store.erasures.position
        self._lock = Lock()

    def ahead(
        self,
        org: str,
        role: str,
        cases: Mapping[str, str],
        *,
        t: datetime,
        orgs: Mapping[str, Org],
        registry_version: int,
        settings: Settings,
        user: str | None = None,
        children: Iterable[str] = (),
        purpose: str = PURPOSE,
    ) -> Ahead:
        """The rows of ``cases`` (case -> child) as ``org`` in ``role`` reads them at ``t`` for ``purpose``, sorted
        by centre, registration and case; cases whose child's read is refused, or whose registration it does not
        show, have no row. ``children``: more children to decide (no rows), for ``Ahead.derive``."""
        position = self.kept.check_erasures()
        with self._lock:
            if position != self._erasures:
                self.versions.clear()
                self._erasures = position
        by_child: dict[str, list[str]] = {}
        for case, child in cases.items():
            by_child.setdefault(child, []).append(case)
        for child in children:
            by_child.setdefault(child, [])
        ids = {
            child: self._ids.get(child) or self._ids.setdefault(child, ChildRecord.create_id(child))
            for child in by_child
        }
        versions = self.versions.versions(ids.values())
        reader = Reader(org=org, role=role, purpose=purpose, t=t, user=user)
        kept: dict[str, KeptRead] = {}
        stale = []
        due: list[SnapshotDue] = []
        for child in by_child:
            found = self.kept.holding(reader, child, versions.get(ids[child], 0), registry_version, settings)
            if found is not None:
                kept[child] = found
            else:
                stale.append(child)
        if stale:
            records, due = self.store.load_children({ids[child]: child for child in stale})  # kept there, decided
            for child in stale:
                record = records.get(ids[child])
                stream = record.as_stored() if record is not None else None
                kept[child] = self.kept.decide(reader, child, stream, orgs, registry_version, settings)
        rows = []
        for child, child_cases in by_child.items():
            item = kept[child]
            for case in child_cases:
                key = ("row", case)
                if key not in item.derived:  # built once per case asked for, at the time decided (valid now)
                    item.derived[key] = (
                        build_row(case, child, item.decided.entries, orgs, item.decided_at)
                        if item.decided.decision.allowed
                        else None
                    )
                row = item.derived[key]
                if row is not None:
                    rows.append(row)
        rows.sort(key=lambda r: (r.center, r.registered_at, r.case))
        return Ahead(reader, rows, kept, registry_version, settings, self.recorder, self.store, due)
