"""Replay and the tamper-evident access log: re-evaluate every access record from the log up to its recorded
position, rebuild what it returned, and check each child's hash chain.

``tsunagu audit verify`` and the scenario runner call ``verify``; nothing is repaired, every problem is reported.

Why one chain per child, not one global chain
---------------------------------------------
Each access record carries ``sequence`` (1, 2, 3 … within its child's ``AccessLog`` stream), ``prev_hash`` (the
``hash`` of the child's previous record, ``""`` for the first) and ``hash`` (``chain_hash`` of the record and
``prev_hash``). The chain is per child because

- appends for different children never contend: a global chain would make every read in the hub wait for the
  one before it (one hot row), where a per-child chain only orders the reads of one child, which the stream's
  version numbers serialise anyway;
- an erased child's chain stays verifiable: access records are sealed under the hub's key, not the child's
  (``events.sealing``), so after crypto-shredding the child's events, the child's access records still open and
  their chain still checks, and nothing of another child's chain depends on the erased child's content;
- an auditor can verify one child's chain alone (``verify(store, child=...)``, ``tsunagu audit verify --child``)
  by loading that one stream, for a disclosure request or a complaint, without replaying the whole hub.

The global order is not lost: the store's notification ids order every record across children, and a record
removed from the middle of a chain shows as a gap in its child's gap-free sequence numbers (and in the stream's
version numbers, which the library keeps contiguous).

What a chain check names
------------------------
For each child, the FIRST broken record, with what is wrong (``Mismatch.fault``):

- ``edited``: the record's content no longer hashes to its ``hash`` (or the record before it was changed and
  re-hashed, so this record's ``prev_hash`` no longer matches it: then the earlier record is named);
- ``missing``: a sequence gap: a record was deleted (named by its sequence number; its id is gone with it);
- ``reordered``: a genuine record in the wrong place (another sequence number, or another child's log);
- ``unreadable``: the stored record does not open (its authenticated encryption fails, or it is not a record).

Records after the first break of a child are not chain-checked (nothing after it can be trusted until the break
is explained), but each readable record is still replayed.

Limits, and the anchors that lift them: a hash chain alone cannot show that the last records of a chain were cut
off, or that a chain was rewritten and re-hashed from the point of change to its end (what is left is a valid
chain). ``services.audit.anchors`` closes that gap up to the last anchor: ``tsunagu audit anchor`` signs every chain's
head with the hub's key for keeping outside the database, and ``services.audit.anchors.verify_anchored`` (``tsunagu audit
verify --anchor FILE``) also reports each chain that no longer holds the record the anchor saw at its sequence
(``problem`` ``anchor``: ``truncated``, ``rewritten``, ``missing``, ``unreadable``). Records appended after the
newest anchor stay as unprotected against removal from the end as before: anchor regularly (e.g. daily), and keep
the anchors where whoever can change the database cannot reach them.

The view logs (``problem`` ``view``)
------------------------------------
With the whole log (no ``child``), the readers' view logs (``services.reading.view_log``) are chain-checked too,
each view record's consulted set checked against its digest, and the view records and access records checked
against each other (``views_against_reads``: a view record deleted, even the last of a chain or a whole chain,
shows through the access records that name it; a shown access record deleted, through the view record); a sample
of each record's consulted children is replayed (``replay_view_samples``: a counted child whose read the policy
refuses is reported). With ``child``, the same checks for the view records that name the child
(``_child_views``): the whole chain of each reader whose view showed or consulted the child
(``view_log.chains_naming``), the child's access records against those records, both ways, and the child's read
where it is in a record's sample.

Replay (``problem`` ``decision`` and ``content``)
-------------------------------------------------
A record's decision is re-taken by the policy on the child's events up to the record's ``child_position``, the
registry at its ``registry_version`` and its settings; what the read returned is rebuilt from that decision
(``services.reading.returned``) and its digest compared with the record's ``content_digest``. The content of an
erased child is gone: reads made before the erasure are chain-checked only (counted in ``unreplayable``); reads
made after it (which showed nothing) are replayed as usual.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from consent.model import ReadDecision, Reader, Settings
from consent.policy import POLICY_V1, decide_read
from events.model import Org, Recorded
from events.store import REGISTRY_ID, AccessLog, ChildRecord, HubStore, OrgRegistry
from events.streams import stored_of
from services.aggregates.access_log import verify_chain
from services.reading import view_log
from services.reading.record_form import RecordFormError, logical_record
from services.reading.timeline import TimelineEntry, chain_hash, returned, returned_digest

ACCESS_TOPIC = get_topic(AccessLog.ReadRecorded)

FAULT_JA = {
    "edited": "内容の改ざん（ハッシュ不一致）",
    "missing": "記録の欠落（連番の抜け）",
    "reordered": "記録の入れ替え（順序・児童の不一致）",
    "unreadable": "読み取り不能（復号・検証の失敗）",
    "differs": "判定の不一致",
    "content": "返却内容の不一致",
    "truncated": "末尾の記録の削除（アンカー作成時より短い）",
    "rewritten": "アンカー作成後の書き換え（ハッシュ不一致）",
}


@dataclass
class Mismatch:
    record: str | None  # the record's id; None when it cannot be known (deleted or unreadable)
    child: str
    sequence: int
    problem: str  # "chain", "decision", "content" or "anchor"
    detail: str
    fault: str = ""  # chain: edited | missing | reordered | unreadable; decision: differs; content: content;
    # anchor: truncated | rewritten | missing | unreadable (services.audit.anchors)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def describe(self) -> str:
        """One line for people: what, where, in Japanese and English."""
        name = self.record or "（不明）"
        return (
            f"child {self.child} #{self.sequence} record {name}: {self.problem}/{self.fault}: "
            f"{FAULT_JA.get(self.fault, self.fault)} — {self.detail}"
        )


@dataclass
class VerifyReport:
    records: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    unreplayable: int = 0  # records that considered events erased since: chain-checked only
    view_records: int = 0  # the view logs' records chain-checked (services.reading.view_log), not in ``records``
    anchored: int | None = None  # the chains checked against an anchor (None: no anchor given)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    @property
    def broken_chains(self) -> list[Mismatch]:
        """The first broken record of each child whose chain is broken."""
        return [m for m in self.mismatches if m.problem == "chain"]

    @property
    def not_as_anchored(self) -> list[Mismatch]:
        """Each chain that no longer holds the record the anchor saw (``services.audit.anchors``)."""
        return [m for m in self.mismatches if m.problem == "anchor"]

    @property
    def replay_mismatches(self) -> list[Mismatch]:
        return [m for m in self.mismatches if m.problem in ("decision", "content")]

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "ok": self.ok,
            "unreplayable": self.unreplayable,
            "broken_chains": [m.to_dict() for m in self.broken_chains],
            **(
                {}
                if self.anchored is None
                else {"anchored": self.anchored, "not_as_anchored": [m.to_dict() for m in self.not_as_anchored]}
            ),
            "mismatches": [m.to_dict() for m in self.mismatches],
        }


# --- Loading access records, one by one, without letting one bad record stop the rest ------------------------


@dataclass
class Loaded:
    """One stored access record: where it is stored, its content as readers read it (``record``: form 1,
    ``services.reading.record_form.logical_record``; ``None`` when it does not open or is in no form this code
    reads), and the record as stored (``stored``), which its chain hash covers (``chain_hash``)."""

    stream: UUID
    version: int
    record: dict[str, Any] | None
    error: str = ""
    stored: dict[str, Any] | None = None
    # the chain head stored in the clear beside the sealed record (``events.sealing.CLEAR_HEAD``; the next read
    # chains to it without opening the record): ``None`` when none was stored, ``{}`` when one was stored that is
    # not a chain head; ``check_link`` requires it to be the record's own
    clear_head: dict[str, Any] | None = None

    @property
    def sequence(self) -> int:
        return self.version - 1  # version 1 of an AccessLog stream is its creation


def stream_of(stored: StoredEvent) -> UUID:
    """The stream id of a stored event (the library types it ``UUID | str``; the hub's are UUIDs)."""
    return stored.originator_id if isinstance(stored.originator_id, UUID) else UUID(stored.originator_id)


def load(store: HubStore, stored: StoredEvent) -> Loaded:
    try:
        event = store.mapper.to_domain_event(stored)
    except Exception as error:  # an altered or undecryptable state: reported, never raised
        return Loaded(stream_of(stored), stored.originator_version, None, f"{type(error).__name__}: {error}")
    record = getattr(event, "record", None)
    if not isinstance(record, dict):
        return Loaded(
            stream_of(stored),
            stored.originator_version,
            None,
            f"the stored event is not an access record ({type(event).__name__})",
        )
    try:
        logical = logical_record(record)
    except (RecordFormError, TypeError) as error:  # an altered record: reported, never raised
        return Loaded(stream_of(stored), stored.originator_version, None, f"{type(error).__name__}: {error}", record)
    clear = (store.mapper.clear_head(stored) or {}) if store.mapper.carries_clear_head(stored) else None
    return Loaded(stream_of(stored), stored.originator_version, logical, stored=record, clear_head=clear)


def stored_records(store: HubStore, child: str | None = None, *, until: int | None = None) -> Iterator[StoredEvent]:
    """The stored access records of ``child`` (its stream only), or of every child in the log's global order (up to
    log position ``until``, when given)."""
    if child is not None:
        for stored in store.recorder.select_events(AccessLog.create_id(child)):
            if stored.topic == ACCESS_TOPIC:
                yield stored
        return
    yield from stored_of(store, ACCESS_TOPIC, until=until)


def access_records(store: HubStore) -> Iterator[dict[str, Any]]:
    """Every readable access record in the global order of the log."""
    for stored in stored_records(store):
        loaded = load(store, stored)
        if loaded.record is not None:
            yield loaded.record


# --- Replay -------------------------------------------------------------------------------------------------


def reader_of(record: Mapping[str, Any]) -> Reader:
    r = record["reader"]
    return Reader(
        org=r["org"],
        role=r["role"],
        purpose=record["purpose"],
        t=datetime.fromisoformat(record["t"]),
        user=r.get("user"),
    )


def considered(record: Mapping[str, Any], child: ChildRecord | None) -> tuple[list[Recorded], list[dict], int]:
    """The child's events the read considered (those still readable), their envelopes, and how many of them
    lost their content since: all of them when the child was erased after the read (``child.erased`` stays
    readable; the content it erased does not), else those that no longer open at all."""
    if child is None:
        return [], [], 0
    position = record["child_position"]
    pairs = [(e, env) for e, env in zip(child.entries, child.envelopes) if e.position <= position]
    if any(e.kind == "child.erased" and e.position > position for e in child.entries):
        return [e for e, _ in pairs], [env for _, env in pairs], position
    return [e for e, _ in pairs], [env for _, env in pairs], position - len(pairs)


def policy_version_of(record: Mapping[str, Any]) -> str:
    """The policy version a record was decided under (records made before versions were named: version 1)."""
    return str(record.get("policy_version") or POLICY_V1)


def replay(
    record: Mapping[str, Any],
    child: ChildRecord | None,
    orgs: Mapping[str, Org],
    settings: Settings | None = None,
    version: str | None = None,
) -> ReadDecision:
    """The decision the policy gives for the reader, time and settings of ``record`` (or ``settings``) under the
    policy version it names (or ``version``), on the log as it was at the record's position (``orgs``: the
    registry at the record's registry version)."""
    entries, _, _ = considered(record, child)
    return decide_read(
        reader_of(record),
        entries,
        orgs,
        settings or Settings.from_dict(record["settings"]),
        version or policy_version_of(record),
    )


def rebuild(
    record: Mapping[str, Any], child: ChildRecord | None, orgs: Mapping[str, Org]
) -> tuple[ReadDecision, list[TimelineEntry], int | None, str]:
    """The read of ``record`` done again: the decision, the entries returned, the withheld count, and the digest
    of that content (to compare with the record's ``content_digest``)."""
    entries, envelopes, _ = considered(record, child)
    decision = decide_read(
        reader_of(record), entries, orgs, Settings.from_dict(record["settings"]), policy_version_of(record)
    )
    shown = returned(decision, entries, envelopes, orgs.get(record["reader"]["org"]))
    return decision, shown.entries, shown.withheld, returned_digest(decision, shown)


class History:
    """Children and registry versions, each loaded once, for replaying many records."""

    def __init__(self, store: HubStore):
        self.store = store
        self._registry = store.get_or_none(REGISTRY_ID) or OrgRegistry()
        self._children: dict[str, ChildRecord | None] = {}
        self._orgs: dict[int, dict[str, Org]] = {}

    def child(self, child: str) -> ChildRecord | None:
        if child not in self._children:
            # from its events, never from the cache or a snapshot (events.snapshots): verify trusts events only
            self._children[child] = self.store.replayed(ChildRecord.create_id(child))
        return self._children[child]

    def orgs(self, version: int) -> dict[str, Org]:
        if version not in self._orgs:
            self._orgs[version] = self._registry.orgs_at(version)
        return self._orgs[version]


# --- The chain ----------------------------------------------------------------------------------------------


@dataclass
class _Chain:
    """What the check knows of one child's chain so far."""

    child: str | None = None
    next_version: int = 2
    last_hash: str = ""
    last_id: str | None = None
    broken: bool = False


def record_intact(loaded: Loaded) -> bool:
    """Whether a loaded access record's ``hash`` is its chain hash: ``chain_hash`` of the record **as stored**
    (``Loaded.stored``; of a form-2 record its columns, not the form-1 record read from them)."""
    stored = loaded.stored
    return stored is not None and stored.get("hash") == chain_hash(str(stored.get("prev_hash", "")), stored)


def check_link(chain: _Chain, loaded: Loaded) -> tuple[str, str, int, str | None] | None:
    """The chain fault at ``loaded`` (fault, detail, sequence, record id), or ``None``; advances ``chain``."""
    sequence, record = loaded.sequence, loaded.record
    if loaded.version != chain.next_version:
        expected = chain.next_version - 1
        if loaded.version > chain.next_version:
            gap = f"#{expected}" if sequence - 1 == expected else f"#{expected}–#{sequence - 1}"
            return (
                "missing",
                f"record {gap} is missing: the next stored record is #{sequence}"
                + (f" (id {record['id']})" if record else ""),
                expected,
                None,
            )
        return (
            "reordered",
            f"a record stored out of order at #{sequence} (after #{expected})",
            sequence,
            record.get("id") if record else None,
        )
    if record is None:
        return "unreadable", f"the stored record does not open: {loaded.error}", sequence, None
    rid = record.get("id")
    if not record_intact(loaded):
        return "edited", "the record's content does not match its hash", sequence, rid
    if loaded.clear_head is not None and (
        loaded.clear_head.get("hash") != record.get("hash")
        or loaded.clear_head.get("sequence") != record.get("sequence")
    ):  # what the next read chains to must be this record's own hash and place (s10-record review, LOW-3)
        return "edited", "the chain head stored in the clear beside the record is not the record's own", sequence, rid
    if AccessLog.create_id(str(record.get("child"))) != loaded.stream:
        return (
            "reordered",
            f"a record about child {record.get('child')} is stored in another child's log",
            sequence,
            rid,
        )
    if record.get("sequence") != sequence:
        return "reordered", f"position #{sequence} holds record #{record.get('sequence')}", sequence, rid
    if record.get("prev_hash") != chain.last_hash:
        if sequence > 1:  # this record is intact: the one before it was changed and re-hashed
            return (
                "edited",
                f"record #{sequence - 1} was changed after record #{sequence} (id {rid}) was chained to it",
                sequence - 1,
                chain.last_id,
            )
        return "edited", "the first record of the chain names a previous record", sequence, rid
    chain.next_version += 1
    chain.last_hash = record["hash"]
    chain.last_id = rid
    return None


def verify(store: HubStore, *, child: str | None = None) -> VerifyReport:
    """Check the chain of every child (or of ``child`` alone) and replay every readable record; with ``anchor``
    (``services.anchors.open_anchor``), also that every chain still holds the record the anchor saw."""
    report = VerifyReport()
    history = History(store)
    chains: dict[UUID, _Chain] = {}
    anonymous: list[tuple[UUID, Mismatch]] = []  # chain faults found before the child's name is known
    named: dict[str, tuple[str, str, int]] = {}  # access record id -> (child, view record id, sequence)
    viewers: list[dict[str, Any]] = []  # the readers of the records that name a view (``child`` only)
    for stored in stored_records(store, child):
        loaded = load(store, stored)
        report.records += 1
        if loaded.record is not None and isinstance(loaded.record.get("view"), str):
            named[str(loaded.record.get("id"))] = (
                str(loaded.record.get("child")),
                loaded.record["view"],
                loaded.sequence,
            )
            if isinstance(loaded.record.get("reader"), dict):
                viewers.append(loaded.record["reader"])
        chain = chains.setdefault(loaded.stream, _Chain(child=child))
        record = loaded.record
        if (
            record is not None
            and chain.child is None
            and AccessLog.create_id(str(record.get("child"))) == loaded.stream
        ):
            chain.child = str(record.get("child"))
        if not chain.broken:
            fault = check_link(chain, loaded)
            if fault is not None:
                chain.broken = True
                kind, detail, sequence, rid = fault
                mismatch = Mismatch(rid, chain.child or "", sequence, "chain", detail, kind)
                report.mismatches.append(mismatch)
                if chain.child is None:
                    anonymous.append((loaded.stream, mismatch))
        if record is not None:
            _replay_one(record, history, report)
    for stream, mismatch in anonymous:
        mismatch.child = chains[stream].child or f"(access log {stream})"
    if child is None:  # the aggregate-access log's chain (services.aggregates.access_log): no child, no replay
        count, faults = verify_chain(store)
        report.records += count
        report.mismatches += [
            Mismatch(f.record, "(aggregate access log)", f.sequence, "chain", f.detail, f.fault) for f in faults
        ]
        views = view_log.verify_chains(store)  # the view logs (services.reading.view_log)
        report.view_records = views.count
        report.mismatches += [
            Mismatch(f.record, f"(view log {f.stream})", f.sequence, "chain", f.detail, f.fault) for f in views.faults
        ]
        report.mismatches += views_against_reads(views, named)
        report.mismatches += replay_view_samples(store, views.sampled, history)
    else:
        report.mismatches += _child_views(store, child, named, viewers, history, report)
    return report


def _child_views(
    store: HubStore,
    child: str,
    named: Mapping[str, tuple[str, str, int]],
    viewers: list[dict[str, Any]],
    history: History,
    report: VerifyReport,
) -> list[Mismatch]:
    """``verify --child``'s check of the view records that name ``child``, as the whole verify checks every view
    record: the chains that hold them (``view_log.chains_naming``), each whole, with their consulted sets; the
    child's access records that name a view against those chains' records that show the child, both ways
    (``views_against_reads``); and the child's place in each record's replayed sample (``replay_view_samples``,
    the child's read only)."""
    views = view_log.verify_chains(store, view_log.chains_naming(store, child, viewers))
    report.view_records = views.count
    mismatches = [
        Mismatch(f.record, f"(view log {f.stream})", f.sequence, "chain", f.detail, f.fault) for f in views.faults
    ]
    views.shown = {
        vid: (stream, {child: shown[child]}) for vid, (stream, shown) in views.shown.items() if child in shown
    }
    mismatches += views_against_reads(views, named)
    sampled = [r for r in views.sampled if child in r["sample"]]
    return mismatches + replay_view_samples(store, sampled, history, only=child)


def replay_view_samples(
    store: HubStore, records: list[dict[str, Any]], history: History, *, only: str | None = None
) -> list[Mismatch]:
    """Each intact view record's sample of consulted children (``services.reading.view_log.sample``) replayed:
    the sample is the one its id gives from its consulted set, and each sampled child's read, decided again by
    ``replay`` at the record's time, the child's stream position it names, its registry version, settings and
    policy version, is allowed (a consulted child is one whose read was allowed). A child erased since is not
    replayed (its content is gone). ``only``: replay that child's read alone (``verify --child``). ``problem``
    ``view``, fault ``differs``."""
    problems = []
    sets: dict[str, list[str] | None] = {}
    for record in records:
        rid, stream = (
            record.get("id"),
            view_log.ViewLog.create_id(str(record["reader"].get("org")), record["reader"].get("user")),
        )
        name = f"(view log {stream})"
        digest = str((record.get("consulted") or {}).get("digest"))
        if digest not in sets:
            sets[digest] = view_log.consulted_ids(store, record)
        children = sets[digest]
        sampled = record["sample"]
        if children is not None and sorted(sampled) != sorted(view_log.sample(str(rid), children)):
            problems.append(
                Mismatch(
                    rid, name, record.get("sequence", 0), "view", "the replayed sample is not the record's", "differs"
                )
            )
            continue
        for child_id, position in sorted(sampled.items()):
            if only is not None and child_id != only:
                continue
            read = {**record, "child": child_id, "child_position": position}
            try:
                child = history.child(child_id)
                if considered(read, child)[2]:
                    continue
                decision = replay(read, child, history.orgs(record["registry_version"]))
            except (KeyError, TypeError, ValueError) as error:
                problems.append(
                    Mismatch(
                        rid, child_id, 0, "view", f"cannot be replayed: {type(error).__name__}: {error}", "differs"
                    )
                )
                continue
            if not decision.allowed:
                problems.append(
                    Mismatch(
                        rid,
                        child_id,
                        0,
                        "view",
                        f"view record {rid} counted child {child_id}, whose read replays as refused "
                        f"({decision.reason}) at the record's time and position",
                        "differs",
                    )
                )
    return problems


def views_against_reads(views: view_log.Checked, named: Mapping[str, tuple[str, str, int]]) -> list[Mismatch]:
    """The view records and the access records of the reads they showed, checked against each other: every access
    record naming a view (``view``) has that view record, and every access record a view record names as shown
    is in that child's access log and names the view back. A view record deleted (the last of a chain, or a whole
    chain, which the chain check alone cannot see) shows here as soon as the view showed a child; an access record
    deleted, as a view whose shown read is gone (``problem`` ``view``, fault ``missing``)."""
    problems = []
    for rid, (child, vid, sequence) in named.items():
        if vid not in views.shown:
            problems.append(
                Mismatch(
                    vid,
                    child,
                    sequence,
                    "view",
                    f"access record {rid} was shown by view record {vid}, which no view log holds any more",
                    "missing",
                )
            )
    for vid, (stream, shown) in views.shown.items():
        for child, rid in sorted(shown.items()):
            found = named.get(rid)
            if found is None or found[:2] != (child, vid):
                problems.append(
                    Mismatch(
                        vid,
                        f"(view log {stream})",
                        0,
                        "view",
                        f"view record {vid} showed child {child} with access record {rid}, which is not in "
                        f"{child}'s access log" + ("" if found is None else " as a read shown by this view"),
                        "missing",
                    )
                )
    return problems


def _replay_one(record: dict[str, Any], history: History, report: VerifyReport) -> None:
    child_id, sequence = str(record.get("child")), record.get("sequence", 0)
    try:
        child = history.child(child_id)
        _, _, erased = considered(record, child)
        if erased:
            report.unreplayable += 1
            return
        orgs = history.orgs(record["registry_version"])
        decision, _, _, digest = rebuild(record, child, orgs)
        expected = ReadDecision.from_dict(record["decision"])
    except (KeyError, TypeError, ValueError) as error:  # an edited record may lack what replay needs
        report.mismatches.append(
            Mismatch(
                record.get("id"),
                child_id,
                sequence,
                "decision",
                f"the record cannot be replayed: {type(error).__name__}: {error}",
                "differs",
            )
        )
        return
    if decision != expected:
        report.mismatches.append(
            Mismatch(record["id"], child_id, sequence, "decision", _difference(expected, decision), "differs")
        )
    elif "content_digest" in record and record["content_digest"] != digest:
        report.mismatches.append(
            Mismatch(
                record["id"],
                child_id,
                sequence,
                "content",
                "what the log gives for this read now differs from what was returned",
                "content",
            )
        )


def _difference(recorded: ReadDecision, replayed: ReadDecision) -> str:
    if (recorded.allowed, recorded.reason) != (replayed.allowed, replayed.reason):
        return f"recorded {recorded.reason} ({recorded.allowed}), replay gives {replayed.reason} ({replayed.allowed})"
    if recorded.policy_version != replayed.policy_version:
        return f"recorded under {recorded.policy_version}, replayed under {replayed.policy_version}"
    for a, b in zip(recorded.events, replayed.events):
        if a != b:
            return (
                f"event {a.event}: recorded {a.allowed}/{a.rule}/{list(a.redacted)}, "
                f"replay gives {b.allowed}/{b.rule}/{list(b.redacted)}"
            )
    return f"recorded {len(recorded.events)} event decisions, replay gives {len(replayed.events)}"
