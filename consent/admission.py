"""Publish-time rules: may this event be recorded, and who is its direct audience?

policy.md (version 2), "Direct audience, by basis" and "Authority: who may publish what": the source must have
authority over the facts the event states (``consent.authority``), and the basis fixes the audience when the event
is published, from the child's earlier facts and the registry at that moment. Pure: the services pass the state in.
A refusal restates only what the publisher sent (policy.md, "Rejections leak nothing").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from consent.authority import (
    IdsInUse,
    Known,
    case_ids_asked,
    check_authority,
    inquiry_ids_asked,
    plan_ids_asked,
    reads_facts,
)
from consent.model import Settings
from events.model import CENTER, JISO, Org, Recorded
from events.problems import Problem, Rejected

TO_LISTED_SCHOOL = frozenset({"target_list.assigned", "target_list.removed", "inquiry.sent"})


class AwaitsResidence(Exception):
    """A 第21条の10の5 event about a child whose residence at the event's time is unknown: not rejected, it waits
    until the centre records where the child lives, and is then published by itself (policy.md, "Rejections leak
    nothing")."""


def center_of(municipality: str | None, orgs: Mapping[str, Org]) -> Org | None:
    """The こども家庭センター of a municipality: the registered ``municipal_center`` with that code."""
    if municipality is None:
        return None
    return next((o for o in orgs.values() if o.type == CENTER and o.municipality == municipality), None)


def _reject(code: str, field: str | None, message: str, message_ja: str) -> Rejected:
    return Rejected([Problem(code, message, message_ja, field)])


# The bases whose audience is fixed from the child's facts (the residence, a case's registration); ``_audience``
# reads them for these bases only, and for ``cwa-25-3`` without ``to``.
AUDIENCE_FROM_FACTS = frozenset({"cwa-21-10-5", "cwa-25-2", "joint-ledger"})


@dataclass(frozen=True)
class Reads:
    """What admitting an event reads besides the event, the registry and the settings: the child's earlier facts
    (``facts``), and whether the case ids ``case_ids``, the plan ids ``plan_ids`` and the inquiry ids
    ``inquiry_ids`` are in use."""

    facts: bool
    case_ids: tuple[str, ...] = ()
    plan_ids: tuple[str, ...] = ()
    inquiry_ids: tuple[str, ...] = ()


def reads(e: Recorded) -> Reads:
    """What ``admit(e, prior, orgs, settings, ids)`` will read, said from the event alone (its kind, basis and
    addressee) without deciding anything, for a caller that passes ``ids`` (the publish path): it loads the facts
    and the ids of a whole batch at once. Where ``facts`` is false, ``admit`` decides the same on any ``prior``."""
    return Reads(
        facts=reads_facts(e.kind) or e.basis in AUDIENCE_FROM_FACTS or (e.basis == "cwa-25-3" and e.to is None),
        case_ids=tuple(case_ids_asked(e)),
        plan_ids=tuple(plan_ids_asked(e)),
        inquiry_ids=tuple(inquiry_ids_asked(e)),
    )


def admit(
    e: Recorded, prior: Sequence[Recorded], orgs: Mapping[str, Org], settings: Settings, ids: IdsInUse | None = None
) -> frozenset[str]:
    """Return the event's direct audience; raise ``Rejected`` naming the rule it breaks, or ``AwaitsResidence``.

    ``e.audience`` is ignored; ``prior`` are the child's earlier facts (``consent.authority.is_fact``), each
    recorded with authority, in the order the hub recorded them (other events may be among them and are not
    read). ``ids``: which case and plan ids are in use in the hub (``None``: only the child's own are known).
    """
    source = orgs.get(e.source)
    if source is None:
        raise _reject(
            "unknown_source",
            "source",
            f"source {e.source!r} is not a registered organisation",
            f"source「{e.source}」はハブに登録された機関ではありません",
        )
    if e.to is not None and e.to not in orgs:
        raise _reject(
            "unknown_addressee",
            "to",
            f"to {e.to!r} is not a registered organisation",
            f"to「{e.to}」はハブに登録された機関ではありません",
        )
    known = Known(prior, orgs, settings, ids)
    check_authority(e, known)
    return _audience(e, source, known)


def _audience(e: Recorded, source: Org, known: Known) -> frozenset[str]:
    """The direct audience by basis. Reads the child's facts only for the bases of ``AUDIENCE_FROM_FACTS``, and
    for ``cwa-25-3`` without ``to`` (``reads`` says so to the publish path)."""
    orgs = known.orgs
    own = frozenset({e.source})
    if e.basis == "internal":
        return own
    if e.basis == "cwa-21-10-5":
        # 児童福祉法第21条の10の5: to the municipality where the child is, and no one else.
        residence = known.residence_at(e.at)
        if residence is None:
            raise AwaitsResidence()
        # A municipality with no centre in the hub has no addressee: the source alone reads it.
        center = center_of(residence, orgs)
        if e.to is not None and (center is None or e.to != center.id):
            # Names only the publisher's own ``to``: never the centre the child lives under (policy.md).
            raise _reject(
                "wrong_addressee",
                "to",
                f"under cwa-21-10-5 the addressee is the centre of the child's residence; {e.to} is not "
                "(leave to out and the hub addresses it)",
                f"第21条の10の5による情報提供の宛先は児童の居住市町村のセンターです。to「{e.to}」は宛先に"
                "なりません（to を省略すれば、ハブが宛先を決めます）",
            )
        return own | ({center.id} if center else set())
    if e.basis == "cwa-25":
        # 通告 goes to a municipality or a 児童相談所.
        if e.to is None or orgs[e.to].type not in (CENTER, JISO):
            raise _reject(
                "invalid_addressee",
                "to",
                "cwa-25 (通告) needs to: a municipal_center or child_guidance_center",
                "通告（第25条）の宛先 to には市町村のセンターまたは児童相談所を指定してください",
            )
        return own | {e.to}
    if e.basis == "cwa-25-3":
        # 第25条の3: information provided at the 要対協's request, to its coordinating body (or a 児相); a target
        # list and an inquiry go the other way, to the school listed or the member asked.
        if e.to is not None:
            if e.kind not in TO_LISTED_SCHOOL and orgs[e.to].type not in (CENTER, JISO):
                raise _reject(
                    "invalid_addressee",
                    "to",
                    "cwa-25-3 is provided to a municipal_center or child_guidance_center",
                    "第25条の3による情報提供の宛先 to には市町村のセンターまたは児童相談所を指定してください",
                )
            return own | {e.to}
        center = center_of(known.residence_at(e.at), orgs)
        return own | ({center.id} if center else set())
    if e.basis == "commissioned":
        # 委託: a provider reports to the municipality that commissioned it, or the municipality hands its own
        # work to its contractor (委託に伴う提供, 個人情報保護法 第27条第5項第1号 / 第66条第2項).
        to = orgs.get(e.to) if e.to is not None else None
        allowed = to is not None and (
            (source.type == "service_provider" and to.type == CENTER)
            or (source.type == CENTER and to.type == "service_provider")
        )
        if e.to is None or not allowed:
            raise _reject(
                "invalid_commission",
                "to",
                "commissioned goes from a service provider to the municipal_center that commissioned it, "
                "or from a municipal_center to its service provider (to)",
                "委託（commissioned）は、委託事業者から委託元の市町村のセンターへ、またはセンターから委託先の"
                "事業者へ（to で指定）送るものです",
            )
        return own | {e.to}
    if e.basis == "cwa-25-2":
        case = known.registration(e.case) if source.type == CENTER else None
        if case is None or case.source != e.source:
            raise _reject(
                "not_case_registrar",
                "payload.case",
                f"cwa-25-2 shares to case {e.case!r} only from the centre that registered it for this child",
                f"第25条の2による共有（ケース「{e.case}」）は、この児童についてそのケースを登録した調整機関だけが"
                "行えます",
            )
        return own
    if e.basis == "joint-ledger":
        # 共同管理台帳: written by its two sides, the registering centre and the 児相 covering its municipality
        # ("the other side of the ledger reads it"). Anyone else is refused with the same message as for a case
        # not on the ledger, so that a refusal or an acceptance never tells a third party that the case exists.
        case = known.registration(e.case)
        on_ledger = (
            known.settings.joint_ledger and case is not None and str(case.payload["case_type"]).startswith("abuse")
        )
        side = case is not None and (
            e.source == case.source or known.is_jiso_covering(e.source, known.registrar_municipality(case))
        )
        if not (on_ledger and side):
            raise _reject(
                "not_on_ledger",
                "payload.case",
                f"basis joint-ledger cannot be used for case {e.case!r} of this child",
                f"ケース「{e.case}」について、この児童の共同管理台帳（joint-ledger）の根拠では記録できません",
            )
        return own
    raise _reject("unknown_basis", "basis", f"unknown basis {e.basis!r}", f"basis「{e.basis}」は使えません")
