"""The read service: a child's timeline for a reader, decided by the policy and recorded before it is returned.

``TimelineReader.read`` is the only way content leaves the hub: the HTTP API, the CLI and the scenario runner
all call it. It loads the child's stream (not the whole log), asks ``consent.policy`` for a decision, builds the
response (``returned``), appends the access record (allowed or refused) carrying the digest of that response
(``returned_digest``), and only then returns it. An auditor rebuilds a past read with the same two functions
(``services.audit.auditors``) and checks the digest: what was returned then can be shown exactly, later.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from consent.model import ReadDecision, Reader, Settings
from consent.policy import decide_read, learns_of_withheld, redact
from events.envelope import canonical_json, canonical_json_without_floats, content_digest
from events.model import Org, Recorded
from events.retry import retry_conflicts
from events.store import AccessLog, ChainHead, ChildStream, HubStore
from services.administration.settings import SettingsSource
from services.reading import view_log
from services.reading.record_form import RECORD_FORMAT, decision_columns

if TYPE_CHECKING:
    from services.reading.kept import KeptReads


@dataclass
class TimelineEntry:
    id: str
    kind: str
    source: str
    basis: str
    at: str
    payload: dict[str, Any]
    rule: str
    redacted: list[str]
    function: str | None = None
    to: str | None = None
    sensitive: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The entry as returned and digested: every field in declaration order, but ``function`` and ``to`` when
        they are None (the only ones that may be). Written out, not read from ``__dict__``: a read makes one per
        event, and this is twice as fast (``tests/reading/test_timeline_entry.py`` checks it against the generic form)."""
        out = {
            "id": self.id,
            "kind": self.kind,
            "source": self.source,
            "basis": self.basis,
            "at": self.at,
            "payload": self.payload,
            "rule": self.rule,
            "redacted": self.redacted,
        }
        if self.function is not None:
            out["function"] = self.function
        if self.to is not None:
            out["to"] = self.to
        out["sensitive"] = self.sensitive
        return out


@dataclass
class Timeline:
    """What a reader gets back. ``allowed`` False: refused as a whole, with ``reason``."""

    child: str
    org: str
    role: str
    purpose: str
    t: str
    allowed: bool
    reason: str
    entries: list[TimelineEntry]
    withheld: int | None  # only for centres and 児童相談所; None: the reader learns nothing of withheld events
    access_record: str
    policy_version: str

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "entries"}
        out["entries"] = [e.to_dict() for e in self.entries]
        if self.withheld is None:
            out.pop("withheld")
        return out


class Returned(NamedTuple):
    """What a read returns (``returned``): the entries shown, each also as the dict it is returned and digested as
    (``TimelineEntry.to_dict``, built with it: ``as_dicts``), and how many events were withheld."""

    entries: list[TimelineEntry]
    as_dicts: list[dict[str, Any]]
    withheld: int | None


def returned(
    decision: ReadDecision, entries: list[Recorded], envelopes: list[dict[str, Any]], reader_org: Org | None
) -> Returned:
    """What a read returns for ``decision``: the allowed events, redacted, in timeline order, and how many were
    withheld (``None`` for readers who learn nothing of withheld events). ``envelopes`` are the stored envelopes
    of ``entries``, in the same order.

    **The returned entries built once**: each shown event's fields are gathered once, into the dict it is returned
    and digested as (``TimelineEntry.to_dict``'s form: ``function`` and ``to`` only when not None), and its
    ``TimelineEntry`` is made from that dict (the two fields left out are None, the entry's defaults). What it
    replaces: a ``TimelineEntry`` built here field by field and then, for the digest, a dict made from each entry
    again (``to_dict`` in ``returned_json``): for a 500-event read, 500 method calls and 500 dicts built from the
    entries, 2.5 % of a cold read. The entries and the dicts share their values (payloads, lists), for reading
    only, as the entries of a kept read are shared (``services.reading.kept``).
    ``tests/reading/test_returned_once.py`` checks the dicts are the entries' ``to_dict`` and the JSON and digest
    are byte for byte those of the former path (hypothesis)."""
    if not decision.allowed:
        return Returned([], [], None)
    by_id = {e.id: (e, env) for e, env in zip(entries, envelopes)}
    shown: list[TimelineEntry] = []
    as_dicts: list[dict[str, Any]] = []
    for d in decision.events:
        if not d.allowed:
            continue
        e, env = by_id[d.event]
        fields = {
            "id": e.id,
            "kind": e.kind,
            "source": e.source,
            "basis": e.basis,
            "at": env["at"],
            "payload": redact(e, d),
            "rule": d.rule or "",
            "redacted": list(d.redacted),
        }
        if e.function is not None:
            fields["function"] = e.function
        if e.to is not None:
            fields["to"] = e.to
        fields["sensitive"] = list(e.sensitive)
        as_dicts.append(fields)
        shown.append(TimelineEntry(**fields))
    withheld = sum(1 for d in decision.events if not d.allowed) if learns_of_withheld(reader_org) else None
    return Returned(shown, as_dicts, withheld)


def returned_json(decision: ReadDecision, shown: Returned) -> bytes:
    """What a read returned as canonical JSON (``events.envelope.canonical_json``): the outcome, every entry as
    returned (ids, redacted payloads, rules, redacted fields: ``Returned.as_dicts``) and the withheld count; what
    ``returned_digest`` hashes."""
    return canonical_json(
        {
            "allowed": decision.allowed,
            "reason": decision.reason,
            "entries": shown.as_dicts,
            "withheld": shown.withheld,
        }
    )


def returned_digest(decision: ReadDecision, shown: Returned) -> str:
    """The digest of what a read returned (``returned_json``, hashed as ``events.envelope.content_digest`` does).
    Kept in the access record, so a reconstruction can be proved exact."""
    return hashlib.sha256(returned_json(decision, shown)).hexdigest()


@dataclass
class Decided:
    """A read of ``child`` decided by the policy, not yet recorded: the decision, what it returns (``entries``,
    ``withheld``), the digest of that (``content``), the length of the child's stream decided on, and the length
    in bytes of what it returns as JSON (``returned_json``: what a kept read weighs, ``services.reading.kept``)."""

    child: str
    decision: ReadDecision
    entries: list[TimelineEntry]
    withheld: int | None
    content: str
    child_position: int
    content_bytes: int

    def timeline(self, reader: Reader, access_record: str) -> Timeline:
        """What the reader gets back, once the read is recorded as ``access_record``: its entries in a list of its
        own, the entries themselves shared with every read of a kept decision (``services.reading.kept``: for
        reading only)."""
        return Timeline(
            child=self.child,
            org=reader.org,
            role=reader.role or "",
            purpose=reader.purpose,
            t=reader.t.isoformat(),
            allowed=self.decision.allowed,
            reason=self.decision.reason,
            entries=list(self.entries),
            withheld=self.withheld,
            access_record=access_record,
            policy_version=self.decision.policy_version,
        )


def decide(
    reader: Reader, child: str, stream: ChildStream | None, orgs: Mapping[str, Org], settings: Settings
) -> Decided:
    """A read of ``child`` by ``reader`` decided on the child's stream at one version (``ChildRecord.as_stored``:
    a copy that cannot change; ``None``: no event yet), with the registry's ``orgs`` and ``settings``: what
    ``TimelineReader.read`` records and returns. ``child_position``: the number of events decided on."""
    entries: list[Recorded] = list(stream.entries) if stream is not None else []
    envelopes = list(stream.envelopes) if stream is not None else []
    decision = decide_read(reader, entries, orgs, settings)
    shown = returned(decision, entries, envelopes, orgs.get(reader.org))
    content = returned_json(decision, shown)
    digest = hashlib.sha256(content).hexdigest()  # returned_digest, from the bytes already made
    return Decided(child, decision, shown.entries, shown.withheld, digest, len(entries), len(content))


def access_record(
    reader: Reader,
    child: str,
    decision: ReadDecision,
    *,
    log_position: int,
    child_position: int,
    registry_version: int,
    settings: Settings,
    recorded_at: datetime,
    content: str,
    view: str | None = None,
) -> dict[str, Any]:
    """An access record (policy.md, "Every read is recorded"), before chaining, in its stored form 2 (the decision
    in columns, ``services.reading.record_form``; readers read it through ``record_form.logical_record``).
    ``content``: the digest of what the read returned (``returned_digest``). ``view``: the id of the view record (``services.reading.view_log``)
    of the view that showed this read, for a read shown by a view (records made before views were logged, and
    single reads, have none): ``audit verify`` checks that the view record exists, so that deleting a view's
    record shows."""
    record = {
        "format": RECORD_FORMAT,
        "id": str(uuid.uuid4()),
        "reader": {"org": reader.org, "role": reader.role, "user": reader.user},
        "purpose": reader.purpose,
        "child": child,
        "t": reader.t.isoformat(),
        "recorded_at": recorded_at.isoformat(),
        "log_position": log_position,
        "child_position": child_position,
        "registry_version": registry_version,
        "settings": settings.to_dict(),
        "policy_version": decision.policy_version,
        "decisions": decision_columns(decision),
        "content_digest": content,
    }
    if view is not None:
        record["view"] = view
    return record


def chain_hash(previous: str, record: dict[str, Any]) -> str:
    """The hash that links an access record to the one before it in the child's access log. The definition: what
    the auditors check every stored record with (``services.audit``), over the record **as stored**, of either
    form (``services.reading.record_form``: for form 2, its ``format`` and decision columns); a new record's is
    made by ``new_record_chain_hash``, the same bytes."""
    body = {k: v for k, v in record.items() if k not in ("hash", "prev_hash")}
    return content_digest({"prev": previous, "record": body})


def new_record_chain_hash(previous: str, record: dict[str, Any]) -> str:
    """**A new access record's chain hash, its canonical JSON without the read-back for floats**: ``chain_hash``
    of a record made by ``access_record`` (chained by ``TimelineReader._chained``), the JSON written by
    ``events.envelope.canonical_json_without_floats``.

    What it replaces: ``chain_hash`` when a record is made, whose ``canonical_json`` read the whole record back
    to tell a ``null`` from a NaN: for a 500-event read (35 kB of JSON) about 300 µs, now about 60. Why it is
    right: an access record holds no float (its reader, purpose and child are strings or None; times are
    ISO text; positions and versions integers; the settings booleans and integers, ``consent.model.Settings``;
    the decision strings, booleans and None), and on such values both write the same bytes. The auditors keep
    ``chain_hash``, the definition, for stored records, so a record whose hash were ever made otherwise fails
    ``audit verify``. ``tests/reading/test_new_record_hash.py`` checks the two agree on records made by
    ``access_record`` from random readers, decisions, settings and views (hypothesis)."""
    body = {k: v for k, v in record.items() if k not in ("hash", "prev_hash")}
    return hashlib.sha256(canonical_json_without_floats({"prev": previous, "record": body})).hexdigest()


class TimelineReader:
    """Reads children's timelines: ``read`` one, ``record`` reads decided elsewhere. ``kept``: the reads decided
    ahead (``services.reading.kept.KeptReads``), shared with the views (``services.casework.rows``)."""

    def __init__(self, store: HubStore, settings: SettingsSource, clock: Callable[[], datetime], kept: KeptReads):
        self.store = store
        self.settings_source = settings
        self.clock = clock
        self.kept = kept

    @property
    def settings(self) -> Settings:
        """The deployment's settings in force now (``services.settings.SettingsSource``)."""
        return self.settings_source.current()

    def read(self, *, org: str, role: str, child: str, purpose: str, user: str | None = None) -> Timeline:
        """``child``'s timeline for ``org`` in ``role`` reading for ``purpose`` now: decided by the policy on the
        child's stream as stored (a kept decision when one holds, ``services.reading.kept``, else decided and
        kept), recorded in the child's access log, then returned."""
        t = self.clock()
        reader = Reader(org=org, role=role, purpose=purpose, t=t, user=user)
        cached, snapshot_due = self.store.read_child(child)  # from its snapshot when not cached (events.snapshots)
        stream = cached.as_stored() if cached is not None else None  # at once, before the position: fixed under it
        registry, log_position = self.store.registry_at_position()  # one value (RegistryAt), fixed; one statement
        orgs, registry_version = registry.orgs, registry.version if registry.version else 0
        settings = self.settings  # once: the settings decided under are the ones recorded
        decided = self.kept.read(reader, child, stream, orgs, registry_version, settings).decided  # before recording
        (record,) = self.record(
            [(reader, decided)], log_position=log_position, registry_version=registry_version, settings=settings
        )  # recorded before anything is returned
        if snapshot_due is not None:  # after the read is recorded, best-effort: it never fails the read
            self.store.child_snapshots.keep(snapshot_due)
        return decided.timeline(reader, record["id"])

    def record(
        self,
        reads: Sequence[tuple[Reader, Decided]],
        *,
        log_position: int,
        registry_version: int,
        settings: Settings,
        view: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Record reads decided for their readers (``decide``): one access record each, chained to its child's
        access log, all in one transaction; the records, in the order of ``reads``. ``view``: the record of the
        view that shows these reads (``services.reading.view_log.view_record``), given the shown children's
        access record ids and appended to its reader's view log in the same transaction. The one way a read is
        recorded: ``read`` records one; a view that shows many children (``services.casework.rows``) records one
        per child shown, in bulk. Each reader's ``t`` is the read's time (also ``recorded_at``).

        The logs are appended in their turn (``HubStore.append_in_turn``: one writer at a time per child's log,
        across processes; reads of other children go on beside): only each log's last event is read, in the
        turn (the previous record's hash and sequence), so that a read costs the same after a thousand reads of
        the child as after one. Should a writer that did not take its turn append first, the insert fails on a
        stream's version and the records are chained again to the new heads, with jittered backoff within the
        request's budget (``events.retry``; then ``Busy``).

        Each record is appended once: a try after a conflict first reads the records stored since the head it
        had chained to, and leaves out those of its records (by id, made once before the first try) found among
        them, which happens when a commit went through but its answer was lost and the store tried again."""
        records = [
            access_record(
                reader,
                decided.child,
                decided.decision,
                log_position=log_position,
                child_position=decided.child_position,
                registry_version=registry_version,
                settings=settings,
                recorded_at=reader.t,
                content=decided.content,
                view=view["id"] if view is not None else None,
            )
            for reader, decided in reads
        ]
        by_child: dict[str, list[dict[str, Any]]] = {}
        for (_, decided), record in zip(reads, records):
            by_child.setdefault(decided.child, []).append(record)
        tried: dict[str, int] = {}  # child -> the head version its last try chained to (0: the log did not exist)
        streams = {child: AccessLog.create_id(child) for child in by_child}
        viewed = None
        if view is not None:
            view["shown"] = {decided.child: record["id"] for (_, decided), record in zip(reads, records)}
            viewed = view_log.Appending(self.store, view)

        def append_once() -> None:
            viewing: list[Any] = viewed.pending() if viewed is not None else []  # the view's record, if any
            if not streams:  # a view that shows no child: its record alone
                if viewing:
                    self.store.save(*viewing)
                return
            # the logs' turn (HubStore.append_in_turn): their heads read and the records chained and saved in it
            with self.store.append_in_turn(streams.values(), chain_heads=True) as turn:
                pending: list[Any] = list(viewing)
                for child, mine in by_child.items():
                    stream = streams[child]
                    head = turn.heads.get(stream)
                    at = head.originator_version if head is not None else 0
                    if tried.get(child, at) < at:  # stored since the last try: perhaps that try's records
                        stored = {_record_id(e) for e in self.store.events.get(stream, gt=tried[child])}
                        mine = [r for r in mine if r["id"] not in stored]
                    tried[child] = at
                    if mine:
                        pending += self._chain(child, stream, head, mine)
                if pending:
                    turn.save(*pending)

        retry_conflicts(append_once)
        return records

    def _chain(self, child: str, stream: Any, head: ChainHead | None, records: list[dict[str, Any]]) -> list[Any]:
        """``records`` chained after ``head`` (``None``: the log is new; ``events.store.ChainHead``: its last
        record's hash and sequence, read without opening it), as what to save: a new log with them, or one event
        each after the head."""
        previous, sequence = (head.hash, head.sequence + 1) if head is not None and head.sequence else ("", 1)
        chained = []
        for record in records:
            chained.append(self._chained(record, previous, sequence))
            previous, sequence = chained[-1]["hash"], sequence + 1
        if head is None:
            log = AccessLog(child)
            for record in chained:
                log.record(record=record)
            return [log]
        return [
            AccessLog.ReadRecorded(
                originator_id=stream,
                originator_version=head.originator_version + n,
                timestamp=AccessLog.ReadRecorded.create_timestamp(),
                record=record,
            )
            for n, record in enumerate(chained, start=1)
        ]

    @staticmethod
    def _chained(record: dict[str, Any], previous: str, sequence: int) -> dict[str, Any]:
        chained = dict(record, prev_hash=previous, sequence=sequence)
        chained["hash"] = new_record_chain_hash(previous, chained)
        return chained


def _record_id(event: Any) -> str | None:
    """The id of the access record an access log's event carries (None: the log's creation)."""
    return event.record["id"] if isinstance(event, AccessLog.ReadRecorded) else None
