"""The catalogue of event kinds (policy.md, "Kinds"): one payload model per kind, in one place.

To add a kind, write its payload model and add it to ``KINDS``. Payload models allow extra fields (sources may
send more, e.g. a ``disclosures`` field marked sensitive); the named fields are checked.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, NonNegativeInt, model_validator

from events.dates import Day, Moment, checked_month

Text = Annotated[str, Field(min_length=1, max_length=20_000)]
Ident = Annotated[str, Field(min_length=1, max_length=200)]
TextOrList = Text | list[Text]
DateOrTime = Moment | Day  # a date-time keeps its instant; a bare date is a day (both in the hub's range)


def _municipality_code(value: str) -> str:
    if not re.fullmatch(r"\d{6}", value):
        raise ValueError("a municipality code has 6 digits (全国地方公共団体コード), e.g. 442020")
    return value


def _month(value: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
        raise ValueError("a month is written YYYY-MM, e.g. 2026-04")
    return checked_month(value)


MunicipalityCode = Annotated[str, AfterValidator(_municipality_code)]
Month = Annotated[str, AfterValidator(_month)]


class Payload(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)


# Child and residence (住民記録)
class ChildRegistered(Payload):
    residence: MunicipalityCode
    birth_date: Day | None = None
    name_kana: str | None = None


class ResidenceChanged(Payload):
    residence: MunicipalityCode


class ChildErased(Payload):
    reason: Text


# Enrolment (在籍)
class Enrollment(Payload):
    org: Ident
    student_no: Ident
    grade: str | None = None


# Concerns (気づき) and notifications (通告)
class ConcernReported(Payload):
    summary: Text
    signs: TextOrList | None = None


class NotificationFiled(Payload):
    summary: Text


# Attendance (出欠)
class AttendanceMonthly(Payload):
    month: Month
    school_days: NonNegativeInt
    attended: NonNegativeInt
    absent: NonNegativeInt
    absent_without_contact: NonNegativeInt
    late: NonNegativeInt | None = None
    early_leave: NonNegativeInt | None = None
    reasons: TextOrList | None = None
    notes: str | None = None

    @model_validator(mode="after")
    def _days_add_up(self) -> AttendanceMonthly:
        if self.attended + self.absent > self.school_days:
            raise ValueError("attended + absent exceeds school_days (出席日数 + 欠席日数 > 授業日数)")
        if self.absent_without_contact > self.absent:
            raise ValueError("absent_without_contact exceeds absent (うち連絡なし > 欠席日数)")
        return self


class AttendanceDaily(Payload):
    date: Day
    status: Literal["present", "absent", "late", "early_leave", "suspended", "bereavement"]
    contacted: bool | None = None
    reason: str | None = None


class AbsenceAlert(Payload):
    reason: Literal["consecutive_absence", "no_contact", "injury"]
    days: NonNegativeInt | None = None
    since: Day | None = None


# Health and services (健診・サービス利用・訪問)
class HealthCheckup(Payload):
    checkup: Text  # 健診名, e.g. 1歳6か月児健診
    date: Day
    attended: bool | None = None  # 受診 / 未受診: a missed check-up is a sign the centre must see
    findings: TextOrList | None = None


class ServiceUsage(Payload):
    service: Text
    from_: DateOrTime = Field(alias="from")
    to: DateOrTime | None = None


class VisitReport(Payload):
    date: Day
    observations: Text
    # 緊急の報告 (meetings-and-services.md §2): an urgent report names why; it tops the centre's urgent inbox
    urgent: bool = False
    urgent_reason: Text | None = None

    @model_validator(mode="after")
    def _urgent_has_reason(self) -> VisitReport:
        if self.urgent and (self.urgent_reason is None or not self.urgent_reason.strip()):
            raise ValueError("urgent_reason is required when urgent is true (緊急の場合は緊急の理由を書いてください)")
        return self


class NoteRecorded(Payload):
    text: Text


# 要対協 case work
class CaseRef(Payload):
    case: Ident


class CaseRegistered(CaseRef):
    category: Literal["youhogo", "youshien", "tokutei_ninpu"]  # 要保護児童 / 要支援児童 / 特定妊婦
    case_type: Ident  # 相談種別, e.g. abuse_neglect, neglect


class CaseMember(CaseRef):
    member: Ident


class CaseShared(CaseRef):
    summary: Text


class CaseReviewed(CaseRef):
    decision: Text
    next_review: DateOrTime | None = None


class CaseTypeChanged(CaseRef):
    case_type: Ident


class CaseClosed(CaseRef):
    reason: Text
    meeting: Text | None = (
        None  # the meeting that decided the closure (終結を決めた会議); required by the case commands
    )


class CaseTransferred(CaseRef):
    to: Ident


class CaseTransferAcknowledged(CaseRef):
    """ケース移管の受理: the receiving centre acknowledges a transferred case; ``from`` is the transferring centre."""

    from_: Ident = Field(alias="from")


class LedgerUpdated(CaseRef):
    severity: str | None = None
    status: str | None = None


# Support plans and consent (サポートプラン・同意)
class PlanVersion(Payload):
    plan: Ident
    version: Annotated[int, Field(ge=1)]
    wishes: TextOrList  # 意向
    issues: TextOrList  # 課題
    supports: TextOrList  # 支援の種類及び内容
    review_due: DateOrTime | None = None


class ConsentGranted(Payload):
    plan: Ident
    version: Annotated[int, Field(ge=1)]
    recipients: Annotated[list[Ident], Field(min_length=1)]
    signed_by: str | None = None
    valid_until: DateOrTime | None = None


class ConsentWithdrawn(Payload):
    consent: Ident


class ConsentRefused(Payload):
    plan: Ident


# 要対協 target lists for periodic reports (定期的な情報提供の対象名簿)
class TargetList(Payload):
    school: Ident
    student_no: Ident
    from_month: Month | None = None


# Identity linking (紐付け): an organisation's own number for the child (児童生徒番号, 宛名番号 …) and the hub id
class IdentityLink(Payload):
    org: Ident
    local_number: Ident


# Households (世帯, meetings-and-services.md §3): the centre of residence links a child to a household it keeps
class HouseholdMembership(Payload):
    household: Ident  # the household's id, chosen by the centre (a centre's household ids are its own)
    relation: Ident | None = None  # 続柄 in the household: sibling, mother, newborn … (events.labels.RELATION_JA)


class EmergencyDeclared(Payload):
    reason: Annotated[str, Field(min_length=1, max_length=20_000, pattern=r"\S")]


# Status inquiries before a meeting (事前照会, meetings-and-services.md §1)
class InquiryAttendance(Payload):
    """出欠 since the member's last answer: school days, absences, and of them those without contact."""

    days: NonNegativeInt
    absent: NonNegativeInt
    absent_without_contact: NonNegativeInt

    @model_validator(mode="after")
    def _days_add_up(self) -> InquiryAttendance:
        if self.absent > self.days:
            raise ValueError("absent exceeds days (欠席日数 > 日数)")
        if self.absent_without_contact > self.absent:
            raise ValueError("absent_without_contact exceeds absent (うち連絡なし > 欠席日数)")
        return self


class InquirySent(CaseRef):
    inquiry: Ident
    meeting_date: Day
    due: Day
    questions: Text | None = None


class InquiryAnswered(Payload):
    inquiry: Ident
    no_change: bool = False
    attendance: InquiryAttendance | None = None
    observations: str = Field(default="", max_length=20_000)
    actions: str = Field(default="", max_length=20_000)
    concerns: Text | None = None
    safety_scale: Annotated[int, Field(ge=0, le=10, strict=True)] | None = None
    checklist: list[Ident] | None = None

    @model_validator(mode="after")
    def _says_something(self) -> InquiryAnswered:
        if not self.no_change and not self.observations.strip():
            raise ValueError("observations are required unless no_change is ticked (変わりなし でなければ様子を記入)")
        return self


# --- Family-support services and urgent reports (家庭支援事業, meetings-and-services.md §2) ---------------------
class ServiceRecommended(Payload):
    """利用勧奨: the centre recommends a service to the family, orally or in writing, with its reason."""

    recommendation: Ident
    service: Text
    form: Literal["oral", "written"]
    reason: Text


class ServiceRecommendationResult(Payload):
    recommendation: Ident
    result: Literal["accepted", "declined", "no_answer"]
    note: Text | None = None


class ServiceOrdered(Payload):
    """措置: the service ordered by written notice, from a day."""

    order: Ident
    service: Text
    from_: Day = Field(alias="from")
    notice_date: Day


class ServiceReferred(Payload):
    """The centre refers the child to a provider (``to``), telling it what it needs to know."""

    referral: Ident
    service: Text
    start: Day
    frequency: Text | None = None
    summary: Text


class ServiceMonitoring(Payload):
    referral: Ident
    observations: Text
    recommendation: Literal["continue", "extend", "change", "end"]


class ServiceEnded(Payload):
    referral: Ident
    reason: Text


class ReportAcknowledged(Payload):
    """The centre tells the provider that its report (a ``visit.report`` or ``service.usage``) was read."""

    report: Ident
    note: Text | None = None
    handled_by: Ident | None = None


# The payload fields the rules read (policy.md, "Kinds"): residence, case and membership, consent, plans and
# transfers. They are facts about who may read, not what happened to the child, so the store keeps them readable
# after an erasure (events.sealing) and every past decision can still be replayed; every other payload field is
# content, sealed under the child's key and destroyed with it.
POLICY_FIELDS = frozenset(
    {"residence", "case", "case_type", "member", "to", "valid_until", "consent", "plan", "recipients", "version", "org"}
    # family-support services: the ids the publish rules follow from a result, a monitoring or an acknowledgement
    | {"recommendation", "referral", "report"}
)
POLICY_FIELDS |= {"inquiry"}  # 事前照会: the answer names its inquiry, which decides who may answer


KINDS: dict[str, type[Payload]] = {
    "child.registered": ChildRegistered,
    "residence.changed": ResidenceChanged,
    "child.erased": ChildErased,
    "enrollment.started": Enrollment,
    "enrollment.ended": Enrollment,
    "concern.reported": ConcernReported,
    "notification.filed": NotificationFiled,
    "attendance.monthly": AttendanceMonthly,
    "attendance.daily": AttendanceDaily,
    "absence.alert": AbsenceAlert,
    "health.checkup": HealthCheckup,
    "service.usage": ServiceUsage,
    "visit.report": VisitReport,
    "note.recorded": NoteRecorded,
    "case.registered": CaseRegistered,
    "case.member_assigned": CaseMember,
    "case.member_removed": CaseMember,
    "case.shared": CaseShared,
    "case.reviewed": CaseReviewed,
    "case.type_changed": CaseTypeChanged,
    "case.closed": CaseClosed,
    "case.transferred": CaseTransferred,
    "case.transfer_acknowledged": CaseTransferAcknowledged,
    "ledger.updated": LedgerUpdated,
    "protection.started": CaseRef,
    "protection.ended": CaseRef,
    "plan.created": PlanVersion,
    "plan.revised": PlanVersion,
    "consent.granted": ConsentGranted,
    "consent.withdrawn": ConsentWithdrawn,
    "consent.refused": ConsentRefused,
    "target_list.assigned": TargetList,
    "target_list.removed": TargetList,
    "emergency.declared": EmergencyDeclared,
    "identity.linked": IdentityLink,
    "identity.unlinked": IdentityLink,
    # 事前照会 (meetings-and-services.md §1)
    "inquiry.sent": InquirySent,
    "inquiry.answered": InquiryAnswered,
    # family-support services and urgent reports (meetings-and-services.md §2)
    "service.recommended": ServiceRecommended,
    "service.recommendation_result": ServiceRecommendationResult,
    "service.ordered": ServiceOrdered,
    "service.referred": ServiceReferred,
    "service.monitoring": ServiceMonitoring,
    "service.ended": ServiceEnded,
    "report.acknowledged": ReportAcknowledged,
    # Households (世帯, meetings-and-services.md §3)
    "household.joined": HouseholdMembership,
    "household.left": HouseholdMembership,
}


def normalise_payload(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Validate ``payload`` for ``kind`` and return it as plain JSON values (dates as ISO strings).

    Raises ``KeyError`` for an unknown kind and ``pydantic.ValidationError`` for a bad payload.
    """
    model = KINDS[kind].model_validate(payload)
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True)


def as_datetime(value: str | date | datetime) -> datetime:
    """A payload's date or date-time as an aware datetime: a bare date means 00:00 in Japan (+09:00)."""
    from datetime import time, timedelta, timezone

    if isinstance(value, str):
        value = datetime.fromisoformat(value) if "T" in value or " " in value else date.fromisoformat(value)
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, time(0, 0), tzinfo=timezone(timedelta(hours=9)))
