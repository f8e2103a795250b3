"""Step 3 of a publish: admit an event under the policy's publish rules.

The decision is ``consent.admission.admit``'s, pure; this step only gathers what it reads: the child's earlier
facts (``services.projections.admission_facts.ChildFacts``) when the rules read them, and whether case and plan ids
are in use, from the case and plan index as the batch sees it (its own earlier events included). Which of these an
event needs is ``consent.admission.reads``'s answer, so that a batch loads them all in one query
(``admission_needs``) before it admits anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from consent.admission import admit, reads
from consent.model import Settings
from events.model import Recorded
from services.projections.admission_facts import ChildFacts
from services.projections.cases import CaseEntry, PlanEntry
from services.projections.inquiries import InquiryEntry
from services.publishing.batch import Batch


def admission_needs(e: Recorded) -> Iterable[UUID]:
    """The aggregates admitting ``e`` reads: the child's facts when the rules read them, and the index entries of
    the case and plan ids whose use they ask about."""
    needed = reads(e)
    if needed.facts:
        yield ChildFacts.create_id(e.child)
    for case in needed.case_ids:
        yield CaseEntry.create_id(case)
    for plan in needed.plan_ids:
        yield PlanEntry.create_id(plan)
    for inquiry in needed.inquiry_ids:
        yield InquiryEntry.create_id(inquiry)


class IdsInBatch:
    """``consent.authority.IdsInUse`` for a publish: whether a case, plan or inquiry id is in use for any child, from
    the index as this batch sees it (its own earlier events included)."""

    def __init__(self, batch: Batch):
        self.batch = batch

    def case_registered(self, case: str) -> bool:
        """Whether ``case`` names a registered case."""
        return self.batch.get(CaseEntry, case, create=False) is not None

    def plan_created(self, plan: str) -> bool:
        """Whether ``plan`` names a created plan."""
        return self.batch.get(PlanEntry, plan, create=False) is not None

    def inquiry_sent(self, inquiry: str) -> bool:
        """Whether ``inquiry`` names a sent inquiry."""
        return self.batch.get(InquiryEntry, inquiry, create=False) is not None


def admit_in_batch(e: Recorded, batch: Batch, settings: Settings) -> frozenset[str]:
    """``e``'s direct audience (``consent.admission.admit``) given what the batch holds; raises ``Rejected`` or
    ``consent.admission.AwaitsResidence`` as ``admit`` does. The child's facts are handed over only when the
    rules read them (``consent.admission.reads``: elsewhere they decide the same on any facts)."""
    facts = batch.facts(e.child) if reads(e).facts else []
    return admit(e, facts, batch.orgs, settings, IdsInBatch(batch))
