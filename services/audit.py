"""Replay: re-evaluate every access record from the log up to its recorded position, and check the chain.

``tsunagu audit verify`` and the scenario runner call ``verify``. A record whose decision the policy no longer
reproduces, or whose hash does not follow from the one before it, is reported; nothing is repaired.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterator, Mapping

from eventsourcing.utils import get_topic

from consent.model import Org, ReadDecision, Reader, Settings
from consent.policy import decide_read
from events.store import REGISTRY_ID, AccessLog, ChildRecord, HubStore, OrgRegistry
from services.reading import chain_hash

ACCESS_TOPIC = get_topic(AccessLog.ReadRecorded)
PAGE = 500


@dataclass
class Mismatch:
    record: str
    child: str
    sequence: int
    problem: str  # "decision" or "chain"
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class VerifyReport:
    records: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {"records": self.records, "ok": self.ok, "mismatches": [m.to_dict() for m in self.mismatches]}


def access_records(store: HubStore) -> Iterator[dict[str, Any]]:
    """Every access record in the global order of the log."""
    start = 1
    while True:
        page = store.recorder.select_notifications(start, PAGE, topics=[ACCESS_TOPIC])
        for notification in page:
            yield store.mapper.to_domain_event(notification).record
        if len(page) < PAGE:
            return
        start = page[-1].id + 1


def replay(record: dict[str, Any], child: ChildRecord | None, orgs: Mapping[str, Org]) -> ReadDecision:
    """The decision the policy gives today for the reader, time and settings of ``record``, on the log as it
    was at the record's position (``orgs``: the registry at the record's registry version)."""
    r = record["reader"]
    reader = Reader(org=r["org"], role=r["role"], purpose=record["purpose"], t=datetime.fromisoformat(record["t"]),
                    user=r.get("user"))
    entries = child.entries[: record["child_position"]] if child is not None else []
    return decide_read(reader, entries, orgs, Settings.from_dict(record["settings"]))


def verify(store: HubStore) -> VerifyReport:
    report = VerifyReport()
    registry = store.get_or_none(REGISTRY_ID) or OrgRegistry()
    children: dict[str, ChildRecord | None] = {}
    registries: dict[int, dict[str, Org]] = {}
    last_hash: dict[str, str] = {}
    for record in access_records(store):
        report.records += 1
        child_id = record["child"]
        previous = last_hash.get(child_id, "")
        if record.get("prev_hash") != previous or record.get("hash") != chain_hash(previous, record):
            report.mismatches.append(Mismatch(record["id"], child_id, record.get("sequence", 0), "chain",
                                              "the record does not follow from the one before it"))
        last_hash[child_id] = record.get("hash", "")
        if child_id not in children:
            children[child_id] = store.get_or_none(ChildRecord.create_id(child_id))
        expected = ReadDecision.from_dict(record["decision"])
        version = record["registry_version"]
        if version not in registries:
            registries[version] = registry.orgs_at(version)
        actual = replay(record, children[child_id], registries[version])
        if actual != expected:
            report.mismatches.append(Mismatch(record["id"], child_id, record.get("sequence", 0), "decision",
                                              _difference(expected, actual)))
    return report


def _difference(recorded: ReadDecision, replayed: ReadDecision) -> str:
    if (recorded.allowed, recorded.reason) != (replayed.allowed, replayed.reason):
        return f"recorded {recorded.reason} ({recorded.allowed}), replay gives {replayed.reason} ({replayed.allowed})"
    if recorded.policy_version != replayed.policy_version:
        return f"recorded under {recorded.policy_version}, replayed under {replayed.policy_version}"
    for a, b in zip(recorded.events, replayed.events):
        if a != b:
            return f"event {a.event}: recorded {a.allowed}/{a.rule}/{list(a.redacted)}, " \
                   f"replay gives {b.allowed}/{b.rule}/{list(b.redacted)}"
    return f"recorded {len(recorded.events)} event decisions, replay gives {len(replayed.events)}"
