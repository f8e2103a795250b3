"""Auditors' tools (監査・個人情報保護担当): queries over the access log, never over case content.

Auditors check who accessed what, and on which ground. Everything here is built from access records and the
metadata of events (ids, kinds, sources, times, rules, field names); no payload value leaves this module, with
one deliberate exception: the reason an organisation gave when it declared an emergency, which is the stated
ground of an emergency access and what a reviewer has to judge (``emergency_accesses``).

- ``reads_of_child``: who read child X in a period, as whom, for which purpose, decided how (one child's stream).
- ``reconstruct`` / ``reconstruct_at``: what reader R saw about child X in a past read, rebuilt from the log at
  the record's positions and settings, shown as metadata, with the proof that it is exact: the digest of the
  rebuilt content equals the ``content_digest`` recorded at the time (``services.reading.returned_digest``).
  ``reconstruct_timeline`` gives the full rebuilt ``Timeline`` to code (tests, verification), never to auditors.
- ``emergency_accesses``: every read allowed with purpose ``emergency``, with the declaration's reason and window
  and the reviewers' findings; ``record_finding`` stores a finding (``EmergencyReview`` stream per record).
- ``disclosure_report``: the family's disclosure report (開示請求への回答): which organisations read the child's
  record, when and on what ground, in plain Japanese; ``disclosure_html`` prints it (A4).
- ``policy_impact``: replay a period under changed settings and list the decisions that would differ.

Auditors are audited too: every query is appended to the asking organisation's ``AuditTrail`` stream (who, when,
which query, which child, how many results) before its result is returned, like a read's access record.
``audit_trail`` lists them. Period queries over the whole log scan the access records in the log's order and stop
once records are recorded more than ``CLOCK_SKEW`` after the period (records are appended in the order of the hub's
clock, up to that skew between hub processes).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from adapters.csvfile import ERAS
from consent.model import SETTING_RANGES, ReadDecision, Settings
from events.clock import JST
from events.dates import day_in_range, moment_in_range, out_of_range
from events.envelope import ja_for
from events.labels import FINDING_JA, ORG_TYPE_JA, PURPOSE_JA, ROLE_JA, RULE_JA
from events.model import Org
from events.problems import Problem, Rejected
from events.retry import retry_conflicts
from events.store import NAMESPACE, ChildRecord, HubStore
from services.audit.replay import History, Loaded, considered, load, rebuild, replay, stored_records
from services.reading.timeline import Timeline
from services.templates import render

CLOCK_SKEW = timedelta(minutes=5)
RULES = ("OWN", "DIRECT", "CASE", "LEDGER", "CONSENT", "TRANSFER", "EMERGENCY")
Finding = Literal["justified", "not_justified", "needs_follow_up"]
REFUSAL_JA = {
    "unknown_organisation": "登録されていない機関からの閲覧のため、認められませんでした",
    "organisation_type_reads_no_case_content": "この種類の機関は記録の内容を見られないため、認められませんでした",
    "purpose_not_allowed": "閲覧の目的が認められていないため、認められませんでした",
    "no_emergency_window": "緊急対応の期間外のため、認められませんでした",
}


class NotFound(Exception):
    """What an auditor asked about does not exist (HTTP 404)."""

    def __init__(self, code: str, message: str, message_ja: str):
        super().__init__(message)
        self.code, self.message, self.message_ja = code, message, message_ja


# --- Dates -----------------------------------------------------------------------------------------------------

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_HELP = "（例: 2026-05-12 または 2026-05-12T10:00:00+09:00）"


def parse_moment(text: str | date | datetime | None, field: str, *, end: bool = False) -> datetime | None:
    """A period bound: a date (a day in Japan; as an end, the whole day is included) or a date-time (without an
    offset: Japan time). ``Rejected`` naming ``field`` when it is neither, or outside the hub's range of dates
    (``events.dates``)."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if isinstance(text, datetime):
        return text if text.tzinfo else text.replace(tzinfo=JST)
    moment: datetime | None = None
    try:
        if isinstance(text, date):
            day = text
        elif _DAY.match(text.strip()):
            day = date.fromisoformat(text.strip())
        else:
            moment = datetime.fromisoformat(text.strip())
            moment = moment if moment.tzinfo else moment.replace(tzinfo=JST)
    except ValueError:
        raise Rejected(
            [
                Problem(
                    "invalid_date",
                    f"{field}: not a date (YYYY-MM-DD) or a date-time",
                    f"{field}: 日付の形式が正しくありません{_DATE_HELP}",
                    field,
                )
            ]
        ) from None
    if moment is not None:
        if not moment_in_range(moment):
            raise Rejected([out_of_range(field)])
        return moment
    if not day_in_range(day):
        raise Rejected([out_of_range(field)])
    start = datetime.combine(day, time(0, 0), tzinfo=JST)
    return start + timedelta(days=1) if end else start


@dataclass(frozen=True)
class Period:
    """[since, until): either end may be open."""

    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def of(cls, since: Any = None, until: Any = None) -> Period:
        problems: list[Problem] = []
        bounds: list[datetime | None] = []
        for value, name, end in ((since, "since", False), (until, "until", True)):
            try:
                bounds.append(parse_moment(value, name, end=end))
            except Rejected as rejected:
                problems += rejected.problems
                bounds.append(None)
        if problems:
            raise Rejected(problems)
        start, stop = bounds
        if start is not None and stop is not None and stop <= start:
            raise Rejected(
                [
                    Problem(
                        "invalid_period",
                        "until must be after since",
                        "until（終了日）は since（開始日）より後にしてください",
                        "until",
                    )
                ]
            )
        return cls(start, stop)

    def contains(self, t: datetime) -> bool:
        return (self.since is None or self.since <= t) and (self.until is None or t < self.until)

    def past(self, t: datetime) -> bool:
        """``t`` lies after the period by more than the clock skew: a scan in log order may stop."""
        return self.until is not None and t > self.until + CLOCK_SKEW

    def to_dict(self) -> dict[str, str | None]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }


def wareki(moment: str | datetime, *, with_time: bool = True) -> str:
    """A date (and time) as Japanese readers write it: 令和8年5月12日 11:00 (Japan time)."""
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    value = value.astimezone(JST) if value.tzinfo else value
    era = next((e for e in ERAS if e.start <= value.date()), None)
    if era is None:
        text = f"{value.year}年{value.month}月{value.day}日"
    else:
        year = value.year - era.first_year + 1
        text = f"{era.name}{'元' if year == 1 else year}年{value.month}月{value.day}日"
    return f"{text} {value:%H:%M}" if with_time else text


# --- Who asks, and the streams auditors write ------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who asks: the auditor organisation, the person, and through what (``http`` or ``cli``)."""

    org: str
    user: str
    via: str


class AuditTrail(Aggregate):
    """The queries one auditor organisation made (the auditors' own access log)."""

    @staticmethod
    def create_id(org: str) -> UUID:
        return uuid5(NAMESPACE, f"audit-trail:{org}")

    def __init__(self, org: str):
        self.org = org
        self.count = 0

    @event("QueryRecorded")
    def record_query(self, query: dict) -> None:
        self.count += 1


class EmergencyReview(Aggregate):
    """The reviewers' findings on one emergency access (by its access record id), in the order given."""

    @staticmethod
    def create_id(record: str) -> UUID:
        return uuid5(NAMESPACE, f"emergency-review:{record}")

    def __init__(self, record: str):
        self.record = record
        self.findings: list[dict[str, Any]] = []

    @event("FindingRecorded")
    def add_finding(self, finding: dict) -> None:
        self.findings.append(finding)


# --- Results (also the HTTP API's response models) -----------------------------------------------------------


class ReaderRef(BaseModel):
    org: str
    org_name: str | None = Field(description="The organisation's registered name, when it has one.")
    org_type: str | None = Field(description="Its type; null for an organisation not registered in the hub.")
    role: str | None
    user: str | None


class ReadRow(BaseModel):
    record: str = Field(description="The access record's id.")
    sequence: int = Field(description="Its place in the child's access log (1, 2, …).")
    child: str
    t: str = Field(description="When the read was made.")
    reader: ReaderRef
    purpose: str
    allowed: bool = Field(description="False: the read was refused as a whole.")
    reason: str = Field(description="evaluated, erased, or why it was refused.")
    rules: dict[str, int] = Field(description="How many events were shown under each rule.")
    shown: int = Field(description="Events returned to the reader.")
    withheld: int = Field(description="Events considered and not shown (the reader may not have been told).")
    redacted_events: int = Field(description="Events returned with sensitive fields redacted.")
    policy_version: str
    content_digest: str | None = Field(description="Digest of what the read returned (null for older records).")


class ChildReads(BaseModel):
    child: str
    since: str | None
    until: str | None
    reads: list[ReadRow]
    unreadable: list[int] = Field(description="Sequence numbers of records that do not open (see audit verify).")


class ReconstructedEntry(BaseModel):
    """An event as it was returned, without its content."""

    id: str
    kind: str
    source: str
    basis: str
    at: str
    rule: str
    redacted: list[str] = Field(description="Payload fields that were replaced by the redaction marker.")
    function: str | None = None
    to: str | None = None
    sensitive: list[str] = Field(default_factory=list)


class Reconstruction(BaseModel):
    record: str
    sequence: int
    child: str
    t: str
    reader: ReaderRef
    purpose: str
    allowed: bool
    reason: str
    policy_version: str
    log_position: int
    child_position: int
    registry_version: int
    settings: dict[str, Any]
    entries: list[ReconstructedEntry] = Field(
        description=(
            "What was returned, in order, as metadata only; empty when the child was erased since (see erased_since)."
        )
    )
    withheld: int | None = Field(description="The withheld count the reader was told (null: told nothing).")
    decision_matches: bool | None = Field(description="The policy, replayed, gives the recorded decision.")
    recorded_digest: str | None
    replayed_digest: str | None
    exact: bool | None = Field(
        description=(
            "The rebuilt content has the recorded digest: this is exactly what was returned. Null when the record "
            "predates content digests, or when events it considered were erased since."
        )
    )
    erased_since: int = Field(
        description=("Events the read considered whose content was erased since: then nothing is reconstructed.")
    )


class FindingOut(BaseModel):
    record: str
    finding: Finding
    finding_ja: str
    note: str
    reviewer: str
    org: str = Field(description="The reviewer's organisation.")
    at: str
    via: str


class Declaration(BaseModel):
    event: str = Field(description="The emergency.declared event.")
    org: str
    at: str
    until: str = Field(description="End of the window (emergency_hours after the declaration).")
    reason: str | None = Field(description="The reason given when declaring (null if erased since).")


class EmergencyAccess(BaseModel):
    record: str
    sequence: int
    child: str
    t: str
    reader: ReaderRef
    shown: int
    rules: dict[str, int]
    declaration: Declaration | None
    findings: list[FindingOut]
    reviewed: bool


class Emergencies(BaseModel):
    since: str | None
    until: str | None
    accesses: list[EmergencyAccess]


class Ground(BaseModel):
    rule: str
    name_ja: str
    law_ja: str
    events: int = Field(description="How many records were shown on this ground.")


class DisclosureRead(BaseModel):
    record: str
    at: str
    at_ja: str
    purpose: str
    purpose_ja: str
    role_ja: str
    allowed: bool
    result_ja: str
    shown: int
    grounds: list[Ground]


class DisclosureOrg(BaseModel):
    org: str
    name: str
    type_ja: str
    reads: list[DisclosureRead]
    read_count: int
    refused_count: int


class Disclosure(BaseModel):
    child: str
    generated_at: str
    generated_at_ja: str
    organisations: list[DisclosureOrg]
    total_reads: int
    refused_reads: int
    grounds: list[Ground] = Field(description="Every ground that appears in the report, explained.")


class DecisionSummary(BaseModel):
    allowed: bool
    reason: str
    shown: int
    rules: dict[str, int]


class EventChange(BaseModel):
    event: str
    kind: str | None
    before: str | None = Field(description="The rule that showed it, or null: not shown.")
    after: str | None
    redacted_before: list[str]
    redacted_after: list[str]


class ChangedRead(BaseModel):
    record: str
    child: str
    t: str
    reader: ReaderRef
    purpose: str
    before: DecisionSummary
    after: DecisionSummary
    events: list[EventChange]
    summary: str


class PolicyImpact(BaseModel):
    since: str | None
    until: str | None
    settings: dict[str, Any] = Field(description="The settings changed for the replay.")
    policy_version: str | None = Field(
        default=None, description="The policy version of the replay (null: the version each record names)."
    )
    replayed: int
    unreplayable: int = Field(description="Records not replayed: unreadable, or about events erased since.")
    changed: list[ChangedRead]


def _settings_model() -> type[BaseModel]:
    """The settings an impact report may change: every field of ``consent.model.Settings``, all optional; numbers
    within their range in ``consent.model.SETTING_RANGES`` (the same as ``tsunagu settings set``)."""
    defaults = Settings()
    spec: dict[str, Any] = {}
    for f in fields(Settings):
        kind = type(getattr(defaults, f.name))
        spec[f.name] = (
            (bool | None, None)
            if kind is bool
            else (int | None, Field(default=None, ge=SETTING_RANGES[f.name][0], le=SETTING_RANGES[f.name][1]))
            if kind is int
            else (kind | None, None)
        )
    return create_model("SettingsChanges", __config__=ConfigDict(extra="forbid", strict=True), **spec)


SettingsChanges = _settings_model()
"""Settings to change for a policy impact report (``consent.model.Settings``; unknown names are refused)."""


def settings_changes(
    raw: Mapping[str, Any] | None, field: str = "settings", *, required: bool = True
) -> dict[str, Any]:
    """Validated changes (``Rejected`` naming ``settings.NAME``); at least one is required unless ``required`` is
    false (an impact report that changes the policy version instead)."""
    try:
        model = SettingsChanges.model_validate(dict(raw or {}))
    except ValidationError as error:
        problems = []
        for e in error.errors():
            name = ".".join([field, *(str(p) for p in e["loc"])])
            ja = "この設定はありません" if e["type"] == "extra_forbidden" else ja_for(e)
            problems.append(Problem("invalid_settings", f"{name}: {e['msg']}", f"{name}: {ja}", name))
        raise Rejected(problems) from None
    changes = model.model_dump(exclude_none=True)
    if not changes and required:
        raise Rejected(
            [
                Problem(
                    "no_settings",
                    "name at least one setting to change",
                    f"変更する設定を1つ以上指定してください（{', '.join(f.name for f in fields(Settings))}）",
                    field,
                )
            ]
        )
    return changes


# --- The queries ---------------------------------------------------------------------------------------------


def usable(record: Mapping[str, Any] | None) -> bool:
    """The record has what the queries read (a record altered by someone holding the keys may not)."""
    try:
        datetime.fromisoformat(record["t"])  # type: ignore[index]
        datetime.fromisoformat(record.get("recorded_at") or record["t"])  # type: ignore[union-attr]
        decision, reader = record["decision"], record["reader"]  # type: ignore[index]
        return (
            isinstance(record["id"], str)
            and isinstance(record["child"], str)  # type: ignore[index]
            and isinstance(reader, dict)
            and isinstance(reader.get("org"), str)
            and isinstance(record["purpose"], str)
            and isinstance(decision, dict)  # type: ignore[index]
            and isinstance(decision.get("allowed"), bool)
            and isinstance(decision.get("reason"), str)
            and isinstance(decision.get("events"), list)
            and all(isinstance(d, dict) and "event" in d for d in decision["events"])
            and isinstance(record["child_position"], int)  # type: ignore[index]
            and isinstance(record["registry_version"], int)  # type: ignore[index]
            and isinstance(record["settings"], dict)
        )  # type: ignore[index]
    except (KeyError, TypeError, ValueError, AttributeError):
        return False


class Auditing:
    """The auditors' queries over one store; each query is recorded in the asker's ``AuditTrail`` first."""

    def __init__(self, store: HubStore, clock: Callable[[], datetime]):
        self.store = store
        self.clock = clock

    # -- helpers

    def _orgs(self) -> Mapping[str, Org]:
        return self.store.registry().orgs

    def _reader(self, record: Mapping[str, Any], orgs: Mapping[str, Org]) -> ReaderRef:
        r = record["reader"]
        org = orgs.get(r["org"])
        return ReaderRef(
            org=r["org"],
            org_name=org.name if org else None,
            org_type=org.type if org else None,
            role=r.get("role"),
            user=r.get("user"),
        )

    def _child_records(self, child: str) -> tuple[list[Loaded], list[int]]:
        """The child's records that open and have the shape of an access record; the sequence numbers of the
        others (``tsunagu audit verify`` says what is wrong with them)."""
        loaded = [load(self.store, s) for s in stored_records(self.store, child)]
        return [x for x in loaded if usable(x.record)], [x.sequence for x in loaded if not usable(x.record)]

    def _records_in(self, period: Period, counter: Counter | None = None) -> Iterator[dict[str, Any]]:
        """Usable records in ``period``, in log order, stopping past its end (see the module docstring)."""
        for stored in stored_records(self.store):
            loaded = load(self.store, stored)
            if not usable(loaded.record):
                if counter is not None:
                    counter["unreadable"] += 1
                continue
            record = loaded.record
            assert record is not None
            if period.past(datetime.fromisoformat(record.get("recorded_at") or record["t"])):
                return
            if period.contains(datetime.fromisoformat(record["t"])):
                yield record

    def _log(self, actor: Actor, query: str, *, child: str | None = None, results: int, **params: Any) -> None:
        """Append the query to the asker's audit trail (before its result is returned)."""
        entry = {
            "query": query,
            "child": child,
            "params": {k: v for k, v in params.items() if v is not None},
            "results": results,
            "org": actor.org,
            "user": actor.user,
            "via": actor.via,
            "at": self.clock().isoformat(),
        }

        def append_once() -> None:
            trail = self.store.get_or_none(AuditTrail.create_id(actor.org)) or AuditTrail(actor.org)
            trail.record_query(query=entry)
            self.store.save(trail)

        retry_conflicts(append_once)  # another query of the same organisation may append at the same time

    @staticmethod
    def _counts(decision: Mapping[str, Any]) -> tuple[dict[str, int], int, int, int]:
        events = decision.get("events") or []
        shown = [d for d in events if d.get("allowed")]
        rules = Counter(d.get("rule") or "" for d in shown)
        ordered = {r: rules[r] for r in RULES if rules[r]} | {r: n for r, n in rules.items() if r not in RULES}
        return ordered, len(shown), len(events) - len(shown), sum(1 for d in shown if d.get("redacted"))

    def _row(self, loaded: Loaded, orgs: Mapping[str, Org]) -> ReadRow:
        record = loaded.record
        assert record is not None
        decision = record["decision"]
        rules, shown, withheld, redacted = self._counts(decision)
        return ReadRow(
            record=record["id"],
            sequence=loaded.sequence,
            child=record["child"],
            t=record["t"],
            reader=self._reader(record, orgs),
            purpose=record["purpose"],
            allowed=decision["allowed"],
            reason=decision["reason"],
            rules=rules,
            shown=shown,
            withheld=withheld,
            redacted_events=redacted,
            policy_version=record.get("policy_version", ""),
            content_digest=record.get("content_digest"),
        )

    # -- who read child X

    def reads_of_child(self, child: str, period: Period, *, actor: Actor) -> ChildReads:
        """Every read of ``child`` made in ``period`` (the child's access log only, not the whole log)."""
        readable, unreadable = self._child_records(child)
        orgs = self._orgs()
        rows = [self._row(x, orgs) for x in readable if period.contains(datetime.fromisoformat(x.record["t"]))]  # type: ignore[index]
        self._log(actor, "reads_of_child", child=child, results=len(rows), **period.to_dict())
        return ChildReads(child=child, **period.to_dict(), reads=rows, unreadable=unreadable)

    # -- what reader R saw

    def find_record(self, record_id: str, child: str | None = None) -> Loaded:
        """The access record ``record_id``: in ``child``'s log when given, else searched in the whole log."""
        for stored in stored_records(self.store, child):
            loaded = load(self.store, stored)
            if usable(loaded.record) and loaded.record.get("id") == record_id:  # type: ignore[union-attr]
                return loaded
        raise NotFound(
            "unknown_record",
            f"no access record {record_id!r}" + (f" about child {child!r}" if child else ""),
            f"閲覧記録「{record_id}」は見つかりません",
        )

    def reconstruct_timeline(
        self, record: Mapping[str, Any], history: History | None = None
    ) -> tuple[Timeline, str, ReadDecision, int]:
        """The read of ``record`` rebuilt from the log: the full ``Timeline`` as it was returned, its digest, the
        replayed decision, and how many considered events were erased since. For code, never for auditors
        (it holds content)."""
        history = history or History(self.store)
        child = history.child(record["child"])
        _, _, erased = considered(record, child)
        decision, shown, withheld, digest = rebuild(record, child, history.orgs(record["registry_version"]))
        r = record["reader"]
        timeline = Timeline(
            child=record["child"],
            org=r["org"],
            role=r["role"],
            purpose=record["purpose"],
            t=record["t"],
            allowed=decision.allowed,
            reason=decision.reason,
            entries=shown,
            withheld=withheld,
            access_record=record["id"],
            policy_version=decision.policy_version,
        )
        return timeline, digest, decision, erased

    def _reconstruction(self, loaded: Loaded) -> Reconstruction:
        record = loaded.record
        assert record is not None
        timeline, digest, decision, erased = self.reconstruct_timeline(record)
        recorded = record.get("content_digest")
        exact = None if recorded is None or erased else recorded == digest
        return Reconstruction(
            record=record["id"],
            sequence=loaded.sequence,
            child=record["child"],
            t=record["t"],
            reader=self._reader(record, self._orgs()),
            purpose=record["purpose"],
            allowed=record["decision"]["allowed"],
            reason=record["decision"]["reason"],
            policy_version=record.get("policy_version", ""),
            log_position=record["log_position"],
            child_position=record["child_position"],
            registry_version=record["registry_version"],
            settings=record["settings"],
            entries=[]
            if erased
            else [
                ReconstructedEntry(
                    id=e.id,
                    kind=e.kind,
                    source=e.source,
                    basis=e.basis,
                    at=e.at,
                    rule=e.rule,
                    redacted=e.redacted,
                    function=e.function,
                    to=e.to,
                    sensitive=e.sensitive,
                )
                for e in timeline.entries
            ],
            withheld=None if erased else timeline.withheld,
            decision_matches=None if erased else decision == ReadDecision.from_dict(record["decision"]),
            recorded_digest=recorded,
            replayed_digest=None if erased else digest,
            exact=exact,
            erased_since=erased,
        )

    def reconstruct(self, record_id: str, *, actor: Actor, child: str | None = None) -> Reconstruction:
        """What was returned by the read recorded as ``record_id``, as metadata, with the digest proof."""
        result = self._reconstruction(self.find_record(record_id, child))
        self._log(actor, "reconstruct", child=result.child, results=len(result.entries), record=record_id)
        return result

    def reconstruct_at(self, org: str, child: str, at: Any, *, actor: Actor) -> Reconstruction:
        """What ``org`` saw about ``child`` at time ``at``: its last read of the child made at or before ``at``."""
        moment = parse_moment(at, "at")
        if moment is None:
            raise Rejected([Problem("missing_at", "at is required", "at（日時）を指定してください", "at")])
        readable, _ = self._child_records(child)
        found = [
            x
            for x in readable
            if x.record["reader"]["org"] == org  # type: ignore[index]
            and datetime.fromisoformat(x.record["t"]) <= moment
        ]  # type: ignore[index]
        if not found:
            raise NotFound(
                "no_read",
                f"{org} made no read of child {child} at or before {moment.isoformat()}",
                f"{org} はこの時点までにこの児童の記録を閲覧していません",
            )
        result = self._reconstruction(found[-1])
        self._log(actor, "reconstruct_at", child=child, results=len(result.entries), org=org, at=moment.isoformat())
        return result

    # -- emergencies

    def _declaration(self, record: Mapping[str, Any], history: History) -> Declaration | None:
        child = history.child(record["child"])
        entries, _, _ = considered(record, child)
        t = datetime.fromisoformat(record["t"])
        hours = timedelta(hours=Settings.from_dict(record["settings"]).emergency_hours)
        open_ = [
            e
            for e in entries
            if e.kind == "emergency.declared" and e.source == record["reader"]["org"] and e.at <= t < e.at + hours
        ]
        if not open_:
            return None
        e = max(open_, key=lambda x: (x.at, x.position))
        reason = e.payload.get("reason")
        return Declaration(
            event=e.id,
            org=e.source,
            at=e.at.isoformat(),
            until=(e.at + hours).isoformat(),
            reason=str(reason) if reason is not None else None,
        )

    def _findings(self, record_id: str) -> list[FindingOut]:
        review = self.store.get_or_none(EmergencyReview.create_id(record_id))
        return [FindingOut(**f) for f in (review.findings if review is not None else [])]

    def _emergency(self, loaded: Loaded | dict, history: History, orgs: Mapping[str, Org]) -> EmergencyAccess:
        record = loaded.record if isinstance(loaded, Loaded) else loaded
        assert record is not None
        rules, shown, _, _ = self._counts(record["decision"])
        findings = self._findings(record["id"])
        return EmergencyAccess(
            record=record["id"],
            sequence=record.get("sequence", 0),
            child=record["child"],
            t=record["t"],
            reader=self._reader(record, orgs),
            shown=shown,
            rules=rules,
            declaration=self._declaration(record, history),
            findings=findings,
            reviewed=bool(findings),
        )

    @staticmethod
    def is_emergency(record: Mapping[str, Any]) -> bool:
        return record.get("purpose") == "emergency" and bool(record["decision"].get("allowed"))

    def emergency_accesses(self, period: Period, *, actor: Actor) -> Emergencies:
        """Every read allowed with purpose ``emergency`` in ``period``, with its declaration and findings."""
        history, orgs = History(self.store), self._orgs()
        out = [self._emergency(r, history, orgs) for r in self._records_in(period) if self.is_emergency(r)]
        self._log(actor, "emergency_accesses", results=len(out), **period.to_dict())
        return Emergencies(**period.to_dict(), accesses=out)

    def record_finding(
        self, record_id: str, *, reviewer: str, finding: str, note: str, actor: Actor, child: str | None = None
    ) -> EmergencyAccess:
        """Store a reviewer's finding on the emergency access ``record_id``. The same finding, by the same
        reviewer, with the same note as the latest one is stored once (a retried request does not repeat it)."""
        problems = []
        if finding not in FINDING_JA:
            problems.append(
                Problem(
                    "invalid_finding",
                    "finding is justified, not_justified or needs_follow_up",
                    "finding は justified（正当）・not_justified（正当でない）・needs_follow_up"
                    "（要フォローアップ）のいずれかです",
                    "finding",
                )
            )
        if not reviewer.strip():
            problems.append(
                Problem("missing_reviewer", "reviewer is required", "reviewer（確認者）を指定してください", "reviewer")
            )
        if len(note) > 5000:
            problems.append(
                Problem(
                    "note_too_long",
                    "note is at most 5000 characters",
                    "note（所見）は5000文字以内にしてください",
                    "note",
                )
            )
        if problems:
            raise Rejected(problems)
        loaded = self.find_record(record_id, child)
        if not self.is_emergency(loaded.record or {"decision": {}}):
            raise NotFound(
                "not_an_emergency_access",
                f"access record {record_id} is not an emergency access",
                f"閲覧記録「{record_id}」は緊急時の閲覧ではありません",
            )
        entry = {
            "record": record_id,
            "finding": finding,
            "finding_ja": FINDING_JA[finding],
            "note": note,
            "reviewer": reviewer.strip(),
            "org": actor.org,
            "at": self.clock().isoformat(),
            "via": actor.via,
        }
        same = ("finding", "note", "reviewer", "org")

        def add_once() -> None:
            review = self.store.get_or_none(EmergencyReview.create_id(record_id)) or EmergencyReview(record_id)
            if review.findings and all(review.findings[-1][k] == entry[k] for k in same):
                return
            review.add_finding(finding=entry)
            self.store.save(review)

        retry_conflicts(add_once)
        return self._emergency(loaded, History(self.store), self._orgs())

    # -- the family's disclosure report

    def disclosure_report(self, child: str, *, actor: Actor) -> Disclosure:
        """開示: which organisations read the child's record, when and on what ground, refused reads included,
        grouped by organisation (first read first), in plain Japanese. From the child's access log only."""
        readable, _ = self._child_records(child)
        orgs = self._orgs()
        by_org: dict[str, list[DisclosureRead]] = {}
        used: Counter[str] = Counter()
        for x in readable:
            record = x.record
            assert record is not None
            decision = record["decision"]
            rules, shown, _, _ = self._counts(decision)
            used.update(rules)
            if not decision["allowed"]:
                result = REFUSAL_JA.get(decision["reason"], "閲覧は認められませんでした")
            elif decision["reason"] == "erased":
                result = "記録は消去済みのため、何も表示されませんでした"
            elif not shown:
                result = "閲覧しましたが、見ることのできる記録はありませんでした"
            else:
                result = f"記録 {shown} 件を閲覧しました"
            role = record["reader"].get("role")
            by_org.setdefault(record["reader"]["org"], []).append(
                DisclosureRead(
                    record=record["id"],
                    at=record["t"],
                    at_ja=wareki(record["t"]),
                    purpose=record["purpose"],
                    purpose_ja=PURPOSE_JA.get(record["purpose"], f"目的「{record['purpose']}」"),
                    role_ja=ROLE_JA.get(role or "", role or "機関として"),
                    allowed=decision["allowed"],
                    result_ja=result,
                    shown=shown,
                    grounds=[self._ground(rule, n) for rule, n in rules.items()],
                )
            )
        organisations = []
        for org_id, reads in by_org.items():
            org = orgs.get(org_id)
            organisations.append(
                DisclosureOrg(
                    org=org_id,
                    name=(org.name or org_id) if org else org_id,
                    type_ja=ORG_TYPE_JA.get(org.type, org.type) if org else "登録されていない機関",
                    reads=reads,
                    read_count=sum(r.allowed for r in reads),
                    refused_count=sum(not r.allowed for r in reads),
                )
            )
        now = self.clock()
        report = Disclosure(
            child=child,
            generated_at=now.isoformat(),
            generated_at_ja=wareki(now),
            organisations=organisations,
            total_reads=sum(len(o.reads) for o in organisations),
            refused_reads=sum(o.refused_count for o in organisations),
            grounds=[self._ground(rule, used[rule]) for rule in RULES if used[rule]],
        )
        self._log(actor, "disclosure_report", child=child, results=report.total_reads)
        return report

    @staticmethod
    def _ground(rule: str, events: int) -> Ground:
        name, law = RULE_JA.get(rule, (rule, ""))
        return Ground(rule=rule, name_ja=name, law_ja=law, events=events)

    # -- policy impact

    def policy_impact(
        self, period: Period, changes: Mapping[str, Any], *, actor: Actor, version: str | None = None
    ) -> PolicyImpact:
        """Replay every access record of ``period`` under its own settings changed by ``changes`` and, given
        ``version``, under that policy version instead of the one the record names; list each read whose decision
        would differ (before: the replay under the record's own settings and version)."""
        changes = settings_changes(changes, required=version is None)
        history, orgs, skipped = History(self.store), self._orgs(), Counter()
        replayed, changed = 0, []
        for record in self._records_in(period, skipped):
            child = history.child(record["child"])
            if considered(record, child)[2]:
                skipped["erased"] += 1
                continue
            registry = history.orgs(record["registry_version"])
            own = Settings.from_dict(record["settings"])
            before = replay(record, child, registry, own)
            after = replay(record, child, registry, Settings.from_dict(own.to_dict() | changes), version)
            replayed += 1
            if (before.allowed, before.reason, before.events) != (after.allowed, after.reason, after.events):
                changed.append(self._change(record, child, before, after, orgs))
        result = PolicyImpact(
            **period.to_dict(),
            settings=changes,
            policy_version=version,
            replayed=replayed,
            unreplayable=skipped["unreadable"] + skipped["erased"],
            changed=changed,
        )
        self._log(
            actor, "policy_impact", results=len(changed), settings=changes, policy_version=version, **period.to_dict()
        )
        return result

    def _change(
        self,
        record: Mapping[str, Any],
        child: ChildRecord | None,
        before: ReadDecision,
        after: ReadDecision,
        orgs: Mapping[str, Org],
    ) -> ChangedRead:
        kinds = {e.id: e.kind for e in (child.entries if child is not None else [])}
        was = {d.event: d for d in before.events}
        now = {d.event: d for d in after.events}
        events = []
        for event_id in list(was) + [e for e in now if e not in was]:
            a, b = was.get(event_id), now.get(event_id)
            pair = [(d.rule if d.allowed else None, list(d.redacted)) if d else (None, []) for d in (a, b)]
            if pair[0] != pair[1]:
                events.append(
                    EventChange(
                        event=event_id,
                        kind=kinds.get(event_id),
                        before=pair[0][0],
                        after=pair[1][0],
                        redacted_before=pair[0][1],
                        redacted_after=pair[1][1],
                    )
                )
        summaries = []
        for d in (before, after):
            rules, shown, _, _ = self._counts(ReadDecision.to_dict(d))
            summaries.append(DecisionSummary(allowed=d.allowed, reason=d.reason, shown=shown, rules=rules))
        gained = sum(1 for e in events if e.before is None and e.after is not None)
        lost = sum(1 for e in events if e.before is not None and e.after is None)
        other = len(events) - gained - lost
        parts = [
            f"{gained} more shown" if gained else "",
            f"{lost} no longer shown" if lost else "",
            f"{other} shown under another rule or redaction" if other else "",
        ]
        if before.allowed != after.allowed or before.reason != after.reason:
            parts.insert(0, f"{before.reason} -> {after.reason}")
        return ChangedRead(
            record=record["id"],
            child=record["child"],
            t=record["t"],
            reader=self._reader(record, orgs),
            purpose=record["purpose"],
            before=summaries[0],
            after=summaries[1],
            events=events,
            summary=", ".join(p for p in parts if p),
        )


# --- The auditors' own trail ---------------------------------------------------------------------------------


def audit_trail(store: HubStore, org: str) -> list[dict[str, Any]]:
    """The queries auditor organisation ``org`` made, oldest first."""
    out = []
    for stored in store.recorder.select_events(AuditTrail.create_id(org)):
        try:
            query = getattr(store.mapper.to_domain_event(stored), "query", None)
        except Exception as error:  # a damaged entry is shown as such, not skipped silently
            query = {"query": "(unreadable)", "error": f"{type(error).__name__}"}
        if isinstance(query, dict):
            out.append(query)
    return out


# --- The printable disclosure page ---------------------------------------------------------------------------


def disclosure_html(report: Disclosure) -> str:
    """The disclosure report as a printable A4 page for the family."""
    return render("disclosure.html", report=report)
