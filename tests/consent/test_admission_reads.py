"""What admitting an event reads, as ``consent.admission.reads`` declares it, against what ``admit`` does.

The publish path loads, for a whole batch at once, the children's facts and the case and plan ids in use that
``reads`` says admission will read, and hands the rules no facts where it says they read none. These tests hold
the declaration to the rules, without a store: for every kind, basis, addressee and source, an event whose
admission is declared not to read the facts is decided the same on every history, and the rules ask about the
use of no case or plan id but those declared.
"""

from __future__ import annotations

from itertools import product

import pytest

from consent.admission import AwaitsResidence, Reads, admit, reads
from consent.authority import AUTHORITY
from consent.model import Settings
from events.model import Org, Recorded
from events.problems import Rejected
from events.store import recorded_from

pytestmark = pytest.mark.unit

ORGS = {
    o.id: o
    for o in (
        Org("beppu-center", "municipal_center", municipality="442020"),
        Org("oita-center", "municipal_center", municipality="442011"),
        Org("chuo-jiso", "child_guidance_center", prefecture="44", covers=("442011", "442020")),
        Org("beppu-es-1", "school", municipality="442020", regime="public"),
        Org("beppu-care", "service_provider", municipality="442020"),
    )
}
KINDS = sorted(set(AUTHORITY) | {"note.recorded", "concern.reported", "attendance.daily", "absence.alert"})
BASES = ["internal", "cwa-21-10-5", "cwa-25", "cwa-25-3", "commissioned", "cwa-25-2", "joint-ledger", "no-such"]
ADDRESSEES = [None, "beppu-center", "oita-center", "chuo-jiso", "beppu-es-1", "beppu-care"]
SOURCES = [*ORGS, "not-registered"]
PAYLOAD = {
    "residence": "442020",
    "case": "k1",
    "case_type": "abuse.neglect",
    "plan": "p1",
    "version": 2,
    "recipients": ["beppu-es-1"],
    "consent": "granted-1",
    "member": "beppu-es-1",
    "to": "oita-center",
    "from": "beppu-center",
    "school": "beppu-es-1",
    "org": "beppu-es-1",
    "local_number": "0412",
    "inquiry": "q1",
    # family-support services
    "recommendation": "R-1",
    "referral": "F-1",
    "report": "told",
}


def fact(position: int, id: str, kind: str, source: str, payload: dict, *, basis: str = "internal", **more) -> Recorded:
    envelope = {"id": id, "kind": kind, "child": "c1", "source": source, "basis": basis, "payload": payload, **more}
    return recorded_from({"at": "2026-04-01T09:00:00+09:00", **envelope}, [], position)


REGISTERED_HERE = [fact(1, "reg", "child.registered", "beppu-center", {"residence": "442020"})]
HISTORIES = {
    "nothing": [],
    "registered here": REGISTERED_HERE,
    "registered elsewhere": [fact(1, "reg", "child.registered", "oita-center", {"residence": "442011"})],
    "case, plan, consent, transfer, notification": [
        *REGISTERED_HERE,
        fact(2, "k1", "case.registered", "beppu-center", {"case": "k1", "case_type": "abuse.neglect"}),
        fact(3, "p1", "plan.created", "beppu-center", {"plan": "p1", "version": 1}),
        fact(4, "p1v2", "plan.revised", "beppu-center", {"plan": "p1", "version": 2}),
        fact(5, "granted-1", "consent.granted", "beppu-center", {"plan": "p1", "version": 2, "recipients": []}),
        fact(6, "moved-k1", "case.transferred", "beppu-center", {"case": "k1", "to": "oita-center"}),
        fact(7, "told", "concern.reported", "beppu-es-1", {}, basis="cwa-25", to="chuo-jiso"),
    ],
    "case, member, inquiry": [
        *REGISTERED_HERE,
        fact(2, "k1", "case.registered", "beppu-center", {"case": "k1", "case_type": "neglect"}),
        fact(3, "m1", "case.member_assigned", "beppu-center", {"case": "k1", "member": "beppu-es-1"}),
        fact(
            4, "q1", "inquiry.sent", "beppu-center", {"inquiry": "q1", "case": "k1"}, basis="cwa-25-3", to="beppu-es-1"
        ),
    ],
}


class IdsAsked:
    """``consent.authority.IdsInUse`` that answers ``in_use`` for every id and notes which ids were asked about."""

    def __init__(self, in_use: bool):
        self.in_use = in_use
        self.cases: list[str] = []
        self.plans: list[str] = []
        self.inquiries: list[str] = []

    def case_registered(self, case: str) -> bool:
        self.cases.append(case)
        return self.in_use

    def plan_created(self, plan: str) -> bool:
        self.plans.append(plan)
        return self.in_use

    def inquiry_sent(self, inquiry: str) -> bool:
        self.inquiries.append(inquiry)
        return self.in_use


def decision(e: Recorded, prior: list[Recorded], settings: Settings, ids: IdsAsked) -> tuple:
    """What ``admit`` decides, as a value: the audience, the codes of a rejection, or waiting for the residence."""
    try:
        return ("admitted", admit(e, prior, ORGS, settings, ids))
    except Rejected as rejected:
        return ("rejected", tuple(p.code for p in rejected.problems))
    except AwaitsResidence:
        return ("waits for the residence",)


def events():
    for kind, basis, to, source in product(KINDS, BASES, ADDRESSEES, SOURCES):
        envelope = {"id": "e", "kind": kind, "child": "c1", "source": source, "basis": basis, "payload": PAYLOAD}
        yield recorded_from({**envelope, "at": "2026-04-20T09:00:00+09:00", "to": to}, [], 8)


@pytest.mark.parametrize("kind", KINDS)
def test_where_admission_is_declared_not_to_read_the_facts_every_history_gives_the_same_decision(kind):
    for e in (e for e in events() if e.kind == kind):
        declared = reads(e)
        for settings, in_use in product((Settings(joint_ledger=True), Settings(joint_ledger=False)), (True, False)):
            decisions = set()
            for prior in HISTORIES.values():
                ids = IdsAsked(in_use)
                decisions.add(decision(e, prior, settings, ids))
                assert set(ids.cases) <= set(declared.case_ids), (e.kind, e.basis, e.to, e.source)
                assert set(ids.plans) <= set(declared.plan_ids), (e.kind, e.basis, e.to, e.source)
                assert set(ids.inquiries) <= set(declared.inquiry_ids), (e.kind, e.basis, e.to, e.source)
            if not declared.facts:
                assert len(decisions) == 1, (e.kind, e.basis, e.to, e.source, decisions)


def test_the_declaration_names_the_facts_and_ids_the_rules_read():
    def event(kind: str, basis: str = "internal", to: str | None = None) -> Recorded:
        envelope = {"id": "e", "kind": kind, "child": "c1", "source": "beppu-center", "basis": basis, "to": to}
        return recorded_from({**envelope, "at": "2026-04-20T09:00:00+09:00", "payload": PAYLOAD}, [], 2)

    assert not reads(event("note.recorded")).facts
    assert not reads(event("attendance.daily", "cwa-25-3", to="beppu-center")).facts  # addressed: no residence
    assert reads(event("attendance.daily", "cwa-25-3")).facts  # to the centre of the residence
    assert reads(event("concern.reported", "cwa-21-10-5")).facts
    assert reads(event("residence.changed")).facts
    assert reads(event("case.registered")) == Reads(facts=True, case_ids=("k1",))
    assert reads(event("plan.created")) == Reads(facts=False, plan_ids=("p1",))
    assert not reads(event("identity.linked")).facts
