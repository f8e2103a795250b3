"""Where the status inquiries (事前照会) are: per inquiry id, and per organisation the inquiries it sent or was sent,
kept with ``INDEXES`` (meetings-and-services.md §1).

A lookup only: inquiry id -> child, case, the centre that asked, the member asked, the meeting's date, the due
date, and when (and by which event) it was answered. It answers "what is outstanding per member?" and "what is in
this member's inbox?" without scanning the log. It holds identifiers and dates, never content, and never decides
access: a page that shows a child reads the child's timeline through the read service.

Written in the publish transaction from the events as recorded (``services/projections/indexes.py``).
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


class InquiryEntry(_CopiedOnWrite, Aggregate):
    """One inquiry id: the child, the case, who asked and who was asked (the first ``inquiry.sent`` of an id wins)."""

    @staticmethod
    def create_id(inquiry: str) -> UUID:
        return stream_id(f"inquiry:{inquiry}")

    def __init__(self, inquiry: str, child: str, case: str, center: str, member: str):
        self.inquiry = inquiry
        self.child = child
        self.case = case
        self.center = center
        self.member = member


@direct_events
class OrgInquiries(_CopiedOnWrite, Aggregate):
    """The inquiries an organisation sent (a centre) or was sent (a member). Values are replaced, never changed in
    place (the store copies aggregates one level deep)."""

    @staticmethod
    def create_id(org: str) -> UUID:
        return stream_id(f"org-inquiries:{org}")

    def __init__(self, org: str):
        self.org = org
        # inquiry -> {inquiry, event, child, case, center, member, meeting_date, due, sent_at, answered_at, answer}
        self.inquiries: dict[str, dict[str, Any]] = {}

    @event("InquiryIndexed")
    def add(self, inquiry: str, item: dict[str, Any], child: str) -> None:
        self.inquiries[inquiry] = dict(item)

    @event("InquiryAnswerIndexed")
    def answered(self, inquiry: str, answer: str, at: str, child: str) -> None:
        if inquiry in self.inquiries:  # not when the child was erased since
            self.inquiries[inquiry] = {**self.inquiries[inquiry], "answered_at": at, "answer": answer}


def inquiry_index_needs(e: Recorded, orgs: Mapping[str, Org]) -> list[UUID]:
    """The aggregates ``keep_inquiry_index`` reads or writes for ``e``: the inquiry's entry and the index of the
    centre and of the member."""
    if e.kind in ("inquiry.sent", "inquiry.answered") and e.to:
        return [
            InquiryEntry.create_id(str(e.payload["inquiry"])),
            OrgInquiries.create_id(e.source),
            OrgInquiries.create_id(e.to),
        ]
    return []


def keep_inquiry_index(e: Recorded, batch: UnitOfWork) -> None:
    """Keep the inquiry index in step with ``e`` (``INQUIRY_INDEX``)."""
    if e.kind == "inquiry.sent" and e.to:
        inquiry = str(e.payload["inquiry"])
        if batch.get(InquiryEntry, inquiry, create=False) is not None:
            return
        case = str(e.payload["case"])
        batch.add(InquiryEntry(inquiry, e.child, case, e.source, e.to))
        item = {
            "inquiry": inquiry,
            "event": e.id,
            "child": e.child,
            "case": case,
            "center": e.source,
            "member": e.to,
            "meeting_date": str(e.payload["meeting_date"]),
            "due": str(e.payload["due"]),
            "sent_at": e.at.isoformat(),
            "answered_at": None,
            "answer": None,
        }
        for org in {e.source, e.to}:
            batch.get(OrgInquiries, org).add(inquiry=inquiry, item=item, child=e.child)
    elif e.kind == "inquiry.answered" and e.to:
        inquiry = str(e.payload["inquiry"])
        entry = batch.get(InquiryEntry, inquiry, create=False)
        if entry is None or entry.member != e.source or entry.center != e.to or entry.child != e.child:
            return
        for org in {entry.center, entry.member}:
            batch.get(OrgInquiries, org).answered(inquiry=inquiry, answer=e.id, at=e.at.isoformat(), child=e.child)


INQUIRY_INDEX = Projection("status inquiries (事前照会) per organisation", inquiry_index_needs, keep_inquiry_index)


# --- Lookups (identifiers only) ---------------------------------------------------------------------------


def org_inquiries(store: HubStore, org: str) -> OrgInquiries:
    """The organisation's inquiry index for reading (an empty one when it has none)."""
    found = store.peek(OrgInquiries.create_id(org))
    return found if found is not None else OrgInquiries(org)


def inquiry_entry(store: HubStore, inquiry: str) -> InquiryEntry | None:
    return store.peek(InquiryEntry.create_id(inquiry))
