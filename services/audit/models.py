"""The answers of the auditors' queries (``services.audit.service``), also the HTTP API's response models: reads
of a child, a reconstructed read, emergency accesses and their findings, the family's disclosure report, a policy
impact report. Metadata only: ids, kinds, sources, times, rules, field names; never a payload value."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Finding = Literal["justified", "not_justified", "needs_follow_up"]  # events.labels.FINDING_JA


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


class ConsultedView(BaseModel):
    """A view of many children that consulted the child's decided read for its totals, filters or counts and did
    not show the child (services.reading.view_log): no read of the child's content was returned."""

    record: str = Field(description="The view record's id (in the reader's view log).")
    sequence: int = Field(description="Its place in the reader's view log (1, 2, …).")
    view: str = Field(description="ledger, joint-ledger, agenda, start-page, overdue, …")
    view_ja: str
    t: str = Field(description="When the view was made.")
    reader: ReaderRef
    purpose: str
    query: dict[str, Any] = Field(description="The view's filters, sort and page (or day).")
    consulted: int = Field(description="How many children the view consulted in all.")
    shown: int = Field(description="How many children it showed (each with its own access record).")


class ChildReads(BaseModel):
    child: str
    since: str | None
    until: str | None
    reads: list[ReadRow]
    consulted: list[ConsultedView] = Field(
        default_factory=list,
        description="Views that consulted the child without showing it (一覧の件数に含まれた), in the period.",
    )
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


class DisclosureConsulted(BaseModel):
    """The views of one organisation in one month (JST) that counted the child without showing it, as one line of
    the family's report: how many, the first and the last."""

    month: str  # YYYY-MM
    times: int
    first: str
    last: str
    at_ja: str  # the first and last dates and how many times, in words
    purpose_ja: str
    role_ja: str
    result_ja: str


class DisclosureOrg(BaseModel):
    org: str
    name: str
    type_ja: str
    reads: list[DisclosureRead]
    consulted: list[DisclosureConsulted] = Field(default_factory=list)
    read_count: int
    refused_count: int


class Disclosure(BaseModel):
    child: str
    generated_at: str
    generated_at_ja: str
    organisations: list[DisclosureOrg]
    total_reads: int
    refused_reads: int
    consulted_views: int = Field(default=0, description="Views that counted the child without showing it.")
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
