"""Rows decided ahead (``LedgerRowCache``): how the ledgers and the agenda cost what they show, not the centre's
size.

A ledger row is built from a policy-decided read of the child as the reader (``build_row``). Deciding that read is
what costs (the child's events, the policy, the row); recording it is one append. This keeps, per (reader
organisation, role, child), the read decided for purpose ``meeting`` (``services.reading.timeline.Decided``) and
the rows built from it, together with everything the decision depended on:

- the child's stream version (any event appended about the child changes it);
- the registry version and the settings (any change of an organisation or a setting);
- the policy version new reads are decided under;
- ``valid_until``: the earliest instant after the decision's ``t`` at which it, or the rows (members and
  closure at ``t``), could change with time alone (``consent.policy.decision_valid_until``: consent expiries,
  emergency windows, events dated ahead), and the ``t`` it was decided at (a clock set back decides again).

A view asks ``ahead`` for the rows of the cases it covers: one query gives every child's stream version; rows
whose dependencies all hold are taken as kept, the others are decided again (their streams loaded in one query)
and kept. Stale is never shown, since the check runs on every view; nothing is kept current in the publish path,
so several processes each keep their own and none can be wrong. Nothing here is shown or recorded: the view then
records one read per child it shows (``Ahead.record``, in bulk through ``TimelineReader.record``), with the kept
decision, content digest and child position, at the view's ``t``: the same record a ``TimelineReader.read`` at that
moment would make, which ``audit verify`` replays exactly.

What is kept is decrypted content: an erasure seen by this process (``events.store.ErasureWatch``) empties the
whole cache, as it does the aggregate cache, and the cache holds at most ``maxsize`` children per reader kind.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from threading import Lock
from uuid import UUID

from consent.model import Reader, Settings
from consent.policy import POLICY_VERSION, decision_valid_until
from events.model import Org
from events.store import ChildRecord, HubStore
from events.streams import load_many, stream_versions
from services.casework.ledger import CaseRow, build_row
from services.reading.timeline import Decided, TimelineReader, decide

PURPOSE = "meeting"  # the ledgers and the agenda are read for the 要対協's meetings


@dataclass(frozen=True)
class Kept:
    """One child's read decided ahead for a reader, the rows built from it, and what they depend on."""

    decided: Decided
    rows: dict[str, CaseRow | None]  # case -> its row (None: the read does not show its registration), as asked
    child_version: int
    registry_version: int
    settings: Settings
    policy_version: str
    decided_at: datetime
    valid_until: datetime | None

    def holds(self, version: int, registry_version: int, settings: Settings, t: datetime) -> bool:
        return (
            self.child_version == version
            and self.registry_version == registry_version
            and self.settings == settings
            and self.policy_version == POLICY_VERSION
            and self.decided_at <= t
            and (self.valid_until is None or t < self.valid_until)
        )


@dataclass
class Ahead:
    """The rows of a view's cases for one reader at ``t``, each from a decision valid at ``t``; ``record`` records
    the reads of the children a view shows."""

    reader: Reader
    rows: list[CaseRow]
    kept: dict[str, Kept]  # child -> its decided read
    registry_version: int
    settings: Settings
    recorder: TimelineReader
    store: HubStore

    def record(self, rows: Sequence[CaseRow]) -> list[str]:
        """One access record per child of ``rows`` (in their order), all in one transaction; their ids."""
        children = list(dict.fromkeys(r.child for r in rows))
        if not children:
            return []
        records = self.recorder.record(
            [(self.reader, self.kept[child].decided) for child in children],
            log_position=self.store.log_position(),
            registry_version=self.registry_version,
            settings=self.settings,
        )
        return [r["id"] for r in records]


class LedgerRowCache:
    """Rows decided ahead: see the module docstring."""

    def __init__(self, store: HubStore, recorder: TimelineReader, maxsize: int = 100_000):
        self.store = store
        self.recorder = recorder
        self.maxsize = maxsize
        self._kept: OrderedDict[tuple[str, str, str], Kept] = OrderedDict()
        self._ids: dict[str, UUID] = {}  # child -> its stream id (an HMAC each: made once per process)
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
    ) -> Ahead:
        """The rows of ``cases`` (case -> child) as ``org`` in ``role`` reads them at ``t``, sorted by centre,
        registration and case; cases whose child's read is refused, or whose registration it does not show, have
        no row."""
        self.store.erasures.check()
        with self._lock:
            if self.store.erasures.position != self._erasures:
                self._kept.clear()
                self._erasures = self.store.erasures.position
        by_child: dict[str, list[str]] = {}
        for case, child in cases.items():
            by_child.setdefault(child, []).append(case)
        ids = {
            child: self._ids.get(child) or self._ids.setdefault(child, ChildRecord.create_id(child))
            for child in by_child
        }
        versions = stream_versions(self.store, ids.values())
        reader = Reader(org=org, role=role, purpose=PURPOSE, t=t, user=user)
        kept: dict[str, Kept] = {}
        stale = []
        with self._lock:
            for child in by_child:
                found = self._kept.get((org, role, child))
                if found is not None and found.holds(versions.get(ids[child], 0), registry_version, settings, t):
                    kept[child] = found
                else:
                    stale.append(child)
        if stale:
            records = load_many(self.store, [ids[child] for child in stale])
            fresh = {}
            for child in stale:
                record = records.get(ids[child])
                decided = decide(reader, child, record, orgs, settings)
                events = list(record.entries) if record is not None else []
                fresh[child] = Kept(
                    decided,
                    {},
                    record.version if record is not None else 0,
                    registry_version,
                    settings,
                    decided.decision.policy_version,
                    t,
                    decision_valid_until(events, settings, t),
                )
            with self._lock:
                for child, item in fresh.items():
                    self._kept[(org, role, child)] = item
                    self._kept.move_to_end((org, role, child))
                while len(self._kept) > self.maxsize:
                    self._kept.popitem(last=False)
            kept |= fresh
        rows = []
        for child, child_cases in by_child.items():
            item = kept[child]
            for case in child_cases:
                if case not in item.rows:  # built once per case asked for, at the time decided (valid now)
                    item.rows[case] = (
                        build_row(case, child, item.decided.entries, orgs, item.decided_at)
                        if item.decided.decision.allowed
                        else None
                    )
                row = item.rows[case]
                if row is not None:
                    rows.append(row)
        rows.sort(key=lambda r: (r.center, r.registered_at, r.case))
        return Ahead(reader, rows, kept, registry_version, settings, self.recorder, self.store)
