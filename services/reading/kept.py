"""**Kept decisions** (``KeptReads``): a read decided by the policy, kept with everything the decision depended on,
and taken again, instead of deciding it again, for a later read of the same child by the same kind of reader
while all of that holds. The one mechanism by which a read is decided ahead: ``TimelineReader.read`` (a child's
timeline) and the views' rows (``services.casework.rows``, which keep what they build from a read in
``KeptRead.derived``) both go through it.

What it replaces: deciding the read again on every read (``services.reading.timeline.decide``: the policy over
every event of the child, the response built and its digest taken: for a 500-event child about half the CPU of a
warm read, 150 kB digested). A read of the same child by the same (organisation, role, purpose) a moment later,
with nothing changed, decides exactly the same thing.

Why it is right: ``decide`` is a function of the reader's organisation, role, purpose and ``t`` (never of the
user: ``consent.policy`` does not look at ``Reader.user``), the child's stream as stored (its version), the
registry's organisations (its version), the settings and the policy version. A kept read is taken only when
(``KeptRead.holds``):

- the child's stream is at the version decided on (any event appended about the child changes it). What is
  decided on is a copy of the stream at one version (``events.store.ChildRecord.as_stored``), and the read is kept
  under that copy's version: the cached record itself is fast-forwarded in place by other threads' reads, so a
  version read from it before or after deciding need not be that of the events decided on;
- the registry version and the settings are those decided under (any change of an organisation or a setting);
- the policy version new reads are decided under is the one it was decided under;
- the read's ``t`` is at or after the ``t`` it was decided at (a clock set back decides again) and before
  ``valid_until``, the earliest instant at which the decision could change with time alone
  (``consent.policy.decision_valid_until``: consent expiries, emergency windows, events dated ahead).

Nothing else in a ``Decided`` depends on ``t`` (the entries, the withheld count and the digest are built from the
decision and the events only). So a kept read is the read a fresh ``decide`` at that moment would make, field for
field, content digest included (``tests/reading/test_kept_reads.py`` checks it on random worlds over time). It is
still **recorded for every read**: the caller appends the access record, with the reader's own ``t`` and user and
the log position read for this read, before anything is returned (``TimelineReader.record``), and ``audit verify``
replays it as any other.

Erasure wins: what is kept is decrypted content, so an erasure seen by this process (``events.store.ErasureWatch``,
checked before every look-up) empties every kept read, as it does the aggregate cache; and a read decided before an
erasure was seen is not kept after it (``decide`` notes the register's position before deciding, and ``keep`` keeps
nothing if it has moved since). The erased child's own stream has moved on besides (``child.erased``),
so no kept read of it holds.

Memory: a kept read holds what it shows (the entries, their payloads' top level) and the decision per event, and
keeps alive the payload values they share with the child's record after the aggregate cache has let the record go.
It is weighed in bytes, about (``KeptRead.weight``): the length of the JSON of what it returns (known when its digest
is taken) plus ``EVENT_WEIGHT`` per event decided on. Measured with tracemalloc on 500-event children of 120-character
Japanese notes, records dropped (what a kept read costs alone): about 1,500 bytes an event, which the weight covers.
The kept reads of one process weigh at most ``max_weight`` (``TSUNAGU_KEPT_READS_WEIGHT``, default 100,000,000: about
100 MB, so that 2 workers fit the 1 GB instance of ``deploy/README.md`` beside the aggregate cache) and number at most
``maxsize``; the least recently used go first (the newest always stays). Several processes each keep their own:
nothing is kept current on the publish path, every look-up checks what it depends on.

The entries a kept read shows are shared by every read it serves (``Decided.timeline`` hands each read a list of
its own, the same ``TimelineEntry`` objects): a ``Timeline``'s entries are for reading, never to be changed, as the
views' rows already required.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from threading import Lock
from typing import Any

from consent.model import Reader, Settings
from consent.policy import POLICY_VERSION, decision_valid_until
from events.model import Org
from events.store import ChildStream, HubStore
from services.reading.timeline import Decided, decide

MAXSIZE = 100_000  # kept reads (children × reader kinds), as the views' rows kept before
MAX_WEIGHT = 100_000_000  # bytes held across kept reads, about (KeptRead.weight): TSUNAGU_KEPT_READS_WEIGHT
EVENT_WEIGHT = 1_500  # bytes a kept read holds per event decided on beside its content's JSON (KeptRead.weight)


@dataclass(frozen=True)
class KeptRead:
    """One child's read decided for a kind of reader (organisation, role, purpose), and what it depends on.
    ``derived``: what the layers above computed from this read (a view's rows, a start page's notes), kept with it
    and gone with it."""

    decided: Decided
    child_version: int
    registry_version: int
    settings: Settings
    policy_version: str
    decided_at: datetime
    valid_until: datetime | None
    derived: dict[Any, Any] = field(default_factory=dict)

    def holds(self, version: int, registry_version: int, settings: Settings, t: datetime) -> bool:
        """Whether a read at ``t`` of the child's stream at ``version``, under ``registry_version`` and
        ``settings``, decides what this one did (see the module docstring)."""
        return (
            self.child_version == version
            and self.registry_version == registry_version
            and self.settings == settings
            and self.policy_version == POLICY_VERSION
            and self.decided_at <= t
            and (self.valid_until is None or t < self.valid_until)
        )

    @property
    def weight(self) -> int:
        """How much of ``KeptReads.max_weight`` it takes, in bytes, about: the length of the JSON of what it
        returns (``Decided.content_bytes``, made for its digest) and ``EVENT_WEIGHT`` per event decided on (the
        decision per event, the entries and their copied payloads as Python objects; see the module docstring)."""
        return self.decided.content_bytes + EVENT_WEIGHT * (1 + len(self.decided.decision.events))


class KeptReads:
    """Reads decided ahead, per (organisation, role, purpose, child): see the module docstring."""

    def __init__(self, store: HubStore, maxsize: int = MAXSIZE, max_weight: int | None = None):
        self.store = store
        self.maxsize = maxsize
        self.max_weight = (
            max_weight if max_weight is not None else int(store.env.get("KEPT_READS_WEIGHT") or MAX_WEIGHT)
        )
        self._kept: OrderedDict[tuple[str, str | None, str, str], KeptRead] = OrderedDict()
        self.weight = 0
        self._erasures = store.erasures.position
        self._lock = Lock()

    def __len__(self) -> int:
        return len(self._kept)

    def check_erasures(self) -> int:
        """Look for erasures (``ErasureWatch.check``: at most every couple of seconds) and, after one, forget every
        kept read; the register's position it is current at."""
        self.store.erasures.check()
        with self._lock:
            position = self.store.erasures.position
            if position != self._erasures:
                self._kept.clear()
                self.weight = 0
                self._erasures = position
            return position

    def holding(
        self, reader: Reader, child: str, version: int, registry_version: int, settings: Settings
    ) -> KeptRead | None:
        """The read kept for ``reader``'s kind and ``child`` if it holds for a read at ``reader.t`` of the child's
        stream at ``version`` (``KeptRead.holds``), else None."""
        self.check_erasures()
        key = (reader.org, reader.role, reader.purpose, child)  # role None (the centre as a whole) is its own kind
        with self._lock:
            found = self._kept.get(key)
            if found is None or not found.holds(version, registry_version, settings, reader.t):
                return None
            self._kept.move_to_end(key)
            return found

    def decide(
        self,
        reader: Reader,
        child: str,
        stream: ChildStream | None,
        orgs: Mapping[str, Org],
        registry_version: int,
        settings: Settings,
    ) -> KeptRead:
        """``child``'s read by ``reader`` decided on ``stream`` (the child's stream at one version, copied:
        ``ChildRecord.as_stored``; ``None``, no event yet), ``orgs`` at ``registry_version`` and ``settings``
        (``services.reading.timeline.decide``), and kept under that very version."""
        erasures = self.check_erasures()
        decided = decide(reader, child, stream, orgs, settings)
        events = list(stream.entries) if stream is not None else []
        item = KeptRead(
            decided,
            stream.version if stream is not None else 0,
            registry_version,
            settings,
            decided.decision.policy_version,
            reader.t,
            decision_valid_until(events, settings, reader.t),
        )
        self.keep(reader, child, item, erasures)
        return item

    def keep(self, reader: Reader, child: str, item: KeptRead, erasures: int) -> bool:
        """Keep ``item``, ``child``'s read decided for ``reader``'s kind after the register of erasures was seen
        at ``erasures`` (``check_erasures``); not when an erasure was seen since (it may have destroyed a key of
        what ``item`` holds): then False, and the read serves only itself."""
        key = (reader.org, reader.role, reader.purpose, child)
        with self._lock:
            if self.store.erasures.position != erasures or self._erasures != erasures:
                return False
            old = self._kept.pop(key, None)
            if old is not None:
                self.weight -= old.weight
            self._kept[key] = item
            self.weight += item.weight
            while len(self._kept) > 1 and (len(self._kept) > self.maxsize or self.weight > self.max_weight):
                _, dropped = self._kept.popitem(last=False)
                self.weight -= dropped.weight
            return True

    def read(
        self,
        reader: Reader,
        child: str,
        stream: ChildStream | None,
        orgs: Mapping[str, Org],
        registry_version: int,
        settings: Settings,
    ) -> KeptRead:
        """``child``'s read by ``reader`` on ``stream`` (``ChildRecord.as_stored``): the kept one when it holds at
        ``stream``'s version, else decided on ``stream`` and kept."""
        version = stream.version if stream is not None else 0
        found = self.holding(reader, child, version, registry_version, settings)
        return found if found is not None else self.decide(reader, child, stream, orgs, registry_version, settings)
