"""Property tests of the read policy and the publish rules (policy.md version 2), through the real Hub (in-memory
SQLite).

Hypothesis builds small random worlds (a few organisations of every type, 1-3 children, random settings) and
runs random sequences of publishes and reads through ``Hub.publish`` and ``Hub.timeline``. Any organisation may
try to publish any kind: the facts the rules read (residence, cases, members, plans, consent, transfers,
protection, lists, emergencies, erasure) from random sources, with backdated ``at``, case and plan ids reused
for another child, plan versions lowered, consents for versions that do not exist, withdrawals by others. An
independent oracle, written here from ``shared/spec/policy.md`` and never calling ``consent``, predicts what each
publish must do (accepted, duplicate, rejected, waiting) and what each read must return. Properties:

(a) every read returns exactly the events the oracle admits (so no organisation ever sees an event that its
    direct audience, case membership, ledger, consent, transfer or emergency does not admit), with the
    oracle's rule and redactions, and every publish is accepted, rejected or held waiting as the oracle says;
(b) every read leaves exactly one access record, whose decisions are those returned;
(c) replay (``hub.verify()``) reproduces every decision;
(d) readers other than centres and 児童相談所 never get a withheld count (and those two get the right one);
(e) rejected publishes never appear in any timeline, and an id reused with other content keeps its first
    content; a waiting event appears in no timeline until the residence it waits for is recorded, and then
    with the audience of that residence;
(f) no organisation ever gains a read, or loses one, by an event it had no authority to publish: a second hub
    is given the same steps without the publishes the first hub rejected (and without duplicates), and every
    read must return the same events, rules, redactions and counts in both. This holds whatever the oracle
    says: a rejected event that left a trace (a fact counted, a membership kept) shows up here.

``test_reads_and_publishes_follow_policy_md`` draws from every kind; ``test_each_rule_…_made_for_it`` draws
worlds where one rule (or the authority table) has most events, so that its edges are met often. Generation
is steered (``target``) towards worlds where many rules let something through. ``test_the_oracle_agrees_with_
the_scenario_files`` checks the oracle itself against every expectation of the scenario files, without the hub.

Readings of policy.md the oracle takes where version 2 is still silent (the same as the scenario files):
- a centre's own event that OWN refuses to one function (``integrated_center`` off) is not let in by DIRECT;
- residence "as of" a time is the latest child.registered / residence.changed with ``at`` <= that time (ties:
  the one recorded last); "the latest residence" likewise over all of them; a residence with no registered
  centre is known: cwa-21-10-5 then has the source alone as audience (any ``to`` is wrong), cwa-25-3 without
  ``to`` too;
- the authority table is checked against what is stored when the event is published, whatever the ``at`` of
  the stored events (a plan version, a consent, a transfer recorded later in ``at`` counts); only the rows that
  name "at ``at``" (residence, the cwa-25 notifications of emergency.declared) look at time; "a child is
  registered once": any stored child.registered refuses another, whatever its ``at``;
- an event of a kind with a row in the table is refused when its source lacks authority, whatever its basis,
  even when it is a cwa-21-10-5 event about a child whose residence is unknown (it does not wait);
- "a cwa-25 notification" of emergency.declared is any event of the child with basis cwa-25 (not only
  notification.filed); case.transferred's "another municipality" is another than the registrar's;
- a case's ``case_type`` for the ledger is the one of its case.registered (case.type_changed does not move a
  case on or off the ledger); ledger membership does not depend on t;
- a waiting event is judged again when the residence it waits for is recorded, as if published then (a ``to``
  that is not the centre found then refuses it); it holds its id meanwhile; withheld counts do not count it;
- CASE: the latest assignment/removal of the organisation with ``at`` <= t decides (ties: recorded last);
  "after" in TRANSFER includes t = tt; erasure hides everything once it is recorded, whatever t;
- beyond policy.md, the hub refuses an unregistered source or addressee (before anything waits); a
  valid_until given as a bare date is the start of that day in Japan; publishes about an erased child are
  judged like any other (and shown to no one).
Where version 2 leaves the outcome open the generator does not go, or the oracle accepts either outcome and
follows the hub: a fact kind whose source has authority, with basis cwa-21-10-5, about a child whose residence
at ``at`` is unknown (wait, or be published?: not generated); republishing the id of an event still waiting
(not generated); identity.linked / identity.unlinked from a centre (policy.md adds "numbers known in its
municipality" without saying how: accepted or rejected, the oracle follows the hub; from anyone else: refused).
The kinds of meetings-and-services.md are drawn with the others, with their rows from its tables: inquiry.* (§1),
service.* and report.acknowledged (§2), household.* (§3). Its readings: household.* from the centre of residence
at ``at``, basis internal (the table gives the basis; the hub refuses another); inquiry.sent's ``to`` "assigned to
the case at ``at``" as policy.md's rule CASE counts members (the latest assignment or removal with at <= ``at``, and the
case not closed at ``at``); inquiry.answered and the service rows look for what they name among the child's own
events. Where meetings-and-services.md is silent the oracle follows the hub's choices (they are not tested here,
the scenario files and the authority tests cover them): an inquiry id names one inquiry in the whole hub (its
answer names only the id), a referral id one referral of the child, and an id used twice names its first event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings, target
from hypothesis import strategies as st

from consent.model import Settings
from events.envelope import parse_envelope
from events.problems import Rejected
from events.store import AccessLog
from services.audit.replay import access_records
from services.hub import Hub, SettableClock
from tests.conftest import ROOT, SHARED

pytestmark = pytest.mark.store

JST = timezone(timedelta(hours=9))
T0 = datetime(2026, 4, 1, 9, 0, tzinfo=JST)
SLOTS = 48  # times are T0 + 0..47 hours: few enough that boundaries (at == t, closure at t …) are hit often

CENTER, JISO, PROVIDER = "municipal_center", "child_guidance_center", "service_provider"
MUNICIPALITIES = ["100001", "100002", "100003"]
NO_CENTER_MUNICIPALITY = "100009"  # a residence no registered centre serves
GHOST = "ghost-org"  # a name no registered organisation has

BASE_ORGS: list[dict[str, Any]] = [  # the 児相 jA and jB are added per world, second and fourth
    {"id": "cA", "type": CENTER, "municipality": "100001"},
    {"id": "s1", "type": "school", "regime": "public", "municipality": "100001"},
    {"id": "cB", "type": CENTER, "municipality": "100002"},
    {"id": "cC", "type": CENTER, "municipality": "100003"},
    {"id": "s2", "type": "school", "regime": "private"},
    {"id": "n1", "type": "nursery", "regime": "private"},
    {"id": "m1", "type": "medical", "regime": "private"},
    {"id": "h1", "type": "health_center", "regime": "public"},
    {"id": "p1", "type": PROVIDER, "regime": "private"},
    {"id": "p2", "type": PROVIDER, "regime": "private"},
    {"id": "d1", "type": "municipal_department", "municipality": "100001"},
    {"id": "pf", "type": "prefecture_office", "prefecture": "10"},
    {"id": "au", "type": "auditor", "prefecture": "10"},
]
BASES = ["internal", "cwa-21-10-5", "cwa-25", "cwa-25-3", "cwa-25-2", "joint-ledger", "commissioned"]
ROLES = ["caseworker", "health_nurse", "supervisor", "teacher", "clerk"]
PURPOSES = ["support"] * 6 + ["meeting"] * 2 + ["emergency"] * 2 + ["audit", "statistics", "curiosity"]
READERS = ["cA", "cB", "cC", "jA", "jB"] * 3 + [o["id"] for o in BASE_ORGS if o["type"] != CENTER]
CASES = ["K1", "K2", "K3"]
PLANS = ["P1", "P2", "P3"]

# policy.md, "Authority: who may publish what": the kinds with a row in the table.
CASE_KINDS = frozenset(
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
PROTECTION_KINDS = frozenset({"protection.started", "protection.ended"})
TARGET_LIST_KINDS = frozenset({"target_list.assigned", "target_list.removed"})
IDENTITY_KINDS = frozenset({"identity.linked", "identity.unlinked"})
HOUSEHOLD_KINDS = frozenset({"household.joined", "household.left"})  # meetings-and-services.md §3
FACT_KINDS = (
    CASE_KINDS
    | PROTECTION_KINDS
    | TARGET_LIST_KINDS
    | IDENTITY_KINDS
    | HOUSEHOLD_KINDS
    | {
        "child.registered",
        "residence.changed",
        "child.erased",
        "case.registered",
        "case.transfer_acknowledged",
        "ledger.updated",
        "plan.created",
        "plan.revised",
        "consent.granted",
        "consent.withdrawn",
        "consent.refused",
        "emergency.declared",
    }
)
# Status inquiries before a meeting (meetings-and-services.md §1).
INQUIRY_KINDS = frozenset({"inquiry.sent", "inquiry.answered"})
# Family-support services (meetings-and-services.md §2): in the catalogue, with their rows below.
SERVICE_KINDS = frozenset(
    {
        "service.recommended",
        "service.recommendation_result",
        "service.ordered",
        "service.referred",
        "service.monitoring",
        "service.ended",
        "report.acknowledged",
    }
)


def time_of(slot: int) -> datetime:
    return T0 + timedelta(hours=slot)


def moment(value: str) -> datetime:
    """A payload time; a bare date is the start of that day in Japan."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=JST)


# --- The oracle: policy.md, written again, independently -------------------------------------------------------


@dataclass
class Ev:
    """An accepted event as the oracle keeps it."""

    position: int
    id: str
    kind: str
    child: str
    source: str
    basis: str
    to: str | None
    at: datetime
    payload: dict[str, Any]
    audience: frozenset[str]
    function: str
    sensitive: tuple[str, ...]

    @property
    def case(self) -> str | None:
        return self.payload.get("case")


@dataclass(frozen=True)
class Verdict:
    """What policy.md makes of a publish: ``outcome`` accepted, rejected or waiting, or ``either`` (accepted or
    rejected, policy.md does not decide; the oracle follows the hub); ``why`` names the rule that rejects."""

    outcome: str
    audience: frozenset[str] = frozenset()
    why: str = ""


WAIT = Verdict("waiting")


@dataclass
class Oracle:
    orgs: dict[str, dict[str, Any]]
    integrated_center: bool
    joint_ledger: bool
    emergency_hours: int
    events: dict[str, list[Ev]] = field(default_factory=dict)  # per child, in log order
    stored: dict[str, str] = field(default_factory=dict)  # id -> canonical content of the accepted event
    content: dict[str, Ev] = field(default_factory=dict)  # id -> accepted event
    waiting: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> raw envelope held back, in order
    dropped: set[str] = field(default_factory=set)  # waiting events refused when judged again
    cases: dict[str, Ev] = field(default_factory=dict)  # case id -> its case.registered (any child)
    plans: dict[str, Ev] = field(default_factory=dict)  # plan id -> its plan.created (any child)
    positions: int = 0

    # -- world facts
    def type_of(self, org: str | None) -> str | None:
        return self.orgs[org]["type"] if org in self.orgs else None

    def municipality_of(self, org: str | None) -> str | None:
        return self.orgs[org].get("municipality") if org in self.orgs else None

    def center_of(self, municipality: str | None) -> str | None:
        for org in self.orgs.values():
            if org["type"] == CENTER and municipality is not None and org.get("municipality") == municipality:
                return org["id"]
        return None

    def covering(self, municipality: str | None) -> set[str]:
        """The 児相 whose ``covers`` lists the municipality."""
        return {
            o["id"]
            for o in self.orgs.values()
            if o["type"] == JISO and municipality is not None and municipality in o.get("covers", [])
        }

    def _residence_events(self, child: str) -> list[Ev]:
        return [e for e in self.events.get(child, []) if e.kind in ("child.registered", "residence.changed")]

    def residence(self, child: str, when: datetime) -> str | None:
        """The municipality where the child lives at ``when``: the latest residence event with at <= when."""
        known = [e for e in self._residence_events(child) if e.at <= when]
        return max(known, key=lambda e: (e.at, e.position)).payload["residence"] if known else None

    def latest_residence(self, child: str) -> str | None:
        known = self._residence_events(child)
        return max(known, key=lambda e: (e.at, e.position)).payload["residence"] if known else None

    def is_registered(self, child: str) -> bool:
        return any(e.kind == "child.registered" for e in self.events.get(child, []))

    def registration(self, child: str, case: str | None) -> Ev | None:
        """The case.registered of ``case``, when it is a case of this child."""
        reg = self.cases.get(case) if isinstance(case, str) else None
        return reg if reg is not None and reg.child == child else None

    def on_ledger(self, reg: Ev | None) -> bool:
        return self.joint_ledger and reg is not None and reg.payload["case_type"].startswith("abuse")

    def plan_created(self, child: str, plan: Any) -> Ev | None:
        created = self.plans.get(plan) if isinstance(plan, str) else None
        return created if created is not None and created.child == child else None

    def plan_versions(self, child: str, plan: Any) -> set[int]:
        return {
            e.payload["version"]
            for e in self.events.get(child, [])
            if e.kind in ("plan.created", "plan.revised") and e.payload["plan"] == plan
        }

    # -- publish: authority (policy.md, "Authority: who may publish what")
    def authority(self, raw: dict[str, Any]) -> str | None:
        """Why the source lacks authority over the fact ``raw`` states (None: it has it, or the kind has no
        row); ``"either"`` where policy.md does not decide."""
        kind, child, source, to = raw["kind"], raw["child"], raw["source"], raw.get("to")
        at = datetime.fromisoformat(raw["at"])
        payload = raw.get("payload", {})
        here = self.residence(child, at)
        center_here = self.center_of(here)
        local = source == center_here or source in self.covering(here)  # centre of residence at `at`, or 児相
        reg = self.registration(child, payload.get("case"))
        if kind == "child.registered":
            m = payload["residence"]
            if source != self.center_of(m) and source not in self.covering(m):
                return "child.registered: not the centre or a 児相 of the residence"
            if self.is_registered(child):
                return "child.registered: registered twice"
        elif kind == "residence.changed":
            if not self.is_registered(child) or not local:
                return "residence.changed: not the centre or a 児相 of the residence at `at`"
        elif kind == "child.erased":
            if center_here is None or source != center_here or source != self.center_of(self.latest_residence(child)):
                return "child.erased: not the centre of residence at `at` and of the latest residence"
        elif kind == "case.registered":
            if center_here is None or source != center_here:
                return "case.registered: not the centre of residence at `at`"
            if payload["case"] in self.cases:
                return "case.registered: case id registered already"
        elif kind in CASE_KINDS:
            if reg is None or reg.source != source:
                return "case.*: not the registrar of a case of this child"
            if "member" in payload and payload["member"] not in self.orgs:
                return "case.*: member not registered"
            if kind == "case.transferred" and (
                self.type_of(payload["to"]) != CENTER
                or self.municipality_of(payload["to"]) == self.municipality_of(source)
            ):
                return "case.transferred: to not a centre of another municipality"
        elif kind == "case.transfer_acknowledged":
            if not any(
                e.kind == "case.transferred" and e.case == payload["case"] and e.payload["to"] == source
                for e in self.events.get(child, [])
            ):
                return "case.transfer_acknowledged: not the transfer's to"
        elif kind == "ledger.updated":
            if not self.on_ledger(reg) or (
                source != reg.source and source not in self.covering(self.municipality_of(reg.source))
            ):
                return "ledger.updated: not the registrar or a covering 児相 of a ledger case"
        elif kind in PROTECTION_KINDS:
            if reg is None or source not in self.covering(self.municipality_of(reg.source)):
                return "protection.*: not a 児相 covering the registrar's municipality"
        elif kind == "plan.created":
            if self.type_of(source) != CENTER or payload["plan"] in self.plans:
                return "plan.created: not a centre, or plan id used"
        elif kind == "plan.revised":
            created = self.plan_created(child, payload["plan"])
            if created is None or created.source != source:
                return "plan.revised: not the plan's author"
            if payload["version"] <= max(self.plan_versions(child, payload["plan"])):
                return "plan.revised: version not greater"
        elif kind == "consent.granted":
            created = self.plan_created(child, payload["plan"])
            if created is None or created.source != source:
                return "consent.granted: not the plan's author"
            if payload["version"] not in self.plan_versions(child, payload["plan"]):
                return "consent.granted: no such plan version"
            if any(r not in self.orgs for r in payload["recipients"]):
                return "consent.granted: recipient not registered"
        elif kind == "consent.withdrawn":
            granted = self.content.get(payload["consent"])
            if granted is None or granted.kind != "consent.granted" or granted.child != child:
                return "consent.withdrawn: no such consent of this child"
            if granted.source != source:
                return "consent.withdrawn: not the consent's source"
        elif kind == "consent.refused":
            created = self.plan_created(child, payload["plan"])
            if created is None or created.source != source:
                return "consent.refused: not the plan's author"
        elif kind in TARGET_LIST_KINDS:
            if not local:
                return "target_list.*: not the centre or a 児相 of the residence at `at`"
            if to != payload["school"] or self.type_of(to) not in ("school", "nursery"):
                return "target_list.*: to is not the listed school"
        elif kind == "emergency.declared":
            if self.type_of(source) not in (CENTER, JISO) or not payload["reason"].strip():
                return "emergency.declared: not a centre or 児相, or no reason"
            notified = any(e.basis == "cwa-25" and e.to == source and e.at <= at for e in self.events.get(child, []))
            if not local and not notified:
                return "emergency.declared: not the centre or a 児相 of the residence, nor notified"
        elif kind in HOUSEHOLD_KINDS:  # meetings-and-services.md §3
            if center_here is None or source != center_here:
                return "household.*: not the centre of residence at `at`"
            if raw.get("basis") != "internal":
                return "household.*: basis not internal"
        elif kind in IDENTITY_KINDS:
            if self.type_of(source) != CENTER:
                return "identity.*: not a centre"
            return "either"
        elif kind in SERVICE_KINDS:
            return self.service_authority(raw, center_here)
        elif kind == "inquiry.sent":  # meetings-and-services.md §1
            if reg is None or reg.source != source or raw.get("basis") != "cwa-25-3":
                return "inquiry.sent: not the case's registrar, or not cwa-25-3"
            if not self.member_at(child, reg.case, to, at):
                return "inquiry.sent: to not assigned to the case at `at`"
            if any(e.kind == "inquiry.sent" and e.payload["inquiry"] == payload["inquiry"] for e in self.all_events()):
                return "inquiry.sent: inquiry id used"
        elif kind == "inquiry.answered":
            sent = self._first(child, "inquiry.sent", "inquiry", payload["inquiry"])
            if sent is None or sent.to != source or raw.get("basis") != "cwa-25-3" or to != sent.source:
                return "inquiry.answered: not from the member asked, to the centre that asked"
        return None

    def all_events(self) -> list[Ev]:
        return [e for evs in self.events.values() for e in evs]

    def member_at(self, child: str, case: str | None, org: str | None, when: datetime) -> bool:
        """``org`` is assigned to ``case`` at ``when``: its latest assignment or removal with at <= ``when``
        (ties: the one recorded last) is an assignment, and the case is not closed at ``when`` (rule CASE)."""
        latest: tuple[datetime, int, bool] | None = None
        for x in self.events.get(child, []):
            if x.case != case or x.at > when:
                continue
            if x.kind == "case.closed":
                return False
            if x.kind in ("case.member_assigned", "case.member_removed") and x.payload["member"] == org:
                if latest is None or (x.at, x.position) > latest[:2]:
                    latest = (x.at, x.position, x.kind == "case.member_assigned")
        return latest is not None and latest[2]

    def _first(self, child: str, kind: str, key: str, value: Any) -> Ev | None:
        return next((e for e in self.events.get(child, []) if e.kind == kind and e.payload.get(key) == value), None)

    def service_authority(self, raw: dict[str, Any], center_here: str | None) -> str | None:
        """meetings-and-services.md §2, "Kinds": the column "accepted only when", with the basis and ``to`` of the
        column before it."""
        kind, child, source, to, basis = raw["kind"], raw["child"], raw["source"], raw.get("to"), raw["basis"]
        payload = raw.get("payload", {})
        if kind in ("service.recommended", "service.ordered"):
            if center_here is None or source != center_here or basis != "internal":
                return f"{kind}: not the centre of residence at `at`, or not internal"
        elif kind == "service.recommendation_result":
            made = self._first(child, "service.recommended", "recommendation", payload["recommendation"])
            if made is None or made.source != source or basis != "internal":
                return "service.recommendation_result: not the recommendation's source"
        elif kind == "service.referred":
            if center_here is None or source != center_here or basis != "commissioned":
                return "service.referred: not the centre of residence at `at`, or not commissioned"
            if self.type_of(to) != PROVIDER:
                return "service.referred: to not a service_provider"
            if self._first(child, "service.referred", "referral", payload["referral"]) is not None:
                return "service.referred: referral id used for this child"
        elif kind in ("service.monitoring", "service.ended"):
            made = self._first(child, "service.referred", "referral", payload["referral"])
            sides = [(made.source, made.to)] if made is not None else []
            if made is not None and kind == "service.monitoring":
                sides.append((made.to, made.source))
            if (source, to) not in sides or basis != "commissioned":
                return f"{kind}: not between the referral's sides"
        elif kind == "report.acknowledged":
            report = self.content.get(payload["report"])
            if (
                report is None
                or report.child != child
                or report.kind not in ("visit.report", "service.usage")
                or report.basis != "commissioned"
                or report.to != source
                or to != report.source
                or basis != "commissioned"
            ):
                return "report.acknowledged: not the addressee of a commissioned report of this child"
        return None

    # -- publish: basis (policy.md, "Direct audience, by basis")
    def direct_audience(self, raw: dict[str, Any]) -> Verdict:
        kind, child, source, basis, to = raw["kind"], raw["child"], raw["source"], raw["basis"], raw.get("to")
        at = datetime.fromisoformat(raw["at"])
        payload = raw.get("payload", {})
        source_type = self.type_of(source)
        if basis == "internal":
            return Verdict("accepted", frozenset({source}))
        if basis == "cwa-21-10-5":
            residence = self.residence(child, at)
            if residence is None:
                return WAIT
            center = self.center_of(residence)
            if to is not None and to != center:
                return Verdict("rejected", why="cwa-21-10-5: to is not the centre of residence")
            return Verdict("accepted", frozenset({source} | ({center} if center else set())))
        if basis == "cwa-25":
            if to is None or self.type_of(to) not in (CENTER, JISO):
                return Verdict("rejected", why="cwa-25: to missing or not a centre or 児相")
            return Verdict("accepted", frozenset({source, to}))
        if basis == "cwa-25-3":
            if to is None:
                center = self.center_of(self.residence(child, at))
                return Verdict("accepted", frozenset({source} | ({center} if center else set())))
            if kind not in TARGET_LIST_KINDS | {"inquiry.sent"} and self.type_of(to) not in (CENTER, JISO):
                return Verdict("rejected", why="cwa-25-3: to not a centre or 児相")
            return Verdict("accepted", frozenset({source, to}))
        if basis == "commissioned":
            if not (
                (source_type == PROVIDER and self.type_of(to) == CENTER)
                or (source_type == CENTER and self.type_of(to) == PROVIDER)
            ):
                return Verdict("rejected", why="commissioned: neither provider->centre nor centre->provider")
            return Verdict("accepted", frozenset({source, to}))
        if basis == "cwa-25-2":
            reg = self.registration(child, payload.get("case"))
            if source_type != CENTER or reg is None or reg.source != source:
                return Verdict("rejected", why="cwa-25-2: not a case the source registered")
            return Verdict("accepted", frozenset({source}))
        if basis == "joint-ledger":
            reg = self.registration(child, payload.get("case"))
            if not self.on_ledger(reg):
                return Verdict("rejected", why="joint-ledger: not a ledger case")
            assert reg is not None
            # The ledger's two sides write it: the registering centre and a 児相 covering its municipality ("the
            # other side of the ledger reads it"; the reading taken with policy version 2).
            m = self.orgs[reg.source].get("municipality")
            jiso_side = self.type_of(source) == JISO and m is not None and m in self.orgs[source].get("covers", [])
            if source != reg.source and not jiso_side:
                return Verdict("rejected", why="joint-ledger: the source is not a side of the ledger")
            return Verdict("accepted", frozenset({source}))
        raise AssertionError(basis)

    def judge(self, raw: dict[str, Any]) -> Verdict:
        """What policy.md makes of a structurally valid envelope whose id is new."""
        if self.type_of(raw["source"]) is None or (raw.get("to") is not None and raw["to"] not in self.orgs):
            return Verdict("rejected", why="unregistered source or to")
        lacking = self.authority(raw)
        if lacking is not None and lacking != "either":
            return Verdict("rejected", why=lacking)
        verdict = self.direct_audience(raw)
        if lacking == "either" and verdict.outcome == "accepted":
            return Verdict("either", verdict.audience)
        return verdict

    def undecided(self, raw: dict[str, Any]) -> bool:
        """Whether policy.md leaves this publish open in a way the oracle cannot follow (not generated): a
        fact stated with authority on basis cwa-21-10-5 about a child whose residence at ``at`` is unknown."""
        if raw.get("kind") not in FACT_KINDS or raw.get("basis") != "cwa-21-10-5" or raw.get("source") not in self.orgs:
            return False
        if raw.get("to") is not None and raw["to"] not in self.orgs:
            return False
        return self.authority(raw) in (None, "either") and self.direct_audience(raw) == WAIT

    def publish(self, raw: dict[str, Any], valid_shape: bool) -> Verdict:
        """What must become of ``raw``: accepted, duplicate, rejected, waiting, or either; recorded when
        accepted or waiting (an ``either`` is recorded by ``settle`` once the hub has answered)."""
        if not valid_shape:
            return Verdict("rejected", why="shape")
        canonical = json.dumps(raw, sort_keys=True, ensure_ascii=False)
        if raw["id"] in self.stored:
            if self.stored[raw["id"]] == canonical:
                return Verdict("duplicate")
            return Verdict("rejected", why="id reused with other content")
        assert raw["id"] not in self.waiting, "the generator does not republish a waiting id"
        verdict = self.judge(raw)
        if verdict.outcome == "accepted":
            self.record(raw, verdict.audience)
        elif verdict.outcome == "waiting":
            self.waiting[raw["id"]] = raw
        return verdict

    def settle(self, raw: dict[str, Any], verdict: Verdict, outcome: str) -> None:
        """Record an ``either`` publish as the hub decided it."""
        if verdict.outcome == "either" and outcome == "accepted":
            self.record(raw, verdict.audience)

    def record(self, raw: dict[str, Any], audience: frozenset[str]) -> None:
        self.positions += 1
        e = Ev(
            self.positions,
            raw["id"],
            raw["kind"],
            raw["child"],
            raw["source"],
            raw["basis"],
            raw.get("to"),
            datetime.fromisoformat(raw["at"]),
            raw.get("payload", {}),
            audience,
            raw.get("function") or "child_welfare",
            tuple(raw.get("sensitive", ())),
        )
        self.events.setdefault(raw["child"], []).append(e)
        self.stored[e.id] = json.dumps(raw, sort_keys=True, ensure_ascii=False)
        self.content[e.id] = e
        if e.kind == "case.registered":
            self.cases[e.case] = e
        elif e.kind == "plan.created":
            self.plans[e.payload["plan"]] = e
        if e.kind in ("child.registered", "residence.changed"):
            self.release(e.child)

    def release(self, child: str) -> None:
        """Publish, in the order received, the waiting events about ``child`` whose residence is now known."""
        for event_id, raw in list(self.waiting.items()):
            if raw["child"] != child or self.residence(child, datetime.fromisoformat(raw["at"])) is None:
                continue
            del self.waiting[event_id]
            verdict = self.judge(raw)
            assert verdict.outcome in ("accepted", "rejected"), verdict
            if verdict.outcome == "accepted":
                self.record(raw, verdict.audience)
            else:
                self.dropped.add(event_id)

    # -- read (policy.md, "The rules"; every fact read here was published with authority, since the oracle
    # keeps no other event)
    def own(self, org: str, role: str | None, e: Ev) -> bool:
        if e.source != org:
            return False
        if self.type_of(org) != CENTER or self.integrated_center or role is None:
            return True
        return e.function == ("maternal_health" if role == "health_nurse" else "child_welfare")

    def direct(self, org: str, e: Ev) -> bool:
        return org != e.source and org in e.audience

    def case_rule(self, child: str, org: str, t: datetime, e: Ev) -> bool:
        if e.basis != "cwa-25-2":
            return False
        k = e.case
        latest: tuple[datetime, int, bool] | None = None
        closed = False
        for x in self.events[child]:
            if x.case != k or x.at > t:
                continue
            if x.kind in ("case.member_assigned", "case.member_removed") and x.payload["member"] == org:
                key = (x.at, x.position, x.kind == "case.member_assigned")
                if latest is None or key[:2] > latest[:2]:
                    latest = key
            if x.kind == "case.closed":
                closed = True
        return latest is not None and latest[2] and not closed

    def ledger(self, child: str, org: str, t: datetime, e: Ev) -> bool:
        if not self.joint_ledger:
            return False
        for reg in self.events[child]:
            if reg.kind != "case.registered" or not reg.payload["case_type"].startswith("abuse"):
                continue
            k, x = reg.case, reg.source
            m = self.orgs[x].get("municipality")
            covering = {
                o["id"] for o in self.orgs.values() if o["type"] == JISO and m is not None and m in o.get("covers", [])
            }
            if org in covering:
                if e.case == k and (e.kind.startswith("case.") or e.basis == "joint-ledger"):
                    return True
                closures = [c.at for c in self.events[child] if c.kind == "case.closed" and c.case == k and c.at <= t]
                end = min(closures) if closures else t
                if e.basis in ("cwa-21-10-5", "cwa-25", "cwa-25-3") and x in e.audience and reg.at <= e.at <= end:
                    return True
            if org == x and e.basis == "joint-ledger" and e.case == k and e.source in covering:
                return True
        return False

    def consent(self, child: str, org: str, t: datetime, e: Ev) -> bool:
        if e.kind not in ("plan.created", "plan.revised"):
            return False
        for c in self.events[child]:
            if c.kind != "consent.granted" or c.payload["plan"] != e.payload["plan"]:
                continue
            withdrawn = any(
                w.kind == "consent.withdrawn" and w.payload["consent"] == c.id and w.at <= t for w in self.events[child]
            )
            until = c.payload.get("valid_until")
            if (
                org in c.payload["recipients"]
                and c.at <= t
                and e.payload["version"] <= c.payload["version"]
                and not withdrawn
                and (until is None or t < moment(until))
            ):
                return True
        return False

    def transfer(self, child: str, org: str, t: datetime, e: Ev) -> bool:
        for tr in self.events[child]:
            if (
                tr.kind != "case.transferred"
                or tr.payload["to"] != org
                or self.type_of(tr.source) != CENTER
                or tr.at > t
                or e.at > tr.at
            ):
                continue
            x, tt = tr.source, tr.at
            if (
                self.own(x, None, e)
                or self.direct(x, e)
                or self.ledger(child, x, tt, e)
                or self.consent(child, x, tt, e)
            ):
                return True
        return False

    def window(self, child: str, org: str, t: datetime) -> bool:
        hours = timedelta(hours=self.emergency_hours)
        return any(
            e.kind == "emergency.declared" and e.source == org and e.at <= t < e.at + hours
            for e in self.events.get(child, [])
        )

    def read(self, org: str, role: str, purpose: str, child: str, t: datetime):
        """None when refused as a whole; else ({id: (rule, redacted fields)}, number of events withheld)."""
        if self.type_of(org) in ("auditor", "prefecture_office") or purpose not in ("support", "meeting", "emergency"):
            return None
        if purpose == "emergency" and not self.window(child, org, t):
            return None
        events = self.events.get(child, [])
        if any(e.kind == "child.erased" for e in events):
            return {}, len(events)
        shown: dict[str, tuple[str, list[str]]] = {}
        for e in events:
            rule = (
                "OWN"
                if self.own(org, role, e)
                else "DIRECT"
                if self.direct(org, e)
                else "CASE"
                if self.case_rule(child, org, t, e)
                else "LEDGER"
                if self.ledger(child, org, t, e)
                else "CONSENT"
                if self.consent(child, org, t, e)
                else "TRANSFER"
                if self.transfer(child, org, t, e)
                else "EMERGENCY"
                if purpose == "emergency" and self.window(child, org, t)
                else None
            )
            if rule is not None:
                redacted = [] if rule in ("OWN", "DIRECT") else sorted(f for f in e.sensitive if f in e.payload)
                shown[e.id] = (rule, redacted)
        return shown, len(events) - len(shown)


# --- Generating publishes and reads ---------------------------------------------------------------------------


def involved(oracle: Oracle, child: str) -> list[str]:
    """The organisations a child's events name: sources, addressees, members, recipients, transfer targets."""
    found: set[str] = set()
    for e in oracle.events.get(child, []):
        found |= {e.source} | set(e.audience)
        for key in ("member", "to", "school"):
            if e.payload.get(key) in oracle.orgs:
                found.add(e.payload[key])
        found |= {r for r in e.payload.get("recipients", []) if r in oracle.orgs}
    found |= {raw["source"] for raw in oracle.waiting.values() if raw["child"] == child}
    return sorted(found)


def beneficiaries(oracle: Oracle, child: str) -> list[str]:
    """The organisations that rules other than OWN and DIRECT may let in: case members, consent recipients,
    transfer targets, declarers of emergencies, and the 児相 covering a registering centre."""
    found: set[str] = set()
    for e in oracle.events.get(child, []):
        if e.kind == "case.member_assigned":
            found.add(e.payload["member"])
        elif e.kind == "consent.granted":
            found |= set(e.payload["recipients"])
        elif e.kind == "case.transferred":
            found.add(e.payload["to"])
        elif e.kind == "emergency.declared":
            found.add(e.source)
        elif e.kind == "case.registered":
            found |= oracle.covering(oracle.municipality_of(e.source))
            found.add(e.source)
    return sorted(found & set(oracle.orgs))


def lawful_source(draw, oracle: Oracle, kind: str, child: str, at: datetime, payload: dict[str, Any]) -> str | None:
    """An organisation with authority over the fact ``kind`` would state (by the oracle's facts), if any:
    so that most fact publishes are lawful and the stories they start go on."""
    here = oracle.residence(child, at)
    reg = oracle.registration(child, payload.get("case"))
    candidates: list[str | None] = []
    if kind == "child.registered":
        candidates = [oracle.center_of(payload["residence"])] + sorted(oracle.covering(payload["residence"]))
    elif kind in {"residence.changed", "emergency.declared"} | TARGET_LIST_KINDS:
        candidates = [oracle.center_of(here)] * 2 + sorted(oracle.covering(here))
    elif kind in ("child.erased", "case.registered") or kind in HOUSEHOLD_KINDS:
        candidates = [oracle.center_of(here)]
    elif kind in CASE_KINDS and reg is not None:
        candidates = [reg.source]
    elif kind == "ledger.updated" and reg is not None:
        candidates = [reg.source] + sorted(oracle.covering(oracle.municipality_of(reg.source)))
    elif kind in PROTECTION_KINDS and reg is not None:
        candidates = sorted(oracle.covering(oracle.municipality_of(reg.source)))
    elif kind == "case.transfer_acknowledged":
        candidates = [
            e.payload["to"]
            for e in oracle.events.get(child, [])
            if e.kind == "case.transferred" and e.case == payload["case"]
        ]
    elif kind in ("plan.revised", "consent.granted", "consent.refused"):
        created = oracle.plan_created(child, payload["plan"])
        candidates = [created.source] if created else []
    elif kind == "consent.withdrawn" and payload["consent"] in oracle.content:
        candidates = [oracle.content[payload["consent"]].source]
    elif kind in ("service.recommended", "service.ordered", "service.referred"):
        candidates = [oracle.center_of(here)]
    elif kind == "service.recommendation_result":
        made = oracle._first(child, "service.recommended", "recommendation", payload["recommendation"])
        candidates = [made.source] if made else []
    elif kind in ("service.monitoring", "service.ended"):
        made = oracle._first(child, "service.referred", "referral", payload["referral"])
        candidates = ([made.source, made.to] if kind == "service.monitoring" else [made.source]) if made else []
    elif kind == "report.acknowledged" and payload["report"] in oracle.content:
        candidates = [oracle.content[payload["report"]].to]
    elif kind == "inquiry.sent" and reg is not None:
        candidates = [reg.source]
    elif kind == "inquiry.answered":
        sent = oracle._first(child, "inquiry.sent", "inquiry", payload["inquiry"])
        candidates = [sent.to] if sent else []
    if kind == "emergency.declared":
        candidates += [e.to for e in oracle.events.get(child, []) if e.basis == "cwa-25" and e.at <= at]
    candidates = [c for c in candidates if c is not None]
    return draw(st.sampled_from(candidates), label="lawful source") if candidates else None


def lawful_to(draw, oracle: Oracle, kind: str, child: str, at: datetime, payload: dict[str, Any], source: str):
    """The addressee the rows of meetings-and-services.md ask for, given ``source`` (None: none to suggest)."""
    if kind == "inquiry.sent":
        reg = oracle.registration(child, payload.get("case"))
        members = sorted(
            {
                e.payload["member"]
                for e in oracle.events.get(child, [])
                if e.kind == "case.member_assigned" and reg is not None and e.case == reg.case
            }
        )
        return draw(st.sampled_from(members), label="member asked") if members else None
    if kind == "inquiry.answered":
        sent = oracle._first(child, "inquiry.sent", "inquiry", payload["inquiry"])
        return sent.source if sent else None
    if kind in ("service.monitoring", "service.ended"):
        made = oracle._first(child, "service.referred", "referral", payload["referral"])
        if made is not None:
            return made.to if source == made.source else made.source
    if kind == "report.acknowledged" and payload["report"] in oracle.content:
        return oracle.content[payload["report"]].source
    return None


def payload_for(draw, kind: str, oracle: Oracle, child: str, n: int) -> dict[str, Any]:
    """A payload of ``kind``: mostly about this child's cases, plans and consents, sometimes about another
    child's (a case or plan id reused), a version that does not exist, a name no organisation has."""
    mine = [c for c in CASES if oracle.registration(child, c) is not None]
    case = draw(st.sampled_from(mine)) if mine and draw(st.integers(0, 4)) < 4 else draw(st.sampled_from(CASES))
    plans = [p for p in PLANS if oracle.plan_created(child, p) is not None]
    plan = draw(st.sampled_from(plans)) if plans and draw(st.integers(0, 4)) < 4 else draw(st.sampled_from(PLANS))
    versions = oracle.plan_versions(child, plan)
    members = READERS + [GHOST]
    if kind in ("child.registered", "residence.changed"):
        return {"residence": draw(st.sampled_from(MUNICIPALITIES + [NO_CENTER_MUNICIPALITY]))}
    if kind == "concern.reported":
        return {"summary": f"気づき{n}", "signs": "本人の話"}
    if kind == "notification.filed":
        return {"summary": f"通告{n}"}
    if kind == "note.recorded":
        out = {"text": f"記録{n}", "secret": "避難先"}
        if draw(st.booleans()):
            out["case"] = case
        return out
    if kind == "attendance.monthly":
        return {"month": "2026-04", "school_days": 19, "attended": 15, "absent": 4, "absent_without_contact": 2}
    if kind == "attendance.daily":
        return {"date": "2026-04-02", "status": "absent", "reason": "体調不良"}
    if kind == "absence.alert":
        return {"reason": "no_contact", "days": 3}
    if kind == "health.checkup":
        return {"checkup": "1歳6か月児健診", "date": "2026-04-02", "findings": "体重減少", "secret": "母の話"}
    if kind == "service.usage":
        return {"service": "ショートステイ", "from": "2026-04-02"}
    if kind == "enrollment.started":
        return {"org": draw(st.sampled_from(["s1", "s2", "n1"])), "student_no": f"S{n}"}
    if kind == "case.registered":
        free = [c for c in CASES if c not in oracle.cases]
        return {
            "case": draw(st.sampled_from(free))
            if free and draw(st.integers(0, 3)) < 3
            else draw(st.sampled_from(CASES)),
            "category": "youhogo",
            "case_type": draw(st.sampled_from(["abuse_physical", "abuse", "neglect", "child_abuse"])),
        }
    if kind in ("case.member_assigned", "case.member_removed"):
        return {"case": case, "member": draw(st.sampled_from(members))}
    if kind == "case.shared":
        return {"case": case, "summary": f"共有{n}", "secret": "里親宅"}
    if kind == "case.reviewed":
        return {"case": case, "decision": f"継続{n}"}
    if kind == "case.type_changed":
        return {"case": case, "case_type": draw(st.sampled_from(["abuse_neglect", "neglect"]))}
    if kind == "case.closed":
        return {"case": case, "reason": "終結"}
    if kind == "case.transferred":
        return {"case": case, "to": draw(st.sampled_from(["cA", "cB", "cC", "cA", "cB", "cC", "jA", "s1", GHOST]))}
    if kind == "case.transfer_acknowledged":
        reg = oracle.registration(child, case)
        return {"case": case, "from": reg.source if reg else draw(st.sampled_from(["cA", "cB", "cC"]))}
    if kind in {"ledger.updated"} | PROTECTION_KINDS:
        return {"case": case, "status": f"状況{n}"}
    if kind == "plan.created":
        free = [p for p in PLANS if p not in oracle.plans]
        return {
            "plan": draw(st.sampled_from(free))
            if free and draw(st.integers(0, 3)) < 3
            else draw(st.sampled_from(PLANS)),
            "version": draw(st.integers(1, 2)),
            "wishes": "意向",
            "issues": "課題",
            "supports": ["支援"],
            "secret": "打ち明けたこと",
        }
    if kind == "plan.revised":
        # Mostly the next version; sometimes the same or a lower one.
        top = max(versions) if versions else 1
        version = top + 1 if draw(st.integers(0, 3)) < 3 else draw(st.integers(1, max(top, 1)))
        return {
            "plan": plan,
            "version": version,
            "wishes": "意向",
            "issues": "課題",
            "supports": ["支援"],
            "secret": "打ち明けたこと",
        }
    if kind == "consent.granted":
        # Mostly a version that exists; sometimes one that does not (the family cannot sign a draft not made).
        version = (
            draw(st.sampled_from(sorted(versions)))
            if versions and draw(st.integers(0, 3)) < 3
            else draw(st.sampled_from([1, 2, 3, 99]))
        )
        out = {
            "plan": plan,
            "version": version,
            "recipients": draw(
                st.lists(
                    st.sampled_from(READERS + [GHOST] if draw(st.integers(0, 5)) == 0 else READERS),
                    min_size=1,
                    max_size=3,
                    unique=True,
                )
            ),
        }
        if draw(st.booleans()):
            # Not at midnight in Japan: a midnight would be stored as a bare date (see test_publish.py).
            slot = draw(st.integers(0, SLOTS).filter(lambda h: time_of(h).hour != 0))
            out["valid_until"] = time_of(slot).isoformat()
        return out
    if kind == "consent.withdrawn":
        granted = [e.id for e in oracle.events.get(child, []) if e.kind == "consent.granted"]
        others = [e.id for evs in oracle.events.values() for e in evs if e.kind == "consent.granted"]
        pool = granted * 3 + others + ["no-such-consent"]
        return {"consent": draw(st.sampled_from(pool))}
    if kind == "consent.refused":
        return {"plan": plan}
    if kind in TARGET_LIST_KINDS:
        return {
            "school": draw(st.sampled_from(["s1", "s1", "s2", "n1", "m1"])),
            "student_no": f"S{n}",
            "from_month": "2026-04",
        }
    if kind == "emergency.declared":
        return {"reason": "安全確認ができない"}
    if kind in IDENTITY_KINDS:
        return {"org": draw(st.sampled_from(["s1", "s2", "n1", "d1"])), "local_number": f"L{n}"}
    if kind == "child.erased":
        return {"reason": "誤登録"}
    if kind == "visit.report":
        return {"date": "2026-04-02", "observations": f"訪問{n}", "secret": "見たこと"}
    if kind in HOUSEHOLD_KINDS:  # meetings-and-services.md §3
        return {"household": draw(st.sampled_from(["H1", "H2"])), "relation": "sibling"}

    def named(of: str, key: str, made_up: str) -> str:
        """An id of this child's ``of`` events mostly, sometimes another child's, or one nobody used."""
        own = [e.payload[key] for e in oracle.events.get(child, []) if e.kind == of]
        others = [e.payload[key] for e in oracle.all_events() if e.kind == of]
        return draw(st.sampled_from(own * 3 + others + [made_up]))

    if kind == "inquiry.sent":  # meetings-and-services.md §1
        return {
            "inquiry": draw(st.sampled_from(["Q1", "Q2", "Q3", f"Q{n}"])),
            "case": case,
            "meeting_date": "2026-04-20",
            "due": "2026-04-15",
            "questions": "最近の様子",
        }
    if kind == "inquiry.answered":
        return {"inquiry": named("inquiry.sent", "inquiry", "Q-none"), "observations": f"様子{n}", "safety_scale": 5}
    if kind == "service.recommended":  # §2
        return {
            "recommendation": draw(st.sampled_from(["R1", "R2"])),
            "service": "訪問",
            "form": "oral",
            "reason": "負担",
        }
    if kind == "service.recommendation_result":
        return {"recommendation": named("service.recommended", "recommendation", "R9"), "result": "accepted"}
    if kind == "service.ordered":
        return {"order": f"O{n}", "service": "短期入所", "from": "2026-04-10", "notice_date": "2026-04-05"}
    if kind == "service.referred":
        return {
            "referral": draw(st.sampled_from(["F1", "F2"])),
            "service": "訪問",
            "start": "2026-04-10",
            "summary": "要点",
            "secret": "家族の事情",
        }
    if kind == "service.monitoring":
        return {
            "referral": named("service.referred", "referral", "F9"),
            "observations": "様子",
            "recommendation": "continue",
        }
    if kind == "service.ended":
        return {"referral": named("service.referred", "referral", "F9"), "reason": "目標達成"}
    if kind == "report.acknowledged":
        reports = [e.id for e in oracle.all_events() if e.kind in ("visit.report", "service.usage")]
        return {"report": draw(st.sampled_from(reports + ["no-such-report"])), "note": "本日訪問します"}
    raise AssertionError(kind)


# Hypothesis favours the first element of a list: the kinds and organisations that make reads interesting come
# first.
KIND_WEIGHTS = {
    "concern.reported": 4,
    "case.shared": 5,
    "case.member_assigned": 5,
    "case.registered": 4,
    "consent.granted": 4,
    "plan.created": 3,
    "ledger.updated": 3,
    "emergency.declared": 3,
    "case.transferred": 2,
    "attendance.monthly": 2,
    "notification.filed": 2,
    "note.recorded": 3,
    "plan.revised": 2,
    "residence.changed": 2,
    "child.registered": 2,
    "case.member_removed": 2,
    "case.closed": 2,
    "consent.withdrawn": 2,
    "visit.report": 2,
    "child.erased": 1,
    "target_list.assigned": 2,
    "target_list.removed": 1,
    "case.transfer_acknowledged": 1,
    "protection.started": 1,
    "protection.ended": 1,
    "case.reviewed": 1,
    "case.type_changed": 1,
    "consent.refused": 1,
    "identity.linked": 1,
    "identity.unlinked": 1,
    "attendance.daily": 1,
    "absence.alert": 1,
    "health.checkup": 1,
    "service.usage": 1,
    "enrollment.started": 1,
    # Households (meetings-and-services.md §3)
    "household.joined": 1,
    "household.left": 1,
    # The meeting cycle and family-support services (meetings-and-services.md §1, §2)
    "inquiry.sent": 2,
    "inquiry.answered": 2,
    "service.recommended": 1,
    "service.recommendation_result": 1,
    "service.ordered": 1,
    "service.referred": 2,
    "service.monitoring": 1,
    "service.ended": 1,
    "report.acknowledged": 1,
}
# What a kind's payload cannot do without (to make a payload invalid).
REQUIRED = {
    "child.registered": "residence",
    "residence.changed": "residence",
    "concern.reported": "summary",
    "notification.filed": "summary",
    "note.recorded": "text",
    "attendance.monthly": "absent",
    "case.registered": "case_type",
    "case.member_assigned": "member",
    "case.member_removed": "member",
    "case.shared": "summary",
    "case.closed": "reason",
    "case.transferred": "to",
    "ledger.updated": "case",
    "plan.created": "wishes",
    "plan.revised": "version",
    "consent.granted": "recipients",
    "consent.withdrawn": "consent",
    "emergency.declared": "reason",
    "child.erased": "reason",
    "visit.report": "observations",
    "target_list.assigned": "school",
    "target_list.removed": "student_no",
    "case.transfer_acknowledged": "from",
    "protection.started": "case",
    "protection.ended": "case",
    "case.reviewed": "decision",
    "case.type_changed": "case_type",
    "consent.refused": "plan",
    "identity.linked": "local_number",
    "identity.unlinked": "org",
    "attendance.daily": "status",
    "absence.alert": "reason",
    "health.checkup": "checkup",
    "service.usage": "service",
    "enrollment.started": "student_no",
    "household.joined": "household",
    "household.left": "household",
    "inquiry.sent": "due",
    "inquiry.answered": "inquiry",
    "service.recommended": "form",
    "service.recommendation_result": "result",
    "service.ordered": "notice_date",
    "service.referred": "summary",
    "service.monitoring": "recommendation",
    "service.ended": "reason",
    "report.acknowledged": "report",
}
# Who usually publishes a kind, on which basis and to whom; a third of the publishes take any source, basis and
# addressee instead (and the fact kinds mostly the source with authority over them, see lawful_source).
USUAL: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str | None, ...]]] = {
    # kind: (source types, bases, addressee types; None: no `to`)
    "concern.reported": (("school", "nursery", "medical", "health_center"), ("cwa-21-10-5", "cwa-25-3"), (None,)),
    "notification.filed": (("school", "nursery", "medical", "municipal_department"), ("cwa-25",), (CENTER, JISO)),
    "note.recorded": ((CENTER, JISO, "school"), ("internal", "cwa-25-2"), (None,)),
    "attendance.monthly": (("school",), ("cwa-25-3",), (None, CENTER, JISO)),
    "attendance.daily": (("school",), ("cwa-25-3", "internal"), (None, CENTER)),
    "absence.alert": (("school", "nursery"), ("cwa-21-10-5", "cwa-25-3"), (None,)),
    "health.checkup": (("health_center", "medical", CENTER), ("cwa-25-3", "internal"), (None,)),
    "service.usage": ((PROVIDER,), ("commissioned",), (CENTER,)),
    "enrollment.started": (("school", "nursery"), ("internal", "cwa-25-3"), (None,)),
    "visit.report": ((PROVIDER, CENTER), ("commissioned",), (CENTER, PROVIDER)),
    "ledger.updated": ((JISO, CENTER), ("joint-ledger",), (None,)),
    "case.shared": ((CENTER,), ("cwa-25-2",), (None,)),
    "protection.started": ((JISO,), ("internal", "joint-ledger"), (None,)),
    "protection.ended": ((JISO,), ("internal", "joint-ledger"), (None,)),
    "target_list.assigned": ((CENTER, JISO), ("cwa-25-3",), ("school",)),
    "target_list.removed": ((CENTER, JISO), ("cwa-25-3",), ("school",)),
    "emergency.declared": ((CENTER, JISO), ("internal",), (None,)),
    "inquiry.sent": ((CENTER,), ("cwa-25-3",), ("school", "nursery", JISO, "health_center")),
    "inquiry.answered": (("school", "nursery", JISO, "health_center"), ("cwa-25-3",), (CENTER,)),
    "service.referred": ((CENTER,), ("commissioned",), (PROVIDER,)),
    "service.monitoring": ((PROVIDER, CENTER), ("commissioned",), (CENTER, PROVIDER)),
    "service.ended": ((CENTER,), ("commissioned",), (PROVIDER,)),
    "report.acknowledged": ((CENTER,), ("commissioned",), (PROVIDER,)),
}
DEFAULT_USUAL = ((CENTER,), ("internal",), (None,))


def draw_event(
    draw,
    oracle: Oracle,
    children: list[str],
    n: int,
    history: list[tuple[dict, bool]],
    kinds: frozenset[str] | None = None,
) -> tuple[dict[str, Any], bool]:
    """A raw envelope and whether its shape is valid (policy.md's envelope and the kinds' payload fields);
    of the given ``kinds`` only, if any."""
    mode = draw(
        st.sampled_from(
            ["ok"] * 14
            + [
                "no_basis",
                "bad_basis",
                "bad_kind",
                "bad_payload",
                "no_offset",
                "again",
                "again",
                "conflict",
            ]
        )
    )
    again = [
        (raw, valid)
        for raw, valid in history
        if raw.get("id") not in oracle.waiting and raw.get("id") not in oracle.dropped
    ]
    if mode in ("again", "conflict") and again:
        raw, valid = draw(st.sampled_from(again))
        raw = json.loads(json.dumps(raw))
        if mode == "conflict" and "id" in raw:
            raw["payload"] = dict(raw.get("payload") or {}, note=f"書き換え{n}")
        if valid and raw["id"] not in oracle.stored and oracle.undecided(raw):
            return _without_basis(raw)
        return raw, valid
    child = draw(st.sampled_from(children))
    kind = draw(st.sampled_from([k for k, w in KIND_WEIGHTS.items() for _ in range(w) if kinds is None or k in kinds]))
    payload = payload_for(draw, kind, oracle, child, n)
    at = time_of(draw(st.integers(0, SLOTS - 1)))
    org_ids = list(oracle.orgs)

    def of_types(types) -> list[str]:
        return [o for o in org_ids if oracle.type_of(o) in types]

    source_types, bases, to_types = USUAL.get(kind, DEFAULT_USUAL)
    if draw(st.integers(0, 2)) < 2:  # lawful-looking
        source = (
            lawful_source(draw, oracle, kind, child, at, payload)
            if kind in FACT_KINDS | SERVICE_KINDS | INQUIRY_KINDS and draw(st.integers(0, 4)) < 4
            else None
        )
        if source is None:
            source = draw(st.sampled_from(of_types(source_types)))
        basis = draw(st.sampled_from(bases))
        to_type = draw(st.sampled_from(to_types))
        to = draw(st.sampled_from(of_types((to_type,)))) if to_type else None
        if kind in TARGET_LIST_KINDS and draw(st.integers(0, 3)) < 3:
            to = payload["school"]
        if kind in ("visit.report", "service.usage"):  # commissioned: provider -> centre, centre -> provider
            to = draw(st.sampled_from(of_types((PROVIDER if oracle.type_of(source) == CENTER else CENTER,))))
        if kind in SERVICE_KINDS | INQUIRY_KINDS and draw(st.integers(0, 3)) < 3:
            to = lawful_to(draw, oracle, kind, child, at, payload, source) or to
        if kind == "note.recorded" and basis == "cwa-25-2":
            payload.setdefault("case", draw(st.sampled_from(CASES)))
    else:  # anything
        source = draw(st.sampled_from(org_ids))
        basis = draw(st.sampled_from(BASES))
        to = draw(st.sampled_from([None, None] + org_ids))
    raw: dict[str, Any] = {
        "id": f"e{n}",
        "kind": kind,
        "child": child,
        "source": source,
        "basis": basis,
        "at": at.isoformat() if draw(st.integers(0, 4)) else at.astimezone(UTC).isoformat(),
        "payload": payload,
    }
    if to is not None:
        raw["to"] = to
    if oracle.type_of(source) == CENTER and draw(st.booleans()):
        raw["function"] = draw(st.sampled_from(["child_welfare", "maternal_health"]))
    if not draw(st.booleans()):
        raw["sensitive"] = draw(
            st.lists(
                st.sampled_from(["secret", "signs", "summary", "absent_field"]), min_size=1, max_size=2, unique=True
            )
        )
    if oracle.undecided(raw):
        raw["basis"] = "internal"
        raw.pop("to", None)
    valid = True
    if mode == "no_basis":
        return _without_basis(raw)
    if mode == "bad_basis":
        raw["basis"], valid = draw(st.sampled_from(["cwa-99", "", "CWA-25", "consent"])), False
    elif mode == "bad_kind":
        raw["kind"], valid = "concern.whispered", False
    elif mode == "bad_payload":
        del raw["payload"][REQUIRED[kind]]
        valid = False
    elif mode == "no_offset":
        raw["at"], valid = at.replace(tzinfo=None).isoformat(), False
    return raw, valid


def _without_basis(raw: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    raw = dict(raw)
    raw.pop("basis", None)
    return raw, False


# --- The property ----------------------------------------------------------------------------------------------


@st.composite
def worlds(draw, joint_ledger: bool | None = None):
    covers = [
        draw(st.lists(st.sampled_from(MUNICIPALITIES + [NO_CENTER_MUNICIPALITY]), max_size=3, unique=True))
        for _ in range(2)
    ]
    orgs = (
        BASE_ORGS[:1]
        + [{"id": "jA", "type": JISO, "prefecture": "10", "covers": covers[0]}]
        + BASE_ORGS[1:3]
        + [{"id": "jB", "type": JISO, "prefecture": "10", "covers": covers[1]}]
        + BASE_ORGS[3:]
    )
    return {
        "orgs": orgs,
        "integrated_center": draw(st.booleans()),
        "joint_ledger": draw(st.booleans()) if joint_ledger is None else joint_ledger,
        "emergency_hours": draw(st.sampled_from([1, 3, 24])),
        "children": [f"c{i}" for i in range(draw(st.sampled_from([1, 1, 2, 2, 3])))],
    }


def entry_matches(entry, original: Ev) -> bool:
    """The entry shows the accepted event: same kind, source, basis, and payload except redacted fields."""
    if (entry.kind, entry.source, entry.basis) != (original.kind, original.source, original.basis):
        return False
    if set(entry.payload) != set(original.payload):
        return False
    return all(
        (entry.payload[k] != v) if k in entry.redacted else (entry.payload[k] == v) for k, v in original.payload.items()
    )


def seen(timeline) -> tuple:
    """What a read returned, for comparing two hubs: refused or not, each event with its rule and redactions,
    the withheld count."""
    return (
        timeline.allowed,
        sorted((e.id, e.rule, tuple(sorted(e.redacted))) for e in timeline.entries),
        timeline.withheld,
    )


@dataclass
class Run:
    """One example: the hub, the oracle and what happened so far."""

    hub: Hub
    clock: SettableClock
    oracle: Oracle
    history: list[tuple[dict, bool]] = field(default_factory=list)
    never_accepted: set[str] = field(default_factory=set)
    reads: list[Any] = field(default_factory=list)
    rules_seen: dict[str, int] = field(default_factory=dict)  # rule (or "redacted") -> events it let through
    # The steps as the hub answered them, for property (f): ("publish", clock, [(raw, outcome)]) and
    # ("read", clock, (org, role, purpose, child), what the read returned).
    script: list[tuple] = field(default_factory=list)

    def publish(self, drawn: list[tuple[dict[str, Any], bool]]) -> None:
        """Publish ``drawn`` as one batch, judged by the oracle one after the other."""
        batch: list[tuple[dict[str, Any], bool, Verdict]] = []
        for raw, valid in drawn:
            batch.append((raw, valid, self.oracle.publish(raw, valid)))
            if batch[-1][2].outcome == "either":
                self.send(batch)
                batch = []
        self.send(batch)

    def send(self, batch: list[tuple[dict[str, Any], bool, Verdict]]) -> None:
        """Publish a batch the oracle has judged; an event it cannot decide alone (``either``) must come last,
        so that the oracle can follow the hub before judging what comes next."""
        if not batch:
            return
        times = [datetime.fromisoformat(raw["at"]) for raw, valid, _ in batch if valid]
        self.clock.at = max(times) if times else T0
        results = self.hub.publish([raw for raw, _, _ in batch])
        for (raw, valid, verdict), got in zip(batch, results):
            want = ("accepted", "rejected") if verdict.outcome == "either" else (verdict.outcome,)
            assert got.outcome in want, (raw, verdict, got.to_dict())
            self.oracle.settle(raw, verdict, got.outcome)
            event(f"publish {got.outcome}")
            if got.outcome == "accepted" and raw.get("kind") in SERVICE_KINDS | INQUIRY_KINDS:
                event(f"accepted: {raw['kind']}")
            if verdict.why and raw.get("kind") in FACT_KINDS | SERVICE_KINDS | INQUIRY_KINDS and verdict.why != "shape":
                event(f"refused: {verdict.why}")
            if got.outcome == "rejected":
                assert got.problems and all(p.message_ja for p in got.problems)
                if raw.get("id") and raw["id"] not in self.oracle.stored:
                    self.never_accepted.add(raw["id"])
            self.history.append((raw, valid))
        self.never_accepted = (self.never_accepted | self.oracle.dropped | set(self.oracle.waiting)) - set(
            self.oracle.stored
        )
        self.script.append(("publish", self.clock.at, [(raw, got.outcome) for (raw, _, _), got in zip(batch, results)]))

    def read(self, org: str, role: str, purpose: str, child: str, t: datetime) -> None:
        self.clock.at = t
        log = self.hub.store.get_or_none(AccessLog.create_id(child))
        before = log.count if log is not None else 0
        timeline = self.hub.timeline(org=org, role=role, child=child, purpose=purpose)
        want = self.oracle.read(org, role, purpose, child, t)
        # (b) exactly one access record per read, appended for this read
        log = self.hub.store.get_or_none(AccessLog.create_id(child))
        assert log is not None and log.count == before + 1
        # (a) the oracle's decision, event by event
        if want is None:
            event("read denied")
            assert not timeline.allowed and timeline.entries == [], (org, purpose, timeline.reason)
            assert timeline.withheld is None
        else:
            shown, withheld = want
            assert timeline.allowed, (org, role, purpose, child, t, timeline.reason)
            got = {e.id: (e.rule, sorted(e.redacted)) for e in timeline.entries}
            assert len(got) == len(timeline.entries), "an event is shown twice"
            assert got == shown, (org, role, purpose, child, t, got, shown)
            for rule, redacted in shown.values():
                self.rules_seen[rule] = self.rules_seen.get(rule, 0) + 1
                if redacted:
                    self.rules_seen["redacted"] = self.rules_seen.get("redacted", 0) + 1
            for rule in sorted({r for r, _ in shown.values()}):
                event(f"read shows an event under {rule}")
            if any(red for _, red in shown.values()):
                event("read redacts")
            ats = [datetime.fromisoformat(e.at) for e in timeline.entries]
            assert ats == sorted(ats), "the timeline is not in at order"
            # (d) withheld counts only for centres and 児童相談所
            if self.oracle.type_of(org) in (CENTER, JISO):
                assert timeline.withheld == withheld
            else:
                assert timeline.withheld is None and "withheld" not in timeline.to_dict()
            # (e) rejected and waiting events never shown; a reused id shows its first content
            for entry in timeline.entries:
                assert entry.id not in self.never_accepted
                assert entry_matches(entry, self.oracle.content[entry.id]), entry
        self.reads.append(timeline)
        self.script.append(("read", t, (org, role, purpose, child), seen(timeline)))


def replay_without_rejected(world: dict[str, Any], script: list[tuple]) -> None:
    """(f) The same steps on a second hub, without the publishes the first hub rejected or found duplicate: every
    publish must end as it did, and every read must return what it returned in the first hub."""
    clock = SettableClock(T0)
    twin = Hub("sqlite:///:memory:", clock=clock, settings=hub_settings(world))
    try:
        twin.load_orgs(world["orgs"])
        for step in script:
            clock.at = step[1]
            if step[0] == "publish":
                kept = [(raw, outcome) for raw, outcome in step[2] if outcome in ("accepted", "waiting")]
                if kept:
                    results = twin.publish([raw for raw, _ in kept])
                    assert [r.outcome for r in results] == [o for _, o in kept], (kept, [r.to_dict() for r in results])
            else:
                org, role, purpose, child = step[2]
                again = twin.timeline(org=org, role=role, child=child, purpose=purpose)
                assert seen(again) == step[3], (
                    "a rejected event changed a read",
                    step[2],
                    step[1],
                    seen(again),
                    step[3],
                )
    finally:
        twin.close()


def draw_reader(draw, run: Run, child: str) -> tuple[str, str, str, datetime]:
    oracle = run.oracle
    pools = [p for p in (beneficiaries(oracle, child), involved(oracle, child), READERS) if p]
    pool = pools[min(draw(st.integers(0, 3), label="pool"), len(pools) - 1)]
    org = draw(st.sampled_from(pool), label="reader")
    role = draw(st.sampled_from(ROLES), label="role")
    declared = any(e.kind == "emergency.declared" and e.source == org for e in oracle.events.get(child, []))
    purpose = draw(
        st.sampled_from(["emergency"] if declared and not draw(st.booleans()) else PURPOSES), label="purpose"
    )
    t = time_of(SLOTS - draw(st.integers(0, SLOTS), label="hours before the end"))
    return org, role, purpose, t


PROPERTY_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(max_examples=60, **PROPERTY_SETTINGS)
@given(world=worlds(), data=st.data())
def test_reads_and_publishes_follow_policy_md(world, data):
    exercise(world, data)


# Worlds where one rule has most of the events, so that its edges (closure at t, removal, withdrawal at t,
# valid_until, window ends …) are met often; AUTHORITY: worlds of facts published by anyone about anything.
FOCUS = {
    "CASE": frozenset(
        {
            "case.registered",
            "case.member_assigned",
            "case.member_removed",
            "case.shared",
            "case.closed",
            "note.recorded",
            "residence.changed",
        }
    ),
    "LEDGER": frozenset(
        {
            "case.registered",
            "case.closed",
            "ledger.updated",
            "concern.reported",
            "notification.filed",
            "attendance.monthly",
            "residence.changed",
            "visit.report",
            "case.shared",
            "protection.started",
            "case.type_changed",
            "target_list.assigned",
        }
    ),
    "CONSENT": frozenset(
        {"plan.created", "plan.revised", "consent.granted", "consent.withdrawn", "note.recorded", "consent.refused"}
    ),
    "TRANSFER": frozenset(
        {
            "case.transferred",
            "concern.reported",
            "plan.created",
            "consent.granted",
            "ledger.updated",
            "case.registered",
            "case.shared",
            "case.member_assigned",
            "case.transfer_acknowledged",
        }
    ),
    "EMERGENCY": frozenset(
        {
            "emergency.declared",
            "concern.reported",
            "note.recorded",
            "notification.filed",
            "child.erased",
            "residence.changed",
        }
    ),
    "AUTHORITY": FACT_KINDS | {"concern.reported", "absence.alert"},
    "SERVICES": SERVICE_KINDS
    | INQUIRY_KINDS
    | {"child.registered", "case.registered", "case.member_assigned", "visit.report", "service.usage"},
}


@pytest.mark.parametrize("rule", sorted(FOCUS))
@settings(max_examples=22, **PROPERTY_SETTINGS)
@given(data=st.data())
def test_each_rule_follows_policy_md_in_worlds_made_for_it(rule, data):
    world = data.draw(worlds(joint_ledger=True if rule in ("LEDGER", "TRANSFER") else None), label="world")
    exercise(world, data, FOCUS[rule])


def hub_settings(world: dict[str, Any]) -> Settings:
    return Settings(
        integrated_center=world["integrated_center"],
        joint_ledger=world["joint_ledger"],
        emergency_hours=world["emergency_hours"],
    )


def exercise(world: dict[str, Any], data, kinds: frozenset[str] | None = None) -> None:
    oracle = Oracle(
        {o["id"]: o for o in world["orgs"]}, world["integrated_center"], world["joint_ledger"], world["emergency_hours"]
    )
    clock = SettableClock(T0)
    hub = Hub("sqlite:///:memory:", clock=clock, settings=hub_settings(world))
    run = Run(hub, clock, oracle)
    try:
        hub.load_orgs(world["orgs"])
        children = world["children"]
        n = 0
        for child in children:  # most children are registered by a centre first (a residence to route by)
            if data.draw(st.integers(0, 4), label="registered") < 4:
                n += 1
                center = data.draw(st.sampled_from(["cA", "cB", "cC"]), label="registering centre")
                raw = {
                    "id": f"e{n}",
                    "kind": "child.registered",
                    "child": child,
                    "source": center,
                    "basis": "internal",
                    "at": T0.isoformat(),
                    "payload": {"residence": oracle.orgs[center]["municipality"]},
                }
                run.publish([(raw, True)])
        if kinds is not None and "case.shared" in kinds:
            # A case of the centre of residence with another centre as member and a share, at random times: the
            # start of a story in which that member may also transfer, be removed, or see the case closed.
            registrar = oracle.center_of(oracle.latest_residence(children[0])) or "cA"
            member = data.draw(st.sampled_from(sorted({"cA", "cB", "cC"} - {registrar})), label="member")
            for kind, payload, basis in [
                ("case.registered", {"case": "K1", "category": "youhogo", "case_type": "abuse_x"}, "internal"),
                ("case.member_assigned", {"case": "K1", "member": member}, "internal"),
                ("case.shared", {"case": "K1", "summary": "共有", "secret": "里親宅"}, "cwa-25-2"),
            ]:
                n += 1
                raw = {
                    "id": f"e{n}",
                    "kind": kind,
                    "child": children[0],
                    "source": registrar,
                    "basis": basis,
                    "at": time_of(data.draw(st.integers(0, SLOTS - 1), label="at")).isoformat(),
                    "payload": payload,
                    "sensitive": ["secret"],
                }
                run.publish([(raw, True)])
        if kinds is not None and "inquiry.sent" in kinds:
            # meetings-and-services.md: a case with a member to ask, a referral to a provider and the provider's
            # report, at random times: the start of a story of inquiries, answers, monitoring and acknowledgements.
            registrar = oracle.center_of(oracle.latest_residence(children[0])) or "cA"
            member = data.draw(st.sampled_from(["s1", "n1", "jA", "h1"]), label="member")
            for kind, payload, basis, source, to in [
                (
                    "case.registered",
                    {"case": "K1", "category": "youhogo", "case_type": "neglect"},
                    "internal",
                    None,
                    None,
                ),
                ("case.member_assigned", {"case": "K1", "member": member}, "internal", None, None),
                (
                    "service.referred",
                    {"referral": "F1", "service": "訪問", "start": "2026-04-02", "summary": "要点"},
                    "commissioned",
                    None,
                    "p1",
                ),
                ("visit.report", {"date": "2026-04-03", "observations": "訪問"}, "commissioned", "p1", registrar),
            ]:
                n += 1
                raw = {
                    "id": f"e{n}",
                    "kind": kind,
                    "child": children[0],
                    "source": source or registrar,
                    "basis": basis,
                    "at": time_of(data.draw(st.integers(0, SLOTS - 1), label="at")).isoformat(),
                    "payload": payload,
                }
                if to is not None:
                    raw["to"] = to
                run.publish([(raw, True)])
        for step in range(data.draw(st.integers(10, 28), label="steps")):
            if step < 6 or data.draw(st.integers(0, 9), label="action") < 6:
                # A batch of one to four publishes, judged one after the other.
                # The oracle judges each as it is drawn, so that the next draw sees its effect (a case
                # registered, an event waiting …); an ``either`` ends the batch (the oracle follows the hub).
                batch = []
                for _ in range(data.draw(st.integers(1, 4), label="batch size")):
                    n += 1
                    raw, valid = draw_event(data.draw, oracle, children, n, run.history + [b[:2] for b in batch], kinds)
                    batch.append((raw, valid, oracle.publish(raw, valid)))
                    if batch[-1][2].outcome == "either":
                        run.send(batch)
                        batch = []
                run.send(batch)
            else:
                child = data.draw(st.sampled_from(children)) if data.draw(st.integers(0, 9)) < 9 else "c-unknown"
                org, role, purpose, t = draw_reader(data.draw, run, child)
                run.read(org, role, purpose, child, t)
        # A sweep: every organisation a child's events concern reads it twice more.
        for child in children:
            for org in 2 * sorted(set(beneficiaries(oracle, child)) | set(involved(oracle, child))):
                # Declarations by anyone: a window is the declarer's only, others must be refused.
                declared = [e.at for e in oracle.events.get(child, []) if e.kind == "emergency.declared"]
                purpose = "emergency" if declared and not data.draw(st.booleans(), label="support") else "support"
                role = data.draw(st.sampled_from(ROLES), label="role")
                # Often a boundary: the at of one of the child's events, or the end of an emergency window.
                hours = timedelta(hours=oracle.emergency_hours)
                moments = sorted(
                    {e.at for e in oracle.events.get(child, [])}
                    | {at + hours for at in declared}
                    | {at + hours - timedelta(hours=1) for at in declared}
                    | {
                        moment(e.payload["valid_until"])
                        for e in oracle.events.get(child, [])
                        if e.kind == "consent.granted" and "valid_until" in e.payload
                    }
                    | {T0}
                )
                t = data.draw(
                    st.sampled_from(moments)
                    if data.draw(st.booleans(), label="boundary")
                    else st.builds(time_of, st.integers(0, SLOTS)),
                    label="t",
                )
                run.read(org, role, purpose, child, t)
        # Steer generation towards worlds where many rules decide something, the rare ones in particular.
        target(float(len(run.rules_seen)), label="rules that allowed an event")
        for rule in ("CASE", "LEDGER", "CONSENT", "TRANSFER", "EMERGENCY", "redacted"):
            target(float(min(run.rules_seen.get(rule, 0), 12)), label=rule)
        if kinds is not None and "inquiry.sent" in kinds:  # the kinds of meetings-and-services.md accepted
            accepted = {e.kind for e in oracle.all_events() if e.kind in SERVICE_KINDS | INQUIRY_KINDS}
            target(float(len(accepted)), label="meetings-and-services kinds accepted")
        # (b) the access records are exactly the reads, and each holds the decisions returned
        records = {r["id"]: r for r in access_records(hub.store)}
        assert len(records) == len(run.reads)
        for timeline in run.reads:
            decision = records[timeline.access_record]["decision"]
            assert decision["allowed"] == timeline.allowed
            allowed = {d["event"]: d["rule"] for d in decision["events"] if d["allowed"]}
            assert allowed == {e.id: e.rule for e in timeline.entries}
        # (c) replay reproduces every decision
        report = hub.verify()
        assert report.records == len(run.reads)
        assert report.ok, [m.to_dict() for m in report.mismatches]
    finally:
        hub.close()
    # (f) the rejected publishes changed nothing anyone reads
    if any(outcome == "rejected" for step in run.script if step[0] == "publish" for _, outcome in step[2]):
        replay_without_rejected(world, run.script)


# --- The oracle itself is checked against the scenario files -----------------------------------------------------

SCENARIO_FILES = (
    sorted((ROOT / "tests" / "scenarios" / "policy").glob("*.yaml"))
    + sorted((SHARED / "scenarios").glob("*.yaml"))
    + sorted((SHARED / "scenarios-v2").glob("*.yaml"))
)


def _scenarios():
    for path in SCENARIO_FILES:
        for scenario in yaml.safe_load(path.read_text(encoding="utf-8"))["scenarios"]:
            yield pytest.param(scenario, id=f"{path.name}: {scenario['name']}")


@pytest.mark.parametrize("scenario", list(_scenarios()))
def test_the_oracle_agrees_with_the_scenario_files(scenario):
    """The oracle above is only worth what it agrees with: it must give every expectation of the scenario
    files (ours, written rule by rule from policy.md, and the shared ones) without the hub."""
    options = Settings.from_dict(scenario.get("settings"))
    oracle = Oracle(
        {o["id"]: {**o, "covers": [str(c) for c in o.get("covers", [])]} for o in scenario["orgs"]},
        options.integrated_center,
        options.joint_ledger,
        options.emergency_hours,
    )
    for number, step in enumerate(scenario["steps"]):
        if "publish" in step:
            raw = step["publish"]
            try:
                envelope = parse_envelope(raw, now=datetime.fromisoformat(str(raw.get("at"))))
                raw, valid = envelope.canonical(), True
            except (Rejected, ValueError):
                valid = False
            expected = step.get("expect") or "accepted"
            verdict = oracle.publish(raw, valid)
            if verdict.outcome == "either":
                assert expected in ("accepted", "rejected"), number
                oracle.settle(raw, verdict, expected)
                continue
            outcome = "accepted" if verdict.outcome == "duplicate" else verdict.outcome
            assert outcome == expected, (number, verdict)
            continue
        read, expect = step["read"], step.get("expect")
        want = oracle.read(
            read["org"], read["role"], read["purpose"], read["child"], datetime.fromisoformat(read["at"])
        )
        if expect == "denied" or want is None:
            assert expect == "denied" and want is None, (number, want)
            continue
        shown, _ = want
        if "visible" in expect:
            assert set(shown) == set(expect["visible"]), (number, sorted(shown))
        for event_id, rule in (expect.get("rules") or {}).items():
            assert shown[event_id][0] == rule, (number, event_id, shown.get(event_id))
        redacted = {k: sorted(v) for k, v in (expect.get("redacted") or {}).items() if v}
        assert {k: v for k, (_, v) in shown.items() if v} == redacted, (number, shown)
