"""The streams auditors write: their own trail of queries (``AuditTrail``, one per auditor organisation) and the
reviewers' findings on an emergency access (``EmergencyReview``, one per access record).

Auditors are audited too: every query is appended to the asking organisation's trail (who, when, which query, which
child, how many results) before its result is returned, like a read's access record (``record_query``);
``audit_trail`` lists them. Both aggregates are stored: their topics written before (``services.auditing``,
``services.audit.auditors``) load through ``services.hub.MOVED_MODULES``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from events.retry import retry_conflicts
from events.store import NAMESPACE, HubStore


@dataclass(frozen=True)
class Actor:
    """Who asks: the auditor organisation, the person, and through what (``http`` or ``cli``)."""

    org: str
    user: str
    via: str


class AuditTrail(Aggregate):
    """The queries one auditor organisation made (the auditors' own access log)."""

    @staticmethod
    def create_id(org: str) -> UUID:
        return uuid5(NAMESPACE, f"audit-trail:{org}")

    def __init__(self, org: str):
        self.org = org
        self.count = 0

    @event("QueryRecorded")
    def record_query(self, query: dict) -> None:
        self.count += 1


class EmergencyReview(Aggregate):
    """The reviewers' findings on one emergency access (by its access record id), in the order given."""

    @staticmethod
    def create_id(record: str) -> UUID:
        return uuid5(NAMESPACE, f"emergency-review:{record}")

    def __init__(self, record: str):
        self.record = record
        self.findings: list[dict[str, Any]] = []

    @event("FindingRecorded")
    def add_finding(self, finding: dict) -> None:
        self.findings.append(finding)


def record_query(
    store: HubStore,
    clock: Callable[[], datetime],
    actor: Actor,
    query: str,
    *,
    child: str | None = None,
    results: int,
    **params: Any,
) -> None:
    """Append the query to the asker's audit trail (before its result is returned)."""
    entry = {
        "query": query,
        "child": child,
        "params": {k: v for k, v in params.items() if v is not None},
        "results": results,
        "org": actor.org,
        "user": actor.user,
        "via": actor.via,
        "at": clock().isoformat(),
    }

    def append_once() -> None:
        trail = store.get_or_none(AuditTrail.create_id(actor.org)) or AuditTrail(actor.org)
        trail.record_query(query=entry)
        store.save(trail)

    retry_conflicts(append_once)  # another query of the same organisation may append at the same time


def audit_trail(store: HubStore, org: str) -> list[dict[str, Any]]:
    """The queries auditor organisation ``org`` made, oldest first."""
    out = []
    for stored in store.recorder.select_events(AuditTrail.create_id(org)):
        try:
            query = getattr(store.mapper.to_domain_event(stored), "query", None)
        except Exception as error:  # a damaged entry is shown as such, not skipped silently
            query = {"query": "(unreadable)", "error": f"{type(error).__name__}"}
        if isinstance(query, dict):
            out.append(query)
    return out
