"""The figures: the kept counts of a municipality per month, with each level (open cases, listed children,
transfers waiting) summed from its first month, and the same figures rebuilt from the log.

``rebuild`` runs the projection's own counting (``services.projections.municipal_counts.tally``) over every event
of the log on a unit of work in memory, under the registry as it is now; ``correct`` records, for each month
whose kept counts differ from the rebuilt ones, the difference (one ``Counted`` event), so that the kept figures
equal the rebuilt ones afterwards (a store written before the counts were kept, or a registry corrected since),
and brings the tallies the counting keeps per case, inquiry and plan to their rebuilt state, so that the events
published afterwards are counted as on a store that always kept them (a review then takes back the overdue
count its case's registration wrote ahead). The hub runs it once when it opens a store of a format before the
counts (``services.hub``, ``COUNTS_FORMAT``).

An erased child's events have lost their content; the rebuild counts that child's report lines from the lines
the hub kept (``ErasedLines``), so that it agrees with the live figures after an erasure (``reports.received``
of the line's months is kept as kept: an erased report's month is gone), and ``correct`` compares the months as placed (the figures read nothing else). The other counts an erased event made from its
content (a case's category, a review's next date, an alert's reason, a service's name) are not recounted:
**not done**, see ``docs/benchmarks.md`` (session 7, the rebuild after an erasure).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any
from uuid import UUID

from consent.model import Settings
from events.envelope_ids import published_in_log
from events.model import Org, Recorded
from events.store import HubStore, recorded_from
from services.projections.municipal_counts import (
    AHEAD,
    LEVELS,
    Counts,
    Line,
    LinePlace,
    MunicipalMonth,
    MunicipalMonths,
    ReportLines,
    Tally,
    erased_report_line,
    kept_months,
    line_counts,
    report_line_key,
    tally,
)

Months = dict[str, dict[str, int]]  # month -> measure key -> count
DUE_DAY = Settings().monthly_report_due_day  # the policy's default, when no due day is given
ARRIVED, SETTLED = "reports.arrived:day=", "reports.settled.change"


def resolve_levels(
    months: Mapping[str, Mapping[str, int]], through: str | None = None, due_day: int = DUE_DAY
) -> Months:
    """The months' counts with each level at month end: the running sum of its changes (``LEVELS``), for every
    month from the first kept to the last (or to ``through``, if later; a month with no event keeps the level
    of the one before); and the monthly reports' figures read from their counts (``municipal_counts``): on time
    and late under ``due_day`` (the setting ``monthly_report_due_day`` in force), missing at month end."""
    if not months:
        return {}
    months = placed(months)
    out: Months = {}
    running: dict[str, int] = {}
    expected_before = settled = 0  # reports expected for the months before this one; settled by its end
    for month in month_range(min(months), max(max(months), through or "")):
        counts = dict(months.get(month, {}))
        settled += counts.pop(SETTLED, 0)
        for key in list(counts):
            for level, change in LEVELS.items():
                if key == change or key.startswith(change + ":"):
                    running[level + key[len(change) :]] = running.get(level + key[len(change) :], 0) + counts.pop(key)
        arrived = {int(k[len(ARRIVED) :]): n for k, n in counts.items() if k.startswith(ARRIVED)}
        derived = {
            "reports.on_time": sum(n for day, n in arrived.items() if day <= due_day),
            "reports.late": sum(n for day, n in arrived.items() if day > due_day),
            "reports.missing": expected_before - settled,
        }
        expected_before += running.get("reports.expected", 0)
        out[month] = {**counts, **{k: v for k, v in running.items() if v}, **{k: v for k, v in derived.items() if v}}
    return out


def placed(months: Mapping[str, Mapping[str, int]]) -> Months:
    """The counts moved to the months they are for: ``measure@YYYY-MM`` kept with one month counts for the month
    it names (``municipal_counts.AHEAD``); every month kept stays, even with nothing left."""
    out: Months = {month: {} for month in months}
    for month, counts in months.items():
        for key, n in counts.items():
            if not n:
                continue
            base, ahead, target = key.rpartition(AHEAD)
            base, target = (base, target) if ahead else (key, month)
            cell = out.setdefault(target, {})
            cell[base] = cell.get(base, 0) + n
    return {month: {k: n for k, n in cell.items() if n} for month, cell in out.items()}


def month_range(first: str, last: str) -> list[str]:
    """Every month from ``first`` to ``last`` (``YYYY-MM``), both included."""
    year, month = int(first[:4]), int(first[5:7])
    out = []
    while f"{year:04d}-{month:02d}" <= last:
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def kept(store: HubStore, municipality: str, through: str | None = None, due_day: int = DUE_DAY) -> Months:
    """The municipality's figures as kept, levels summed (carried up to ``through``), reports read under
    ``due_day``."""
    return resolve_levels(kept_months(store, municipality), through, due_day)


class _InMemory:
    """A unit of work in memory (``services.projections.unit_of_work.UnitOfWork``) for a rebuild: aggregates in a
    dict, and the staged counts added up per (municipality, month)."""

    def __init__(self, orgs: Mapping[str, Org]):
        self._orgs = orgs
        self.aggregates: dict[UUID, Any] = {}

    @property
    def orgs(self) -> Mapping[str, Org]:
        return self._orgs

    def get(self, cls: type[Any], *key: Any, create: bool = True) -> Any:
        aggregate_id = cls.create_id(*key)
        if aggregate_id not in self.aggregates and create:
            self.aggregates[aggregate_id] = cls(*key)
        return self.aggregates.get(aggregate_id)

    def add(self, aggregate: Any) -> None:
        self.aggregates[aggregate.id] = aggregate

    def stage(self, cls: type[Any], key: tuple[Any, ...], e: Recorded) -> None:  # pragma: no cover - unused
        raise NotImplementedError


class ErasedLines:
    """**Explicit mechanism: the rebuild counts an erased child's report lines as the hub kept them.** A child's
    erasure destroys the content of its target-list events and monthly reports (which school and student number,
    which month: ``events.sealing``), so the rebuild cannot count them again; the live counts went on from the
    line the hub keeps under its own key (in ``ReportLines``) (named by a digest, as every line: no content beyond what any
    line holds), and an erasure does not move them (the lead's rule, session 7). So for every line that an erased
    event changed (``municipal_counts.erased_report_line``) and that the hub kept, the rebuild counts none of the
    line's events (its later, readable ones included: they changed the same kept line) and adds, instead, what
    the kept line counts all told (``municipal_counts.line_counts``: expected, arrivals, settled; exact). It
    replaces counting those events from the log alone, which lost them (the rebuild then disagreed with the live
    figures after an erasure: April's ``reports.expected`` 2 -> 1 in the session 6 review's ``erase.py``).

    ``reports.received`` is the one figure the rebuild cannot recount: an erased report's month went with its
    content, and a month reported twice counted twice but gave the line one month. So ``correct`` keeps it as
    kept in the cells where an erased report can have counted it (``received_as_kept``: the line's municipality,
    each month the kept line received; an erased report's month is one of them). A store written before the
    counts kept no line: its erased reports count no ``reports.received`` in the rebuild (main's counted them at
    the month they came in), and no ``reports.expected`` (dropped on both). ``tests/aggregates/test_counts.py``
    checks it against an oracle counting every accepted event."""

    def __init__(self, orgs: Mapping[str, Org], kept_line: Callable[[LinePlace], Line | None]):
        self._orgs = orgs
        self._kept_line = kept_line  # (school, child, centre) -> the hub's line
        self.kept: dict[str, Line] = {}  # the noted lines by ``report_line_key``, as kept

    def see(self, e: Recorded) -> None:
        """Note ``e``'s line if ``e`` is a target-list event or a monthly report whose content was erased, and the
        hub kept the line (a store written before the counts has none: its lines are counted from the log)."""
        place = erased_report_line(e, self._orgs)
        if place is None or (key := report_line_key(*place)) in self.kept:
            return
        found = self._kept_line(place)
        if found is not None:
            self.kept[key] = found

    def counts(self) -> Counts:
        """What the noted lines count, from the lines as kept (no ``reports.received``: ``received_as_kept``)."""
        out: Counts = {}
        for line in self.kept.values():
            for place, counts in line_counts(line).items():
                cell = out.setdefault(place, {})
                for measure, n in counts.items():
                    cell[measure] = cell.get(measure, 0) + n
        return out

    def received_as_kept(self) -> set[tuple[str, str]]:
        """The (municipality, month) cells whose ``reports.received`` ``correct`` keeps as kept: each noted line's
        municipality and the months it received."""
        return {
            (line["municipality"], month)
            for line in self.kept.values()
            if line["municipality"]
            for month in line["received"]
        }


def kept_line(store: HubStore, place: LinePlace) -> Line | None:
    """The hub's line of ``place`` (school, child, centre), from its (school, centre)'s ``ReportLines`` (every line
    is there from store format 6: ``services.aggregates.report_lines``); ``None`` when the hub kept none."""
    school, child, centre = place
    lines: ReportLines | None = store.peek(ReportLines.create_id(school, centre))
    return lines.lines.get(report_line_key(school, child, centre)) if lines is not None else None


def erased_lines(store: HubStore) -> ErasedLines:
    """The rebuild's ``ErasedLines`` for ``store``, reading the lines it kept."""
    return ErasedLines(store.registry().orgs, lambda place: kept_line(store, place))


def count_events(
    events: Iterable[Recorded],
    orgs: Mapping[str, Org],
    work: _InMemory | None = None,
    erased: ErasedLines | None = None,
) -> dict[str, Months]:
    """The counts of ``events`` (in log order), per municipality and month, levels as changes (the tallies
    made on the way in ``work``, if given); the report lines of erased children as ``erased`` has them kept, when
    given (``ErasedLines``)."""
    work = work if work is not None else _InMemory(orgs)
    erased = erased if erased is not None else ErasedLines(orgs, lambda place: None)
    out: dict[str, Months] = {}

    def add(counted: Counts) -> None:
        for (municipality, month), counts in counted.items():
            cell = out.setdefault(municipality, {}).setdefault(month, {})
            for key, n in counts.items():
                cell[key] = cell.get(key, 0) + n

    for e in events:
        erased.see(e)
        add(tally(e, work, erased.kept.keys()))
    add(erased.counts())
    return out


def _log_events(store: HubStore) -> Iterable[Recorded]:
    for page in published_in_log(store.recorder, store.mapper):
        for e in page:
            yield recorded_from(e.envelope, list(e.audience), e.originator_version)


def rebuild(store: HubStore, work: _InMemory | None = None, erased: ErasedLines | None = None) -> dict[str, Months]:
    """Every municipality's counts rebuilt from the log (levels as changes, as kept; an erased child's report
    lines as the hub kept them, noted in ``erased`` if given: ``ErasedLines``)."""
    erased = erased if erased is not None else erased_lines(store)
    return count_events(_log_events(store), store.registry().orgs, work, erased)


def _tallies(store: HubStore, work: _InMemory) -> list[Any]:
    """The tallies whose kept state differs from the rebuilt one (``work``): new ones as rebuilt, kept ones
    with their state recorded whole."""
    changed: list[Any] = []
    for aggregate_id, rebuilt in work.aggregates.items():
        if isinstance(rebuilt, ReportLines):
            lines = _report_lines(store, aggregate_id, rebuilt)
            if lines is not None:
                changed.append(lines)
            continue
        if not isinstance(rebuilt, Tally):
            continue
        found = store.get_or_none(aggregate_id)
        if found is None:
            changed.append(rebuilt)
        elif found.tallied() != rebuilt.tallied():
            found.set_state_to(state=rebuilt.tallied())
            changed.append(found)
    return changed


def _report_lines(store: HubStore, aggregate_id: UUID, rebuilt: ReportLines) -> ReportLines | None:
    """The kept ``ReportLines`` with each of its lines that differs from the rebuilt one set whole (one
    ``LinesCorrected``), a new one with the rebuilt lines when none is kept; ``None`` when every line is as
    rebuilt. A line the rebuild has not (an erased child's: ``ErasedLines`` counts it as kept) is left as kept."""
    found: ReportLines | None = store.get_or_none(aggregate_id)
    differ = [
        {"line": key, **line} for key, line in rebuilt.lines.items() if found is None or found.lines.get(key) != line
    ]
    if not differ:
        return None
    target = found if found is not None else rebuilt
    target.correct_lines(lines=differ)
    return target


def correct(store: HubStore) -> int:
    """Make the kept counts equal the rebuilt ones: record the difference on each month that differs, and the
    rebuilt state of each tally that differs (see the module). Returns the number of months corrected."""
    work = _InMemory(store.registry().orgs)
    erased = erased_lines(store)
    rebuilt = rebuild(store, work, erased)
    received_as_kept = erased.received_as_kept()  # (``ErasedLines``: the one figure not recounted)
    municipalities = set(rebuilt) | {o.municipality for o in store.registry().orgs.values() if o.municipality}
    changed: list[Any] = []
    for municipality in sorted(municipalities):
        # compared as placed (``AHEAD`` counts in the months they are for): the figures read only that, and an
        # erased child's report lines are rebuilt from their kept state, not placed as their events were
        have = placed(kept_months(store, municipality))
        want = placed(rebuilt.get(municipality, {}))
        calendar = store.get_or_none(MunicipalMonths.create_id(municipality)) or MunicipalMonths(municipality)
        calendar_changed = False
        for month in sorted(set(have) | set(want)):
            diff = {
                key: want.get(month, {}).get(key, 0) - have.get(month, {}).get(key, 0)
                for key in set(have.get(month, {})) | set(want.get(month, {}))
            }
            diff = {
                k: v
                for k, v in diff.items()
                if v and not (k == "reports.received" and (municipality, month) in received_as_kept)
            }
            if month in want and month not in calendar.months:  # as kept: a month counted to, even to nothing
                calendar.add_month(month=month)
                calendar_changed = True
            if not diff:
                continue
            found = store.get_or_none(MunicipalMonth.create_id(municipality, month))
            aggregate = found if found is not None else MunicipalMonth(municipality, month)
            aggregate.count(deltas=diff)
            changed.append(aggregate)
            if month not in calendar.months:
                calendar.add_month(month=month)
                calendar_changed = True
        if calendar_changed:
            changed.append(calendar)
    tallies = _tallies(store, work)
    if changed or tallies:
        store.save(*changed, *tallies)
    return sum(1 for a in changed if isinstance(a, MunicipalMonth))
