"""Each projection's ``needs`` (``services.projections.unit_of_work.Projection``): pure, no store.

A publish loads, in one query, the aggregates the projections declare they need for its events; these tests say
what each projection declares for each kind it keeps, and that applying a projection to a sequence of events
touches no aggregate it did not declare for the event (checked on an in-memory unit of work that notes every
aggregate asked for).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from events.model import Org, Recorded
from events.sealing import Keyring, configure_stream_ids
from events.store import recorded_from
from services.projections.admission_facts import CHILD_FACTS, ChildFacts, child_facts_needs
from services.projections.cases import CASE_INDEX, CaseEntry, CenterCases, PlanEntry, case_index_needs
from services.projections.family_support import SERVICE_DESK, ServiceDesk, service_desk_needs
from services.projections.households import HOUSEHOLDS, ChildHouseholds, Household, household_needs
from services.projections.identity_links import IDENTITY_LINKS, IdentityLink, identity_link_needs
from services.projections.indexes import INDEXES
from services.projections.inquiries import INQUIRY_INDEX, InquiryEntry, OrgInquiries, inquiry_index_needs
from services.projections.municipal_counts import (
    MUNICIPAL_COUNTS,
    CaseTally,
    MunicipalMonth,
    MunicipalMonths,
    municipal_counts_needs,
)
from services.projections.published import PUBLISHED_CHILDREN, PublishedChildren, published_needs
from services.projections.rosters import (
    SCHOOL_LISTS,
    CenterLists,
    DailyAttendance,
    MonthlyReports,
    SchoolRoster,
    school_lists_needs,
)

pytestmark = pytest.mark.store  # no store: the session's keys file gives the stream-id secret (_stream_ids)

ORGS = {
    o.id: o
    for o in (
        Org("beppu-center", "municipal_center", municipality="442020"),
        Org("oita-center", "municipal_center", municipality="442011"),
        Org("beppu-es-1", "school", municipality="442020", code="B144220000001"),
    )
}


@pytest.fixture(autouse=True)
def _stream_ids() -> None:
    """Aggregate ids are HMACs under the session's stream secret (``events.sealing``), set here as a store
    opened in this process sets it."""
    configure_stream_ids(Keyring.from_config().stream_secret)


def ev(kind: str, payload: dict[str, Any] | None = None, *, source: str = "beppu-center", **more: Any) -> Recorded:
    envelope = {"id": f"{kind}-1", "kind": kind, "child": "c1", "source": source, "basis": "internal"}
    return recorded_from({**envelope, "at": "2026-05-01T09:00:00+09:00", "payload": payload or {}, **more}, [], 3)


REGISTERED = ev("case.registered", {"case": "k1", "case_type": "abuse.neglect"})
TRANSFERRED = ev("case.transferred", {"case": "k1", "to": "oita-center"})
ACKNOWLEDGED = ev("case.transfer_acknowledged", {"case": "k1", "from": "beppu-center"}, source="oita-center")
PLAN = ev("plan.created", {"plan": "p1", "version": 1})
LINKED = ev("identity.linked", {"org": "beppu-es-1", "local_number": "0412"})
ASSIGNED = ev("target_list.assigned", {"school": "B144220000001", "student_no": "0412"}, to="beppu-es-1")
REMOVED = ev("target_list.removed", {"school": "beppu-es-1", "student_no": "0412"}, to="beppu-es-1")
MONTHLY = ev("attendance.monthly", {"month": "2026-05"}, source="beppu-es-1", to="beppu-center")
DAILY = ev("attendance.daily", {"date": "2026-05-01", "status": "absent"}, source="beppu-es-1", to="beppu-center")
ALERT = ev("absence.alert", {"reason": "streak", "since": "2026-04-27"}, source="beppu-es-1", to="beppu-center")
NOTE = ev("note.recorded", {"text": "記録"})
NOTIFIED = ev("concern.reported", {}, basis="cwa-25", to="beppu-center")
ASKED = ev(
    "inquiry.sent",
    {"inquiry": "q1", "case": "k1", "meeting_date": "2026-06-15", "due": "2026-06-10"},
    basis="cwa-25-3",
    to="beppu-es-1",
)
ANSWERED = ev("inquiry.answered", {"inquiry": "q1", "no_change": True}, source="beppu-es-1", to="beppu-center")


def test_the_inquiry_index_needs_the_inquiry_and_both_sides():
    both = [InquiryEntry.create_id("q1"), OrgInquiries.create_id("beppu-center"), OrgInquiries.create_id("beppu-es-1")]
    assert inquiry_index_needs(ASKED, ORGS) == both
    assert inquiry_index_needs(ANSWERED, ORGS) == [both[0], both[2], both[1]]
    assert inquiry_index_needs(NOTE, ORGS) == inquiry_index_needs(REGISTERED, ORGS) == []


# family-support services (家庭支援事業)
RECOMMENDED = ev("service.recommended", {"recommendation": "R-1"})
REFERRED = ev("service.referred", {"referral": "F-1"}, basis="commissioned", to="visit-a")
URGENT = ev("visit.report", {"urgent": True}, source="visit-a", basis="commissioned", to="beppu-center")
REPORT_ACKNOWLEDGED = ev("report.acknowledged", {"report": "visit.report-1"}, basis="commissioned", to="visit-a")


JOINED = ev("household.joined", {"household": "H1", "relation": "sibling"})
LEFT = ev("household.left", {"household": "H1"})


def test_the_case_index_needs_the_entry_and_every_centre_an_event_is_about():
    assert case_index_needs(REGISTERED, ORGS) == [CaseEntry.create_id("k1"), CenterCases.create_id("beppu-center")]
    assert case_index_needs(ev("case.closed", {"case": "k1"}), ORGS) == [
        CaseEntry.create_id("k1"),
        CenterCases.create_id("beppu-center"),
    ]
    assert case_index_needs(TRANSFERRED, ORGS) == [
        CaseEntry.create_id("k1"),
        CenterCases.create_id("beppu-center"),
        CenterCases.create_id("oita-center"),
    ]
    assert case_index_needs(ACKNOWLEDGED, ORGS) == [
        CenterCases.create_id("oita-center"),
        CenterCases.create_id("beppu-center"),
    ]
    assert case_index_needs(PLAN, ORGS) == [PlanEntry.create_id("p1"), CenterCases.create_id("beppu-center")]
    assert case_index_needs(NOTE, ORGS) == case_index_needs(MONTHLY, ORGS) == []


def test_the_identity_links_need_the_link_of_the_number_a_link_event_names():
    assert identity_link_needs(LINKED, ORGS) == [IdentityLink.create_id("beppu-es-1", "0412")]
    unlinked = ev("identity.unlinked", {"org": "beppu-es-1", "local_number": "0412"})
    assert identity_link_needs(unlinked, ORGS) == [IdentityLink.create_id("beppu-es-1", "0412")]
    assert identity_link_needs(NOTE, ORGS) == identity_link_needs(REGISTERED, ORGS) == []


def test_the_school_lists_need_the_list_report_or_attendance_an_event_changes():
    # a school named by its 学校コード is its hub id; a listing also notes the school on the centre's lists
    assert school_lists_needs(ASSIGNED, ORGS) == [
        SchoolRoster.create_id("beppu-es-1"),
        CenterLists.create_id("beppu-center"),
    ]
    assert school_lists_needs(REMOVED, ORGS) == [SchoolRoster.create_id("beppu-es-1")]
    assert school_lists_needs(dict_replace(ASSIGNED, source="beppu-es-1"), ORGS) == []  # only a centre lists
    assert school_lists_needs(MONTHLY, ORGS) == [MonthlyReports.create_id("beppu-es-1", "2026-05")]
    daily = DailyAttendance.create_id("beppu-es-1", "c1", "beppu-center")
    assert school_lists_needs(DAILY, ORGS) == school_lists_needs(ALERT, ORGS) == [daily]
    assert school_lists_needs(ev("absence.alert", {"reason": "streak"}, source="beppu-es-1"), ORGS) == []
    assert school_lists_needs(NOTE, ORGS) == []


def test_the_child_facts_are_needed_for_a_fact_only():
    assert child_facts_needs(REGISTERED, ORGS) == [ChildFacts.create_id("c1")]
    assert child_facts_needs(NOTIFIED, ORGS) == [ChildFacts.create_id("c1")]  # every 通告 is a fact
    assert child_facts_needs(NOTE, ORGS) == child_facts_needs(DAILY, ORGS) == []


def test_the_publishers_index_is_needed_for_every_event_of_a_child():
    assert published_needs(NOTE, ORGS) == [PublishedChildren.create_id("beppu-center")]
    assert published_needs(MONTHLY, ORGS) == [PublishedChildren.create_id("beppu-es-1")]


def test_the_service_desk_needs_the_desk_of_each_side_of_a_service_event():
    beppu, provider = ServiceDesk.create_id("beppu-center"), ServiceDesk.create_id("visit-a")
    assert service_desk_needs(RECOMMENDED, ORGS) == [beppu]
    assert service_desk_needs(REFERRED, ORGS) == [beppu, provider]
    assert service_desk_needs(URGENT, ORGS) == [provider, beppu]
    assert service_desk_needs(REPORT_ACKNOWLEDGED, ORGS) == [beppu, provider]
    assert service_desk_needs(NOTE, ORGS) == service_desk_needs(MONTHLY, ORGS) == []
    assert service_desk_needs(dict_replace(URGENT, basis="internal", to=None), ORGS) == []


def test_the_households_need_the_household_and_the_childs_list_of_households():
    needed = [Household.create_id("beppu-center", "H1"), ChildHouseholds.create_id("c1")]
    assert household_needs(JOINED, ORGS) == household_needs(LEFT, ORGS) == needed
    # a household id is the centre's own: another centre's H1 is another household
    assert household_needs(dict_replace(JOINED, source="oita-center"), ORGS)[0] == Household.create_id(
        "oita-center", "H1"
    )
    assert household_needs(NOTE, ORGS) == household_needs(REGISTERED, ORGS) == []


def test_the_municipal_counts_need_the_tally_and_the_months_of_every_centre_named():
    beppu, oita = ("442020", "442011")
    assert municipal_counts_needs(REGISTERED, ORGS) == [
        CaseTally.create_id("k1"),
        MunicipalMonths.create_id(beppu),
        MunicipalMonth.create_id(beppu, "2026-05"),
    ]
    assert municipal_counts_needs(TRANSFERRED, ORGS)[3:] == [
        MunicipalMonths.create_id(oita),
        MunicipalMonth.create_id(oita, "2026-05"),
    ]
    assert municipal_counts_needs(NOTE, ORGS) == municipal_counts_needs(LINKED, ORGS) == []


def dict_replace(e: Recorded, **fields: Any) -> Recorded:
    copy = e.placed(e.position)
    copy.__dict__.update(fields)
    return copy


class NotingUnitOfWork:
    """A unit of work in memory (``services.projections.unit_of_work.UnitOfWork``) that notes the id of every
    aggregate a projection asks for, adds or stages."""

    def __init__(self) -> None:
        self.aggregates: dict[UUID, Any] = {}
        self.touched: set[UUID] = set()

    @property
    def orgs(self) -> dict[str, Org]:
        return ORGS

    def get(self, cls: type, *key: Any, create: bool = True) -> Any:
        aggregate_id = cls.create_id(*key)
        self.touched.add(aggregate_id)
        if aggregate_id not in self.aggregates and create:
            self.aggregates[aggregate_id] = cls(*key)
        return self.aggregates.get(aggregate_id)

    def add(self, aggregate: Any) -> None:
        self.touched.add(aggregate.id)
        self.aggregates[aggregate.id] = aggregate

    def stage(self, cls: type, key: tuple[Any, ...], e: Recorded) -> None:
        self.touched.add(cls.create_id(*key))


SEQUENCE = [
    REGISTERED,
    NOTIFIED,
    PLAN,
    PLAN,
    LINKED,
    ASSIGNED,
    MONTHLY,
    DAILY,
    ALERT,
    REMOVED,
    TRANSFERRED,
    ACKNOWLEDGED,
    ev("case.closed", {"case": "k1"}),
    ev("identity.unlinked", {"org": "beppu-es-1", "local_number": "0412"}),
    JOINED,
    LEFT,
    NOTE,
    ASKED,
    ANSWERED,
    ASKED,
    RECOMMENDED,
    REFERRED,
    URGENT,
    REPORT_ACKNOWLEDGED,
]


@pytest.mark.parametrize("projection", INDEXES, ids=lambda p: p.apply.__name__)
def test_applying_a_projection_touches_only_what_it_declared(projection):
    assert {
        CASE_INDEX,
        IDENTITY_LINKS,
        SCHOOL_LISTS,
        CHILD_FACTS,
        PUBLISHED_CHILDREN,
        INQUIRY_INDEX,
        SERVICE_DESK,
        HOUSEHOLDS,
        MUNICIPAL_COUNTS,
    } == set(INDEXES)
    unit_of_work = NotingUnitOfWork()
    for e in SEQUENCE:
        unit_of_work.touched.clear()
        projection.apply(e, unit_of_work)
        assert unit_of_work.touched <= set(projection.needs(e, ORGS)), e.kind
