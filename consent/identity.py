"""Identity linking (紐付け): which centre may link which organisation's own numbers to a hub child.

Each organisation knows a child by its own number: 児童生徒番号 at a school, 宛名番号 at the municipality, a
保健所's own number. domain.md: "The municipality links local numbers to the hub id. Records that arrive for an
unknown local number wait in a linking queue; they are never dropped and never guessed onto a child."

Ground. Linking is the municipality's work as the holder of the 住民基本台帳 / 宛名 (who the child is) and as the
要対協's 調整機関 (児童福祉法 第25条の2), done by its こども家庭センター (児童福祉法 第10条の2). So:

- only a ``municipal_center`` links, with an ``internal`` record in the child's stream;
- an organisation of a municipality (its schools, nurseries, departments, and the centre itself for its 宛名番号)
  is linked by the centre of **that** municipality only, so that one centre answers for each number;
- a prefectural or other organisation without a municipality (保健所, 児童相談所, a provider working for several
  towns) is linked by the centre of any municipality it serves: those in its ``covers`` when it has them,
  otherwise any centre of its ``prefecture`` (the first two digits of the 全国地方公共団体コード);
- the prefecture office (aggregates only) and auditors never publish about a child, so nobody links their
  numbers.

The same rule says who sees an organisation's linking queue (``linking_centres``). Pure: no I/O; the services
pass in the registry, the child's events and the current link of the number.
"""

from __future__ import annotations

from collections.abc import Mapping

from events.model import CENTER, Org, Recorded
from events.problems import Problem, Rejected

NOT_LINKABLE = frozenset({"prefecture_office", "auditor"})  # publish nothing about a child
IDENTITY_KINDS = frozenset({"identity.linked", "identity.unlinked"})


def may_link(center: Org, org: Org) -> bool:
    """May ``center`` link ``org``'s own numbers to hub children? (the rule in the module docstring)"""
    if center.type != CENTER or center.municipality is None or org.type in NOT_LINKABLE:
        return False
    if org.municipality is not None:
        return center.municipality == org.municipality
    if org.covers:
        return center.municipality in org.covers
    if org.prefecture is not None:
        return center.municipality[:2] == org.prefecture
    return False


def linking_centres(org: Org, orgs: Mapping[str, Org]) -> list[Org]:
    """The centres that may link ``org``'s numbers, and so see the records of ``org`` waiting to be linked."""
    return [c for c in orgs.values() if may_link(c, org)]


def _reject(code: str, field: str | None, message: str, message_ja: str) -> Rejected:
    return Rejected([Problem(code, message, message_ja, field)])


def check_local_source(source: str, orgs: Mapping[str, Org]) -> None:
    """An envelope that names the child by ``local_child`` can wait for a link only if some centre can link the
    source's numbers; otherwise it would wait where nobody sees it."""
    org = orgs.get(source)
    if org is None:
        raise _reject(
            "unknown_source",
            "source",
            f"source {source!r} is not a registered organisation",
            f"source「{source}」はハブに登録された機関ではありません",
        )
    if not any(may_link(c, org) for c in orgs.values()):
        raise _reject(
            "no_linking_centre",
            "local_child",
            f"no registered centre can link the numbers of {source}; send the hub id in child",
            f"機関「{source}」の番号を紐付けできるセンターが登録されていません。child（ハブの児童ID）で送ってください",
        )


def check_identity_event(e: Recorded, known: bool, orgs: Mapping[str, Org], linked_to: str | None) -> None:
    """Publish-time check of ``identity.linked`` / ``identity.unlinked`` (payload ``org``, ``local_number``).

    ``known``: whether the hub has recorded anything about the child before this event; ``linked_to``: the hub
    child the number is linked to now, or ``None``. Raises ``Rejected`` naming what is wrong; other kinds pass.
    """
    if e.kind not in IDENTITY_KINDS:
        return
    org_id, number = str(e.payload["org"]), str(e.payload["local_number"])
    source = orgs.get(e.source)
    if source is None or source.type != CENTER:
        raise _reject(
            "link_not_allowed",
            "source",
            "identity links are made by a municipal_center only",
            "紐付けを行えるのは市町村のこども家庭センターだけです",
        )
    if e.basis != "internal":
        raise _reject(
            "invalid_basis",
            "basis",
            "an identity link is the centre's own record: basis internal",
            "紐付けはセンター内部の記録です。basis は internal にしてください",
        )
    org = orgs.get(org_id)
    if org is None:
        raise _reject(
            "unknown_org",
            "payload.org",
            f"org {org_id!r} is not a registered organisation",
            f"機関「{org_id}」はハブに登録された機関ではありません",
        )
    if not may_link(source, org):
        allowed = ", ".join(c.id for c in linking_centres(org, orgs)) or "なし"
        raise _reject(
            "link_not_allowed",
            "payload.org",
            f"{e.source} may not link the numbers of {org_id} (centres that may: {allowed})",
            f"センター「{e.source}」は機関「{org_id}」の番号を紐付けできません（紐付けできるセンター: {allowed}）",
        )
    if e.kind == "identity.linked":
        if not known:
            raise _reject(
                "unknown_child",
                "child",
                f"child {e.child!r} has no record in the hub",
                f"児童「{e.child}」はハブに記録がありません。先に児童を登録してください",
            )
        if linked_to == e.child:
            raise _reject(
                "already_linked",
                "payload.local_number",
                f"number {number} of {org_id} is already linked to this child",
                f"機関「{org_id}」の番号「{number}」はすでにこの児童に紐付いています",
            )
        if linked_to is not None:
            # The other child's id is not named: the number alone must not reveal who it belongs to.
            raise _reject(
                "linked_to_another_child",
                "payload.local_number",
                f"number {number} of {org_id} is already linked to another child; unlink it first",
                f"機関「{org_id}」の番号「{number}」はすでに別の児童に紐付いています。"
                "誤りであれば、先に紐付けを解除（identity.unlinked）してください",
            )
    elif linked_to != e.child:
        raise _reject(
            "not_linked",
            "payload.local_number",
            f"number {number} of {org_id} is not linked to this child",
            f"機関「{org_id}」の番号「{number}」はこの児童に紐付いていません",
        )
