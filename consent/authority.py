"""Who may publish what (policy.md version 2, "Authority: who may publish what").

An event that states a fact the read rules rely on (where the child lives, a 要対協 case and its members, a
support plan and the family's consent, a transfer, an emergency, a school's list, an erasure) is accepted only
from the organisation with authority over that fact. Each row of policy.md's table is one small function here,
named after the kinds it governs and citing its ground; ``AUTHORITY`` maps every kind to its rule. Kinds without
a row (concerns, notifications, attendance, alerts, check-ups, visits, notes …) may be published by any registered
organisation: their basis decides who reads them (``consent.admission``).

The rules read:
- ``Known``: what the hub already holds about the child, namely the child's earlier *facts* (``is_fact``: the
  events of the kinds these rules and the read rules read, each recorded with authority), the registry and the
  settings;
- ``IdsInUse``: whether a case id or a plan id is already used for any child (a case or plan id names one case
  or plan in the whole hub), answered by the publish path from its indexes. At read time (``authorised_facts``)
  only the child's own stream is known, so there a second registration of an id for the same child is what is
  refused.

**Rejections leak nothing** (policy.md): a message restates what the publisher sent and the rule it did not meet;
it never names another organisation, nor says where the child lives, whether a case or plan exists, or who holds
it. A rule gives one message for every way it is not met (no case, another centre's case, a closed case …), so
that the same fault gets the same message whether or not the child or case exists.

Pure: no I/O. ``consent.admission.admit`` calls ``check_authority`` before it fixes the direct audience; the
read rules of version 2 (``consent.policy``) count a fact only when ``authorised_facts`` keeps it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from consent.facts import ChildFacts
from consent.model import Settings
from events.model import CENTER, JISO, Org, Recorded
from events.problems import Problem, Rejected

CASE_KINDS_OF_REGISTRAR = frozenset(
    {
        "case.member_assigned",
        "case.member_removed",
        "case.shared",
        "case.reviewed",
        "case.type_changed",
        "case.closed",
        "case.transferred",
    }
)

# The kinds whose events the publish rules (below) and the read rules (consent.policy) read about a child's past:
# kept per child by the publish path (services.projections.admission_facts), so that admitting an event never loads the child's record.
FACT_KINDS = frozenset(
    {
        "child.registered",
        "residence.changed",
        "child.erased",
        "case.registered",
        "case.member_assigned",
        "case.member_removed",
        "case.closed",
        "case.transferred",
        "plan.created",
        "plan.revised",
        "consent.granted",
        "consent.withdrawn",
        "emergency.declared",
        # 事前照会: who was asked decides who may answer (inquiry_answered)
        "inquiry.sent",
        # family-support services: a result names its recommendation, a monitoring or an end its referral
        "service.recommended",
        "service.referred",
    }
)

# The provider reports an acknowledgement answers (``report.acknowledged``): kept as facts when sent under
# ``commissioned``, so that the rule can check the report was sent to the acknowledging centre.
ACKNOWLEDGED_REPORT_KINDS = frozenset({"visit.report", "service.usage"})


def is_fact(kind: str, basis: str) -> bool:
    """Whether an event of ``kind`` on ``basis`` is one the rules read later: the ``FACT_KINDS``, and every 通告
    (``cwa-25``), whose addressee may declare an emergency about the child it was told of."""
    return kind in FACT_KINDS or basis == "cwa-25" or (basis == "commissioned" and kind in ACKNOWLEDGED_REPORT_KINDS)


class IdsInUse(Protocol):
    """Whether a case id, a plan id or an inquiry id is already used, for any child (answered from the hub's
    indexes)."""

    def case_registered(self, case: str) -> bool: ...

    def plan_created(self, plan: str) -> bool: ...

    def inquiry_sent(self, inquiry: str) -> bool: ...


@dataclass(frozen=True)
class Known:
    """What the rules know when an event is published: the child's earlier facts (authorised, in the order the
    hub recorded them), the registry, the settings, and which ids are in use."""

    facts: Sequence[Recorded]
    orgs: Mapping[str, Org]
    settings: Settings
    ids: IdsInUse | None = None  # None: only the child's own facts are known (read time)

    # -- residence (住民記録 as of a time)
    def residence_at(self, when: datetime) -> str | None:
        """The municipality where the child lived at ``when``: the ``child.registered`` or ``residence.changed``
        with the greatest ``at`` not after ``when`` (ties: the one recorded last)."""
        current: tuple[datetime, int, str] | None = None
        for e in self.facts:
            if e.kind in ("child.registered", "residence.changed") and e.at <= when:
                key = (e.at, e.position, str(e.payload["residence"]))
                if current is None or key[:2] >= current[:2]:
                    current = key
        return current[2] if current else None

    def latest_residence(self) -> str | None:
        """The residence set by the registration or move with the greatest ``at`` among the child's facts."""
        latest: tuple[datetime, int, str] | None = None
        for e in self.facts:
            if e.kind in ("child.registered", "residence.changed"):
                key = (e.at, e.position, str(e.payload["residence"]))
                if latest is None or key[:2] >= latest[:2]:
                    latest = key
        return latest[2] if latest else None

    def registered(self) -> bool:
        return any(e.kind == "child.registered" for e in self.facts)

    def is_center_of(self, org: str, municipality: str | None) -> bool:
        """``org`` is the こども家庭センター of ``municipality``."""
        o = self.orgs.get(org)
        return municipality is not None and o is not None and o.type == CENTER and o.municipality == municipality

    def is_jiso_covering(self, org: str, municipality: str | None) -> bool:
        """``org`` is a 児童相談所 whose ``covers`` lists ``municipality``."""
        o = self.orgs.get(org)
        return municipality is not None and o is not None and o.type == JISO and municipality in o.covers

    # -- cases (要対協)
    def registration(self, case: str | None) -> Recorded | None:
        """The case's ``case.registered`` among this child's facts (the first, if recorded twice)."""
        return next((e for e in self.facts if e.kind == "case.registered" and e.case == case), None)

    def registrar_municipality(self, case: Recorded) -> str | None:
        org = self.orgs.get(case.source)
        return org.municipality if org else None

    def transfers(self, case: str | None) -> list[Recorded]:
        return [e for e in self.facts if e.kind == "case.transferred" and e.case == case]

    # -- plans and consent (サポートプラン)
    def plan_events(self, plan: str) -> list[Recorded]:
        return [e for e in self.facts if e.kind in ("plan.created", "plan.revised") and str(e.payload["plan"]) == plan]

    def plan_author(self, plan: str) -> str | None:
        created = next((e for e in self.plan_events(plan) if e.kind == "plan.created"), None)
        return created.source if created else None

    def consent(self, consent_id: str) -> Recorded | None:
        return next((e for e in self.facts if e.kind == "consent.granted" and e.id == consent_id), None)

    # -- family-support services (家庭支援事業)
    def first_with(self, kind: str, key: str, value: str) -> Recorded | None:
        """The first fact of ``kind`` whose payload ``key`` is ``value`` (a recommendation, a referral)."""
        return next((e for e in self.facts if e.kind == kind and str(e.payload.get(key)) == value), None)

    def fact(self, event_id: str) -> Recorded | None:
        return next((e for e in self.facts if e.id == event_id), None)

    # -- notifications (通告)
    def notified(self, org: str, when: datetime) -> bool:
        """``org`` was the addressee (``to``) of a 通告 (``cwa-25``) about the child at or before ``when``."""
        return any(e.basis == "cwa-25" and e.to == org and e.at <= when for e in self.facts)


def _refuse(code: str, field: str | None, message: str, message_ja: str) -> Rejected:
    return Rejected([Problem(code, message, message_ja, field)])


def _not_authorised(e: Recorded, who_en: str, who_ja: str, field: str = "source") -> Rejected:
    """The refusal of an event whose source lacks authority: names the kind and who may publish it, nothing about
    the child (the same message whatever the hub holds)."""
    return _refuse(
        "not_authorised",
        field,
        f"{e.kind} is accepted only from {who_en}",
        f"{e.kind} を記録できるのは{who_ja}だけです",
    )


# --- The rows of the table, one function each ---------------------------------------------------------------


def child_registered(e: Recorded, k: Known) -> None:
    """児童の登録: the centre of the municipality in ``residence`` (住民記録を持つ市町村) or a 児童相談所 covering it; a
    child is registered once (a move is ``residence.changed``)."""
    residence = str(e.payload["residence"])
    if not (k.is_center_of(e.source, residence) or k.is_jiso_covering(e.source, residence)):
        raise _not_authorised(
            e,
            "the centre of the municipality in residence or a child guidance centre covering it",
            "residence の市町村のセンター、またはその市町村を管轄する児童相談所",
        )
    if k.registered():  # only an authorised centre or 児相 gets this far
        raise _refuse(
            "already_registered",
            "child",
            "this child is registered already; record a move as residence.changed",
            "この児童はすでに登録されています。転居は residence.changed で記録してください",
        )


def residence_changed(e: Recorded, k: Known) -> None:
    """転居: recorded by the centre of the municipality the child lives in at ``at`` (転出: the old municipality
    records the move), or a 児童相談所 covering that municipality."""
    here = k.residence_at(e.at)
    if here is None or not (k.is_center_of(e.source, here) or k.is_jiso_covering(e.source, here)):
        raise _not_authorised(
            e,
            "the centre of the child's residence at the event's time, or a child guidance centre covering it",
            "その時点の居住市町村のセンター、またはその市町村を管轄する児童相談所",
        )


def child_erased(e: Recorded, k: Known) -> None:
    """消去: the centre of residence at ``at`` that is also the centre of the latest residence, so that an
    erasure cannot be backdated to a time the source was the centre (個人情報保護法 第22条・第69条)."""
    if not (k.is_center_of(e.source, k.residence_at(e.at)) and k.is_center_of(e.source, k.latest_residence())):
        raise _not_authorised(e, "the centre of the child's current residence", "児童の現在の居住市町村のセンター")


def case_registered(e: Recorded, k: Known) -> None:
    """要対協ケースの登録: the centre of residence at ``at`` (the 調整機関 of the 要対協 of that municipality,
    児童福祉法 第25条の2); a case id names one case in the whole hub."""
    if not k.is_center_of(e.source, k.residence_at(e.at)):
        raise _not_authorised(
            e,
            "the centre of the child's residence at the event's time",
            "その時点の児童の居住市町村のセンター（要対協の調整機関）",
        )
    in_use = k.ids.case_registered(str(e.case)) if k.ids is not None else k.registration(e.case) is not None
    if in_use:
        raise _refuse(
            "case_id_in_use",
            "payload.case",
            f"case id {e.case!r} is already used; choose another id",
            f"ケース番号「{e.case}」はすでに使われています。別の番号にしてください",
        )


def case_by_registrar(e: Recorded, k: Known) -> None:
    """ケースの運営 (メンバー・共有・検討・種別・終結・移管): the case is registered for this child and the source is its
    registrar, the 調整機関; ``member`` and ``to`` are registered organisations, ``to`` the centre of another
    municipality (ケース移管)."""
    case = k.registration(e.case)
    if case is None or case.source != e.source:
        raise _refuse(
            "not_case_registrar",
            "payload.case",
            f"{e.kind} for case {e.case!r} is accepted only from the centre that registered that case for this child",
            f"ケース「{e.case}」の {e.kind} を記録できるのは、この児童についてそのケースを登録した調整機関だけです",
        )
    if e.kind in ("case.member_assigned", "case.member_removed") and str(e.payload["member"]) not in k.orgs:
        member = str(e.payload["member"])
        raise _refuse(
            "unknown_member",
            "payload.member",
            f"member {member!r} is not a registered organisation",
            f"メンバー「{member}」はハブに登録された機関ではありません",
        )
    if e.kind == "case.transferred":
        target = k.orgs.get(str(e.payload["to"]))
        source = k.orgs.get(e.source)
        if target is None or target.type != CENTER or source is None or target.municipality == source.municipality:
            raise _refuse(
                "invalid_transfer_target",
                "payload.to",
                "a case is transferred to the municipal_center of another municipality",
                "ケース移管先（payload.to）には、移管先の市町村のセンターを指定してください",
            )


def case_transfer_acknowledged(e: Recorded, k: Known) -> None:
    """ケース移管の受理: the case was transferred, and the source is the transfer's ``to``."""
    if not any(str(t.payload["to"]) == e.source for t in k.transfers(e.case)):
        raise _refuse(
            "not_transfer_recipient",
            "payload.case",
            f"case.transfer_acknowledged for case {e.case!r} is accepted only from the centre the case "
            "was transferred to",
            f"ケース「{e.case}」の移管の受理を記録できるのは、移管先のセンターだけです",
        )


def ledger_updated(e: Recorded, k: Known) -> None:
    """共同管理台帳の更新: the case is on the joint ledger (setting ``joint_ledger``, an ``abuse`` case), and the source
    is its registrar or a 児童相談所 covering the registrar's municipality (大分県の運用)."""
    case = k.registration(e.case)
    on_ledger = (
        case is not None and k.settings.joint_ledger and str(case.payload.get("case_type", "")).startswith("abuse")
    )
    if (
        case is None
        or not on_ledger
        or not (e.source == case.source or k.is_jiso_covering(e.source, k.registrar_municipality(case)))
    ):
        raise _refuse(
            "not_authorised",
            "payload.case",
            f"ledger.updated for case {e.case!r} is accepted only from the parties of that case on the joint ledger",
            f"ケース「{e.case}」の共同管理台帳を更新できるのは、その台帳の当事者（調整機関と管轄の児童相談所）だけです",
        )


def protection(e: Recorded, k: Known) -> None:
    """一時保護の開始・解除 (児童福祉法 第33条): the case is registered for this child and the source is a 児童相談所
    covering the registrar's municipality."""
    case = k.registration(e.case)
    if case is None or not k.is_jiso_covering(e.source, k.registrar_municipality(case)):
        raise _refuse(
            "not_authorised",
            "payload.case",
            f"{e.kind} for case {e.case!r} is accepted only from the child guidance centre covering the "
            "case's municipality",
            f"ケース「{e.case}」の {e.kind} を記録できるのは、そのケースの市町村を管轄する児童相談所だけです",
        )


def plan_created(e: Recorded, k: Known) -> None:
    """サポートプランの作成 (児童福祉法 第10条第4項): a こども家庭センター; a plan id names one plan in the hub."""
    source = k.orgs.get(e.source)
    if source is None or source.type != CENTER:
        raise _not_authorised(e, "a municipal centre (こども家庭センター)", "市町村のこども家庭センター")
    plan = str(e.payload["plan"])
    in_use = k.ids.plan_created(plan) if k.ids is not None else k.plan_author(plan) is not None
    if in_use:
        raise _refuse(
            "plan_id_in_use",
            "payload.plan",
            f"plan id {plan!r} is already used; choose another id",
            f"プラン番号「{plan}」はすでに使われています。別の番号にしてください",
        )


def _plan_refusal(e: Recorded, plan: str, what_en: str = "", what_ja: str = "") -> Rejected:
    return _refuse(
        "not_plan_author",
        "payload.plan",
        f"{e.kind} for plan {plan!r} is accepted only from the centre that created that plan for this child{what_en}",
        f"プラン「{plan}」の {e.kind} を記録できるのは、この児童についてそのプランを作成したセンターだけです{what_ja}",
    )


def plan_revised(e: Recorded, k: Known) -> None:
    """サポートプランの改訂: the plan exists for this child, the source is its author, and the version is greater
    than every version already stored (a version is never lowered or reused)."""
    plan = str(e.payload["plan"])
    if k.plan_author(plan) != e.source:
        raise _plan_refusal(e, plan)
    version = int(e.payload["version"])
    if any(int(p.payload["version"]) >= version for p in k.plan_events(plan)):
        raise _refuse(
            "plan_version_not_greater",
            "payload.version",
            f"version {version} of plan {plan!r} is not greater than every version already recorded",
            f"プラン「{plan}」の版 {version} は、記録済みのどの版よりも大きい番号にしてください",
        )


def consent_granted(e: Recorded, k: Known) -> None:
    """家族の同意 (個人情報保護法 第27条第1項・第69条第2項第1号): recorded by the plan's author, for a plan version that
    exists for this child, naming registered organisations only."""
    plan, version = str(e.payload["plan"]), int(e.payload["version"])
    if k.plan_author(plan) != e.source or not any(int(p.payload["version"]) == version for p in k.plan_events(plan)):
        raise _plan_refusal(e, plan, ", for a version of it that was recorded", "（記録された版についてだけ）")
    unknown = [str(r) for r in e.payload["recipients"] if str(r) not in k.orgs]
    if unknown:
        raise _refuse(
            "unknown_recipient",
            "payload.recipients",
            f"recipients {', '.join(unknown)} are not registered organisations",
            f"提供先「{'、'.join(unknown)}」はハブに登録された機関ではありません",
        )


def consent_withdrawn(e: Recorded, k: Known) -> None:
    """同意の撤回: the consent named is a ``consent.granted`` of this child, and the source recorded it."""
    named = str(e.payload["consent"])
    granted = k.consent(named)
    if granted is None or granted.source != e.source:
        raise _refuse(
            "not_consent_recorder",
            "payload.consent",
            f"consent.withdrawn of {named!r} is accepted only from the centre that recorded that consent "
            "for this child",
            f"同意「{named}」の撤回を記録できるのは、この児童についてその同意を記録したセンターだけです",
        )


def consent_refused(e: Recorded, k: Known) -> None:
    """同意しない旨の記録: the plan exists for this child and the source is its author."""
    plan = str(e.payload["plan"])
    if k.plan_author(plan) != e.source:
        raise _plan_refusal(e, plan)


def target_list(e: Recorded, k: Known) -> None:
    """対象名簿 (定期的な情報提供, 児童福祉法 第25条の3): the centre of residence at ``at`` or a 児童相談所 covering it
    lists the child at a school or nursery, which is the event's ``to``."""
    here = k.residence_at(e.at)
    if not (k.is_center_of(e.source, here) or k.is_jiso_covering(e.source, here)):
        raise _not_authorised(
            e,
            "the centre of the child's residence at the event's time, or a child guidance centre covering it",
            "その時点の児童の居住市町村のセンター、またはその市町村を管轄する児童相談所",
        )
    school = str(e.payload["school"])
    listed = k.orgs.get(school)
    if e.to != school or listed is None or listed.type not in ("school", "nursery"):
        raise _refuse(
            "invalid_addressee",
            "to",
            "to must be the school or nursery named in payload.school",
            "宛先 to には payload.school の学校・保育所等を指定してください",
        )


def emergency_declared(e: Recorded, k: Known) -> None:
    """緊急時アクセスの宣言 (個人情報保護法 第27条第1項第2号・第69条第2項第4号): from the centre of residence at ``at``, a
    児童相談所 covering it, or an organisation that was sent a 通告 (``cwa-25``) about the child at or before ``at``
    (a child found outside its municipality is notified where it is). The non-empty ``reason`` is checked with the
    payload (``events.kinds``), not here: it is content, sealed under the child's key, and must not decide a
    replay after an erasure."""
    here = k.residence_at(e.at)
    if not (k.is_center_of(e.source, here) or k.is_jiso_covering(e.source, here) or k.notified(e.source, e.at)):
        raise _not_authorised(
            e,
            "the centre of the child's residence, a child guidance centre covering it, or the "
            "addressee of a notification about the child",
            "児童の居住市町村のセンター、管轄の児童相談所、またはこの児童について通告を受けた機関",
        )


def identity_link(e: Recorded, k: Known) -> None:
    """紐付け: a こども家庭センター links numbers known in its municipality (which numbers: ``consent.identity``)."""
    source = k.orgs.get(e.source)
    if source is None or source.type != CENTER:
        raise _not_authorised(e, "a municipal centre (こども家庭センター)", "市町村のこども家庭センター")


# --- 事前照会 (status inquiries before a meeting, meetings-and-services.md §1) -------------------------------------


def _member_at(k: Known, case: str | None, org: str | None, when: datetime) -> bool:
    """``org`` is assigned to ``case`` at ``when`` by the case's registrar, as rule CASE counts members: a closed
    case has none (policy.md, rule CASE: "k is not closed at t"), so no inquiry goes to an organisation that lost
    the case's information at its closure."""
    found = ChildFacts.of(k.facts, registrar_only=True).cases.get(str(case))
    return found is not None and org is not None and found.closed_at(when) is None and found.is_member(org, when)


def inquiry_sent(e: Recorded, k: Known) -> None:
    """事前照会 (児童福祉法 第25条の3, the council's request): from the case's registrar, under ``cwa-25-3``, ``to``
    an organisation assigned to the case at ``at``. One message for every way it is not met."""
    case = k.registration(e.case)
    if case is None or case.source != e.source or e.basis != "cwa-25-3" or not _member_at(k, e.case, e.to, e.at):
        raise _refuse(
            "not_case_inquiry",
            "to",
            f"inquiry.sent for case {e.case!r} is accepted only from the centre that registered that case for this "
            "child, under cwa-25-3, to a member of the case",
            f"ケース「{e.case}」の事前照会を送れるのは、この児童についてそのケースを登録した調整機関だけで、"
            "根拠は cwa-25-3、宛先 to はそのケースのメンバーです",
        )
    # an inquiry id names one inquiry in the whole hub (its answer names only the id), as a case or plan id does
    inquiry = str(e.payload["inquiry"])
    in_use = (
        k.ids.inquiry_sent(inquiry)
        if k.ids is not None
        else any(f.kind == "inquiry.sent" and str(f.payload.get("inquiry")) == inquiry for f in k.facts)
    )
    if in_use:
        raise _refuse(
            "inquiry_id_in_use",
            "payload.inquiry",
            f"inquiry id {inquiry!r} is already used; choose another id",
            f"照会番号「{inquiry}」はすでに使われています。別の番号にしてください",
        )


def inquiry_answered(e: Recorded, k: Known) -> None:
    """事前照会への回答 (第25条の3による提供): from the organisation asked (the ``to`` of the ``inquiry.sent`` named,
    about this child), under ``cwa-25-3``, ``to`` the centre that asked. A later answer supersedes an earlier one
    (the log keeps both). The same message whether the inquiry does not exist, is about another child, or was
    sent to someone else."""
    inquiry = str(e.payload["inquiry"])
    sent = next(
        (f for f in k.facts if f.kind == "inquiry.sent" and str(f.payload.get("inquiry")) == inquiry),
        None,
    )
    if sent is None or sent.to != e.source or e.basis != "cwa-25-3" or e.to != sent.source:
        raise _refuse(
            "not_inquiry_addressee",
            "payload.inquiry",
            f"inquiry.answered for inquiry {inquiry!r} is accepted only from the organisation asked, under "
            "cwa-25-3, to the centre that asked",
            f"照会「{inquiry}」に回答できるのは照会を受けた機関だけで、根拠は cwa-25-3、宛先 to は照会したセンターです",
        )


# --- Family-support services and urgent reports (家庭支援事業, meetings-and-services.md §2) --------------------


def _basis(e: Recorded, basis: str) -> None:
    if e.basis != basis:
        raise _refuse(
            "wrong_basis",
            "basis",
            f"{e.kind} is recorded with basis {basis}",
            f"{e.kind} の根拠（basis）は {basis} です",
        )


def service_by_centre_of_residence(e: Recorded, k: Known) -> None:
    """利用勧奨・措置 (児童福祉法 第21条の18・第26条, 2024年改正): the centre of residence at ``at``, for its own record
    (``internal``)."""
    if not k.is_center_of(e.source, k.residence_at(e.at)):
        raise _not_authorised(
            e, "the centre of the child's residence at the event's time", "その時点の児童の居住市町村のセンター"
        )
    _basis(e, "internal")


def service_recommendation_result(e: Recorded, k: Known) -> None:
    """利用勧奨の結果: the recommendation was recorded for this child, and the source recorded it."""
    named = str(e.payload["recommendation"])
    recommended = k.first_with("service.recommended", "recommendation", named)
    if recommended is None or recommended.source != e.source:
        raise _refuse(
            "not_recommendation_source",
            "payload.recommendation",
            f"the result of recommendation {named!r} is accepted only from the centre that recorded that "
            "recommendation for this child",
            f"利用勧奨「{named}」の結果を記録できるのは、この児童についてその勧奨を記録したセンターだけです",
        )
    _basis(e, "internal")


def service_referred(e: Recorded, k: Known) -> None:
    """事業者への依頼 (委託に伴う提供, 個人情報保護法 第27条第5項第1号 / 第66条第2項): the centre of residence at ``at``
    hands its own work to a ``service_provider`` (``to``), under ``commissioned``; a referral id is used once
    for a child."""
    if not k.is_center_of(e.source, k.residence_at(e.at)):
        raise _not_authorised(
            e, "the centre of the child's residence at the event's time", "その時点の児童の居住市町村のセンター"
        )
    _basis(e, "commissioned")
    provider = k.orgs.get(e.to or "")
    if provider is None or provider.type != "service_provider":
        raise _refuse(
            "invalid_addressee",
            "to",
            "a referral is addressed (to) to a service_provider",
            "依頼の宛先 to には委託先の事業者（service_provider）を指定してください",
        )
    referral = str(e.payload["referral"])
    if k.first_with("service.referred", "referral", referral) is not None:
        raise _refuse(
            "referral_id_in_use",
            "payload.referral",
            f"referral id {referral!r} is already used for this child; choose another id",
            f"依頼番号「{referral}」はこの児童ですでに使われています。別の番号にしてください",
        )


def _referral_refusal(e: Recorded, referral: str, who_en: str, who_ja: str) -> Rejected:
    return _refuse(
        "not_referral_party",
        "payload.referral",
        f"{e.kind} for referral {referral!r} is accepted only from {who_en}",
        f"依頼「{referral}」の {e.kind} を記録できるのは{who_ja}だけです",
    )


def service_monitoring(e: Recorded, k: Known) -> None:
    """モニタリング: either side of a referral of this child writes to the other (the provider to the centre that
    referred, the centre to the provider), under ``commissioned``."""
    referral = str(e.payload["referral"])
    made = k.first_with("service.referred", "referral", referral)
    sides = (made.source, made.to) if made is not None else None
    if sides is None or (e.source, e.to) not in (sides, sides[::-1]):
        raise _referral_refusal(
            e,
            referral,
            "the centre that made that referral for this child, to its provider, or that provider, to the centre",
            "この児童についてその依頼をしたセンター（宛先はその事業者）、またはその事業者（宛先はそのセンター）",
        )
    _basis(e, "commissioned")


def service_ended(e: Recorded, k: Known) -> None:
    """サービスの終了: the centre that made the referral of this child tells its provider, under ``commissioned``."""
    referral = str(e.payload["referral"])
    made = k.first_with("service.referred", "referral", referral)
    if made is None or made.source != e.source or e.to != made.to:
        raise _referral_refusal(
            e,
            referral,
            "the centre that made that referral for this child, to its provider",
            "この児童についてその依頼をしたセンター（宛先はその事業者）",
        )
    _basis(e, "commissioned")


def report_acknowledged(e: Recorded, k: Known) -> None:
    """報告の確認: the report (a ``visit.report`` or ``service.usage`` of this child) was sent under ``commissioned``
    to the source, and the acknowledgement goes back to the report's source (``to``), under ``commissioned``."""
    named = str(e.payload["report"])
    report = k.fact(named)
    if (
        report is None
        or report.kind not in ACKNOWLEDGED_REPORT_KINDS
        or report.basis != "commissioned"
        or report.to != e.source
        or e.to != report.source
    ):
        raise _refuse(
            "not_report_addressee",
            "payload.report",
            f"report.acknowledged of {named!r} is accepted only from the centre that report was sent to about "
            "this child, addressed (to) to the report's source",
            f"報告「{named}」の確認を記録できるのは、この児童についてその報告を受けたセンターだけです"
            "（宛先 to は報告した事業者）",
        )
    _basis(e, "commissioned")


# --- Households (世帯, meetings-and-services.md §3) -------------------------------------------------------------


def household_membership(e: Recorded, k: Known) -> None:
    """世帯への登録・世帯からの削除: the centre of residence at ``at``, which supports the family as a whole
    (児童福祉法 第10条 市町村の業務). Basis ``internal``: a household link is the centre's own record, and gives no
    other organisation anything (meetings-and-services.md §3)."""
    if not k.is_center_of(e.source, k.residence_at(e.at)):
        raise _not_authorised(
            e,
            "the centre of the child's residence at the event's time",
            "その時点の児童の居住市町村のセンター",
        )
    if e.basis != "internal":  # the table's basis column: nobody else is told of a household
        raise _refuse(
            "household_internal",
            "basis",
            f"{e.kind} is recorded with basis internal only",
            f"{e.kind} は根拠 internal（自機関の記録）でだけ記録できます",
        )


AUTHORITY: dict[str, Callable[[Recorded, Known], None]] = {
    "child.registered": child_registered,
    "residence.changed": residence_changed,
    "child.erased": child_erased,
    "case.registered": case_registered,
    **{kind: case_by_registrar for kind in CASE_KINDS_OF_REGISTRAR},
    "case.transfer_acknowledged": case_transfer_acknowledged,
    "ledger.updated": ledger_updated,
    "protection.started": protection,
    "protection.ended": protection,
    "plan.created": plan_created,
    "plan.revised": plan_revised,
    "consent.granted": consent_granted,
    "consent.withdrawn": consent_withdrawn,
    "consent.refused": consent_refused,
    "target_list.assigned": target_list,
    "target_list.removed": target_list,
    "emergency.declared": emergency_declared,
    "identity.linked": identity_link,
    "identity.unlinked": identity_link,
    # 事前照会 (meetings-and-services.md §1)
    "inquiry.sent": inquiry_sent,
    "inquiry.answered": inquiry_answered,
    # family-support services and urgent reports (meetings-and-services.md §2)
    "service.recommended": service_by_centre_of_residence,
    "service.recommendation_result": service_recommendation_result,
    "service.ordered": service_by_centre_of_residence,
    "service.referred": service_referred,
    "service.monitoring": service_monitoring,
    "service.ended": service_ended,
    "report.acknowledged": report_acknowledged,
    # Households (世帯, meetings-and-services.md §3)
    "household.joined": household_membership,
    "household.left": household_membership,
}


# The rows that decide from the registry and the ids in use alone, without the child's facts (given ``Known.ids``, as
# the publish path gives them); every other row reads the facts. Said next to the table so that a row that starts
# reading the facts is added here too (``tests/test_admission_reads.py`` checks every row against it).
DECIDED_WITHOUT_FACTS = frozenset({"plan.created", "identity.linked", "identity.unlinked"})


def reads_facts(kind: str) -> bool:
    """Whether the row for ``kind`` reads the child's earlier facts, when the ids in use are known."""
    return kind in AUTHORITY and kind not in DECIDED_WITHOUT_FACTS


def case_ids_asked(e: Recorded) -> list[str]:
    """The case ids whose use the row for ``e`` asks about (``IdsInUse.case_registered``)."""
    return [str(e.case)] if e.kind == "case.registered" else []


def plan_ids_asked(e: Recorded) -> list[str]:
    """The plan ids whose use the row for ``e`` asks about (``IdsInUse.plan_created``)."""
    return [str(e.payload["plan"])] if e.kind == "plan.created" else []


def inquiry_ids_asked(e: Recorded) -> list[str]:
    """The inquiry ids whose use the row for ``e`` asks about (``IdsInUse.inquiry_sent``)."""
    return [str(e.payload["inquiry"])] if e.kind == "inquiry.sent" else []


def check_authority(e: Recorded, known: Known) -> None:
    """Raise ``Rejected`` when ``e``'s source has no authority to publish it; kinds without a row pass."""
    rule = AUTHORITY.get(e.kind)
    if rule is not None:
        rule(e, known)


def authorised_facts(events: Iterable[Recorded], orgs: Mapping[str, Org], settings: Settings) -> list[Recorded]:
    """The child's facts that count under version 2: each fact event (``is_fact``), in the order the hub recorded
    it, kept when its source had authority given the facts kept before it. On a store written under version 2
    this keeps every fact (the others were rejected when published); on events recorded under version 1 it keeps
    an unauthorised fact from opening or closing anything (policy.md, "The rules")."""
    kept: list[Recorded] = []
    for e in sorted((e for e in events if is_fact(e.kind, e.basis)), key=lambda e: e.position):
        try:
            check_authority(e, Known(kept, orgs, settings))
        except Rejected:
            continue
        kept.append(e)
    return kept
