"""The read service: a child's timeline for a reader, decided by the policy and recorded before it is returned.

``TimelineReader.read`` is the only way content leaves the hub: the HTTP API, the CLI and the scenario runner
all call it. It loads the child's stream (not the whole log), asks ``consent.policy`` for a decision, builds the
response (``returned``), appends the access record (allowed or refused) carrying the digest of that response
(``returned_digest``), and only then returns it. An auditor rebuilds a past read with the same two functions
(``services.audit.auditors``) and checks the digest: what was returned then can be shown exactly, later.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from consent.model import ReadDecision, Reader, Settings
from consent.policy import decide_read, learns_of_withheld, redact
from events.envelope import content_digest
from events.model import Org, Recorded
from events.retry import retry_conflicts
from events.store import AccessLog, ChildRecord, HubStore
from events.streams import last_event
from services.administration.settings import SettingsSource


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
        out = {k: v for k, v in self.__dict__.items() if v is not None}
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


def returned(
    decision: ReadDecision, entries: list[Recorded], envelopes: list[dict[str, Any]], reader_org: Org | None
) -> tuple[list[TimelineEntry], int | None]:
    """What a read returns for ``decision``: the allowed events, redacted, in timeline order, and how many were
    withheld (``None`` for readers who learn nothing of withheld events). ``envelopes`` are the stored envelopes
    of ``entries``, in the same order."""
    if not decision.allowed:
        return [], None
    by_id = {e.id: (e, env) for e, env in zip(entries, envelopes)}
    shown: list[TimelineEntry] = []
    for d in decision.events:
        if not d.allowed:
            continue
        e, env = by_id[d.event]
        shown.append(
            TimelineEntry(
                id=e.id,
                kind=e.kind,
                source=e.source,
                basis=e.basis,
                at=env["at"],
                payload=redact(e, d),
                rule=d.rule or "",
                redacted=list(d.redacted),
                function=e.function,
                to=e.to,
                sensitive=list(e.sensitive),
            )
        )
    withheld = sum(1 for d in decision.events if not d.allowed) if learns_of_withheld(reader_org) else None
    return shown, withheld


def returned_digest(decision: ReadDecision, shown: list[TimelineEntry], withheld: int | None) -> str:
    """The digest of what a read returned: the outcome, every entry as returned (ids, redacted payloads, rules,
    redacted fields) and the withheld count. Kept in the access record, so a reconstruction can be proved exact."""
    return content_digest(
        {
            "allowed": decision.allowed,
            "reason": decision.reason,
            "entries": [e.to_dict() for e in shown],
            "withheld": withheld,
        }
    )


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
) -> dict[str, Any]:
    """An access record (policy.md, "Every read is recorded"), before chaining. ``content``: the digest of what
    the read returned (``returned_digest``)."""
    return {
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
        "decision": decision.to_dict(),
        "content_digest": content,
    }


def chain_hash(previous: str, record: dict[str, Any]) -> str:
    """The hash that links an access record to the one before it in the child's access log."""
    body = {k: v for k, v in record.items() if k not in ("hash", "prev_hash")}
    return content_digest({"prev": previous, "record": body})


class TimelineReader:
    def __init__(self, store: HubStore, settings: SettingsSource, clock: Callable[[], datetime]):
        self.store = store
        self.settings_source = settings
        self.clock = clock

    @property
    def settings(self) -> Settings:
        """The deployment's settings in force now (``services.settings.SettingsSource``)."""
        return self.settings_source.current()

    def read(self, *, org: str, role: str, child: str, purpose: str, user: str | None = None) -> Timeline:
        t = self.clock()
        reader = Reader(org=org, role=role, purpose=purpose, t=t, user=user)
        registry = self.store.registry()
        orgs, registry_version = registry.orgs, registry.version if registry.version else 0
        cached = self.store.peek(ChildRecord.create_id(child))
        entries: list[Recorded] = list(cached.entries) if cached is not None else []
        envelopes = list(cached.envelopes[: len(entries)]) if cached is not None else []
        log_position = self.store.log_position()
        settings = self.settings  # once: the settings decided under are the ones recorded
        decision = decide_read(reader, entries, orgs, settings)
        shown, withheld = returned(decision, entries, envelopes, orgs.get(org))  # built before it is recorded
        record = access_record(
            reader,
            child,
            decision,
            log_position=log_position,
            child_position=len(entries),
            registry_version=registry_version,
            settings=settings,
            recorded_at=t,
            content=returned_digest(decision, shown, withheld),
        )
        self._append(child, record)  # recorded before anything is returned
        return Timeline(
            child=child,
            org=org,
            role=role,
            purpose=purpose,
            t=t.isoformat(),
            allowed=decision.allowed,
            reason=decision.reason,
            entries=shown,
            withheld=withheld,
            access_record=record["id"],
            policy_version=decision.policy_version,
        )

    def _append(self, child: str, record: dict[str, Any]) -> None:
        """Chain ``record`` to the child's access log. Only the log's last event is read (the previous record's
        hash and sequence), so that a read costs the same after a thousand reads of the child as after one; a
        reader who appended first makes the insert fail on the stream's version, and the record is chained again
        to the new head, with jittered backoff within the request's budget (``events.retry``; then ``Busy``).

        The record is appended once: a try after a conflict first reads the records stored since the head it had
        chained to, and stops if its own record (by its id, made once before the first try) is among them, which
        happens when a commit went through but its answer was lost and the store tried the insert again."""
        stream = AccessLog.create_id(child)
        tried: list[int] = []  # the head version each try chained to (0: the log did not exist)

        def append_once() -> None:
            if tried:
                since = list(self.store.events.get(stream, gt=tried[-1]))
                if any(_record_id(e) == record["id"] for e in since):
                    return
                head = since[-1] if since else last_event(self.store, stream)
            else:
                head = last_event(self.store, stream)
            pending: AccessLog | AccessLog.ReadRecorded
            if head is None:
                log = AccessLog(child)
                log.record(record=self._chained(record, "", 1))
                pending = log
            else:
                last = head.record if isinstance(head, AccessLog.ReadRecorded) else None
                previous, sequence = (last["hash"], last["sequence"] + 1) if last else ("", 1)
                pending = AccessLog.ReadRecorded(
                    originator_id=stream,
                    originator_version=head.originator_version + 1,
                    timestamp=AccessLog.ReadRecorded.create_timestamp(),
                    record=self._chained(record, previous, sequence),
                )
            tried.append(head.originator_version if head is not None else 0)
            self.store.save(pending)

        retry_conflicts(append_once)

    @staticmethod
    def _chained(record: dict[str, Any], previous: str, sequence: int) -> dict[str, Any]:
        chained = dict(record, prev_hash=previous, sequence=sequence)
        chained["hash"] = chain_hash(previous, chained)
        return chained


def _record_id(event: Any) -> str | None:
    """The id of the access record an access log's event carries (None: the log's creation)."""
    return event.record["id"] if isinstance(event, AccessLog.ReadRecorded) else None
