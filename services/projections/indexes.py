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
from services.projections.municipal_counts import MUNICIPAL_COUNTS, MunicipalMonth, MunicipalMonths
from services.projections.published import PUBLISHED_CHILDREN, PublishedChildren
from services.projections.rosters import SCHOOL_LISTS, CenterLists, SchoolCalendar, SchoolRoster
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
