"""Lookup streams for periodic reports, kept in step with the log (``services.projections.indexes``).

- ``SchoolRoster`` (対象名簿), per school: 児童生徒番号 → the listings (child, assigning centre, from_month,
  removal), from ``target_list.assigned`` / ``target_list.removed`` published by a centre.
- ``CenterLists``, per centre: the schools it has listed children at (so a centre's overdue view does not scan
  every school).
- ``MonthlyReports``, per school and month: the latest ``attendance.monthly`` per (child, centre), with the
  digest of its content (a correction supersedes it; the log keeps both).
- ``DailyAttendance``, per school, child and centre: the latest ``attendance.daily`` per date, and the
  ``absence.alert``s raised (one per streak).
- ``SchoolCalendar`` (授業日), per school: the days on which the school sent any daily row, for any child.
  Days without rows are 休業日. Rows for children not on a list are not stored, but their days are school days,
  so this stream is written by the daily import itself (it holds dates only, nothing about any child).

All but the calendar are updated by ``keep_school_lists``, registered in ``INDEXES``, in the publish
transaction; a school's list changes, a month's reports and a child's days are staged and recorded once per
publish (one event for a whole school's list or file, each entry sealed under its child's key; one event for a
child's days, sealed under the child's key). Aggregates here follow the store's copy-on-write rule: nested values are replaced, never mutated.
None of this decides access (``consent.reports`` does, for the overdue view).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from adapters.school import JST, content_of
from events.dates import month_of
from events.direct_events import direct_events
from events.model import Org, Recorded
from events.sealing import stream_id
from events.store import HubStore, _CopiedOnWrite
from services.projections.unit_of_work import Projection, UnitOfWork

LISTING_CENTRES = frozenset({"municipal_center", "child_guidance_center"})  # who may ask for periodic reports


def first_day(month: str) -> date:
    return date(int(month[:4]), int(month[5:7]), 1)


def next_month(month: str) -> str:
    year, m = int(month[:4]), int(month[5:7])
    return f"{year + (m == 12):04d}-{m % 12 + 1:02d}"


@dataclass(frozen=True)
class Listing:
    """A child on a school's target list (定期的な情報提供の対象名簿), as one centre assigned it.

    The listing covers the months from ``from_month`` (or the month of the assignment) up to, not including,
    the month in which it was removed, and the days from the first of ``from_month`` up to, not including, the
    day of removal."""

    school: str
    student_no: str
    child: str
    centre: str
    from_month: str
    assigned_at: datetime
    assigned_id: str
    removed_at: datetime | None = None

    @property
    def end_month(self) -> str | None:
        """The first month no longer covered, or None while the listing stands."""
        return month_of(self.removed_at) if self.removed_at else None

    def covers_month(self, month: str) -> bool:
        return self.from_month <= month and (self.end_month is None or month < self.end_month)

    def covers_day(self, day: date) -> bool:
        return first_day(self.from_month) <= day and (
            self.removed_at is None or day < self.removed_at.astimezone(JST).date()
        )

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["assigned_at"] = self.assigned_at.isoformat()
        out["removed_at"] = self.removed_at.isoformat() if self.removed_at else None
        return out


@direct_events
class SchoolRoster(_CopiedOnWrite, Aggregate):
    """対象名簿: the children a school reports on, by its own 児童生徒番号."""

    @staticmethod
    def create_id(school: str) -> UUID:
        return stream_id(f"roster:{school}")

    def __init__(self, school: str):
        self.school = school
        self.listings: dict[str, tuple[dict[str, Any], ...]] = {}

    @event("ListingsChanged")
    def change_listings(self, per_child: list) -> None:
        """The assignments and removals one publish recorded, in order; each entry is sealed under its child's
        key (``events.sealing.PER_CHILD``), and left out once that child is erased."""
        for change in per_child:
            if change["op"] == "assign":
                self._assign(
                    change["student_no"],
                    change["child"],
                    change["centre"],
                    change["from_month"],
                    change["at"],
                    change["event_id"],
                )
            else:
                self._remove(change["student_no"], change["child"], change["centre"], change["at"])

    def record_staged(self, events: list[Recorded]) -> None:
        """Record the target-list events a publish staged for this school (``Batch.stage``), as one event."""
        changes = []
        for e in events:
            change = {
                "op": "assign" if e.kind == "target_list.assigned" else "remove",
                "student_no": str(e.payload["student_no"]),
                "child": e.child,
                "centre": e.source,
                "at": e.at.isoformat(),
            }
            if e.kind == "target_list.assigned":
                change |= {"from_month": str(e.payload.get("from_month") or month_of(e.at)), "event_id": e.id}
            changes.append(change)
        self.change_listings(per_child=changes)

    # One event per assignment or removal: what stores written before ``change_listings`` hold.
    @event("Assigned")
    def assign(self, student_no: str, child: str, centre: str, from_month: str, at: str, event_id: str) -> None:
        self._assign(student_no, child, centre, from_month, at, event_id)

    @event("Removed")
    def remove(self, student_no: str, child: str, centre: str, at: str) -> None:
        self._remove(student_no, child, centre, at)

    def _assign(self, student_no: str, child: str, centre: str, from_month: str, at: str, event_id: str) -> None:
        kept = tuple(
            entry
            for entry in self.listings.get(student_no, ())
            if not (entry["child"] == child and entry["centre"] == centre and entry["removed_at"] is None)
        )
        self.listings[student_no] = kept + (
            {
                "child": child,
                "centre": centre,
                "from_month": from_month,
                "assigned_at": at,
                "assigned_id": event_id,
                "removed_at": None,
            },
        )

    def _remove(self, student_no: str, child: str, centre: str, at: str) -> None:
        """Close the child's open listing under ``student_no`` for ``centre`` (nothing, when none is open)."""
        self.listings[student_no] = tuple(
            dict(entry, removed_at=at)
            if (entry["child"] == child and entry["centre"] == centre and entry["removed_at"] is None)
            else entry
            for entry in self.listings.get(student_no, ())
        )

    def of(self, student_no: str) -> list[Listing]:
        return [
            Listing(
                self.school,
                student_no,
                e["child"],
                e["centre"],
                e["from_month"],
                datetime.fromisoformat(e["assigned_at"]),
                e["assigned_id"],
                datetime.fromisoformat(e["removed_at"]) if e["removed_at"] else None,
            )
            for e in self.listings.get(student_no, ())
        ]

    def all(self) -> list[Listing]:
        return [listing for student_no in sorted(self.listings) for listing in self.of(student_no)]


@direct_events
class CenterLists(_CopiedOnWrite, Aggregate):
    """The schools at which a centre has listed children."""

    @staticmethod
    def create_id(centre: str) -> UUID:
        return stream_id(f"center-lists:{centre}")

    def __init__(self, centre: str):
        self.centre = centre
        self.schools: tuple[str, ...] = ()

    @event("SchoolAdded")
    def add(self, school: str) -> None:
        self.schools = tuple(sorted({*self.schools, school}))


@dataclass(frozen=True)
class Report:
    """The latest report for one key, and how many versions the log holds."""

    id: str
    content: str
    versions: int


@direct_events
class MonthlyReports(_CopiedOnWrite, Aggregate):
    """The month's ``attendance.monthly`` from one school: the latest per (child, centre). A correction
    (``payload.supersedes``) is recorded after what it corrects, so the latest recorded is the current one."""

    @staticmethod
    @functools.lru_cache(maxsize=1024)  # asked for every report published (the stream secret is fixed per process)
    def create_id(school: str, month: str) -> UUID:
        return stream_id(f"monthly-reports:{school}:{month}")

    def __init__(self, school: str, month: str):
        self.school = school
        self.month = month
        self.reports: dict[tuple[str, str], Report] = {}

    @event("ReportsRecorded")
    def record_reports(self, per_child: list) -> None:
        """The reports one publish recorded, in order; each entry is sealed under its child's key
        (``events.sealing.PER_CHILD``), and left out once that child is erased."""
        for r in per_child:
            self._latest(r["child"], r["centre"], r["event_id"], r["content"])

    def record_staged(self, events: list[Recorded]) -> None:
        """Record the ``attendance.monthly`` events a publish staged for this month (``Batch.stage``), as one event."""
        self.record_reports(
            per_child=[
                {"child": e.child, "centre": e.to or "", "event_id": e.id, "content": content_of(e.payload)}
                for e in events
            ]
        )

    @event("Reported")
    def record(self, child: str, centre: str, event_id: str, content: str) -> None:
        """One report (what stores written before ``record_reports`` hold)."""
        self._latest(child, centre, event_id, content)

    def _latest(self, child: str, centre: str, event_id: str, content: str) -> None:
        known = self.reports.get((child, centre))
        self.reports[(child, centre)] = Report(event_id, content, (known.versions if known else 0) + 1)

    def latest(self, child: str, centre: str) -> Report | None:
        return self.reports.get((child, centre))

    def received(self, child: str, centre: str) -> Report | None:
        """The report that answers centre ``centre``'s request: addressed to it, or to no one in particular."""
        return self.reports.get((child, centre)) or self.reports.get((child, ""))


@dataclass(frozen=True)
class Day:
    """One day's latest attendance record for a child."""

    id: str
    content: str
    status: str
    contacted: bool | None


@direct_events
class DailyAttendance(_CopiedOnWrite, Aggregate):
    """One listed child's daily attendance as one school reported it to one centre, and the alerts raised."""

    @staticmethod
    def create_id(school: str, child: str, centre: str) -> UUID:
        return stream_id(f"daily-attendance:{school}:{child}:{centre}")

    def __init__(self, school: str, child: str, centre: str):
        self.school, self.child, self.centre = school, child, centre
        self.days: dict[str, Day] = {}
        self.alerts: tuple[tuple[str, str, str], ...] = ()  # (reason, since, event id)

    # Each event names the child, so that it is sealed under the child's key (events.sealing).
    @event("DaysRecorded")
    def record_days(self, days: list, child: str) -> None:
        """The days one publish recorded for this child, in the order published: a later entry for a day replaces
        an earlier one, as one ``record_day`` each would."""
        for d in days:
            self.days[d["day"]] = Day(d["event_id"], d["content"], d["status"], d["contacted"])

    def record_staged(self, events: list[Recorded]) -> None:
        """Record the ``attendance.daily`` events a publish staged for this child (``Batch.stage``), in order, as
        one event. It replaces one ``record_day`` per event (about half of a prefecture's projection events):
        the same days, one stored event per child and publish instead of one per day."""
        self.record_days(
            days=[
                {
                    "day": str(e.payload["date"]),
                    "event_id": e.id,
                    "content": content_of(e.payload),
                    "status": str(e.payload["status"]),
                    "contacted": e.payload.get("contacted"),
                }
                for e in events
            ],
            child=self.child,
        )

    # One event per day: what stores written before ``record_days`` hold.
    @event("DayRecorded")
    def record_day(
        self, day: str, event_id: str, content: str, status: str, contacted: bool | None, child: str
    ) -> None:
        self.days[day] = Day(event_id, content, status, contacted)

    @event("AlertRecorded")
    def record_alert(self, reason: str, since: str, event_id: str, child: str) -> None:
        self.alerts = (*self.alerts, (reason, since, event_id))


@direct_events
class SchoolCalendar(_CopiedOnWrite, Aggregate):
    """授業日: the days on which a school sent daily rows (for any child). Written by the daily import."""

    @staticmethod
    def create_id(school: str) -> UUID:
        return stream_id(f"school-calendar:{school}")

    def __init__(self, school: str):
        self.school = school
        self.days: frozenset[str] = frozenset()

    @event("DaysReported")
    def report(self, days: list) -> None:
        self.days = self.days | frozenset(days)


# --- Keeping them in step with the log --------------------------------------------------------------------


def school_id(value: str, orgs: Mapping[str, Org]) -> str:
    """A school named in a payload by its hub id or by its 学校コード, as its hub id (unchanged if unknown)."""
    if value in orgs:
        return value
    return next((o.id for o in orgs.values() if o.code == value), value)


def listing_school(e: Recorded, orgs: Mapping[str, Org]) -> str | None:
    """The school whose list the target-list event ``e`` changes, or ``None`` when it changes none: only a
    centre's request puts a child on a school's list."""
    centre = orgs.get(e.source)
    if centre is None or centre.type not in LISTING_CENTRES:
        return None
    return school_id(str(e.payload["school"]), orgs)


def school_lists_needs(e: Recorded, orgs: Mapping[str, Org]) -> list[UUID]:
    """The aggregates ``keep_school_lists`` reads or writes for ``e`` (those it stages included)."""
    if e.kind in ("target_list.assigned", "target_list.removed"):
        school = listing_school(e, orgs)
        if school is None:
            return []
        lists = [CenterLists.create_id(e.source)] if e.kind == "target_list.assigned" else []
        return [SchoolRoster.create_id(school), *lists]
    if e.kind == "attendance.monthly":
        return [MonthlyReports.create_id(e.source, str(e.payload["month"]))]
    if e.kind == "attendance.daily" or (e.kind == "absence.alert" and e.payload.get("since")):
        return [DailyAttendance.create_id(e.source, e.child, e.to or "")]
    return []


def keep_school_lists(e: Recorded, batch: UnitOfWork) -> None:
    """Keep target lists, monthly reports, daily attendance and absence alerts in step with ``e``
    (``SCHOOL_LISTS``)."""
    if e.kind in ("target_list.assigned", "target_list.removed"):
        school = listing_school(e, batch.orgs)
        if school is None:
            return
        batch.stage(SchoolRoster, (school,), e)  # a publish's changes to one school's list: one event
        if e.kind == "target_list.assigned":
            lists = batch.get(CenterLists, e.source)
            if school not in lists.schools:
                lists.add(school=school)
    elif e.kind == "attendance.monthly":  # a month's reports of one publish: one event (record_staged)
        batch.stage(MonthlyReports, (e.source, str(e.payload["month"])), e)
    elif e.kind == "attendance.daily":  # a child's days of one publish: one event (record_staged)
        batch.stage(DailyAttendance, (e.source, e.child, e.to or ""), e)
    elif e.kind == "absence.alert" and e.payload.get("since"):
        daily = batch.get(DailyAttendance, e.source, e.child, e.to or "")
        daily.record_alert(reason=str(e.payload["reason"]), since=str(e.payload["since"]), event_id=e.id, child=e.child)


SCHOOL_LISTS = Projection("対象名簿・定期報告・日次出欠・連続欠席の通知", school_lists_needs, keep_school_lists)


# --- Reading them -----------------------------------------------------------------------------------------


def peek(store: HubStore, cls: type[Any], *key: str) -> Any:
    """The index aggregate for reading (an empty one when nothing was recorded yet)."""
    found = store.peek(cls.create_id(*key))
    return found if found is not None else cls(*key)


def schools_by_code(orgs: Iterable[Org]) -> dict[str, str]:
    """学校コード → the school's hub id, for the schools and nurseries registered with a code."""
    return {o.code: o.id for o in orgs if o.code and o.type in ("school", "nursery")}
