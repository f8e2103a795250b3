"""Identity linking (紐付け) and the linking queue (紐付け待ち).

Organisations name a child by their own number (``local_child``: 児童生徒番号, 宛名番号 …). A centre links the
number to a hub child with ``identity.linked``; who may link whose numbers is ``consent.identity``'s rule.

- ``services.projections.identity_links`` keeps the lookup (organisation, number) -> child in step with the log.
- The publish path (``services.publishing.attempt``) calls ``resolve_local_child`` before admission: with a link,
  the envelope continues with ``child`` filled in (and leaves the queue if it was waiting); without one it waits in
  the source's ``LinkingQueue`` (outcome ``queued``, 「紐付け待ち」), never dropped and never guessed onto a child. It calls
  ``check_identity`` so that link events follow ``consent.identity`` with the number's current link.
- ``link`` publishes ``identity.linked`` through ``Hub.publish`` and then re-publishes the records waiting for that
  number, unchanged, through the same path: they now resolve, are admitted or rejected (and quarantined) like
  any other record, and leave the queue. ``link`` again for an existing link only re-publishes what waits.
- ``waiting`` is the queue as a centre may see it: the waiting records of the organisations it may link, and those
  organisations' 第21条の10の5 events waiting for their child's residence (``residence_unknown``, policy.md: they
  are published by themselves once the centre records where the child lives,
  ``services.publishing.waiting_for_residence``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import uuid5

from consent.identity import IDENTITY_KINDS, check_identity_event, check_local_source, may_link
from events.envelope import Envelope
from events.model import Org, Recorded
from events.problems import Problem, PublishResult, Rejected
from events.store import NAMESPACE, HubStore, LinkingQueue, ResidenceWaitList
from events.streams import load_many
from services.projections.identity_links import IdentityLink, linked_child
from services.publishing.batch import Batch

if TYPE_CHECKING:
    from services.hub import Hub

WAITING_FOR_LINK = "waiting_for_link"
RESIDENCE_UNKNOWN = "residence_unknown"


def _get(batch: Batch, cls: type, *key: str) -> Any:
    """The batch's aggregate of ``cls`` for ``key``, or ``None`` when none is stored or created yet."""
    return batch.get(cls, *key, create=False)


def _get_or_create(batch: Batch, cls: type, *key: str) -> Any:
    aggregate = _get(batch, cls, *key)
    if aggregate is None:
        aggregate = cls(*key)
        batch.add(aggregate)
    return aggregate


# --- In the publish transaction ---------------------------------------------------------------------------------


def waiting_problem(envelope: Envelope) -> Problem:
    return Problem(
        WAITING_FOR_LINK,
        f"number {envelope.local_child} of {envelope.source} is not linked to a child yet; "
        "the record waits in the linking queue",
        f"紐付け待ち: 機関「{envelope.source}」の番号「{envelope.local_child}」はまだ児童に紐付けられていません。"
        "センターが紐付けるまで保留します",
        "local_child",
    )


def resolve_local_child(envelope: Envelope, batch: Batch, orgs: Mapping[str, Org], now: datetime) -> Envelope | None:
    """``envelope`` (which names the child by ``local_child``) with the linked hub child in ``child``, or ``None``
    when the number is not linked and the envelope now waits in the source's linking queue.

    Raises ``Rejected`` when no centre could ever link the source's numbers, or when the id waits in the queue
    with other content (an id names one event)."""
    check_local_source(envelope.source, orgs)
    digest = envelope.digest()
    queue = _get(batch, LinkingQueue, envelope.source)
    waiting = queue.waiting.get(envelope.id) if queue is not None else None
    if waiting is not None and waiting["digest"] != digest:
        raise Rejected(
            [
                Problem(
                    "id_conflict",
                    f"id {envelope.id!r} waits in the linking queue with other content",
                    f"id「{envelope.id}」は別の内容で紐付け待ちになっています",
                    "id",
                )
            ]
        )
    link = _get(batch, IdentityLink, envelope.source, str(envelope.local_child))
    if link is None or link.child is None:
        if waiting is None:
            _get_or_create(batch, LinkingQueue, envelope.source).hold(
                envelope=envelope.canonical(), digest=digest, arrived=now.isoformat()
            )
        return None
    if waiting is not None:
        queue.release(envelope_id=envelope.id, released_at=now.isoformat())
    return envelope.model_copy(update={"child": link.child, "local_child": None})


def check_identity(e: Recorded, known: bool, orgs: Mapping[str, Org], batch: Batch) -> None:
    """``consent.identity``'s publish rule for link events, given the number's current link (``known``: the hub
    has recorded something about the child before)."""
    if e.kind not in IDENTITY_KINDS:
        return
    link = _get(batch, IdentityLink, str(e.payload["org"]), str(e.payload["local_number"]))
    check_identity_event(e, known, orgs, link.child if link is not None else None)


# --- The centre's side: linking, the queue, re-sending ----------------------------------------------------------


@dataclass
class LinkOutcome:
    """What ``link`` / ``unlink`` did: the link event's result (``None``: the link already existed, nothing was
    published) and the waiting records re-published, each with what became of it."""

    link: PublishResult | None
    released: list[tuple[dict[str, Any], PublishResult]]

    @property
    def refused(self) -> bool:
        return self.link is not None and self.link.outcome == "rejected"


def _identity_envelope(kind: str, *, center: str, org: str, local_number: str, child: str, at: datetime) -> dict:
    key = "\x1f".join((kind, center, org, local_number, child, at.isoformat()))
    return {
        "id": f"{kind}:{uuid5(NAMESPACE, key)}",
        "kind": kind,
        "child": child,
        "source": center,
        "basis": "internal",
        "at": at.isoformat(),
        "payload": {"org": org, "local_number": local_number},
    }


def link(hub: Hub, *, center: str, org: str, local_number: str, child: str) -> LinkOutcome:
    """Link ``org``'s number ``local_number`` to ``child`` as ``center``, then publish what waited for it.

    When the number is already linked to ``child`` (the link event is refused as ``already_linked``), only the
    waiting records are published: running ``link`` again completes a release that was interrupted."""
    envelope = _identity_envelope(
        "identity.linked", center=center, org=org, local_number=local_number, child=child, at=hub.clock()
    )
    result = hub.publish([envelope])[0]
    already = result.outcome == "duplicate" or (
        result.outcome == "rejected" and [p.code for p in result.problems] == ["already_linked"]
    )
    if already:
        return LinkOutcome(None, release(hub, org, local_number))
    if result.outcome == "rejected":
        return LinkOutcome(result, [])
    return LinkOutcome(result, release(hub, org, local_number))


def unlink(hub: Hub, *, center: str, org: str, local_number: str) -> LinkOutcome:
    """Undo a wrong link (identity.unlinked, into the stream of the child it was linked to). Events already
    published onto that child stay in the log."""
    child = linked_child(hub.store, org, local_number)
    if child is None:
        problem = Problem(
            "not_linked",
            f"number {local_number} of {org} is not linked",
            f"機関「{org}」の番号「{local_number}」は紐付けられていません",
            "local_number",
        )
        raise Rejected([problem])
    envelope = _identity_envelope(
        "identity.unlinked", center=center, org=org, local_number=local_number, child=child, at=hub.clock()
    )
    return LinkOutcome(hub.publish([envelope])[0], [])


def release(hub: Hub, org: str, local_number: str) -> list[tuple[dict[str, Any], PublishResult]]:
    """Re-publish, unchanged and through ``Hub.publish``, the records of ``org`` waiting for ``local_number``."""
    queue = hub.store.peek(LinkingQueue.create_id(org))
    if queue is None:
        return []
    envelopes = [
        w["envelope"]
        for w in sorted(queue.waiting.values(), key=lambda w: w["arrived"])
        if w["envelope"].get("local_child") == local_number
    ]
    return list(zip(envelopes, _publish(hub, envelopes)))


def _publish(hub: Hub, envelopes: list[dict[str, Any]], chunk: int = 1000) -> list[PublishResult]:
    results: list[PublishResult] = []
    for start in range(0, len(envelopes), chunk):
        results += hub.publish(envelopes[start : start + chunk])
    return results


@dataclass
class Waiting:
    """A record a centre can act on: waiting for a link (``waiting_for_link``), or for the child's residence to be
    recorded (``residence_unknown``: the centre registers the child, and it is published by itself)."""

    org: str
    local_number: str | None
    child: str | None
    id: str
    kind: str
    at: str
    arrived: str
    reason: str
    envelope: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        # No payload: the queue shows what waits, not what it says.
        return {k: v for k, v in self.__dict__.items() if k != "envelope"}


def waiting(store: HubStore, center: str | None = None) -> list[Waiting]:
    """The records waiting for a centre: those of every organisation ``center`` may link (all, with ``None``)."""
    orgs = store.registry().orgs
    if center is not None and center not in orgs:
        raise Rejected(
            [
                Problem(
                    "unknown_center",
                    f"{center!r} is not a registered organisation",
                    f"センター「{center}」はハブに登録された機関ではありません",
                    "center",
                )
            ]
        )
    linked = [org for org in orgs.values() if center is None or may_link(orgs[center], org)]
    # Both queues of every organisation in one query (``load_many``): a city's centre may link some 300 schools'
    # records, and one query per queue made the start page wait ~0.2 s for queues that are mostly empty.
    ids = {org.id: (LinkingQueue.create_id(org.id), ResidenceWaitList.create_id(org.id)) for org in linked}
    found = load_many(store, [i for pair in ids.values() for i in pair])
    out: list[Waiting] = []
    for org in linked:
        queue = found.get(ids[org.id][0])
        for w in queue.waiting.values() if queue is not None else ():
            env = w["envelope"]
            out.append(
                Waiting(
                    org.id,
                    env.get("local_child"),
                    None,
                    env["id"],
                    env["kind"],
                    env["at"],
                    w["arrived"],
                    WAITING_FOR_LINK,
                    env,
                )
            )
        out += _residence_unknown(org.id, found.get(ids[org.id][1]))
    return sorted(out, key=lambda w: (w.arrived, w.org, w.id))


def _residence_unknown(org: str, listed: ResidenceWaitList | None) -> list[Waiting]:
    """第21条の10の5 events of ``org`` waiting for their child's residence to be recorded (``listed``, its
    ``ResidenceWaitList``): they are published by themselves once the centre records where the child lives."""
    return [
        Waiting(org, None, w["child"], envelope_id, w["kind"], w["at"], w["arrived"], RESIDENCE_UNKNOWN, {})
        for envelope_id, w in (listed.waiting.items() if listed is not None else ())
    ]
