"""Overdue monthly reports (定期的な情報提供の未提出), projected from the index streams of ``services.projections.rosters``.

For every listing on a school's target list, a monthly report is expected for each month the listing covers
(from ``from_month``, or the month of the assignment, up to the month of removal), due by
``monthly_report_due_day`` of the following month. A report is missing when the school has recorded no
``attendance.monthly`` for the child and month addressed to the listing's centre; a correction replaces the
report, it does not make it missing. What each reader sees is decided by ``consent.reports.may_see_listing``:
a school its own list, a centre the lists it assigned.

``overdue_reports`` is the projection. What a person is shown is ``recorded_overdue``: every listed child's
line is backed by the reader's own read of the child's record (purpose ``support``), decided by the policy; a line
whose target-list event that read does not show is left out. The list is paged: the reads are decided ahead
(``services.casework.rows``, through the hub's ``ledger_rows``: kept while nothing they depend on changed) for
every child with a missing report, so that the total is known, and one read is recorded, in one transaction and
before the page is returned, per child on the page shown; a child not on the page is not recorded.
"""

from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from uuid import UUID

from consent.model import Settings
from consent.reports import LISTING_CENTRES, REPORTING_ORGS, may_see_listing
from events.problems import Problem, Rejected
from events.store import HubStore
from events.streams import load_many
from services.projections.rosters import CenterLists, Listing, MonthlyReports, SchoolRoster, next_month, peek

if TYPE_CHECKING:
    from services.casework.rows import Kept
    from services.hub import Hub


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


def overdue_reports(
    store: HubStore, settings: Settings, *, reader: str, today: date, month: str | None = None
) -> list[OverdueReport]:
    """The overdue reports ``reader`` may see (a school: its own list; a centre: the lists it assigned), per
    school and month, optionally for one ``month``. Raises ``Rejected`` for an organisation that has no lists."""
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
    schools = [reader] if org.type in REPORTING_ORGS else list(peek(store, CenterLists, reader).schools)
    rosters = peek_many(store, SchoolRoster, [(school,) for school in schools])
    expected: list[tuple[str, Listing, str]] = []
    for school in schools:
        for listing in rosters[(school,)].all() if (school,) in rosters else []:
            if may_see_listing(org, listing.school, listing.centre):
                expected += [
                    (school, listing, m) for m in expected_months(listing, settings, today) if month in (None, m)
                ]
    reports = peek_many(store, MonthlyReports, list(dict.fromkeys((school, m) for school, _, m in expected)))
    found = [
        OverdueReport(
            school,
            listing.centre,
            m,
            due_date(m, settings),
            listing.student_no,
            listing.child,
            listing.assigned_id,
        )
        for school, listing, m in expected
        if (school, m) not in reports or reports[(school, m)].received(listing.child, listing.centre) is None
    ]
    return sorted(found, key=lambda r: (r.school, r.month, r.student_no, r.centre))


def entry_ids(kept: Kept) -> frozenset[str]:
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
    found = overdue_reports(hub.store, hub.settings, reader=reader, today=today, month=month)
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
    return shown, ahead.record_children(r.child for r in shown), len(visible)
