"""The planners' counts per municipality and month (集計, ``../shared/spec/aggregates.md``), kept with ``INDEXES``.

Per (municipality, month) a ``MunicipalMonth``: measure -> count, for the months the municipality has events in
(``MunicipalMonths`` lists them, so that a level such as "cases open at month end" is the running sum of its
monthly changes without a scan of the store). A count never names a child, a case, a school or a person: the
small per-case and per-inquiry tallies this projection keeps to count each case once (``CaseTally``,
``InquiryTally``) hold a municipality, a category and dates, and are never shown.

**Explicit mechanism: counts ride on staged events.** A school's import publishes thousands of events at once; one
aggregate event per (municipality, month) per publish is written, not one per event: ``keep_municipal_counts``
works out each event's counts (it needs the registry and the case tallies, which ``record_staged`` does not have)
and stages, for the month's aggregate, a copy of the event whose payload *is* those counts
(``dataclasses.replace(e, payload=counts)``). ``MunicipalMonth.record_staged`` adds the payloads up into one
``Counted`` event. The staged copies are never stored.

How an event is placed: a case's events at the municipality of the centre that registered it (a transfer also
at the receiving centre's, as ``transferred_in``); a concern, notification, alert or monthly report at the
municipality of the centre it was sent ``to``; plans, consents, emergencies, target lists and inquiries at the
municipality of the centre that published them; a provider's work at the municipality of the centre side of
the ``commissioned`` exchange. An event with no such centre (e.g. a 25条 notification filed with a 児相) is not
counted. The month is the event's ``at`` in Japan time, except a monthly report's, which counts for the month it
reports on.

Measures (``MEASURES``) and, after ``:``, their breakdowns. **Not built**: emergencies reviewed (a review is an auditor's finding on an access
record, not an event of the log); households per service; alerts and concerns per school (a dimension finer
than the spec allows, never built).

**Explicit mechanism: counts for another month, carried by the event's month.** Some figures belong to a month
that an event decides but that is not its own (often one that has not come yet); they are counted with the
event's month under the key ``measure@YYYY-MM`` (``AHEAD``; ``tally`` does it for every month the event does not
name, so that a publish writes only the months its events declare, ``municipal_counts_needs``), taken back the
same way, and moved to the month they name when the figures are read (``services.aggregates.figures``, which
reads every month of the municipality anyway to sum the levels). No month's figure needs a clock or a scan of
the store:

- *Reviews overdue at month end* (``reviews.overdue``, a level): a case's next review is due on
  ``services.projections.cases.next_review_day`` (the ledger's definition: the day its last review decided, else
  the last review or the registration + 91 days) and is overdue from the day after. Registering or reviewing a
  case adds +1 to the month of that day (often a later month); the next review, the closure or the transfer adds
  -1 to the month it ends the wait in (the month of the event if the review was overdue by then, else the month
  the +1 went to, which takes it back). The level at the end of a month is the running sum, as for open cases.
  A month not over yet (or still to come) shows what its end will be if nothing happens before it.
- *Plans reviewed within 91 days* (``plans.review_due`` and ``plans.reviewed_in_91_days``, a share kept as two
  counts): a plan created adds 1 to ``plans.review_due`` of the month in which its 91 days end; its author's
  first revision within those days adds 1 to ``plans.reviewed_in_91_days`` of the same month.

*Monthly reports* (定期的な情報提供, ``school-reports.md``, as ``services.schools.overdue`` defines them: every
listing of a school's target list expects a report for each month it covers, from ``from_month`` up to the month
of its removal, due by ``monthly_report_due_day`` (1–28) of the next month; a report of the child to the
listing's centre for the month answers every listing of the child and centre at the school). Counted at the
municipality of the listing's centre, for the month reported on, from a line per (school, child, centre) that
names none of them (its key is a stream id, ``report_line_key``), kept in the (school, centre)'s ``ReportLines``
under the hub's key (``ReportLine``, one stream a line, in stores written before, is moved there once by the store
format step ``services.aggregates.report_lines.move_report_lines`` and never read by the publish path):

- ``reports.expected`` (a level: +1 at the listing's first month, -1 at the month of its removal);
- each listing's first report for a month: ``reports.arrived:day=D`` (D the day of the next month it came on, 0
  if before, 99 if later), from which ``figures`` reads ``reports.on_time`` and ``reports.late`` under the due day
  in force (the overdue list's own rule), and ``reports.settled.change`` +1 in the month after the month reported
  on, or the month it came in if later (written ahead);
- ``reports.missing`` at the end of month X (read by ``figures``): the reports expected for the months before X
  (whose due day has passed by the end of X) less those settled by X.

*Median days between reviews* (``reviews.median_days``) is not a count: each counted review adds 1 to
``reviews.interval:days=N`` (N days since the case's last review, or its registration) and to
``reviews.intervals``; the median is taken from those counts when read (``median_days``), over any months and
municipalities, and is never summed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from datetime import date, datetime, timedelta
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from events.clock import JST
from events.dates import month_of
from events.direct_events import direct_events
from events.index_snapshots import SnapshottedIndex
from events.model import CENTER, Org, Recorded
from events.sealing import stream_id
from events.store import HubStore, _CopiedOnWrite
from services.projections.cases import DEFAULT_REVIEW_INTERVAL, next_review_day
from services.projections.unit_of_work import OneEventPerPublish, Projection, UnitOfWork

CASE_GROUPS = {  # 相談種別 -> the group of the spring survey (虐待 / 養護その他 / 保健 / 障害 / 非行 / 育成)
    "abuse_physical": "abuse",
    "abuse_psychological": "abuse",
    "abuse_sexual": "abuse",
    "abuse_neglect": "abuse",
    "neglect": "yougo_other",
    "yougo_other": "yougo_other",
    "childcare_difficulty": "yougo_other",
    "young_carer": "yougo_other",
    "pregnancy_support": "health",
    "health": "health",
    "disability": "disability",
    "delinquency": "delinquency",
    "upbringing": "upbringing",
}

MEASURES = (  # the measures counted per municipality and month; "cases.open" and "reports.listed" are levels
    "cases.registered",
    "cases.closed",
    "cases.transferred_out",
    "cases.transferred_in",
    "cases.open",
    "reviews.cases",
    "reviews.overdue",
    "reviews.intervals",
    "reviews.median_days",
    "plans.created",
    "plans.revised",
    "consents.granted",
    "consents.refused",
    "consents.withdrawn",
    "plans.review_due",
    "plans.reviewed_in_91_days",
    "reports.listed",
    "reports.received",
    "reports.expected",
    "reports.on_time",
    "reports.late",
    "reports.missing",
    "alerts",
    "concerns",
    "notifications",
    "transfers.sent",
    "transfers.acknowledged_in_14_days",
    "transfers.not_acknowledged",
    "emergencies.declared",
    "services.referrals",
    "services.monitoring",
    "services.usage",
    "services.visits",
    "inquiries.sent",
    "inquiries.answered_on_time",
)
LEVELS = {
    "cases.open": "cases.open.change",
    "reports.listed": "reports.listed.change",
    "transfers.not_acknowledged": "transfers.not_acknowledged.change",
    "reviews.overdue": "reviews.overdue.change",
    "reports.expected": "reports.expected.change",
}
"""A level at month end (open cases, listed children, transfers waiting for acknowledgement, reviews overdue) is
kept as its monthly change and summed up when read."""

MONTH_END = frozenset(
    {"cases.open", "reports.listed", "transfers.not_acknowledged", "reviews.overdue", "reports.missing"}
)
"""The measures that are a state at the end of a month (added up over months they mean nothing: a period's
figure is its last month-end). ``reports.expected`` is kept as a level (``LEVELS``) but counts the reports
expected for each month, which do add up."""

MEDIANS = {"reviews.median_days": ("reviews.interval:days=", "reviews.intervals")}
"""A median read from counts: its measure -> (the prefix of the keys counting each number of days, the count of
intervals behind it). Never summed (see ``median_days``)."""

COUNTED_KINDS = frozenset(
    {
        "case.registered",
        "case.reviewed",
        "case.closed",
        "case.transferred",
        "case.transfer_acknowledged",
        "plan.created",
        "plan.revised",
        "consent.granted",
        "consent.refused",
        "consent.withdrawn",
        "target_list.assigned",
        "target_list.removed",
        "attendance.monthly",
        "absence.alert",
        "concern.reported",
        "notification.filed",
        "emergency.declared",
        "service.referred",
        "service.monitoring",
        "service.usage",
        "visit.report",
        "inquiry.sent",
        "inquiry.answered",
    }
)

TRANSFER_ACK_DAYS = 14
PLAN_REVIEW_DAYS = DEFAULT_REVIEW_INTERVAL  # a plan reviewed within 91 days of creation (aggregates.md)


def day_of(at: datetime) -> date:
    return at.astimezone(JST).date()


def median_days(counts: Mapping[str, int], prefix: str) -> float | None:
    """The median of the numbers of days counted under ``prefix`` (``reviews.interval:days=N`` -> how many), the
    middle one, or the mean of the two middle ones; ``None`` when there is none."""
    histogram = sorted((int(key[len(prefix) :]), n) for key, n in counts.items() if key.startswith(prefix) and n > 0)
    total = sum(n for _, n in histogram)
    if not total:
        return None
    wanted = [(total - 1) // 2, total // 2]  # the 0-based ranks of the middle (one or two)
    found: list[int] = []
    seen = 0
    for days, n in histogram:
        found += [days for rank in wanted if seen <= rank < seen + n]
        seen += n
    return sum(found) / len(found)


@direct_events
class MunicipalMonth(_CopiedOnWrite, Aggregate):
    """One municipality's counts for one month: ``measure`` or ``measure:breakdown`` -> count."""

    @staticmethod
    def create_id(municipality: str, month: str) -> UUID:
        return stream_id(f"municipal-month:{municipality}:{month}")

    def __init__(self, municipality: str, month: str):
        self.municipality = municipality
        self.month = month
        self.counts: dict[str, int] = {}

    @event("Counted")
    def count(self, deltas: dict[str, int]) -> None:
        counts = dict(self.counts)
        for key, n in deltas.items():
            counts[key] = counts.get(key, 0) + int(n)
        self.counts = {key: n for key, n in counts.items() if n}

    def record_staged(self, events: list[Recorded]) -> None:
        """The counts of the events a publish staged for this month (their payloads are counts, see the module
        docstring), as one event."""
        deltas: dict[str, int] = {}
        for e in events:
            for key, n in e.payload.items():
                deltas[key] = deltas.get(key, 0) + int(n)
        if deltas:
            self.count(deltas=deltas)


@direct_events
class MunicipalMonths(_CopiedOnWrite, Aggregate):
    """The months a municipality has counts for (so a level is summed from its first month, without a scan)."""

    @staticmethod
    def create_id(municipality: str) -> UUID:
        return stream_id(f"municipal-months:{municipality}")

    def __init__(self, municipality: str):
        self.municipality = municipality
        self.months: list[str] = []

    @event("MonthAdded")
    def add_month(self, month: str) -> None:
        self.months = sorted({*self.months, month})


@direct_events
class Tally(_CopiedOnWrite, Aggregate):
    """What counting keeps of one case, inquiry or plan (never shown). ``FIELDS`` are its state: ``tallied()``
    reads them and ``set_state_to`` records them whole, as rebuilt from the log (``figures.correct``: a store
    written before the counts, or one whose tallies lack what a later version counts)."""

    FIELDS: ClassVar[tuple[str, ...]] = ()

    def tallied(self) -> dict[str, object]:
        return {name: getattr(self, name, None) for name in self.FIELDS}

    @event("Corrected")
    def set_state_to(self, state: dict[str, object]) -> None:
        for name in self.FIELDS:
            setattr(self, name, state[name])


@direct_events
class CaseTally(OneEventPerPublish, Tally):
    """What counting needs of one case: where it is counted, its category and group, its state, the last month
    it was reviewed in and its unacknowledged transfer. Never shown.

    A publish changes it at once, one event a change (a later event of the case in the same batch counts from
    the state an earlier one left), and stores the changes as one ``ChangesCounted`` (``OneEventPerPublish``);
    stores written before hold the per-change events, which replay as before."""

    FOLDED_EVENT = "ChangesCounted"
    StateCounted: ClassVar[type[Any]]  # made by ``@event`` below; named here for ``folded_fields``
    ReviewCounted: ClassVar[type[Any]]
    TransferCounted: ClassVar[type[Any]]
    ReviewDueCounted: ClassVar[type[Any]]

    FIELDS = (
        "case",
        "municipality",
        "registrar",
        "category",
        "group",
        "state",
        "reviewed_month",
        "transfer",
        "since",
        "due",
    )

    @staticmethod
    def create_id(case: str) -> UUID:
        return stream_id(f"case-tally:{case}")

    def __init__(self, case: str, municipality: str, registrar: str, category: str, group: str):
        self.case = case
        self.municipality = municipality
        self.registrar = registrar
        self.category = category
        self.group = group
        self.state = "open"
        self.reviewed_month = ""
        self.transfer: dict[str, str] = {}  # {to, at, month, municipality} while unacknowledged
        self.since = ""  # the last review's time, or the registration's (ISO); "" in a tally kept before this
        self.due = ""  # the day the next review is due (ISO) while the case is open; "" once closed or before this

    @event("StateCounted")
    def set_state(self, state: str) -> None:
        self.state = state

    @event("ReviewCounted")
    def reviewed(self, month: str) -> None:
        self.reviewed_month = month

    @event("TransferCounted")
    def transferred(self, transfer: dict[str, str]) -> None:
        self.transfer = dict(transfer)

    @event("ReviewDueCounted")
    def review_due(self, since: str, due: str) -> None:
        self.since = since
        self.due = due

    @event("ChangesCounted")
    def changes_counted(self, changes: dict[str, Any]) -> None:
        """What one publish changed, field by field (``state``, ``reviewed_month``, ``transfer``, ``since``,
        ``due``: each as its last change in the publish left it), set as the per-change events set them."""
        for name, value in changes.items():
            setattr(self, name, dict(value) if name == "transfer" else value)

    def folded_fields(self, events: list[Any]) -> dict[str, Any] | None:
        """The ``ChangesCounted`` that stands for ``events`` (``OneEventPerPublish``): each field one of them set,
        with the value the last to set it gave (each per-change event sets its fields from its own, and nothing
        else); ``None`` when one of them is another event (a correction)."""
        changes: dict[str, Any] = {}
        for e in events:
            kind = type(e)
            if kind is self.StateCounted:
                changes["state"] = e.state
            elif kind is self.ReviewCounted:
                changes["reviewed_month"] = e.month
            elif kind is self.TransferCounted:
                changes["transfer"] = dict(e.transfer)
            elif kind is self.ReviewDueCounted:
                changes["since"], changes["due"] = e.since, e.due
            else:
                return None
        return {"changes": changes}


@direct_events
class PlanTally(Tally):
    """What counting needs of one support plan: where it is counted, its author, when it was created and whether
    a revision within 91 days was counted. Never shown."""

    FIELDS = ("plan", "municipality", "author", "created", "reviewed")

    @staticmethod
    def create_id(plan: str) -> UUID:
        return stream_id(f"plan-tally:{plan}")

    def __init__(self, plan: str, municipality: str, author: str, created: str):
        self.plan = plan
        self.municipality = municipality
        self.author = author
        self.created = created
        self.reviewed = False

    @event("ReviewCounted")
    def review(self) -> None:
        self.reviewed = True


@direct_events
class ReportLine(Tally):
    """What counting needed of one child's monthly reports from one school to one centre, kept alone: the periods
    of its listings (per student number, named by digest) and the months a report came for, with the day it came.
    Never shown; names no child, school or student (``key`` is a stream id).

    **Kept for stores written before ``ReportLines``**: no line is written here any more, and the publish path
    never reads one. The store format step ``services.aggregates.report_lines.move_report_lines`` (store format 6,
    run when the hub opens an older store, or by ``tsunagu report-lines move``) moves every such line, whole, into
    its (school, centre)'s ``ReportLines``, unless a publish moved it there before (session 8's publishes moved a
    line on its first change: the one in ``ReportLines`` is then the newer). The stream itself is left as it is,
    readable as main left it (under the hub's key, as ``ReportLines``: an erasure takes neither)."""

    FIELDS = ("key", "municipality", "periods", "received")

    @staticmethod
    def create_id(key: str) -> UUID:
        return stream_id(f"report-line-tally:{key}")

    def __init__(self, key: str):
        self.key = key
        self.municipality = ""
        self.periods: list[list[str]] = []  # [student digest, from_month, end_month ("" while listed)]
        self.received: dict[str, str] = {}  # month reported on -> the Japan day its first report came (ISO)

    @event("ListingCounted")
    def listed(self, municipality: str, periods: list[list[str]]) -> None:
        self.municipality = municipality
        self.periods = [list(p) for p in periods]

    @event("ReportCounted")
    def report(self, month: str, day: str) -> None:
        self.received = {**self.received, month: day}


def report_line_key(school: str, child: str, centre: str) -> str:
    return str(stream_id(f"report-line:{school}\x1f{child}\x1f{centre}"))


Line = dict[str, Any]  # a report line: {"municipality": str, "periods": [[student digest, from, end]], "received"}
NO_LINE: Line = {"municipality": "", "periods": [], "received": {}}


def line_of(alone: ReportLine) -> Line:
    """The line a ``ReportLine`` kept alone (a store written before ``ReportLines``)."""
    return {"municipality": alone.municipality, "periods": alone.periods, "received": alone.received}


@direct_events
class ReportLines(_CopiedOnWrite, SnapshottedIndex, Aggregate):
    """What counting needs of the monthly reports (定期的な情報提供) of one school's children to one centre: per
    line (``report_line_key``, a digest naming no child), its ``Line``: the periods of its listings per student
    number (named by digest), the centre's municipality and the months a report came for, with the day it came,
    as ``ReportLine`` kept it alone. Never shown. Kept under the hub's key, as ``ReportLine``: a child's erasure
    leaves its line, so that the child's later events (a removal from the target list, a report still in the
    school's file) are counted from it as before (the lead's rule, session 7), and ``figures.ErasedLines`` counts
    it in the rebuild. Lines are replaced, never changed in place (the store copies aggregates one level deep).

    **Explicit mechanism: lines worked on during a publish, their changes recorded once at its end.** The counts
    of a monthly report or a listing depend on the line as the events before it in the same publish left it (a
    second report for a month counts nothing), so the projection changes the line at once, on the publish's own
    copy of this aggregate (``work_on``, not an event), which also notes what changed (``changes``: per line, the
    municipality, the periods when they changed, the months received that are new; a new line whole).
    ``record_staged`` (called by ``Batch.save``: the projection staged the events here)
    records the notes in one ``LinesCounted``, whose replay applies each to its line: so the stored state is what
    the publish worked out, a stored event grows with what changed and not with a line's history, and nothing is
    recorded when the publish is not saved (its copy is dropped; a retried publish starts again from the store).
    It replaces one ``ReportLine`` stream per (school, child, centre), loaded and stored per row of a school's
    monthly file (two stored events opened and one written a row).

    A cold load (a process whose cache does not hold it) opens it from its snapshot and the events after it
    (``events.index_snapshots``: ``snapshot_state``, ``restore_state``), not from every ``LinesCounted`` of
    the pair's history."""

    LinesCounted: ClassVar[type[Any]]  # made by ``@event`` below; named here for ``lines_changed_by``
    LinesCorrected: ClassVar[type[Any]]
    LinesMoved: ClassVar[type[Any]]

    @staticmethod
    def create_id(school: str, centre: str) -> UUID:
        return stream_id(f"report-lines:{school}\x1f{centre}")

    def __init__(self, school: str, centre: str):
        self.lines: dict[str, Line] = {}  # report_line_key -> its line
        self.changes: dict[str, dict[str, Any]] = {}  # this publish's changes, not recorded yet (``work_on``)

    SNAPSHOT_AFTER = 12  # a cold load that replayed a year of monthly files or more takes a snapshot

    def snapshot_state(self) -> dict[str, Any]:
        """The snapshot's state (``events.index_snapshots``): the lines, nothing else (``changes`` is a publish's,
        empty in a stored state). Under the hub's key, as every event of this aggregate: the lines name no child,
        school or student (digests), and an erased child's line is kept readable by the rule above, so a snapshot
        holds nothing an erasure must make unreadable."""
        return {"lines": self.lines}

    def restore_state(self, state: dict[str, Any]) -> None:
        self.lines = state["lines"]
        self.changes = {}

    @event("LinesCounted")
    def count_lines(self, changes: list[dict[str, Any]]) -> None:
        """What one publish changed, one entry a line: ``{"line", "municipality", "received"}`` (the months newly
        received, with their day), and ``"periods"`` when the listings' periods changed."""
        lines = dict(self.lines)
        for change in changes:
            old = lines.get(change["line"], NO_LINE)
            lines[change["line"]] = {
                "municipality": change["municipality"],
                "periods": change.get("periods", old["periods"]),
                "received": {**old["received"], **change["received"]},
            }
        self.lines = lines
        self.changes = {}

    @event("LinesCorrected")
    def correct_lines(self, lines: list[dict[str, Any]]) -> None:
        """Lines set whole, as rebuilt from the log (``figures.correct``), one entry a line: ``{"line", **Line}``."""
        self.lines = {
            **self.lines,
            **{entry["line"]: {k: v for k, v in entry.items() if k != "line"} for entry in lines},
        }
        self.changes = {}

    @event("LinesMoved")
    def move_lines(self, lines: list[dict[str, Any]]) -> None:
        """Lines kept alone by a store written before (``ReportLine``), moved here whole by the store format step
        (``services.aggregates.report_lines.move_report_lines``), one entry a line: ``{"line", **Line}``. Never a
        line already here (the step moves only the others)."""
        self.lines = {
            **self.lines,
            **{entry["line"]: {k: v for k, v in entry.items() if k != "line"} for entry in lines},
        }
        self.changes = {}

    def work_on(
        self,
        key: str,
        old: Line,
        municipality: str,
        periods: list[list[str]] | None = None,
        received: dict[str, str] | None = None,
    ) -> None:
        """Change the line ``key`` (``old`` as the publish found it) on the publish's copy and note the change, to
        be recorded by ``record_staged`` (see the class)."""
        noted = self.changes.get(key)
        if noted is None:  # the line's first change in this publish: a line not here yet is noted whole
            noted = {"line": key, **old} if key not in self.lines else {"line": key, "received": {}}
        noted = {**noted, "municipality": municipality, "received": {**noted["received"], **(received or {})}}
        if periods is not None:
            noted["periods"] = periods
        # the publish's copy owns both dicts (``_CopiedOnWrite``); the lines in them are replaced, never changed
        self.changes[key] = noted
        self.lines[key] = {
            "municipality": municipality,
            "periods": old["periods"] if periods is None else periods,
            "received": {**old["received"], **(received or {})},
        }

    def record_staged(self, events: list[Recorded]) -> None:
        """Record the changes this publish made to the lines (``work_on``), in one event."""
        if self.changes:
            self.count_lines(changes=list(self.changes.values()))

    def lines_changed(self) -> set[str]:
        """The lines this publish changed (``work_on``; a new line included)."""
        return set(self.changes)

    @staticmethod
    def lines_changed_by(stored: Any) -> set[str] | None:
        """The lines a stored event of this aggregate changed (its creation: none); ``None`` for an event after
        which a publish must not be recorded on the newest state (``Batch.record_lines_on_newest`` refuses it and the
        publish is tried again): one this aggregate does not know, which may have changed any line, and a
        correction (``LinesCorrected``, ``figures.correct``), which may have changed a line the publish only read:
        a line read by a publish is one child's, and another publisher of that child conflicts on the child's
        stream, but a correction touches no child's stream (review of s8-lines, LOW 2). Corrections are rare (a
        format upgrade): the retry costs nothing that matters."""
        if isinstance(stored, ReportLines.LinesCounted):
            return {change["line"] for change in stored.changes}
        if isinstance(stored, ReportLines.LinesMoved):
            return {entry["line"] for entry in stored.lines}
        if isinstance(stored, ReportLines.Created):
            return set()
        return None

    def take_changes(self, worked: ReportLines) -> None:
        """Take the changes the publish noted on its copy ``worked`` (``work_on``), to be recorded on this one, the
        aggregate as stored now (``services.publishing.batch.Batch.record_lines_on_newest``)."""
        self.changes = dict(worked.changes)


@direct_events
class InquiryTally(Tally):
    """What counting needs of one inquiry (事前照会): where and in which month it was counted, its due day, and
    whether an answer was counted. Never shown."""

    FIELDS = ("inquiry", "municipality", "month", "due", "member", "answered")

    @staticmethod
    def create_id(inquiry: str) -> UUID:
        return stream_id(f"inquiry-tally:{inquiry}")

    def __init__(self, inquiry: str, municipality: str, month: str, due: str, member: str):
        self.inquiry = inquiry
        self.municipality = municipality
        self.month = month
        self.due = due
        self.member = member
        self.answered = False

    @event("AnswerCounted")
    def answer(self) -> None:
        self.answered = True


def municipality_of(org: str | None, orgs: Mapping[str, Org]) -> str | None:
    """The municipality of a registered centre (or municipal department), else ``None``."""
    found = orgs.get(org) if org else None
    if found is None or found.type not in (CENTER, "municipal_department"):
        return None
    return found.municipality


def _places(e: Recorded, orgs: Mapping[str, Org]) -> tuple[list[str], list[str]]:
    """The municipalities and months ``e`` may add counts to: those of the centres it names, and its month (a
    monthly report's also the month it reports on)."""
    named = (e.source, e.to, e.payload.get("to"), e.payload.get("from"))
    municipalities = [m for m in dict.fromkeys(municipality_of(str(o), orgs) for o in named if o) if m]
    months = [month_of(e.at)]
    if e.kind == "attendance.monthly" and e.payload.get("month") and e.payload["month"] not in months:
        months.append(str(e.payload["month"]))
    return municipalities, months


def municipal_counts_needs(e: Recorded, orgs: Mapping[str, Org]) -> list[UUID]:
    """The aggregates ``keep_municipal_counts`` reads or writes for ``e``: the case's or inquiry's tally, and for
    every municipality of a centre the event names its list of months and its month (staged)."""
    ids: list[UUID] = []
    if e.kind.startswith("case.") and e.payload.get("case"):
        ids.append(CaseTally.create_id(str(e.payload["case"])))
    if e.kind in ("inquiry.sent", "inquiry.answered") and e.payload.get("inquiry"):
        ids.append(InquiryTally.create_id(str(e.payload["inquiry"])))
    if e.kind in ("plan.created", "plan.revised") and e.payload.get("plan"):
        ids.append(PlanTally.create_id(str(e.payload["plan"])))
    line = _report_line(e, orgs)
    if line is not None:  # the line's (school, centre): every line is there (store format 6, ``ReportLine``)
        ids.append(ReportLines.create_id(line[0], line[2]))
    if e.kind not in COUNTED_KINDS:
        return ids
    municipalities, months = _places(e, orgs)
    for municipality in municipalities:
        ids.append(MunicipalMonths.create_id(municipality))
        ids += [MunicipalMonth.create_id(municipality, month) for month in months]
    return ids


Counts = dict[tuple[str, str], dict[str, int]]


def _add(out: Counts, municipality: str | None, month: str, *keys: str, n: int = 1) -> None:
    if municipality is None:
        return
    cell = out.setdefault((municipality, month), {})
    for key in keys:
        cell[key] = cell.get(key, 0) + n


def _case_keys(measure: str, tally: CaseTally) -> tuple[str, ...]:
    return (measure, f"{measure}:category={tally.category}", f"{measure}:group={tally.group}")


def _month_of_day(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def _wait_ends(out: Counts, case_tally: CaseTally, at: datetime) -> None:
    """The case's wait for its next review ends at ``at`` (reviewed, closed or transferred): -1 to the overdue
    level in the month it ends in, if the review was overdue by then, else in the month the +1 went to."""
    if not case_tally.due:
        return
    overdue_from = date.fromisoformat(case_tally.due) + timedelta(days=1)
    _add(out, case_tally.municipality, _month_of_day(max(overdue_from, day_of(at))), "reviews.overdue.change", n=-1)


def _wait_starts(out: Counts, case_tally: CaseTally, since: datetime, decided: object) -> None:
    """The case waits for its next review from ``since``: +1 to the overdue level in the month it falls overdue."""
    due = next_review_day(decided, since)
    case_tally.review_due(since=since.isoformat(), due=due.isoformat())
    _add(out, case_tally.municipality, _month_of_day(due + timedelta(days=1)), "reviews.overdue.change")


def _reviewed(out: Counts, case_tally: CaseTally, e: Recorded, month: str) -> None:
    """A counted review: the case once a month, the days since the last review (or the registration), and its
    wait for the next review."""
    if case_tally.reviewed_month != month:
        case_tally.reviewed(month=month)
        _add(out, case_tally.municipality, month, "reviews.cases")
    if case_tally.since:
        days = (day_of(e.at) - day_of(datetime.fromisoformat(case_tally.since))).days
        if days >= 0:
            _add(out, case_tally.municipality, month, "reviews.intervals", f"reviews.interval:days={days}")
    _wait_ends(out, case_tally, e.at)
    _wait_starts(out, case_tally, e.at, e.payload.get("next_review"))


def _plan(out: Counts, e: Recorded, batch: UnitOfWork) -> None:
    """Plans created, revised, and the 91-day share (see the module)."""
    municipality = municipality_of(e.source, batch.orgs)
    month = month_of(e.at)
    plan = str(e.payload.get("plan", ""))
    if e.kind == "plan.created":
        _add(out, municipality, month, "plans.created")
        if municipality is None or not plan or batch.get(PlanTally, plan, create=False) is not None:
            return
        batch.add(PlanTally(plan, municipality, e.source, e.at.isoformat()))
        _add(out, municipality, month_of(e.at + PLAN_REVIEW_DAYS), "plans.review_due")
        return
    _add(out, municipality, month, "plans.revised")
    found: PlanTally | None = batch.get(PlanTally, plan, create=False) if plan else None
    if found is None or found.reviewed or e.source != found.author:
        return
    created = datetime.fromisoformat(found.created)
    if created <= e.at <= created + PLAN_REVIEW_DAYS:
        found.review()
        _add(out, found.municipality, month_of(created + PLAN_REVIEW_DAYS), "plans.reviewed_in_91_days")


def _next_month(month: str) -> str:
    year, m = int(month[:4]), int(month[5:7])
    return f"{year + (m == 12):04d}-{m % 12 + 1:02d}"


LinePlace = tuple[str, str, str]  # (school, child, centre): where a report line is, ``report_line_key``'s input


def report_line_named(e: Recorded) -> LinePlace | None:
    """The (school, child, centre) of the report line a target-list event or a monthly report names, from the
    event alone (whether the centre is a municipality's now is ``_report_line``'s question), or ``None``."""
    if e.kind in ("target_list.assigned", "target_list.removed") and e.payload.get("school") and e.child:
        return (str(e.payload["school"]), e.child, e.source)
    if e.kind == "attendance.monthly" and e.basis == "cwa-25-3" and e.to and e.child and e.payload.get("month"):
        return (e.source, e.child, e.to)
    return None


def _report_line(e: Recorded, orgs: Mapping[str, Org]) -> LinePlace | None:
    """The (school, child, centre) of the report line a target-list event or a monthly report changes, or
    ``None``: the line it names (``report_line_named``), when its centre is a municipality's."""
    place = report_line_named(e)
    return place if place is not None and municipality_of(place[2], orgs) else None


def _line(batch: UnitOfWork, school: str, child: str, centre: str) -> tuple[ReportLines, str, Line]:
    """The (school, centre)'s ``ReportLines``, the line's key and the line (empty when none yet). Every line is
    there: a store written before ``ReportLines`` had its lines moved by the store format step
    (``services.aggregates.report_lines.move_report_lines``) before the publish path runs on it."""
    lines: ReportLines = batch.get(ReportLines, school, centre)
    key = report_line_key(school, child, centre)
    return lines, key, lines.lines.get(key, NO_LINE)


def _covers(period: list[str], month: str) -> bool:
    return period[1] <= month and (not period[2] or month < period[2])


def _arrival(out: Counts, where: str, month: str, day: str, n: int) -> None:
    """A listing's report for ``month`` that came on ``day`` (``n`` -1: taken back): its day, and its settling."""
    came = date.fromisoformat(day)
    after = _next_month(month)
    days = 0 if _month_of_day(came) <= month else came.day if _month_of_day(came) == after else 99
    _add(out, where, month, f"reports.arrived:day={days}", n=n)
    _add(out, where, max(after, _month_of_day(came)), "reports.settled.change", n=n)


def _periods_change(out: Counts, line: Line, where: str, periods: list[list[str]]) -> None:
    """The counts of a line whose listings' periods become ``periods``: what the old periods counted is taken
    back, what the new ones count is added (only the differences are written)."""
    for sign, each, at in ((-1, line["periods"], line["municipality"] or where), (1, periods, where)):
        for period in each:
            first = period[1]
            _add(out, at, first, "reports.expected.change", n=sign)
            if period[2]:
                _add(out, at, max(first, period[2]), "reports.expected.change", n=-sign)
            for month, day in line["received"].items():
                if _covers(period, month):
                    _arrival(out, at, month, day, sign)


def erased_report_line(e: Recorded, orgs: Mapping[str, Org]) -> LinePlace | None:
    """The (school, child, centre) of the report line a target-list event or a monthly report changed, for one whose content was
    erased with its child (its payload keeps only ``events.kinds.POLICY_FIELDS``: a target list's ``school`` and a
    report's ``month`` are gone, though admission requires both), else ``None``. The line is named from the
    envelope's routing fields, which the hub keeps: a target list's ``to`` is its ``payload.school`` (admission
    refuses any other), a report's ``source`` is the school and its ``to`` the centre."""
    place = erased_report_line_named(e)
    return place if place is not None and municipality_of(place[2], orgs) else None


def erased_report_line_named(e: Recorded) -> LinePlace | None:
    """``erased_report_line``'s (school, child, centre), from the event alone (the centre's type not asked)."""
    if not e.child or not e.to:
        return None
    if e.kind in ("target_list.assigned", "target_list.removed") and not e.payload.get("school"):
        return (e.to, e.child, e.source)
    if e.kind == "attendance.monthly" and e.basis == "cwa-25-3" and not e.payload.get("month"):
        return (e.source, e.child, e.to)
    return None


def line_counts(line: Line) -> Counts:
    """Everything the report events of a line have counted, all told, from the line's state alone: the
    listings' expected reports and the arrivals of the months received that they cover, at the line's
    municipality, for the months they are for (no ``AHEAD`` placement). It is what ``_reports`` adds up to, since
    each change there takes back what the line's old state counted and adds what its new one counts, and a
    report adds the arrivals its first report of a month gives under the periods as they are (checked against
    ``_reports`` by ``tests/aggregates/test_counts.py``'s erasure steps). ``figures.rebuild`` counts a line whose
    child was erased with it, since the erased events cannot be counted again."""
    out: Counts = {}
    if line["municipality"]:
        _periods_change(out, {**NO_LINE, "received": line["received"]}, line["municipality"], line["periods"])
    return out


def _reports(out: Counts, e: Recorded, batch: UnitOfWork, lines_kept: Collection[str] = ()) -> None:
    """Monthly reports expected, on time or late, and missing (see the module); nothing for a line in
    ``lines_kept`` (counted from the line the hub kept, ``figures.rebuild``)."""
    place = _report_line(e, batch.orgs)
    if place is None or (lines_kept and report_line_key(*place) in lines_kept):
        return
    lines, key, line = _line(batch, *place)
    if e.kind == "attendance.monthly":
        month = str(e.payload["month"])
        if month in line["received"]:
            return
        day = day_of(e.at).isoformat()
        municipality = line["municipality"] or municipality_of(e.to, batch.orgs) or ""
        for period in line["periods"]:
            if _covers(period, month):
                _arrival(out, municipality, month, day, 1)
        lines.work_on(key, line, municipality, received={month: day})
        return
    where = municipality_of(e.source, batch.orgs) or ""
    student = str(stream_id(f"student:{e.payload.get('student_no', '')}"))
    periods = [list(p) for p in line["periods"]]
    if e.kind == "target_list.assigned":  # a new listing replaces the student's open one (as the roster does)
        periods = [p for p in periods if not (p[0] == student and not p[2])]
        periods.append([student, str(e.payload.get("from_month") or month_of(e.at)), ""])
    else:
        periods = [[p[0], p[1], month_of(e.at)] if p[0] == student and not p[2] else p for p in periods]
    if periods != line["periods"]:
        _periods_change(out, line, where, periods)
        lines.work_on(key, line, where, periods=periods)


AHEAD = "@"  # measure@YYYY-MM: a count for that month, kept with the month of the event (see the module)


def tally(e: Recorded, batch: UnitOfWork, lines_kept: Collection[str] = ()) -> Counts:
    """The counts ``e`` adds, per (municipality, month), keeping the tallies in step; a count for a month the
    event does not name is kept with the event's month, its key naming its own (``AHEAD``). Most events add no
    counts (a day's attendance): their months are not worked out. ``lines_kept``: report lines not counted from
    their events (the rebuild's lines of erased children, ``figures.rebuild``).

    **Kinds never counted are not looked at**: an event whose kind is not in ``COUNTED_KINDS`` (a day's
    attendance, a note, a case shared …, most of a publish) adds nothing and touches no tally, since every branch
    of ``_counts`` is about a kind of ``COUNTED_KINDS``; it is answered at once, without working out its month or
    going down those branches (``tests/aggregates/test_counts_uncounted.py`` checks that ``_counts`` gives
    nothing and changes nothing for every other kind)."""
    if e.kind not in COUNTED_KINDS:
        return {}
    counted = _counts(e, batch, lines_kept)
    if not counted:
        return {}
    _, months = _places(e, batch.orgs)
    own = month_of(e.at)
    out: Counts = {}
    for (municipality, month), counts in counted.items():
        place = month if month in months else own
        cell = out.setdefault((municipality, place), {})
        for key, n in counts.items():
            key = key if place == month else f"{key}{AHEAD}{month}"
            cell[key] = cell.get(key, 0) + n
    return out


def _counts(e: Recorded, batch: UnitOfWork, lines_kept: Collection[str] = ()) -> Counts:
    """The counts ``e`` adds, per (municipality, the month they are for), keeping the tallies in step."""
    orgs = batch.orgs
    out: Counts = {}
    month = month_of(e.at)
    kind, payload = e.kind, e.payload
    if kind == "case.registered" and payload.get("case"):
        case = str(payload["case"])
        if batch.get(CaseTally, case, create=False) is not None:
            return out
        case_type = str(payload.get("case_type", ""))
        found = CaseTally(
            case,
            municipality_of(e.source, orgs) or "",
            e.source,
            str(payload.get("category", "")),
            CASE_GROUPS.get(case_type, "other"),
        )
        if not found.municipality:
            return out
        batch.add(found)
        _add(out, found.municipality, month, *_case_keys("cases.registered", found))
        _add(out, found.municipality, month, *_case_keys("cases.open.change", found))
        _wait_starts(out, found, e.at, None)
    elif kind in COUNTED_KINDS and kind.startswith("case.") and payload.get("case"):
        existing = batch.get(CaseTally, str(payload["case"]), create=False)
        if existing is None:
            return out
        case_tally: CaseTally = existing
        if kind == "case.transfer_acknowledged":
            transfer = case_tally.transfer
            if transfer and transfer["to"] == e.source and str(payload.get("from", "")) == case_tally.registrar:
                sent = datetime.fromisoformat(transfer["at"])
                if e.at - sent <= timedelta(days=TRANSFER_ACK_DAYS):
                    _add(out, case_tally.municipality, month, "transfers.acknowledged_in_14_days")
                _add(out, case_tally.municipality, month, "transfers.not_acknowledged.change", n=-1)
                case_tally.transferred(transfer={})
            return out
        if e.source != case_tally.registrar:
            return out
        if kind == "case.reviewed" and case_tally.state == "open":
            _reviewed(out, case_tally, e, month)
        elif kind == "case.closed" and case_tally.state == "open":
            _wait_ends(out, case_tally, e.at)
            case_tally.review_due(since=case_tally.since, due="")
            case_tally.set_state(state="closed")
            _add(out, case_tally.municipality, month, *_case_keys("cases.closed", case_tally))
            _add(out, case_tally.municipality, month, *_case_keys("cases.open.change", case_tally), n=-1)
        elif kind == "case.transferred" and case_tally.state == "open":
            to = str(payload.get("to", ""))
            _wait_ends(out, case_tally, e.at)
            case_tally.review_due(since=case_tally.since, due="")
            case_tally.set_state(state="transferred")
            case_tally.transferred(transfer={"to": to, "at": e.at.isoformat(), "month": month})
            _add(out, case_tally.municipality, month, *_case_keys("cases.transferred_out", case_tally))
            _add(out, case_tally.municipality, month, *_case_keys("cases.open.change", case_tally), n=-1)
            _add(out, case_tally.municipality, month, "transfers.sent", "transfers.not_acknowledged.change")
            _add(out, municipality_of(to, orgs), month, *_case_keys("cases.transferred_in", case_tally))
    elif kind in ("plan.created", "plan.revised"):
        _plan(out, e, batch)
    elif kind in ("consent.granted", "consent.refused", "consent.withdrawn"):
        _add(out, municipality_of(e.source, orgs), month, "consents." + kind.split(".")[1])
    elif kind in ("target_list.assigned", "target_list.removed"):
        _add(
            out,
            municipality_of(e.source, orgs),
            month,
            "reports.listed.change",
            n=1 if kind == "target_list.assigned" else -1,
        )
        _reports(out, e, batch, lines_kept)
    elif kind == "attendance.monthly" and e.basis == "cwa-25-3" and payload.get("month"):
        # a report whose month was erased with its child counts no ``reports.received`` here: ``figures.correct``
        # keeps it as kept in the months of the hub's line (``figures.ErasedLines``); with no line kept (a store
        # written before the counts), the rebuild counts none for it (main's counted it at the month it came in)
        _add(out, municipality_of(e.to, orgs), str(payload["month"]), "reports.received")
        _reports(out, e, batch, lines_kept)
    elif kind == "absence.alert":
        _add(out, municipality_of(e.to, orgs), month, "alerts", f"alerts:reason={payload.get('reason', '')}")
    elif kind == "concern.reported" and e.basis == "cwa-21-10-5":
        sender = orgs.get(e.source)
        _add(
            out,
            municipality_of(e.to, orgs),
            month,
            "concerns",
            f"concerns:sender={sender.type if sender else 'unknown'}",
        )
    elif kind == "notification.filed" and e.basis == "cwa-25":
        _add(out, municipality_of(e.to, orgs), month, "notifications")
    elif kind == "emergency.declared":
        _add(out, municipality_of(e.source, orgs), month, "emergencies.declared")
    elif kind in ("service.referred", "service.monitoring", "service.usage", "visit.report"):
        if e.basis != "commissioned" or not e.to:
            return out
        centre_side = e.source if municipality_of(e.source, orgs) else e.to
        provider = e.to if centre_side == e.source else e.source
        measure = {
            "service.referred": "services.referrals",
            "service.monitoring": "services.monitoring",
            "service.usage": "services.usage",
            "visit.report": "services.visits",
        }[kind]
        keys = [measure, f"{measure}:provider={provider}"]
        if payload.get("service"):
            keys.append(f"{measure}:service={payload['service']}")
        _add(out, municipality_of(centre_side, orgs), month, *keys)
    elif kind == "inquiry.sent" and payload.get("inquiry"):
        inquiry = str(payload["inquiry"])
        where = municipality_of(e.source, orgs)
        if where is None or batch.get(InquiryTally, inquiry, create=False) is not None:
            return out
        batch.add(InquiryTally(inquiry, where, month, str(payload.get("due", "")), str(e.to or "")))
        _add(out, where, month, "inquiries.sent")
    elif kind == "inquiry.answered" and payload.get("inquiry"):
        asked: InquiryTally | None = batch.get(InquiryTally, str(payload["inquiry"]), create=False)
        if asked is None or asked.answered or e.source != asked.member:
            return out
        asked.answer()
        if e.at.astimezone(JST).date().isoformat() <= asked.due:
            _add(out, asked.municipality, month, "inquiries.answered_on_time")
    return out


def keep_municipal_counts(e: Recorded, batch: UnitOfWork) -> None:
    """Keep the counts in step with ``e`` (``MUNICIPAL_COUNTS``): stage its counts on each month it adds to."""
    for (municipality, month), counts in tally(e, batch).items():
        months = batch.get(MunicipalMonths, municipality)
        if month not in months.months:
            months.add_month(month=month)
        batch.stage(MunicipalMonth, (municipality, month), dataclasses.replace(e, payload=counts))
    line = _report_line(e, batch.orgs)
    if line is not None:  # the lines ``tally`` worked on, their changes recorded once per publish (``ReportLines``)
        batch.stage(ReportLines, (line[0], line[2]), e)


MUNICIPAL_COUNTS = Projection(
    "planners' counts per municipality and month", municipal_counts_needs, keep_municipal_counts
)


# --- Reading ------------------------------------------------------------------------------------------------


def kept_months(store: HubStore, municipality: str) -> dict[str, dict[str, int]]:
    """Every month's counts of ``municipality`` as kept (month -> key -> count), levels still as changes."""
    found = store.peek(MunicipalMonths.create_id(municipality))
    if found is None:
        return {}
    out: dict[str, dict[str, int]] = {}
    for month in found.months:
        kept = store.peek(MunicipalMonth.create_id(municipality, month))
        out[month] = dict(kept.counts) if kept is not None else {}
    return out
