"""Where the 要対協 cases and support plans of each centre are (ケース・プランの索引), kept with ``INDEXES``.

A lookup only: case id -> child and registering centre, and per centre its case ids, its plan ids and the case
transfers (ケース移管) it is party to, with when they were acknowledged. It answers "which children does this
centre's progress ledger cover?" without scanning the log. It holds identifiers and dates, never content, and
never decides access: every view that shows a case reads the child's timeline through the read service.

Written in the publish transaction from the events as recorded (``services/projections/indexes.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from events.clock import JST
from events.direct_events import direct_events
from events.envelope_ids import published_in_log
from events.kinds import as_datetime
from events.model import Org, Recorded
from events.sealing import stream_id
from events.store import HubStore, _CopiedOnWrite
from services.projections.unit_of_work import Projection, UnitOfWork

DEFAULT_REVIEW_INTERVAL = timedelta(days=91)  # 見直しは少なくとも3か月ごと (domain.md): when no next review was set


def next_review_day(decided: Any, since: datetime) -> date:
    """The day a case's next review is due (the Japan day): the ``next_review`` its last review decided, else
    ``since`` (the last review, or the registration) + about 3 months. A review is overdue on a day after it.
    The one definition: the progress ledger's rows and the planners' counts (``municipal_counts``) both use it."""
    if decided:
        return as_datetime(decided).astimezone(JST).date()
    return (since + DEFAULT_REVIEW_INTERVAL).astimezone(JST).date()


class CaseEntry(_CopiedOnWrite, Aggregate):
    """One 要対協 case id: the child it is about and the centre that registered it (the first registration of an
    id wins, as in ``consent.facts``)."""

    @staticmethod
    def create_id(case: str) -> UUID:
        return stream_id(f"case:{case}")

    def __init__(self, case: str, child: str, registrar: str, case_type: str, registered_at: str):
        self.case = case
        self.child = child
        self.registrar = registrar
        self.case_type = case_type  # 相談種別 at registration: decides whether the case is on the joint ledger
        self.registered_at = registered_at


class PlanEntry(_CopiedOnWrite, Aggregate):
    """One support plan id (サポートプラン): the child it is for and the centre that created it. A plan id names one
    plan in the whole hub (policy.md, "Authority": ``plan.created`` is refused for an id in use)."""

    @staticmethod
    def create_id(plan: str) -> UUID:
        return stream_id(f"plan:{plan}")

    def __init__(self, plan: str, child: str, author: str):
        self.plan = plan
        self.child = child
        self.author = author


@direct_events
class CenterCases(_CopiedOnWrite, Aggregate):
    """A centre's cases, plans and transfers (センター別索引). Values are replaced, never changed in place (the
    store copies aggregates one level deep)."""

    @staticmethod
    def create_id(center: str) -> UUID:
        return stream_id(f"center-cases:{center}")

    def __init__(self, center: str):
        self.center = center
        self.cases: dict[str, dict[str, Any]] = {}  # case -> {child, abuse, state: open|closed|transferred}
        self.plans: dict[str, str] = {}  # plan -> child
        self.transfers: dict[str, dict[str, Any]] = {}  # transfer event id -> {case, child, from, to, at, ack…}

    @event("CaseIndexed")
    def add_case(self, case: str, child: str, abuse: bool) -> None:
        self.cases[case] = {"child": child, "abuse": abuse, "state": "open"}

    @event("CaseStateIndexed")
    def set_state(self, case: str, state: str, child: str) -> None:
        if case in self.cases:  # not when the child was erased since (its entry is shredded: events.sealing)
            self.cases[case] = {**self.cases[case], "state": state}

    @event("PlanIndexed")
    def add_plan(self, plan: str, child: str) -> None:
        self.plans[plan] = child

    @event("TransferIndexed")
    def add_transfer(self, transfer: str, case: str, child: str, from_center: str, to_center: str, at: str) -> None:
        self.transfers[transfer] = {
            "transfer": transfer,
            "case": case,
            "child": child,
            "from": from_center,
            "to": to_center,
            "at": at,
            "acknowledged_at": None,
            "acknowledgement": None,
        }

    @event("TransferAcknowledged")
    def acknowledge(self, transfer: str, acknowledgement: str, at: str, child: str) -> None:
        if transfer in self.transfers:  # not when the child was erased since
            self.transfers[transfer] = {
                **self.transfers[transfer],
                "acknowledged_at": at,
                "acknowledgement": acknowledgement,
            }


def case_index_needs(e: Recorded, orgs: Mapping[str, Org]) -> list[UUID]:
    """The aggregates ``keep_case_index`` reads or writes for ``e``: the case's or plan's entry and the index of
    every centre the event is about (its source, a transfer's recipient, an acknowledged transfer's sender)."""
    if e.kind == "case.registered" and e.case:
        return [CaseEntry.create_id(e.case), CenterCases.create_id(e.source)]
    if e.kind in ("case.closed", "case.transferred") and e.case:
        centres = [e.source, str(e.payload["to"])] if e.kind == "case.transferred" else [e.source]
        return [CaseEntry.create_id(e.case), *(CenterCases.create_id(c) for c in centres)]
    if e.kind == "case.transfer_acknowledged" and e.case:
        return [CenterCases.create_id(c) for c in (e.source, str(e.payload.get("from", "")))]
    if e.kind == "plan.created":
        return [PlanEntry.create_id(str(e.payload["plan"])), CenterCases.create_id(e.source)]
    return []


def keep_case_index(e: Recorded, batch: UnitOfWork) -> None:
    """Keep the case and plan index in step with ``e`` (``CASE_INDEX``)."""
    if e.kind == "case.registered" and e.case:
        if batch.get(CaseEntry, e.case, create=False) is not None:
            return
        case_type = str(e.payload.get("case_type", ""))
        batch.add(CaseEntry(e.case, e.child, e.source, case_type, e.at.isoformat()))
        batch.get(CenterCases, e.source).add_case(case=e.case, child=e.child, abuse=case_type.startswith("abuse"))
    elif e.kind in ("case.closed", "case.transferred") and e.case:
        entry = batch.get(CaseEntry, e.case, create=False)
        if entry is None or entry.registrar != e.source or entry.child != e.child:
            return
        center = batch.get(CenterCases, e.source)
        if e.kind == "case.transferred":
            center.set_state(case=e.case, state="transferred", child=e.child)
            to = str(e.payload["to"])
            for side in {e.source, to}:
                batch.get(CenterCases, side).add_transfer(
                    transfer=e.id, case=e.case, child=e.child, from_center=e.source, to_center=to, at=e.at.isoformat()
                )
        elif center.cases.get(e.case, {}).get("state") == "open":
            center.set_state(case=e.case, state="closed", child=e.child)
    elif e.kind == "case.transfer_acknowledged" and e.case:
        receiving = batch.get(CenterCases, e.source)
        sender = str(e.payload.get("from", ""))
        for transfer in receiving.transfers.values():
            if (
                transfer["case"] == e.case
                and transfer["from"] == sender
                and transfer["to"] == e.source
                and transfer["child"] == e.child
                and transfer["acknowledged_at"] is None
            ):
                for side in {sender, e.source}:
                    batch.get(CenterCases, side).acknowledge(
                        transfer=transfer["transfer"], acknowledgement=e.id, at=e.at.isoformat(), child=e.child
                    )
                break
    elif e.kind == "plan.created":
        plan = str(e.payload["plan"])
        if batch.get(PlanEntry, plan, create=False) is None:
            batch.add(PlanEntry(plan, e.child, e.source))
        center = batch.get(CenterCases, e.source)
        if plan not in center.plans:
            center.add_plan(plan=plan, child=e.child)


CASE_INDEX = Projection("要対協 cases and plans per centre", case_index_needs, keep_case_index)


# --- Lookups (identifiers only) ---------------------------------------------------------------------------


def center_cases(store: HubStore, center: str) -> CenterCases:
    """The centre's index for reading (an empty one when it has none)."""
    found = store.peek(CenterCases.create_id(center))
    return found if found is not None else CenterCases(center)


def case_entry(store: HubStore, case: str) -> CaseEntry | None:
    return store.peek(CaseEntry.create_id(case))


def plan_entries_from_log(recorder: Any, mapper: Any) -> list[PlanEntry]:
    """The plan index rebuilt from the log (a store written before it was kept): the first ``plan.created`` of
    each plan id, by a centre (the only publishers version 2 accepts)."""
    entries: dict[str, PlanEntry] = {}
    for published in published_in_log(recorder, mapper):
        for e in published:
            envelope = e.envelope
            if envelope.get("kind") == "plan.created":
                plan = str((envelope.get("payload") or {}).get("plan"))
                if plan not in entries:
                    entries[plan] = PlanEntry(plan, str(envelope["child"]), str(envelope["source"]))
    return list(entries.values())
