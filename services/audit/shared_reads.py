"""What we shared, and who read it (共有した記録の閲覧状況): for a publishing organisation, the reads of the events it
published, from the access records. Metadata only (ids, kinds, times, organisations, roles, rules, purposes);
never an event's content, never a reader's name.

**Who sees what.**

- A centre (こども家庭センター) or a 児童相談所 sees every read of what it published by another organisation: the
  organisation, the reader's role, the time, the rule and the purpose (``Read``). Reads by the publisher itself
  are left out (its own staff reading its own records are the auditors' question, ``services.audit``).
- Any other publisher (a school, nursery, clinic, provider …) sees only whether and when each of the event's
  *addressees* first read it (``Receipt``: 「別府市こども家庭センターが5月12日に確認しました」), and nothing about
  any other reader: a 児相 reading under LEDGER, a case member under CASE or an organisation under TRANSFER or
  EMERGENCY would tell it of a 児相's involvement, a case, a move or an emergency.

**The addressees of an event** are its direct audience (policy.md, "Direct audience, by basis"), fixed when it was
published and stored with it (``Recorded.audience``), without the source: its ``to`` for ``cwa-25`` and
``commissioned`` and for ``cwa-21-10-5`` / ``cwa-25-3`` events that name one; for a ``cwa-21-10-5`` or ``cwa-25-3``
event without ``to``, the centre of the child's residence at its ``at``; none for ``internal``, ``cwa-25-2`` and
``joint-ledger`` (read by others only under CASE and LEDGER, which a non-centre publisher is not told about).
An addressee the publisher did not name itself (no ``to``) is not named in the receipt: it is described as
「居住地のこども家庭センター」, since naming it would tell the publisher where the child lives (policy.md,
"Rejections leak nothing": never name an organisation the publisher did not name).

A read is an access record whose decision was allowed as a whole and allowed that event; refused reads (refused as
a whole, or the event withheld) are not reads.

**Where it looks.** Only the streams of the children the publisher published about (``services.projections.
published``, kept in the publish transaction): each one's events (to find the publisher's) and its access log. The
whole log is never scanned. An event's page finds the event by the register of envelope ids
(``HubStore.stored_envelope``).

**Nothing told that may not be known.** A child the publisher never published about, an unknown child id and an
erased child give the same empty answer; an unknown event id and another organisation's event the same
``NotFound``.

**These are not reads of a child.** The answers hold ids and read metadata that the publisher has the right to
(about its own events), no content of any child's record: they are not timeline reads and are not recorded in
the children's access logs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from events.labels import ORG_TYPE_JA
from events.model import Org, Recorded
from events.problems import Problem, Rejected
from events.store import ChildRecord, HubStore, LinkingQueue, ResidenceQueue, ResidenceWaitList
from services.audit.queries import NotFound, child_records, parse_moment
from services.projections.published import published_children

FULL_VIEW = ("municipal_center", "child_guidance_center")  # publishers who see every read of what they published
RESIDENCE_CENTRE_JA = "居住地のこども家庭センター"  # an addressee the publisher did not name (see the docstring)
MAX_PER_PAGE = 200


class SharedEvent(BaseModel):
    """One event the publisher published: what identifies it, no content."""

    id: str
    kind: str
    child: str
    at: str = Field(description="The event's time (its `at`).")
    basis: str
    to: str | None = Field(default=None, description="The addressee the publisher named, if any.")


class Read(BaseModel):
    """One read of the event by another organisation (centres and 児童相談所 only)."""

    event: SharedEvent
    org: str = Field(description="The reading organisation's id.")
    org_name: str | None = Field(description="Its registered (Japanese) name.")
    org_type: str | None
    role: str | None = Field(description="The reader's role (never the person).")
    t: str = Field(description="When it was read.")
    rule: str | None = Field(description="The rule the event was read under.")
    purpose: str


class Receipt(BaseModel):
    """An addressee's first read of the event (the receipt other publishers see)."""

    event: SharedEvent
    org: str | None = Field(description="The addressee's id; null when the publisher did not name it itself.")
    org_name: str = Field(
        description="Its Japanese name, or 居住地のこども家庭センター when not named by the publisher."
    )
    t: str = Field(description="When it first read the event.")


class SharedReadsPage(BaseModel):
    """The latest reads of what the caller published, newest first, one page."""

    view: str = Field(
        description="`reads` (a centre or 児童相談所: every read) or `receipts` (addressees' first reads)."
    )
    reads: list[Read] = Field(default_factory=list)
    receipts: list[Receipt] = Field(default_factory=list)
    page: int
    per_page: int
    total: int = Field(description="How many rows match the filters, on every page.")


class Addressee(BaseModel):
    org: str | None
    org_name: str
    first_read: str | None = Field(description="When it first read the event; null: not yet.")


class EventReads(BaseModel):
    """One published event and who read it, as the publisher may see it."""

    view: str
    event: SharedEvent
    reads: list[Read] = Field(default_factory=list, description="Every read by another organisation (full view).")
    addressees: list[Addressee] = Field(default_factory=list, description="Each addressee and its first read.")


@dataclass(frozen=True)
class Filters:
    child: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def of(cls, child: str | None = None, since: Any = None, until: Any = None) -> Filters:
        """The filters of a query; ``Rejected`` naming ``from`` / ``to`` (in Japanese 開始日 / 終了日)."""
        problems: list[Problem] = []
        bounds: list[datetime | None] = []
        for value, name, end in ((since, "from", False), (until, "to", True)):
            try:
                bounds.append(parse_moment(value, name, end=end))
            except Rejected as rejected:
                problems += rejected.problems
                bounds.append(None)
        start, stop = bounds
        if not problems and start is not None and stop is not None and stop <= start:
            problems.append(
                Problem("invalid_period", "to must be after from", "終了日は開始日より後にしてください", "to")
            )
        if problems:
            raise Rejected(problems)
        return cls((child or "").strip() or None, start, stop)

    def contains(self, t: datetime) -> bool:
        return (self.since is None or self.since <= t) and (self.until is None or t < self.until)


def full_view(org: Org | None) -> bool:
    return org is not None and org.type in FULL_VIEW


def _event(e: Recorded, envelope: Mapping[str, Any] | None) -> SharedEvent:
    at = str(envelope["at"]) if envelope and "at" in envelope else e.at.isoformat()
    return SharedEvent(id=e.id, kind=e.kind, child=e.child, at=at, basis=e.basis, to=e.to)


def addressees(e: Recorded) -> list[str]:
    """The event's addressees: its direct audience without its source (see the module docstring)."""
    return sorted(o for o in e.audience if o != e.source)


def _name(org_id: str, orgs: Mapping[str, Org]) -> str | None:
    org = orgs.get(org_id)
    return (org.name or None) if org else None


def _addressee_name(e: Recorded, org_id: str, orgs: Mapping[str, Org]) -> tuple[str | None, str]:
    """How a receipt names an addressee: by id and name when the publisher named it (``to``), else described."""
    if e.to == org_id:
        org = orgs.get(org_id)
        return org_id, (org.name if org and org.name else ORG_TYPE_JA.get(org.type, org_id) if org else org_id)
    return None, RESIDENCE_CENTRE_JA


class SharedReads:
    """The reads of what one organisation published (see the module docstring)."""

    def __init__(self, store: HubStore):
        self.store = store

    def _published(self, publisher: str, child: str) -> tuple[list[tuple[Recorded, SharedEvent]], list[Any]]:
        """The publisher's events about ``child`` and the child's usable access records."""
        record = self.store.peek(ChildRecord.create_id(child))
        if record is None:
            return [], []
        envelopes = list(record.envelopes)
        mine = [
            (e, _event(e, envelopes[i] if i < len(envelopes) else None))
            for i, e in enumerate(record.entries)
            if e.source == publisher
        ]
        if not mine:
            return [], []
        loaded, _ = child_records(self.store, child)
        return mine, [x.record for x in loaded]

    def _reads(
        self, publisher: str, events: list[tuple[Recorded, SharedEvent]], records: Iterable[Mapping[str, Any]]
    ) -> Iterable[tuple[Recorded, SharedEvent, Mapping[str, Any], Mapping[str, Any]]]:
        """Every allowed read of the publisher's events by another organisation: (event, its summary, the access
        record, the event's decision)."""
        by_id = {e.id: (e, s) for e, s in events}
        for record in records:
            decision = record["decision"]
            if not decision.get("allowed") or record["reader"].get("org") == publisher:
                continue
            for d in decision["events"]:
                found = by_id.get(d.get("event"))
                if found is not None and d.get("allowed"):
                    yield found[0], found[1], record, d

    def _rows(
        self, publisher: str, full: bool, events: list[tuple[Recorded, SharedEvent]], records: list[Any]
    ) -> tuple[list[Read], list[Receipt]]:
        orgs = self.store.registry().orgs
        if full:
            reads = [
                Read(
                    event=summary,
                    org=record["reader"]["org"],
                    org_name=_name(record["reader"]["org"], orgs),
                    org_type=orgs[record["reader"]["org"]].type if record["reader"]["org"] in orgs else None,
                    role=record["reader"].get("role"),
                    t=record["t"],
                    rule=d.get("rule"),
                    purpose=record["purpose"],
                )
                for _, summary, record, d in self._reads(publisher, events, records)
            ]
            return reads, []
        first: dict[tuple[str, str], tuple[Recorded, SharedEvent, str]] = {}
        for e, summary, record, _ in self._reads(publisher, events, records):
            reader = record["reader"]["org"]
            if reader not in addressees(e):
                continue  # not an addressee: nothing about it is told
            key = (e.id, reader)
            if key not in first or datetime.fromisoformat(record["t"]) < datetime.fromisoformat(first[key][2]):
                first[key] = (e, summary, record["t"])
        receipts = []
        for (_, reader), (e, summary, t) in first.items():
            org_id, name = _addressee_name(e, reader, orgs)
            receipts.append(Receipt(event=summary, org=org_id, org_name=name, t=t))
        return [], receipts

    def latest(self, publisher: str, filters: Filters, *, page: int = 1, per_page: int = 50) -> SharedReadsPage:
        """The reads of what ``publisher`` published, newest first, filtered by child and by the time of the read,
        one page (``page`` from 1)."""
        page, per_page = max(page, 1), min(max(per_page, 1), MAX_PER_PAGE)
        full = full_view(self.store.registry().orgs.get(publisher))
        children = published_children(self.store, publisher)
        if filters.child is not None:
            children = {filters.child: children[filters.child]} if filters.child in children else {}
        reads: list[Read] = []
        receipts: list[Receipt] = []
        for child in children:
            events, records = self._published(publisher, child)
            r, c = self._rows(publisher, full, events, records)
            reads += [x for x in r if filters.contains(datetime.fromisoformat(x.t))]
            receipts += [x for x in c if filters.contains(datetime.fromisoformat(x.t))]
        start = (page - 1) * per_page

        def newest_first(rows: list[Any]) -> list[Any]:
            return sorted(rows, key=lambda x: (datetime.fromisoformat(x.t), x.event.id), reverse=True)

        if full:
            return SharedReadsPage(
                view="reads",
                reads=newest_first(reads)[start : start + per_page],
                page=page,
                per_page=per_page,
                total=len(reads),
            )
        return SharedReadsPage(
            view="receipts",
            receipts=newest_first(receipts)[start : start + per_page],
            page=page,
            per_page=per_page,
            total=len(receipts),
        )

    def _waiting(self, publisher: str, event_id: str) -> EventReads | None:
        """An event of ``publisher`` that was received but waits (for the child's residence, ``ResidenceQueue``, or
        for its number to be linked, ``LinkingQueue``), answered as a published event nobody has read yet: a
        publisher that is told 受付 for both (policy.md, "Rejections leak nothing") must not learn here which it
        was, nor so whether the hub knows the child or where it lives."""
        envelope: Mapping[str, Any] | None = None
        listed = self.store.peek(ResidenceWaitList.create_id(publisher))
        if isinstance(listed, ResidenceWaitList) and event_id in listed.waiting:
            queue = self.store.peek(ResidenceQueue.create_id(listed.waiting[event_id]["child"]))
            if isinstance(queue, ResidenceQueue) and event_id in queue.waiting:
                envelope = queue.waiting[event_id]["envelope"]
        linking = self.store.peek(LinkingQueue.create_id(publisher))
        if envelope is None and isinstance(linking, LinkingQueue) and event_id in linking.waiting:
            envelope = linking.waiting[event_id]["envelope"]
        if envelope is None or envelope.get("source") != publisher:
            return None
        to = envelope.get("to")
        orgs = self.store.registry().orgs
        summary = SharedEvent(
            id=event_id,
            kind=str(envelope.get("kind")),
            child=str(envelope.get("child") or envelope.get("local_child") or ""),
            at=str(envelope.get("at")),
            basis=str(envelope.get("basis")),
            to=to,
        )
        if isinstance(to, str) and to != publisher:
            org = orgs.get(to)
            named = org.name if org and org.name else ORG_TYPE_JA.get(org.type, to) if org else to
            addressee = Addressee(org=to, org_name=named, first_read=None)
        else:
            addressee = Addressee(org=None, org_name=RESIDENCE_CENTRE_JA, first_read=None)
        return EventReads(view="receipts", event=summary, addressees=[addressee])

    def of_event(self, publisher: str, event_id: str) -> EventReads:
        """One event ``publisher`` published, and who read it as it may see it; ``NotFound`` alike for an unknown
        event, another organisation's event and an erased child's. A publisher that does not learn whether its
        event was published or waits gets a waiting event as a published one not read yet (``_waiting``)."""
        stored = self.store.stored_envelope(event_id)
        record = self.store.peek(stored.stream) if stored is not None else None
        found = [e for e in record.entries if e.id == event_id] if isinstance(record, ChildRecord) else []
        if not found or found[0].source != publisher or found[0].child not in published_children(self.store, publisher):
            waiting = (
                None if full_view(self.store.registry().orgs.get(publisher)) else self._waiting(publisher, event_id)
            )
            if waiting is not None:
                return waiting
            raise NotFound("unknown_event", "no event of yours with this id", "この記録は見つかりません")
        e = found[0]
        events, records = self._published(publisher, e.child)
        mine = [(x, s) for x, s in events if x.id == event_id]
        summary = mine[0][1]
        full = full_view(self.store.registry().orgs.get(publisher))
        reads, receipts = self._rows(publisher, full, mine, records)
        if full:
            reads.sort(key=lambda x: datetime.fromisoformat(x.t), reverse=True)
            return EventReads(view="reads", event=summary, reads=reads)
        orgs = self.store.registry().orgs
        first = {r.org if r.org is not None else RESIDENCE_CENTRE_JA: r.t for r in receipts}
        listed = []
        for org_id in addressees(e):
            named, name = _addressee_name(e, org_id, orgs)
            listed.append(Addressee(org=named, org_name=name, first_read=first.get(named or RESIDENCE_CENTRE_JA)))
        return EventReads(view="receipts", event=summary, addressees=listed)
