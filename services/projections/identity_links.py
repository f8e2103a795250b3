"""The identity links (紐付け): the hub child an organisation's own number is linked to now, kept in step with the log
from ``identity.linked`` / ``identity.unlinked`` (who may link whose numbers: ``consent.identity``). Identifiers
only; it never decides access. The linking queue and the link commands are ``services.publishing.linking``."""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from consent.identity import IDENTITY_KINDS
from events.direct_events import direct_events
from events.model import Org, Recorded
from events.sealing import stream_id
from events.store import HubStore, _CopiedOnWrite
from services.projections.unit_of_work import Projection, UnitOfWork


@direct_events
class IdentityLink(_CopiedOnWrite, Aggregate):
    """The lookup: the hub child an organisation's own number is linked to now (``None``: not linked, or
    unlinked). Identifiers only; it never decides access."""

    @staticmethod
    def create_id(org: str, local_number: str) -> UUID:
        return stream_id(f"identity:{org}\x1f{local_number}")

    def __init__(self, org: str, local_number: str):
        self.org = org
        self.local_number = local_number
        self.child: str | None = None

    @event("Linked")
    def link(self, child: str, event_id: str) -> None:
        self.child = child

    @event("Unlinked")
    def unlink(self, event_id: str) -> None:
        self.child = None


def identity_link_needs(e: Recorded, orgs: Mapping[str, Org]) -> list[UUID]:
    """The link ``keep_identity_links`` writes for ``e``: that of the number a link event names."""
    if e.kind not in IDENTITY_KINDS:
        return []
    return [IdentityLink.create_id(str(e.payload["org"]), str(e.payload["local_number"]))]


def keep_identity_links(e: Recorded, batch: UnitOfWork) -> None:
    """Index: (organisation, own number) -> hub child, from ``identity.linked`` / ``identity.unlinked``."""
    if e.kind not in IDENTITY_KINDS:
        return
    org, number = str(e.payload["org"]), str(e.payload["local_number"])
    link = batch.get(IdentityLink, org, number, create=False)
    if link is None:
        link = IdentityLink(org, number)
        batch.add(link)
    if e.kind == "identity.linked":
        link.link(child=e.child, event_id=e.id)
    else:
        link.unlink(event_id=e.id)


IDENTITY_LINKS = Projection("紐付け: (organisation, own number) -> child", identity_link_needs, keep_identity_links)


def linked_child(store: HubStore, org: str, local_number: str) -> str | None:
    link = store.peek(IdentityLink.create_id(org, local_number))
    return link.child if link is not None else None
