"""要対協 case work: the application service behind ``tsunagu case …``, ``tsunagu plan …`` and the HTTP routes.

Each command checks what the acting organisation asks for, with clear Japanese errors, then publishes one event
through ``Hub.publish`` as that organisation. The publish-time rules of ``policy.md`` (``consent.admission``)
stay as written; the checks here are the case-work rules of the coordinating body:

- only a こども家庭センター registers cases and plans, and only the centre that registered a case acts on it;
- no review, share, member change, 相談種別 change or transfer on a closed, transferred or unknown case;
- members are registered organisations; a case is closed with a reason and the meeting that decided it;
- the joint ledger (共同管理台帳) is updated by the registering centre or the 児童相談所 covering it.

To know a case's state a command reads the acting organisation's own view of the child through the read service
(purpose ``meeting``; plans: ``support``): the read is decided by the policy and recorded, like any other.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from events.labels import CASE_TYPE_JA, CATEGORY_JA, label
from events.model import CENTER, JISO, Org
from events.problems import Rejected
from services.casework.ledger import (
    CaseRow,
    PlanState,
    build_row,
    day_of,
    plan_states,
    refuse,
)
from services.projections.cases import case_entry, center_cases
from services.reading.timeline import Timeline

if TYPE_CHECKING:
    from services.hub import Hub


@dataclass(frozen=True)
class Actor:
    """Who acts: the organisation (the token's, or ``--center``), the role the person acts in, and the person."""

    org: str
    role: str = "caseworker"
    user: str | None = None


@dataclass
class Done:
    """What a command published."""

    event: str
    kind: str
    child: str
    case: str | None = None
    plan: str | None = None
    version: int | None = None
    access_records: list[str] = field(default_factory=list)  # the reads the command made to check the state

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _blank(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return not [v for v in value if str(v).strip()]
    return value is None or not str(value).strip()


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def _day(value: date | str | None, field: str | None = None) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return day_of(value)
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise refuse(
            "invalid_date",
            f"{value!r} is not a date (YYYY-MM-DD)",
            f"日付「{value}」の形式が正しくありません（例: 2026-07-15）",
            field,
        ) from None


class CaseWork:
    def __init__(self, hub: Hub):
        self.hub = hub

    # --- helpers ------------------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self.hub.clock()

    def _orgs(self) -> dict[str, Org]:
        return self.hub.orgs()

    def _org_name(self, org_id: str) -> str:
        org = self._orgs().get(org_id)
        return (org.name or org.id) if org else org_id

    def _center(self, by: Actor) -> Org:
        org = self._orgs().get(by.org)
        if org is None:
            raise refuse(
                "unknown_organisation",
                f"{by.org} is not a registered organisation",
                f"「{by.org}」はハブに登録された機関ではありません",
                "org",
            )
        if org.type != CENTER:
            raise refuse(
                "not_a_center",
                "case work is done by a municipal_center (the 要対協's coordinating body)",
                "この操作は市町村のこども家庭センター（要対協の調整機関）だけが行えます",
                "org",
            )
        return org

    def _read_known_child(self, by: Actor, child: str, purpose: str, reads: list[str]) -> Timeline:
        """``_read``, refused as ``unknown_child`` when the centre holds nothing about the child."""
        timeline = self._read(by, child, purpose, reads)
        if not timeline.entries:
            raise refuse(
                "unknown_child",
                f"{by.org} holds nothing about child {child!r}",
                f"児童「{child}」の記録がこのセンターにありません。児童の登録を確認してください",
                "child",
            )
        return timeline

    def _read(self, by: Actor, child: str, purpose: str, reads: list[str]) -> Timeline:
        timeline = self.hub.timeline(org=by.org, role=by.role, child=child, purpose=purpose, user=by.user)
        reads.append(timeline.access_record)
        if not timeline.allowed:
            raise refuse(
                "read_refused",
                f"the read was refused: {timeline.reason}",
                f"この児童の記録を読むことが認められませんでした（{timeline.reason}）",
            )
        return timeline

    def _publish(
        self,
        by: Actor,
        kind: str,
        child: str,
        payload: dict[str, Any],
        *,
        basis: str = "internal",
        event_id: str | None = None,
    ) -> str:
        envelope: dict[str, Any] = {
            "id": event_id or _new_id(kind.replace(".", "-")),
            "kind": kind,
            "child": child,
            "source": by.org,
            "basis": basis,
            "at": self._now().isoformat(),
            "payload": payload,
        }
        if by.role == "health_nurse":
            envelope["function"] = "maternal_health"
        [result] = self.hub.publish([envelope], publisher=by.org)
        if result.outcome == "rejected":
            raise Rejected(result.problems)
        return envelope["id"]

    def case_row(self, by: Actor, case: str, reads: list[str] | None = None) -> CaseRow:
        """The case as the registering centre sees it; refused for an unknown case or another centre's case."""
        reads = reads if reads is not None else []
        self._center(by)
        entry = case_entry(self.hub.store, case)
        if entry is None or entry.registrar != by.org:
            # One answer whether the case does not exist or is another centre's (policy.md, "Rejections leak
            # nothing"): never who holds it.
            raise refuse(
                "unknown_case",
                f"case {case!r} is not a case registered by this centre",
                f"ケース「{case}」はこのセンターが登録したケースではありません。"
                "ケースを操作できるのは登録したセンターだけです",
                "case",
            )
        timeline = self._read(by, entry.child, "meeting", reads)
        row = build_row(case, entry.child, timeline.entries, self._orgs(), datetime.fromisoformat(timeline.t))
        if row is None:
            raise refuse(
                "unknown_case",
                f"case {case!r} is not visible to {by.org}/{by.role}",
                f"ケース「{case}」はこの担当（{by.role}）からは見えません",
                "case",
            )
        return row

    def _open_case(self, by: Actor, case: str, reads: list[str], *, allow_transferred: bool = False) -> CaseRow:
        row = self.case_row(by, case, reads)
        if row.status == "closed" and row.closed is not None:
            raise refuse(
                "case_closed",
                f"case {case!r} is closed",
                f"ケース「{case}」は終結しています（{row.closed['at'][:10]}）。終結したケースは操作できません",
                "case",
            )
        if row.status == "transferred" and row.transferred is not None and not allow_transferred:
            raise refuse(
                "case_transferred",
                f"case {case!r} was transferred to {row.transferred['to']}",
                f"ケース「{case}」は{self._org_name(row.transferred['to'])}へ移管済みです",
                "case",
            )
        return row

    def _done(self, event: str, kind: str, row: CaseRow, reads: list[str]) -> Done:
        return Done(event, kind, row.child, case=row.case, access_records=reads)

    # --- 要対協 cases ------------------------------------------------------------------------------------------

    def register(self, by: Actor, *, child: str, category: str, case_type: str, case: str | None = None) -> Done:
        """ケース登録: 要保護児童 (youhogo), 要支援児童 (youshien) or 特定妊婦 (tokutei_ninpu), with its 相談種別."""
        self._center(by)
        if category not in CATEGORY_JA:
            raise refuse(
                "invalid_category",
                f"category must be one of {', '.join(CATEGORY_JA)}",
                "区分は 要保護児童（youhogo）・要支援児童（youshien）・特定妊婦（tokutei_ninpu）"
                "のいずれかを指定してください",
                "category",
            )
        if _blank(case_type):
            raise refuse(
                "missing_case_type",
                "case_type (相談種別) is required",
                "相談種別を指定してください（例: abuse_neglect, neglect）",
                "case_type",
            )
        case = case.strip() if case else f"K-{uuid.uuid4().hex[:10]}"
        if case_entry(self.hub.store, case) is not None:
            raise refuse(
                "case_exists",
                f"case id {case!r} is already used",
                f"ケース番号「{case}」はすでに使われています",
                "case",
            )
        reads: list[str] = []
        self._read_known_child(by, child, "meeting", reads)
        event = self._publish(
            by, "case.registered", child, {"case": case, "category": category, "case_type": case_type.strip()}
        )
        return Done(event, "case.registered", child, case=case, access_records=reads)

    def assign_member(self, by: Actor, case: str, member: str) -> Done:
        """メンバー追加: an organisation joins the case and reads what is shared to it (rule CASE)."""
        reads: list[str] = []
        row = self._open_case(by, case, reads)
        if member not in self._orgs():
            raise refuse(
                "unknown_member",
                f"member {member!r} is not a registered organisation",
                f"「{member}」はハブに登録された機関ではありません。メンバーにできるのは登録済みの機関だけです",
                "member",
            )
        if member == by.org:
            raise refuse(
                "member_is_registrar",
                "the registering centre is not a member of its own case",
                "登録したセンター自身はメンバーとして追加できません",
                "member",
            )
        if member in row.members:
            raise refuse(
                "already_member",
                f"{member} is already a member of {case}",
                f"{self._org_name(member)}はすでにケース「{case}」のメンバーです",
                "member",
            )
        event = self._publish(by, "case.member_assigned", row.child, {"case": case, "member": member})
        return self._done(event, "case.member_assigned", row, reads)

    def remove_member(self, by: Actor, case: str, member: str) -> Done:
        reads: list[str] = []
        row = self._open_case(by, case, reads)
        if member not in row.members:
            raise refuse(
                "not_a_member",
                f"{member} is not a member of {case}",
                f"{self._org_name(member)}はケース「{case}」のメンバーではありません",
                "member",
            )
        event = self._publish(by, "case.member_removed", row.child, {"case": case, "member": member})
        return self._done(event, "case.member_removed", row, reads)

    def share(
        self, by: Actor, case: str, summary: str, *, proposal: bool = False, meeting_date: date | str | None = None
    ) -> Done:
        """ケース共有 (児童福祉法第25条の2): what the members of the case may read while it is open. A proposal
        (the centre's proposal for a case 確認のみ at a meeting, ``meeting-and-services.md``) names the meeting's
        date."""
        if _blank(summary):
            raise refuse("missing_summary", "summary is required", "共有する内容を入力してください", "summary")
        payload: dict[str, Any] = {"case": case, "summary": summary.strip()}
        if proposal:
            meeting = _day(meeting_date, "meeting_date")
            if meeting is None:
                raise refuse(
                    "missing_meeting_date",
                    "a proposal names the date of its meeting",
                    "提案として共有するときは、会議の日付を入力してください",
                    "meeting_date",
                )
            payload |= {"proposal": True, "meeting_date": meeting.isoformat()}
        reads: list[str] = []
        row = self._open_case(by, case, reads)
        event = self._publish(by, "case.shared", row.child, payload, basis="cwa-25-2")
        return self._done(event, "case.shared", row, reads)

    def review(self, by: Actor, case: str, decision: str, next_review: date | str | None = None) -> Done:
        """進行管理: the meeting's decision and the next review date."""
        if _blank(decision):
            raise refuse("missing_decision", "decision is required", "検討結果（方針）を入力してください", "decision")
        when = _day(next_review, "next_review")
        today = day_of(self._now())
        if when is not None and when <= today:
            raise refuse(
                "next_review_not_future",
                "the next review is after today",
                f"次回検討日は今日（{today}）より後の日付を指定してください",
                "next_review",
            )
        reads: list[str] = []
        row = self._open_case(by, case, reads)
        payload: dict[str, Any] = {"case": case, "decision": decision.strip()}
        if when is not None:
            payload["next_review"] = when.isoformat()
        event = self._publish(by, "case.reviewed", row.child, payload)
        return self._done(event, "case.reviewed", row, reads)

    def change_type(self, by: Actor, case: str, case_type: str) -> Done:
        """相談種別の変更."""
        if _blank(case_type):
            raise refuse("missing_case_type", "case_type is required", "新しい相談種別を指定してください", "case_type")
        reads: list[str] = []
        row = self._open_case(by, case, reads)
        if row.case_type == case_type.strip():
            raise refuse(
                "same_case_type",
                f"case {case} already has case_type {case_type}",
                f"ケース「{case}」の相談種別はすでに「{label(CASE_TYPE_JA, row.case_type)}」です",
                "case_type",
            )
        event = self._publish(by, "case.type_changed", row.child, {"case": case, "case_type": case_type.strip()})
        return self._done(event, "case.type_changed", row, reads)

    def close(self, by: Actor, case: str, reason: str, meeting: str) -> Done:
        """終結: the reason and the meeting that decided it are both required. A transferred case may be closed
        (members stop reading it); a closed one is not closed again."""
        if _blank(reason):
            raise refuse("missing_reason", "a case is closed with a reason", "終結の理由を入力してください", "reason")
        if _blank(meeting):
            raise refuse(
                "missing_meeting",
                "a case is closed with the meeting that decided it",
                "終結を決めた会議（例: 2026-09-30 実務者会議）を入力してください",
                "meeting",
            )
        reads: list[str] = []
        row = self._open_case(by, case, reads, allow_transferred=True)
        event = self._publish(
            by, "case.closed", row.child, {"case": case, "reason": reason.strip(), "meeting": meeting.strip()}
        )
        return self._done(event, "case.closed", row, reads)

    def transfer(self, by: Actor, case: str, to: str) -> Done:
        """ケース移管: to the こども家庭センター of the municipality the family moved to. That centre then reads the
        hand-over package under rule TRANSFER and acknowledges receipt."""
        center = self._center(by)
        target = self._orgs().get(to)
        if target is None or target.type != CENTER:
            raise refuse(
                "invalid_transfer_target",
                f"{to!r} is not a municipal_center",
                f"移管先「{to}」は登録されたこども家庭センターではありません",
                "to",
            )
        if to == by.org or (target.municipality and target.municipality == center.municipality):
            raise refuse(
                "transfer_to_same_municipality",
                "a case is transferred to another municipality's centre",
                "ケース移管先には転居先（他の市町村）のセンターを指定してください",
                "to",
            )
        reads: list[str] = []
        row = self._open_case(by, case, reads)
        event = self._publish(by, "case.transferred", row.child, {"case": case, "to": to})
        return self._done(event, "case.transferred", row, reads)

    # --- The receiving side of a transfer ----------------------------------------------------------------------

    def _incoming(self, by: Actor, case: str) -> dict[str, Any]:
        self._center(by)
        found = [
            t
            for t in center_cases(self.hub.store, by.org).transfers.values()
            if t["case"] == case and t["to"] == by.org
        ]
        if not found:
            raise refuse(
                "no_transfer",
                f"case {case!r} was not transferred to {by.org}",
                f"ケース「{case}」はこのセンターに移管されていません",
                "case",
            )
        return found[-1]

    def transfer_package(self, by: Actor, case: str) -> tuple[dict[str, Any], Timeline]:
        """The hand-over package as the receiving centre may read it (rule TRANSFER): a recorded read."""
        transfer = self._incoming(by, case)
        reads: list[str] = []
        timeline = self._read(by, transfer["child"], "support", reads)
        return transfer, timeline

    def acknowledge_transfer(self, by: Actor, case: str) -> Done:
        """移管の受理: the receiving centre reads the package (recorded) and acknowledges receipt."""
        transfer = self._incoming(by, case)
        if transfer["acknowledged_at"]:
            raise refuse(
                "already_acknowledged",
                f"the transfer of {case} was acknowledged",
                f"ケース「{case}」の移管はすでに受理されています（{transfer['acknowledged_at'][:10]}）",
                "case",
            )
        reads: list[str] = []
        timeline = self._read(by, transfer["child"], "support", reads)
        if not any(e.id == transfer["transfer"] for e in timeline.entries):
            raise refuse(
                "package_not_readable",
                "the transfer is not readable by the receiving centre",
                "移管の記録をこのセンターから読めません。移管元のセンターに確認してください",
                "case",
            )
        event = self._publish(
            by, "case.transfer_acknowledged", transfer["child"], {"case": case, "from": transfer["from"]}
        )
        return Done(event, "case.transfer_acknowledged", transfer["child"], case=case, access_records=reads)

    # --- The joint ledger (共同管理台帳) ---------------------------------------------------------------------------

    def _ledger_case(self, by: Actor, case: str, reads: list[str]) -> CaseRow:
        """The case as the acting side of the joint ledger sees it: the registering centre, or the 児童相談所
        covering its municipality (which reads it under rule LEDGER)."""
        if not self.hub.settings.joint_ledger:
            raise refuse(
                "joint_ledger_off",
                "the joint ledger is not enabled (setting joint_ledger)",
                "この環境では共同管理台帳（joint_ledger）が有効になっていません",
            )
        org = self._orgs().get(by.org)
        entry = case_entry(self.hub.store, case)
        registrar = self._orgs().get(entry.registrar) if entry is not None else None
        covering = (
            org is not None and org.type == JISO and registrar is not None and registrar.municipality in org.covers
        )
        if entry is None or (by.org != entry.registrar and not covering):
            # One answer whether the case does not exist or the asker is no side of its ledger (policy.md,
            # "Rejections leak nothing"): a third party never learns that the case exists.
            raise refuse(
                "not_ledger_party",
                f"{by.org} cannot update the joint ledger for case {case!r}",
                f"ケース「{case}」の共同管理台帳は更新できません。更新できるのは、ケースを登録したセンターと"
                "管轄の児童相談所だけです",
                "case",
            )
        if not entry.case_type.startswith("abuse"):
            raise refuse(
                "not_on_ledger",
                f"case {case!r} is not on the joint ledger",
                f"ケース「{case}」は共同管理台帳に載っていません（虐待ケースではありません）",
                "case",
            )
        timeline = self._read(by, entry.child, "meeting", reads)
        row = build_row(case, entry.child, timeline.entries, self._orgs(), datetime.fromisoformat(timeline.t))
        if row is None:
            raise refuse(
                "unknown_case",
                f"case {case!r} is not visible to {by.org}",
                f"ケース「{case}」はこの機関からは見えません",
                "case",
            )
        if row.status == "closed":
            raise refuse("case_closed", f"case {case!r} is closed", f"ケース「{case}」は終結しています", "case")
        return row

    def update_ledger(self, by: Actor, case: str, *, severity: str | None = None, status: str | None = None) -> Done:
        """共同管理台帳の更新: severity (重症度) and status (状況), by either side."""
        if _blank(severity) and _blank(status):
            raise refuse(
                "nothing_to_update",
                "give severity or status",
                "重症度（severity）か状況（status）の少なくとも一方を入力してください",
            )
        reads: list[str] = []
        row = self._ledger_case(by, case, reads)
        payload: dict[str, Any] = {"case": case}
        if severity is not None and not _blank(severity):
            payload["severity"] = severity.strip()
        if status is not None and not _blank(status):
            payload["status"] = status.strip()
        event = self._publish(by, "ledger.updated", row.child, payload, basis="joint-ledger")
        return self._done(event, "ledger.updated", row, reads)

    def protection(self, by: Actor, case: str, *, started: bool) -> Done:
        """一時保護の開始・解除 on the joint ledger. Temporary protection is the 児童相談所's measure
        (児童福祉法第33条), so only the covering 児童相談所 records it."""
        org = self._orgs().get(by.org)
        if org is None or org.type != JISO:
            raise refuse(
                "not_a_jiso",
                "temporary protection is recorded by the child guidance centre",
                "一時保護の開始・解除を記録できるのは児童相談所だけです",
                "org",
            )
        reads: list[str] = []
        row = self._ledger_case(by, case, reads)
        if started and row.protection:
            raise refuse(
                "already_protected",
                f"{case} is already in temporary protection",
                f"ケース「{case}」はすでに一時保護中です",
                "case",
            )
        if not started and not row.protection:
            raise refuse(
                "not_protected",
                f"{case} is not in temporary protection",
                f"ケース「{case}」は一時保護中ではありません",
                "case",
            )
        kind = "protection.started" if started else "protection.ended"
        event = self._publish(by, kind, row.child, {"case": case}, basis="joint-ledger")
        return self._done(event, kind, row, reads)

    # --- Support plans and consent (サポートプラン・同意) ---------------------------------------------------------

    @staticmethod
    def _plan_fields(
        wishes: Any, issues: Any, supports: Any, review_due: date | str | None, today: date
    ) -> dict[str, Any]:
        missing = [
            ja
            for value, ja in (
                (wishes, "意向（wishes）"),
                (issues, "課題（issues）"),
                (supports, "支援の種類及び内容（supports）"),
            )
            if _blank(value)
        ]
        if missing:
            raise refuse(
                "missing_plan_field",
                "wishes, issues and supports are required",
                f"{'・'.join(missing)}を入力してください",
            )
        due = _day(review_due, "review_due")
        if due is None:
            raise refuse(
                "missing_review_due",
                "a plan has a review date",
                "プランの見直し時期（review_due）を入力してください",
                "review_due",
            )
        if due <= today:
            raise refuse(
                "review_due_not_future",
                "the review date is after today",
                f"プランの見直し時期は今日（{today}）より後の日付を指定してください",
                "review_due",
            )

        def clean(value: Any) -> Any:
            return (
                [str(v).strip() for v in value if str(v).strip()]
                if isinstance(value, (list, tuple))
                else str(value).strip()
            )

        return {
            "wishes": clean(wishes),
            "issues": clean(issues),
            "supports": clean(supports),
            "review_due": due.isoformat(),
        }

    def _plan(self, by: Actor, plan: str, reads: list[str]) -> PlanState:
        self._center(by)
        child = center_cases(self.hub.store, by.org).plans.get(plan)
        if child is None:
            raise refuse(
                "unknown_plan",
                f"plan {plan!r} was not created by {by.org}",
                f"プラン「{plan}」はこのセンターが作成したプランではありません",
                "plan",
            )
        states = plan_states(self._read(by, child, "support", reads).entries, by.org, child)
        if plan not in states:
            raise refuse(
                "unknown_plan",
                f"plan {plan!r} is not visible to {by.org}/{by.role}",
                f"プラン「{plan}」はこの担当からは見えません",
                "plan",
            )
        return states[plan]

    def create_plan(
        self,
        by: Actor,
        *,
        child: str,
        wishes: Any,
        issues: Any,
        supports: Any,
        review_due: date | str | None,
        plan: str | None = None,
        **extra: Any,
    ) -> Done:
        """サポートプラン 第1版. ``extra`` payload fields may be marked sensitive by the caller (not shared
        unredacted under consent)."""
        self._center(by)
        fields = self._plan_fields(wishes, issues, supports, review_due, day_of(self._now()))
        plan = plan.strip() if plan else f"P-{uuid.uuid4().hex[:10]}"
        if plan in center_cases(self.hub.store, by.org).plans:
            raise refuse(
                "plan_exists",
                f"plan id {plan!r} is already used",
                f"プラン番号「{plan}」はすでに使われています",
                "plan",
            )
        reads: list[str] = []
        self._read_known_child(by, child, "support", reads)
        event = self._publish(by, "plan.created", child, {"plan": plan, "version": 1, **fields, **extra})
        return Done(event, "plan.created", child, plan=plan, version=1, access_records=reads)

    def revise_plan(
        self,
        by: Actor,
        plan: str,
        *,
        wishes: Any,
        issues: Any,
        supports: Any,
        review_due: date | str | None,
        **extra: Any,
    ) -> Done:
        """A new version of the plan. Consents already given cover the versions they name, not this one."""
        fields = self._plan_fields(wishes, issues, supports, review_due, day_of(self._now()))
        reads: list[str] = []
        state = self._plan(by, plan, reads)
        version = state.latest_version + 1
        event = self._publish(by, "plan.revised", state.child, {"plan": plan, "version": version, **fields, **extra})
        return Done(event, "plan.revised", state.child, plan=plan, version=version, access_records=reads)

    def grant_consent(
        self,
        by: Actor,
        plan: str,
        *,
        version: int,
        recipients: Sequence[str],
        signed_by: str,
        valid_until: date | str | None = None,
    ) -> Done:
        """同意: the family agrees to share this version of the plan with the named organisations."""
        if _blank(signed_by):
            raise refuse(
                "missing_signed_by",
                "who signed the consent is required",
                "同意書に署名した人（signed_by、例: 母）を入力してください",
                "signed_by",
            )
        recipients = [r.strip() for r in recipients if r and r.strip()]
        if not recipients:
            raise refuse(
                "missing_recipients",
                "name at least one recipient",
                "共有先の機関（recipients）を1つ以上指定してください",
                "recipients",
            )
        orgs = self._orgs()
        unknown = [r for r in recipients if r not in orgs]
        if unknown:
            raise refuse(
                "unknown_recipient",
                f"not registered: {', '.join(unknown)}",
                f"共有先「{'、'.join(unknown)}」はハブに登録された機関ではありません",
                "recipients",
            )
        until = _day(valid_until, "valid_until")
        if until is not None and until <= day_of(self._now()):
            raise refuse(
                "consent_expired",
                "valid_until is in the past",
                "同意の有効期限（valid_until）には今日より後の日付を指定してください",
                "valid_until",
            )
        reads: list[str] = []
        state = self._plan(by, plan, reads)
        if not any(v["version"] == int(version) for v in state.versions):
            raise refuse(
                "unknown_version",
                f"plan {plan} has no version {version}",
                f"プラン「{plan}」に第{version}版はありません（最新は第{state.latest_version}版）",
                "version",
            )
        payload: dict[str, Any] = {
            "plan": plan,
            "version": int(version),
            "recipients": recipients,
            "signed_by": signed_by.strip(),
        }
        if until is not None:
            payload["valid_until"] = until.isoformat()
        event = self._publish(by, "consent.granted", state.child, payload)
        return Done(event, "consent.granted", state.child, plan=plan, version=int(version), access_records=reads)

    def withdraw_consent(self, by: Actor, plan: str, consent: str) -> Done:
        """同意の撤回: from now on the recipients no longer read the plan under that consent."""
        reads: list[str] = []
        state = self._plan(by, plan, reads)
        found = next((c for c in state.consents if c["event"] == consent), None)
        if found is None:
            raise refuse(
                "unknown_consent",
                f"no consent {consent!r} for plan {plan}",
                f"プラン「{plan}」に同意「{consent}」はありません",
                "consent",
            )
        if found["withdrawn_at"]:
            raise refuse(
                "already_withdrawn",
                f"consent {consent} was withdrawn",
                f"同意「{consent}」はすでに撤回されています（{found['withdrawn_at'][:10]}）",
                "consent",
            )
        event = self._publish(by, "consent.withdrawn", state.child, {"consent": consent})
        return Done(event, "consent.withdrawn", state.child, plan=plan, access_records=reads)

    def refuse_consent(self, by: Actor, plan: str) -> Done:
        """同意しない: support goes on under the internal plan; nothing of the plan is shared."""
        reads: list[str] = []
        state = self._plan(by, plan, reads)
        event = self._publish(by, "consent.refused", state.child, {"plan": plan})
        return Done(event, "consent.refused", state.child, plan=plan, access_records=reads)
