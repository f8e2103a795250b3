"""Overdue monthly reports (定期的な情報提供の未提出), projected from the index streams of ``services.projections.rosters``.

For every listing on a school's target list, a monthly report is expected for each month the listing covers
(from ``from_month``, or the month of the assignment, up to the month of removal), due by
``monthly_report_due_day`` of the following month. A report is missing when the school has recorded no
``attendance.monthly`` for the child and month addressed to the listing's centre; a correction replaces the
report, it does not make it missing. What each reader sees is decided by ``consent.reports.may_see_listing``:
a school its own list, a centre the lists it assigned.

``overdue_reports`` is the projection (``OverdueLines``, the hub's ``overdue_lines``: each school's lines kept
while its roster and report indexes are unchanged, so that a centre's start page does not compute every
listing's every month on each view). What a person is shown is ``recorded_overdue``: every listed child's
line is backed by the reader's own read of the child's record (purpose ``support``), decided by the policy; a line
whose target-list event that read does not show is left out. The list is paged: the reads are decided ahead
(``services.casework.rows``, through the hub's ``ledger_rows``: kept while nothing they depend on changed) for
every child with a missing report, so that the total is known, and one read is recorded, in one transaction and
before the page is returned, per child on the page shown; a child not on the page is not recorded.
"""

from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from threading import Lock
from typing import TYPE_CHECKING, Any
from uuid import UUID

from consent.model import Settings
from consent.reports import LISTING_CENTRES, REPORTING_ORGS, may_see_listing
from events.model import Org
from events.problems import Problem, Rejected
from events.store import HubStore
from events.streams import load_many
from services.projections.rosters import CenterLists, Listing, MonthlyReports, SchoolRoster, next_month, peek

if TYPE_CHECKING:
    from services.casework.rows import VersionWatch
    from services.hub import Hub
    from services.reading.kept import KeptRead


@dataclass(frozen=True)
class OverdueReport:
    """A monthly report that is due and has not been received."""

    school: str
    centre: str
    month: str  # YYYY-MM
    due: date  # the last day on which it was on time
    student_no: str
    child: str
    listing: str = ""  # the target_list.assigned event that put the child on the list

    def to_dict(self) -> dict[str, Any]:
        return {
            "school": self.school,
            "centre": self.centre,
            "month": self.month,
            "due": self.due.isoformat(),
            "student_no": self.student_no,
            "child": self.child,
        }


def due_date(month: str, settings: Settings) -> date:
    """The day by which the report for ``month`` is due: ``monthly_report_due_day`` of the next month (the
    month's last day if it is shorter)."""
    return _due(month, settings.monthly_report_due_day)


@lru_cache(maxsize=4096)
def _due(month: str, day: int) -> date:  # a city's overdue list asks for the same few months thousands of times
    following = next_month(month)
    year, m = int(following[:4]), int(following[5:7])
    return date(year, m, min(day, monthrange(year, m)[1]))


def expected_months(listing: Listing, settings: Settings, today: date) -> list[str]:
    """The months ``listing`` expects a report for whose due day has passed by ``today``."""
    months, month = [], listing.from_month
    while listing.covers_month(month) and due_date(month, settings) < today:
        months.append(month)
        month = next_month(month)
    return months


_IDS: dict[tuple[type[Any], tuple[str, ...]], UUID] = {}  # index stream ids (an HMAC each): made once per process


def peek_many(store: HubStore, cls: type[Any], keys: list[tuple[str, ...]]) -> dict[tuple[str, ...], Any]:
    """``rosters.peek`` of many index aggregates at once, those that have been recorded (absent: nothing yet), with
    ``events.streams.load_many``: one query for all of them, the cached ones brought up to date with the events
    stored after them; for reading. A centre's overdue list asks for every school's roster and every (school,
    month) of reports, thousands in a city, which one query each made the start page's slowest part; the stream
    ids (an HMAC each) are made once per process."""
    ids = {key: _IDS.get((cls, key)) or _IDS.setdefault((cls, key), cls.create_id(*key)) for key in keys}
    found = load_many(store, ids.values())
    return {key: aggregate for key, stream in ids.items() if (aggregate := found.get(stream)) is not None}


def last_due_month(settings: Settings, today: date) -> str:
    """The latest month whose report's due day has passed by ``today``: ``expected_months`` of any listing are its
    months up to this one (``due_date`` grows with the month), so the overdue lines change with the day only when
    this does, once a month."""
    month = f"{today.year:04d}-{today.month:02d}"
    while not due_date(month, settings) < today:
        year, m = int(month[:4]), int(month[5:7])
        month = f"{year - (m == 1):04d}-{(m - 2) % 12 + 1:02d}"
    return month


@dataclass
class SchoolLines:
    """One school's overdue lines for one reader (every month, sorted), with what they were computed from: the
    reader's registration, the school roster's version and the version of each (school, month) report index read
    (0: none yet); ``by_child``: the lines counted per (child, listing), for views that count them."""

    school: str
    org: Org
    roster_version: int
    report_versions: dict[UUID, int]
    lines: list[OverdueReport]
    by_child: dict[tuple[str, str], int]
    listed: list[str] = field(default_factory=list)  # the children the reader lists at the school now


class OverdueLines:
    """Overdue lines kept per (reader, school), an explicit mechanism for speed (issue 16: the start page of a
    5,000-case centre spent most of its time here, recomputing every listing's every month, ~95,000 lines, on each
    view). A school's lines are kept with the versions of the index streams they were computed from (its roster
    and every (school, month) report index consulted), the reader's registration, the due day and the month up to
    which reports are due (``last_due_month``: the only way the day enters). On each call the versions come from
    the hub's ``VersionWatch`` (``services.casework.rows``: the notifications stored since the last view), and
    only the schools whose roster or reports changed are computed again: a view costs what changed, not the
    centre's size. Nothing stale is returned, since the check runs on every call; several processes each keep
    their own. Kept lines hold children's ids and numbers (decrypted): an erasure seen by this process empties
    the cache, as it does the rows decided ahead. The lines are the index's facts, not a read: what a person is
    shown of them is still decided by their reads (``recorded_overdue``, the start page)."""

    def __init__(self, store: HubStore, versions: VersionWatch):
        self.store = store
        self.versions = versions
        self._kept: dict[tuple[str, str, str, int], SchoolLines] = {}
        self._erasures = store.erasures.position
        self._due: tuple[str, int] | None = None  # the (due month, due day) the kept lines are for
        self._lock = Lock()

    def of(self, org: Org, schools: list[str], settings: Settings, today: date) -> list[SchoolLines]:
        """The lines of each of ``schools`` (in their order) that ``org`` may see, as stored now."""
        self.store.erasures.check()
        due, day = last_due_month(settings, today), settings.monthly_report_due_day
        with self._lock:
            if self.store.erasures.position != self._erasures:
                self._kept.clear()
                self._erasures = self.store.erasures.position
            if self._due != (due, day):  # the month reports are due up to moved on: lines for another are stale
                self._kept = {k: v for k, v in self._kept.items() if k[2:] == (due, day)}
                self._due = (due, day)
            kept = {school: self._kept.get((org.id, school, due, day)) for school in schools}
        rosters = {school: _id(SchoolRoster, (school,)) for school in schools}
        wanted = list(rosters.values()) + [i for k in kept.values() if k is not None for i in k.report_versions]
        versions = self.versions.versions(wanted)
        stale = [
            school
            for school, k in kept.items()
            if k is None
            or k.org != org
            or k.roster_version != versions.get(rosters[school], 0)
            or any(versions.get(i, 0) != v for i, v in k.report_versions.items())
        ]
        if stale:
            fresh = _compute(self.store, org, stale, settings, due)
            with self._lock:
                for school, lines in fresh.items():
                    self._kept[(org.id, school, due, day)] = lines
            kept |= fresh
        return [k for k in kept.values() if k is not None]


def _id(cls: type[Any], key: tuple[str, ...]) -> UUID:
    return _IDS.get((cls, key)) or _IDS.setdefault((cls, key), cls.create_id(*key))


def _compute(store: HubStore, org: Org, schools: list[str], settings: Settings, due: str) -> dict[str, SchoolLines]:
    """The overdue lines of ``schools`` for ``org``, every month up to ``due``, with the versions read."""
    rosters = peek_many(store, SchoolRoster, [(school,) for school in schools])
    expected: list[tuple[str, Listing, str]] = []
    listed: dict[str, list[str]] = {}
    for school in schools:
        for listing in rosters[(school,)].all() if (school,) in rosters else []:
            if may_see_listing(org, listing.school, listing.centre):
                expected += [(school, listing, m) for m in _months(listing, due)]
                if listing.centre == org.id and listing.removed_at is None:
                    listed.setdefault(school, []).append(listing.child)
    keys: list[tuple[str, ...]] = list(dict.fromkeys((school, m) for school, _, m in expected))
    reports = peek_many(store, MonthlyReports, keys)
    out = {
        school: SchoolLines(
            school, org, rosters[(school,)].version if (school,) in rosters else 0, {}, [], {}, listed.get(school, [])
        )
        for school in schools
    }
    for school, m in keys:
        found = reports.get((school, m))
        out[school].report_versions[_id(MonthlyReports, (school, m))] = found.version if found is not None else 0
    for school, listing, m in expected:
        if (school, m) in reports and reports[(school, m)].received(listing.child, listing.centre) is not None:
            continue
        lines = out[school]
        lines.lines.append(
            OverdueReport(
                school,
                listing.centre,
                m,
                due_date(m, settings),
                listing.student_no,
                listing.child,
                listing.assigned_id,
            )
        )
        pair = (listing.child, listing.assigned_id)
        lines.by_child[pair] = lines.by_child.get(pair, 0) + 1
    for lines in out.values():
        lines.lines.sort(key=lambda r: (r.month, r.student_no, r.centre))
    return out


def _months(listing: Listing, due: str) -> list[str]:
    """The months ``listing`` expects a report for, up to ``due`` (``expected_months``)."""
    months, month = [], listing.from_month
    while listing.covers_month(month) and month <= due:
        months.append(month)
        month = next_month(month)
    return months


def _reporting(store: HubStore, reader: str) -> tuple[Org, list[str]]:
    """The reader's registration and the schools whose lists it may see (in the order the centre's index keeps
    them); ``Rejected`` for an organisation that has no lists."""
    orgs = store.registry().orgs
    org = orgs.get(reader)
    if org is None or org.type not in REPORTING_ORGS | LISTING_CENTRES:
        raise Rejected(
            [
                Problem(
                    "no_target_lists",
                    f"{reader!r} is not a school, nursery or centre with target lists",
                    f"「{reader}」は対象名簿を持つ学校・園・センターではありません",
                    "reader",
                )
            ]
        )
    return org, [reader] if org.type in REPORTING_ORGS else list(peek(store, CenterLists, reader).schools)


def overdue_reports(
    store: HubStore,
    settings: Settings,
    *,
    reader: str,
    today: date,
    month: str | None = None,
    kept: OverdueLines | None = None,
) -> list[OverdueReport]:
    """The overdue reports ``reader`` may see (a school: its own list; a centre: the lists it assigned), per
    school and month, optionally for one ``month``; ``kept``: the hub's ``OverdueLines`` (else computed here).
    Raises ``Rejected`` for an organisation that has no lists."""
    org, schools = _reporting(store, reader)
    if kept is not None:
        per_school = kept.of(org, schools, settings, today)
    else:
        per_school = list(_compute(store, org, schools, settings, last_due_month(settings, today)).values())
    by_school = sorted(per_school, key=lambda lines: lines.school)
    return [r for lines in by_school for r in lines.lines if month in (None, r.month)]


def overdue_counts(
    store: HubStore, settings: Settings, kept: OverdueLines, *, reader: str, today: date
) -> tuple[list[tuple[str, str, str, int]], list[str]]:
    """The overdue lines ``reader`` may see counted per (school, child, listing): ``(school, child, listing,
    lines)``, for a view that counts them per school from the reads of the children (the start page); and the
    children ``reader`` lists at its schools now (from the same kept rosters: the index, no content)."""
    org, schools = _reporting(store, reader)
    per_school = kept.of(org, schools, settings, today)
    counts = [(k.school, child, listing, n) for k in per_school for (child, listing), n in k.by_child.items()]
    return counts, list(dict.fromkeys(child for k in per_school for child in k.listed))


def entry_ids(kept: KeptRead) -> frozenset[str]:
    """The ids of the events a decided read shows (none when it is refused)."""
    return frozenset(e.id for e in kept.decided.entries) if kept.decided.decision.allowed else frozenset()


def recorded_overdue(
    hub: Hub,
    *,
    reader: str,
    role: str,
    user: str | None,
    today: date,
    month: str | None = None,
    page: int = 1,
    per_page: int | None = None,
) -> tuple[list[OverdueReport], list[str], int]:
    """The overdue reports ``reader`` is shown on ``page`` (of ``per_page``; ``None``: all of them), the access
    records of the reads behind them (one per child on the page, recorded before anything is returned), and how
    many lines there are in all. Raises ``Rejected`` as ``overdue_reports``."""
    found = overdue_reports(hub.store, hub.settings, reader=reader, today=today, month=month, kept=hub.overdue_lines)
    registry = hub.store.registry()
    ahead = hub.ledger_rows.ahead(
        reader,
        role,
        {},
        children=dict.fromkeys(r.child for r in found),
        purpose="support",
        t=hub.clock(),
        orgs=registry.orgs,
        registry_version=registry.version or 0,
        settings=hub.settings,
        user=user,
    )
    visible = [r for r in found if r.listing in ahead.derive(r.child, "entry ids", entry_ids)]
    shown = visible if per_page is None else visible[(page - 1) * per_page : page * per_page]
    query = {"today": today.isoformat(), "month": month, "page": page, "per_page": per_page}
    return shown, ahead.record_children((r.child for r in shown), "overdue", query), len(visible)
