"""The projections, in the order a publish applies them to each accepted event.

A child's events live in the child's stream; some questions cross children ("which child is student 2026-0412
of this school?", "which children are on this centre's list?"). Each projection is applied to every accepted
event with the event as recorded and the publish's unit of work (``services.projections.unit_of_work``); it
updates its own aggregates through ``get``/``add`` so they are saved atomically with the event (or stages the
event for an aggregate that records a publish's entries at once, ``stage``), and says beforehand which aggregates
it needs (``needs``). Projections never decide access.
"""

from __future__ import annotations

from events.store import OrgRegistry
from services.projections.admission_facts import CHILD_FACTS
from services.projections.cases import CASE_INDEX, CenterCases
from services.projections.family_support import SERVICE_DESK, ServiceDesk
from services.projections.households import HOUSEHOLDS
from services.projections.identity_links import IDENTITY_LINKS
from services.projections.inquiries import INQUIRY_INDEX, OrgInquiries
from services.projections.municipal_counts import MUNICIPAL_COUNTS, MunicipalMonth, MunicipalMonths, ReportLines
from services.projections.published import PUBLISHED_CHILDREN, PublishedChildren
from services.projections.rosters import SCHOOL_LISTS, CenterLists, MonthlyReports, SchoolCalendar, SchoolRoster
from services.projections.unit_of_work import Projection

INDEXES: tuple[Projection, ...] = (
    CASE_INDEX,
    IDENTITY_LINKS,
    SCHOOL_LISTS,
    CHILD_FACTS,
    PUBLISHED_CHILDREN,
    INQUIRY_INDEX,
    SERVICE_DESK,
    HOUSEHOLDS,
    MUNICIPAL_COUNTS,
)

SHARED_INDEXES: tuple[type, ...] = (
    OrgRegistry,
    CenterCases,
    ServiceDesk,
    PublishedChildren,
    OrgInquiries,
    SchoolRoster,
    CenterLists,
    SchoolCalendar,
    MunicipalMonths,
    MunicipalMonth,
)
"""The hub's shared indexes: the aggregates of an organisation or a municipality (not of a child, a case or a
school's month) that every publish batch and every centre view loads, and that grow with the cases. The aggregate
cache keeps them apart, never evicted by children's reads and imports (``events.store.WeighedCache``, "the kept
indexes"; ``services.hub.Hub`` hands this set to the store). The one place that says which they are: an
aggregate class added here is kept; one left out shares the bounded, least-recently-used budget."""

RECORDED_IN_TURN: tuple[type, ...] = (ServiceDesk, MunicipalMonth, PublishedChildren, SchoolRoster, MonthlyReports)
"""The staged indexes that a publish records on as they are stored when it saves, in their turn, not as it loaded
them (``services.publishing.batch.Batch.record_staged_on_newest``): shared by publishers of different children (a
centre's desk, a municipality's month, an organisation's children, a school's target list and month's reports),
written in a publish by ``record_staged`` only, and read by no step of a publish. An index that a publish also
changes or reads otherwise (``DailyAttendance``: an absence alert is recorded on it directly) is not one: the
publish's decisions would rest on a state it no longer saves on."""

CHANGES_REAPPLIED: tuple[type, ...] = (CenterCases, CenterLists, MunicipalMonths)
"""The shared indexes that a publish changes directly (not staged) and whose changes it applies again on the index
as stored when it saves, in their turn, when another publisher saved to it meanwhile
(``services.publishing.batch.Batch.reapply_on_newest``): each change they take in a publish is about the event's
own child (a case, a plan, a transfer) or adds to a set (a centre's schools, a municipality's months), and their
events' bodies set keyed entries or add to sets."""

LINES_RECORDED_IN_TURN: tuple[type, ...] = (ReportLines,)
"""The staged indexes of lines that a publish reads while it runs (the counts of a line's event depend on the
line's state) and records on as they are stored when it saves, in their turn, when the lines it changed are
not among those another publisher changed since it loaded them
(``services.publishing.batch.Batch.record_lines_on_newest``): a (school, centre)'s report lines, shared by
publishers of that school's different children; each line is one child's."""
