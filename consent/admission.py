"""Publish-time rules: may this event be recorded on its stated legal ground, and who is its direct audience?

policy.md, "Direct audience, by basis": the audience is fixed when the event is published, from the events
already recorded about the child and the registry at that moment. Pure: the services pass the state in.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from consent.facts import residence_at
from consent.model import Org, Recorded, Settings
from events.problems import Problem, Rejected

CENTER = "municipal_center"
JISO = "child_guidance_center"

# The only kinds of earlier events these rules read: the residence over time (cwa-21-10-5, cwa-25-3 without
# ``to``, erasure) and the cases registered (cwa-25-2, joint-ledger). The store keeps them per child apart from
# the child's record (services.facts), so that admitting an event never needs the whole record.
ADMISSION_FACTS = frozenset({"child.registered", "residence.changed", "case.registered"})


def center_of(municipality: str | None, orgs: Mapping[str, Org]) -> Org | None:
    """The こども家庭センター of a municipality: the registered ``municipal_center`` with that code."""
    if municipality is None:
        return None
    return next((o for o in orgs.values() if o.type == CENTER and o.municipality == municipality), None)


def _reject(code: str, field: str | None, message: str, message_ja: str) -> Rejected:
    return Rejected([Problem(code, message, message_ja, field)])


def admit(e: Recorded, prior: Sequence[Recorded], orgs: Mapping[str, Org], settings: Settings) -> frozenset[str]:
    """Return the event's direct audience, or raise ``Rejected`` naming the rule it breaks.

    ``e.audience`` is ignored; ``prior`` are the child's events recorded before this one, of which only those of
    the kinds in ``ADMISSION_FACTS`` are read (the others may be left out).
    """
    source = orgs.get(e.source)
    if source is None:
        raise _reject("unknown_source", "source", f"source {e.source!r} is not a registered organisation",
                      f"source「{e.source}」はハブに登録された機関ではありません")
    if e.to is not None and e.to not in orgs:
        raise _reject("unknown_addressee", "to", f"to {e.to!r} is not a registered organisation",
                      f"to「{e.to}」はハブに登録された機関ではありません")
    _check_kind(e, source, prior, orgs)
    return _audience(e, source, prior, orgs, settings)


def _audience(e: Recorded, source: Org, prior: Sequence[Recorded], orgs: Mapping[str, Org],
              settings: Settings) -> frozenset[str]:
    own = frozenset({e.source})
    if e.basis == "internal":
        return own
    if e.basis == "cwa-21-10-5":
        # 児童福祉法第21条の10の5: to the municipality where the child is, and no one else.
        residence = residence_at(prior, e.at)
        if residence is None:
            raise _reject("residence_unknown", "child",
                          "the child's residence at the event's time is unknown; the event waits for linking",
                          "この時点の児童の居住市町村が不明のため、受け付けられません（紐付け待ちとして保留します）")
        # policy.md rejects only an unknown residence; a municipality with no centre in the hub has no addressee.
        center = center_of(residence, orgs)
        if e.to is not None and (center is None or e.to != center.id):
            expected = center.id if center else f"none registered for {residence}"
            raise _reject("wrong_addressee", "to",
                          f"under cwa-21-10-5 the addressee is the centre of residence ({expected}), not {e.to}",
                          f"第21条の10の5による情報提供の宛先は居住市町村のセンター（{center.id if center else '未登録'}）です")
        return own | ({center.id} if center else set())
    if e.basis == "cwa-25":
        # 通告 goes to a municipality or a 児童相談所.
        if e.to is None or orgs[e.to].type not in (CENTER, JISO):
            raise _reject("invalid_addressee", "to",
                          "cwa-25 (通告) needs to: a municipal_center or child_guidance_center",
                          "通告（第25条）の宛先 to には市町村のセンターまたは児童相談所を指定してください")
        return own | {e.to}
    if e.basis == "cwa-25-3":
        if e.to is not None:
            return own | {e.to}
        center = center_of(residence_at(prior, e.at), orgs)
        return own | ({center.id} if center else set())
    if e.basis == "commissioned":
        if source.type != "service_provider":
            raise _reject("not_a_provider", "source", "basis commissioned is for service providers only",
                          "委託（commissioned）の根拠で送れるのは委託事業者だけです")
        if e.to is None:
            raise _reject("missing_addressee", "to", "commissioned needs to: the commissioning municipality",
                          "委託元の市町村（to）を指定してください")
        return own | {e.to}
    if e.basis == "cwa-25-2":
        if source.type != CENTER:
            raise _reject("not_a_center", "source", "cwa-25-2 is shared by a municipal_center only",
                          "第25条の2による共有は調整機関（市町村のセンター）だけが行えます")
        if not any(p.kind == "case.registered" and p.case == e.case and p.source == e.source for p in prior):
            raise _reject("unknown_case", "payload.case", f"case {e.case!r} was not registered by {e.source}",
                          f"ケース「{e.case}」はこのセンターが登録したケースではありません")
        return own
    if e.basis == "joint-ledger":
        on_ledger = settings.joint_ledger and any(
            p.kind == "case.registered" and p.case == e.case and str(p.payload["case_type"]).startswith("abuse")
            for p in prior)
        if not on_ledger:
            raise _reject("not_on_ledger", "payload.case", f"case {e.case!r} is not on the joint ledger",
                          f"ケース「{e.case}」は共同管理台帳に載っていません")
        return own
    raise _reject("unknown_basis", "basis", f"unknown basis {e.basis!r}", f"basis「{e.basis}」は使えません")


def _check_kind(e: Recorded, source: Org, prior: Sequence[Recorded], orgs: Mapping[str, Org]) -> None:
    if e.kind == "emergency.declared" and source.type not in (CENTER, JISO):
        raise _reject("emergency_not_allowed", "source",
                      "an emergency is declared by a municipal_center or child_guidance_center only",
                      "緊急時アクセスを宣言できるのは市町村のセンターと児童相談所だけです")
    if e.kind == "child.erased":
        center = center_of(residence_at(prior, e.at), orgs)
        if center is None or center.id != e.source:
            raise _reject("erasure_not_allowed", "source",
                          "a child's record is erased by the centre of the child's residence only",
                          "記録の消去は児童の居住市町村のセンターだけが行えます")
    if e.kind in ("case.member_assigned", "case.member_removed") and str(e.payload["member"]) not in orgs:
        raise _reject("unknown_member", "payload.member",
                      f"member {e.payload['member']!r} is not a registered organisation",
                      f"メンバー「{e.payload['member']}」はハブに登録された機関ではありません")
    if e.kind == "case.transferred":
        target = orgs.get(str(e.payload["to"]))
        if target is None or target.type != CENTER:
            raise _reject("invalid_transfer_target", "payload.to",
                          "a case is transferred to another municipality's municipal_center",
                          "ケース移管先（payload.to）には移管先市町村のセンターを指定してください")
