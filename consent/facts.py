"""What a child's events establish: residence over time, 要対協 cases, consents, emergencies, transfers.

Pure derivations from the child's recorded events (and nothing else), shared by the read rules and the
publish-time checks. Times are the events' ``at``; events may have been recorded out of ``at`` order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from events.kinds import as_datetime
from events.model import Recorded


@dataclass
class Case:
    """A 要対協 case as its coordinating centre (the registrar) recorded it."""

    id: str
    registrar: str
    registered_at: datetime
    case_type: str
    memberships: list[tuple[datetime, int, str, bool]] = field(default_factory=list)  # (at, position, org, assigned)
    closures: list[datetime] = field(default_factory=list)

    def closed_at(self, t: datetime) -> datetime | None:
        """When the case was closed, if it was closed at or before ``t``."""
        closed = [c for c in self.closures if c <= t]
        return min(closed) if closed else None

    def is_member(self, org: str, t: datetime) -> bool:
        """Assigned at or before ``t`` and not removed after that assignment (by ``at``) at or before ``t``."""
        member = False
        for at, _, who, assigned in sorted(self.memberships):
            if who == org and at <= t:
                member = assigned
        return member

    def members_at(self, t: datetime) -> list[str]:
        """The organisations that are members at ``t`` (rule CASE's test), in the order they were first
        assigned: what the progress ledger, the agenda and the case commands show as the case's members."""
        first_assigned = dict.fromkeys(who for _, _, who, assigned in sorted(self.memberships) if assigned)
        return [org for org in first_assigned if self.is_member(org, t)]

    @property
    def is_abuse(self) -> bool:
        return self.case_type.startswith("abuse")


@dataclass(frozen=True)
class Consent:
    id: str
    source: str
    plan: str
    version: int
    recipients: frozenset[str]
    at: datetime
    valid_until: datetime | None


@dataclass
class ChildFacts:
    cases: dict[str, Case]
    consents: list[Consent]
    withdrawals: dict[str, list[datetime]]
    emergencies: list[tuple[str, datetime]]  # (declaring org, at)
    transfers: list[tuple[str, str, datetime]]  # (from centre X, to centre Y, tt)
    erased: bool

    @classmethod
    def of(cls, events: Sequence[Recorded], *, registrar_only: bool = False) -> ChildFacts:
        """What ``events`` establish. ``registrar_only``: count a case's member, closure and transfer events only
        from its registrar, as version 2's authority does, for views built from the entries a reader received
        (``services.casework.ledger``), where the registration's own authority cannot be checked again (the reader
        may not see where the child lives)."""
        cases: dict[str, Case] = {}
        for e in events:
            if e.kind == "case.registered" and e.case is not None and e.case not in cases:
                cases[e.case] = Case(e.case, e.source, e.at, str(e.payload["case_type"]))
        consents: list[Consent] = []
        withdrawals: dict[str, list[datetime]] = {}
        emergencies: list[tuple[str, datetime]] = []
        transfers: list[tuple[str, str, datetime]] = []
        erased = False
        for e in events:
            case = cases.get(e.case) if e.case is not None else None
            if case is not None and registrar_only and e.source != case.registrar:
                case = None
            # policy.md rule CASE names the events (case.member_assigned / case.member_removed / case.closed),
            # not who records them; only the cwa-25-2 share is restricted to the registrar (consent.admission).
            if case:
                if e.kind in ("case.member_assigned", "case.member_removed"):
                    case.memberships.append(
                        (e.at, e.position, str(e.payload["member"]), e.kind == "case.member_assigned")
                    )
                elif e.kind == "case.closed":
                    case.closures.append(e.at)
            if e.kind == "consent.granted":
                until = e.payload.get("valid_until")
                consents.append(
                    Consent(
                        e.id,
                        e.source,
                        str(e.payload["plan"]),
                        int(e.payload["version"]),
                        frozenset(map(str, e.payload["recipients"])),
                        e.at,
                        as_datetime(until) if until else None,
                    )
                )
            elif e.kind == "consent.withdrawn":
                withdrawals.setdefault(str(e.payload["consent"]), []).append(e.at)
            elif e.kind == "emergency.declared":
                emergencies.append((e.source, e.at))
            elif e.kind == "case.transferred":
                transfers.append((e.source, str(e.payload["to"]), e.at))
            elif e.kind == "child.erased":
                erased = True
        return cls(cases, consents, withdrawals, emergencies, transfers, erased)

    def withdrawn_by(self, consent: str, t: datetime) -> bool:
        return any(at <= t for at in self.withdrawals.get(consent, ()))
