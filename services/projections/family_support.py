"""Where each organisation's family-support work is (家庭支援事業の索引, meetings-and-services.md §2), kept with
``INDEXES``.

Per organisation (a こども家庭センター or a 委託事業者) its ``ServiceDesk``: the children it has recommended, ordered
or referred a service for, or exchanged ``commissioned`` reports about, and each provider report (a ``visit.report``
or ``service.usage`` sent under ``commissioned``) with whether it was urgent and when it was acknowledged. It
answers "which children does this centre's referral list cover?" and "which urgent reports wait?" without scanning
the log. It holds identifiers, dates and the urgent flag, never content, and never decides access: every view that
shows a child reads the child's timeline through the read service (``services.family_support``).

Written in the publish transaction from the events as recorded (``services/projections/indexes.py``): what one
publish changes in an organisation's desk is staged (``Batch.stage``) and recorded as one event (``change``), each
entry sealed under its child's key (``events.sealing.PER_CHILD``) and left out once that child is erased. Stores
written before hold one event per change (``note_child``, ``add_report``, ``acknowledge``), and replay as they did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from events.direct_events import direct_events
from events.model import Org, Recorded
from events.sealing import stream_id
from events.store import HubStore, _CopiedOnWrite
from services.projections.unit_of_work import Projection, UnitOfWork

REPORT_KINDS = frozenset({"visit.report", "service.usage"})
CENTRE_KINDS = frozenset({"service.recommended", "service.recommendation_result", "service.ordered"})
BETWEEN_KINDS = frozenset({"service.referred", "service.monitoring", "service.ended"})


@direct_events
class ServiceDesk(_CopiedOnWrite, Aggregate):
    """An organisation's family-support index. Values are replaced, never changed in place (the store copies
    aggregates one level deep)."""

    @staticmethod
    def create_id(org: str) -> UUID:
        return stream_id(f"service-desk:{org}")

    def __init__(self, org: str):
        self.org = org
        self.children: dict[str, str] = {}  # child -> the at of the latest event about it
        self.reports: dict[str, dict[str, Any]] = {}  # report id -> {child, kind, source, to, at, urgent, ack…}

    @event("DeskChanged")
    def change(self, per_child: list) -> None:
        """What one publish changed, in order: children noted, reports indexed and reports acknowledged, each
        entry as ``note_child``, ``add_report`` or ``acknowledge`` takes it (``op`` says which)."""
        for entry in per_child:
            fields = {k: v for k, v in entry.items() if k != "op"}
            if entry["op"] == "child":
                self._note_child(**fields)
            elif entry["op"] == "report":
                self._add_report(**fields)
            else:
                self._acknowledge(**fields)

    def record_staged(self, events: list[Recorded]) -> None:
        """Record what the events a publish staged for this desk (``Batch.stage``) change, in order, as one event.
        It replaces one ``note_child``, ``add_report`` or ``acknowledge`` per event and side (a provider's report
        was two stored events: one in its desk, one in the centre's); an acknowledgement is recorded when the
        report it names is indexed here for the same child, earlier in this publish or before, as it was."""
        changes: list[dict[str, Any]] = []
        indexed: dict[str, str] = {}  # report -> child, for the reports this publish indexes
        for e in events:
            at = e.at.isoformat()
            if e.kind in REPORT_KINDS:
                changes.append(
                    {
                        "op": "report",
                        "report": e.id,
                        "child": e.child,
                        "kind": e.kind,
                        "source": e.source,
                        "to": str(e.to),
                        "at": at,
                        "urgent": bool(e.payload.get("urgent")),
                    }
                )
                indexed[e.id] = e.child
            elif e.kind == "report.acknowledged":
                report = str(e.payload.get("report"))
                known = self.reports.get(report)
                child = indexed.get(report, known["child"] if known is not None else None)
                if child is not None and child == e.child:
                    changes.append(
                        {"op": "acknowledge", "report": report, "acknowledgement": e.id, "at": at, "child": e.child}
                    )
            else:
                changes.append({"op": "child", "child": e.child, "at": at})
        if changes:
            self.change(per_child=changes)

    # One event per change: what stores written before ``change`` hold.
    @event("ServiceChildIndexed")
    def note_child(self, child: str, at: str) -> None:
        self._note_child(child, at)

    @event("ServiceReportIndexed")
    def add_report(self, report: str, child: str, kind: str, source: str, to: str, at: str, urgent: bool) -> None:
        self._add_report(report, child, kind, source, to, at, urgent)

    @event("ServiceReportAcknowledged")
    def acknowledge(self, report: str, acknowledgement: str, at: str, child: str) -> None:
        self._acknowledge(report, acknowledgement, at, child)

    def _note_child(self, child: str, at: str) -> None:
        self.children[child] = max(at, self.children.get(child, at))

    def _add_report(self, report: str, child: str, kind: str, source: str, to: str, at: str, urgent: bool) -> None:
        self.children[child] = max(at, self.children.get(child, at))
        self.reports[report] = {
            "report": report,
            "child": child,
            "kind": kind,
            "source": source,
            "to": to,
            "at": at,
            "urgent": urgent,
            "acknowledged_at": None,
            "acknowledgement": None,
        }

    def _acknowledge(self, report: str, acknowledgement: str, at: str, child: str) -> None:
        entry = self.reports.get(report)
        if entry is not None and entry["acknowledged_at"] is None:  # the first acknowledgement counts
            self.reports[report] = {**entry, "acknowledged_at": at, "acknowledgement": acknowledgement}


def _sides(e: Recorded) -> list[str]:
    if e.basis == "commissioned" and e.to and (e.kind in REPORT_KINDS or e.kind in BETWEEN_KINDS):
        return [e.source, e.to]
    if e.kind == "report.acknowledged" and e.to:
        return [e.source, e.to]
    if e.kind in CENTRE_KINDS:
        return [e.source]
    return []


def service_desk_needs(e: Recorded, orgs: Mapping[str, Org]) -> list[UUID]:
    return [ServiceDesk.create_id(org) for org in _sides(e)]


def keep_service_desk(e: Recorded, batch: UnitOfWork) -> None:
    """Keep the family-support index in step with ``e`` (``SERVICE_DESK``): what a publish changes in each
    organisation's desk is one event (``ServiceDesk.record_staged``)."""
    for org in _sides(e):
        batch.stage(ServiceDesk, (org,), e)


SERVICE_DESK = Projection(
    "家庭支援事業: referrals and provider reports per organisation", service_desk_needs, keep_service_desk
)


def service_desk(store: HubStore, org: str) -> ServiceDesk:
    """The organisation's index for reading (an empty one when it has none)."""
    found = store.peek(ServiceDesk.create_id(org))
    return found if found is not None else ServiceDesk(org)
