"""Importing what schools and nurseries send: monthly reports and daily attendance (school-reports.md).

The file is streamed row by row (``adapters.csvfile``), each row is parsed and checked (``adapters.school``),
then resolved here against the log:

- the school: the row's 学校コード matched against the registry's ``code``;
- the child: the school's target list (``services.rosters.SchoolRoster``), for the row's month or day. A row for
  a child who is not on the list is **not stored at all**, only counted (the hub does not collect other
  children's data);
- what it changes: a row identical to the latest report for the child and period is ``unchanged`` (nothing is
  published: re-sending a file changes nothing); a different one is published as a correction that names what
  it ``supersedes`` (the log keeps both; the views use the latest).

Rows that cannot be accepted are kept in the ``Quarantine`` of the school (or of the unknown 学校コード) with
their reasons, each once, to be corrected and sent again; a row of a child on the target list is sealed under that
child's key (under the key of the school's number when the list gives it to several children), so that it goes
with the child's erasure (``events.sealing``). Envelopes go to a ``Publisher`` (the hub directly,
or a transport), in chunks. After a daily file, the school's calendar gets the file's days, and each child in
the file is checked for absence streaks (``services.schools.absence``); new streaks raise ``absence.alert``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal

from adapters.csvfile import CellError, CsvReader, FileRefused, cell_problem
from adapters.publisher import Publisher
from adapters.school import (
    DAILY_COLUMNS,
    JST,
    MONTHLY_COLUMNS,
    ParsedRow,
    alert_envelope,
    content_of,
    daily_envelope,
    monthly_envelope,
    parse_daily,
    parse_monthly,
)
from events.envelope import content_digest
from events.problems import Problem
from events.retry import retry_conflicts
from events.store import HubStore, Quarantine
from services.projections.rosters import (
    DailyAttendance,
    Listing,
    MonthlyReports,
    SchoolCalendar,
    SchoolRoster,
    peek,
    schools_by_code,
)
from services.publishing.ingest import PublishResult
from services.schools.absence import streaks, unalerted

Format = Literal["school-monthly", "school-daily"]
CHUNK = 1000  # envelopes per publish (the hub takes at most 5000)
ROSTERS_KEPT = 16  # schools whose target lists a run keeps at hand (files come school by school)
MAX_LISTED_REJECTIONS = 5000  # rows listed in a summary; every one is kept in quarantine all the same
OWN_SCHOOL = "@own"  # a blank 学校コード in a file sent as a known organisation: the sender itself


@dataclass
class ImportSummary:
    """What became of a file: counts per outcome, every rejected row with its reasons (up to
    ``MAX_LISTED_REJECTIONS``; ``rejected_total`` counts all), warnings, alerts raised, and ``refused`` when
    the file could not be read (from the line named on, nothing was read)."""

    format: Format
    file: str
    encoding: str | None = None
    rows: int = 0
    accepted: int = 0
    superseded: int = 0
    unchanged: int = 0
    not_listed: int = 0
    queued: int = 0  # of accepted and superseded: handed to a transport, not yet confirmed by the hub
    rejected: list[dict[str, Any]] = field(default_factory=list)
    rejected_total: int = 0
    warnings: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    schools: set[str] = field(default_factory=set)

    @property
    def status(self) -> str:
        """``refused`` (the file could not be read), ``rejected`` (some rows were not accepted) or ``ok``."""
        return "refused" if self.refused else "rejected" if self.rejected_total else "ok"

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "schools"}
        out["schools"] = sorted(self.schools)
        out["status"] = self.status
        return out


@dataclass
class _Ticket:
    """One accepted row on its way: the envelopes it became and what each was meant to be."""

    parsed: ParsedRow
    planned: list[tuple[dict[str, Any], str, tuple[str, ...]]] = field(default_factory=list)
    """(envelope, accepted|superseded, the key of the report it becomes the latest of)"""
    results: list[PublishResult] = field(default_factory=list)

    @property
    def payload(self) -> dict[str, Any]:
        """The row's payload: an accepted row has one."""
        assert self.parsed.payload is not None, "only accepted rows get a ticket"
        return self.parsed.payload


class SchoolImporter:
    """Imports school files into the hub through ``publisher``; ``store`` answers the lookups and keeps the
    quarantine and the school calendars; ``now`` is the hub's clock (no future months or days)."""

    def __init__(self, store: HubStore, publisher: Publisher, *, now: datetime, chunk: int = CHUNK):
        self.store = store
        self.publisher = publisher
        self.now = now
        self.today = now.astimezone(JST).date()
        self.chunk = chunk

    def monthly(
        self,
        source: str | Path | BinaryIO,
        *,
        name: str | None = None,
        progress: Callable[[int, int | None], None] | None = None,
        org: str | None = None,
    ) -> ImportSummary:
        """Import a monthly report file (定期的な情報提供 月次). ``org``: the school or nursery that sends it
        (over HTTP, as the token's or the signed-in person's organisation): only its own rows are accepted."""
        return _Run(self, "school-monthly", source, name, progress, org).run()

    def daily(
        self,
        source: str | Path | BinaryIO,
        *,
        name: str | None = None,
        progress: Callable[[int, int | None], None] | None = None,
        org: str | None = None,
    ) -> ImportSummary:
        """Import a daily attendance file (日次出欠) and raise the absence alerts it completes (``org`` as for
        ``monthly``)."""
        return _Run(self, "school-daily", source, name, progress, org).run()


class _Run:
    def __init__(
        self,
        importer: SchoolImporter,
        fmt: Format,
        source: str | Path | BinaryIO,
        name: str | None,
        progress: Callable[[int, int | None], None] | None,
        org: str | None = None,
    ):
        self.importer, self.store, self.format = importer, importer.store, fmt
        self.org = org
        self.source = source
        self.summary = ImportSummary(fmt, name or str(source))
        self.progress = progress
        self.by_code = schools_by_code(self.store.registry().orgs.values())
        self.rosters: OrderedDict[str, SchoolRoster] = OrderedDict()  # the last ROSTERS_KEPT schools'
        self.indexes: dict[tuple[str, ...], Any] = {}  # MonthlyReports / DailyAttendance, since the last chunk
        self.latest: dict[tuple[str, ...], tuple[str, str]] = {}  # reports planned since: key → (id, content)
        self.queued: dict[tuple[str, ...], tuple[str, str]] = {}  # handed to a transport, not stored yet
        self.resolved: list[tuple[ParsedRow, list[Listing]]] = []  # rows read and resolved, not planned yet
        self.resolved_listings = 0
        self.in_flight: tuple[list[_Ticket], Future[list[PublishResult]]] | None = None
        self.held: dict[str, list[tuple[dict[str, Any], list[Problem], dict[str, str] | None]]] = {}
        self.days: dict[str, set[str]] = {}  # school → days with rows in this file
        self.attendance: dict[tuple[str, str, str], dict[str, tuple[str, bool | None]]] = {}
        self.student_nos: dict[tuple[str, str, str], str] = {}

    # --- the file -----------------------------------------------------------------------------------------

    def run(self) -> ImportSummary:
        # One thread publishes each chunk while this one reads the next; leaving the block (also on an error)
        # waits for the chunk in flight.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tsunagu-import") as publishing:
            size = self._read(publishing)
            while self.resolved:  # the rows read since the last chunk (a second row for a report: one more)
                self._flush(publishing)
            self._settle_in_flight()
        if self.format == "school-daily":
            self._save_calendars()
            self._raise_alerts()
        if self.progress and size is not None:
            self.progress(size, size)
        return self.summary

    def _read(self, publishing: ThreadPoolExecutor) -> int | None:
        """Read the file row by row, handing a chunk to ``publishing`` whenever enough rows are resolved; the
        file's size in bytes (None: not known). A file that cannot be read further is noted in the summary."""
        parse = parse_monthly if self.format == "school-monthly" else parse_daily
        columns = MONTHLY_COLUMNS if self.format == "school-monthly" else DAILY_COLUMNS
        size = None
        try:
            with CsvReader(self.source, columns) as reader:
                size = reader.size
                self.summary.encoding = reader.encoding
                self.summary.warnings = [p.to_dict() for p in reader.warnings]
                for n, row in enumerate(reader, start=1):
                    self.summary.rows += 1
                    if self.org is not None and not row.get("school_code"):
                        row.values["school_code"] = OWN_SCHOOL
                    self._row(parse(row, reader.column_headers, self.importer.today), reader.column_headers)
                    if self.resolved_listings >= self.importer.chunk:
                        self._flush(publishing)
                    if self.progress and n % 500 == 0:
                        self.progress(reader.position, size)
                if not self.summary.rows:
                    self.summary.warnings.append(
                        Problem(
                            "no_rows", "the file has a header and no rows", "見出しだけで、データの行がありません"
                        ).to_dict()
                    )
        except FileRefused as refused:
            problems = refused.problems
            if self.summary.rows:
                problems = [
                    Problem(
                        p.code,
                        f"{p.message} (the rows before it were imported)",
                        f"{p.message_ja}（この行より前の行は取り込みました）",
                        p.field,
                    )
                    for p in problems
                ]
            self.summary.refused = [p.to_dict() for p in problems]
        return size

    def _row(self, parsed: ParsedRow, headers: dict[str, str]) -> None:
        listings = self._resolve(parsed, headers)
        if listings is not None:
            self.resolved.append((parsed, listings))
            self.resolved_listings += len(listings)

    # --- who the row is about -----------------------------------------------------------------------------

    def _resolve(self, parsed: ParsedRow, headers: dict[str, str]) -> list[Listing] | None:
        """The listings the row reports on, or None when it was rejected or is not on the list (counted)."""
        problems = list(parsed.problems)
        school = self.by_code.get(parsed.school_code) if parsed.school_code else None
        if self.org is not None:
            school = self._own(parsed, problems, school, headers)
            if school is None:
                return None
        if school is None:
            if parsed.school_code:
                problems.insert(
                    0,
                    cell_problem(
                        parsed.line,
                        headers["school_code"],
                        CellError(
                            f"no school or nursery with code {parsed.school_code!r} is registered",
                            f"学校コード「{parsed.school_code}」の学校・園はハブに登録されていません",
                            "unknown_school",
                        ),
                    ),
                )
            self._reject(parsed, problems, f"school-code:{parsed.school_code or '-'}")
            return None
        self.summary.schools.add(school)
        if self.format == "school-daily" and parsed.period:
            self.days.setdefault(school, set()).add(parsed.period)  # any row makes the day a school day
        if not parsed.student_no:
            self._reject(parsed, problems, school)
            return None
        on_list = self._roster(school).of(parsed.student_no)
        if parsed.period is not None:
            on_list = [
                listing
                for listing in on_list
                if (
                    listing.covers_month(parsed.period)
                    if self.format == "school-monthly"
                    else listing.covers_day(date.fromisoformat(parsed.period))
                )
            ]
        if not on_list:
            self.summary.not_listed += 1  # not stored, not even in quarantine
            return None
        children = {listing.child for listing in on_list}
        if len(children) > 1:
            problems.append(
                cell_problem(
                    parsed.line,
                    headers["student_no"],
                    CellError(
                        "the target list gives this number to more than one child",
                        "対象名簿でこの児童生徒番号が複数の児童に割り当てられています。センターに確認してください",
                        "ambiguous_student_no",
                    ),
                )
            )
        if problems:  # held under the key of the child the row is about (or of the school's number for them)
            self._reject(
                parsed,
                problems,
                school,
                {"child": children.pop()}
                if len(children) == 1
                else {"source": school, "local_child": parsed.student_no},
            )
            return None
        return list({(listing.child, listing.centre): listing for listing in on_list}.values())

    def _own(
        self, parsed: ParsedRow, problems: list[Problem], school: str | None, headers: dict[str, str]
    ) -> str | None:
        """The sender's own school for a row sent as ``self.org``: a blank 学校コード is the sender's (a nursery
        may have none: ``_read`` wrote ``OWN_SCHOOL`` in it); another school's code is refused, and the row kept
        in the sender's quarantine only."""
        assert self.org is not None
        if parsed.school_code == OWN_SCHOOL or school == self.org:
            return self.org
        problems.insert(
            0,
            cell_problem(
                parsed.line,
                headers["school_code"],
                CellError(
                    f"school code {parsed.school_code!r} is not the sending organisation's",
                    f"学校コード「{parsed.school_code}」は自機関のものではありません。自機関の行だけを送れます",
                    "not_own_school",
                ),
            ),
        )
        self._reject(parsed, problems, self.org)
        return None

    def _roster(self, school: str) -> SchoolRoster:
        roster = self.rosters.get(school)
        if roster is None:
            roster = self.rosters[school] = peek(self.store, SchoolRoster, school)
            if len(self.rosters) > ROSTERS_KEPT:
                self.rosters.popitem(last=False)
        self.rosters.move_to_end(school)
        return roster

    def _index(self, cls: type, *key: str) -> Any:
        if (cls.__name__, *key) not in self.indexes:
            self.indexes[(cls.__name__, *key)] = peek(self.store, cls, *key)
        return self.indexes[(cls.__name__, *key)]

    # --- what the row changes -----------------------------------------------------------------------------

    def _key(self, parsed: ParsedRow, listing: Listing) -> tuple[str, ...]:
        """The report a row gives for a listing: a child's month (monthly) or day (daily), for one centre."""
        assert parsed.payload is not None
        if self.format == "school-monthly":
            return ("monthly", listing.school, str(parsed.payload["month"]), listing.child, listing.centre)
        return ("daily", listing.school, listing.child, listing.centre, str(parsed.payload["date"]))

    def _plan_monthly(self, ticket: _Ticket, listing: Listing) -> None:
        payload = ticket.payload
        month = str(payload["month"])
        key = self._key(ticket.parsed, listing)
        latest = self.latest.get(key)
        if latest is None:
            stored = self._index(MonthlyReports, listing.school, month).latest(listing.child, listing.centre)
            latest = (stored.id, stored.content) if stored else None
        content = content_of(payload)
        if latest is not None and latest[1] == content:
            return
        envelope = monthly_envelope(
            payload,
            school=listing.school,
            child=listing.child,
            centre=listing.centre,
            today=self.importer.today,
            supersedes=latest[0] if latest else None,
            content=content,
        )
        self.latest[key] = (envelope["id"], content)
        ticket.planned.append((envelope, "superseded" if latest else "accepted", key))

    def _plan_daily(self, ticket: _Ticket, listing: Listing) -> None:
        payload = ticket.payload
        day = str(payload["date"])
        who = (listing.school, listing.child, listing.centre)
        self.attendance.setdefault(who, {})[day] = (str(payload["status"]), payload.get("contacted"))
        self.student_nos[who] = listing.student_no
        key = self._key(ticket.parsed, listing)
        latest = self.latest.get(key)
        if latest is None:
            stored = self._index(DailyAttendance, *who).days.get(day)
            latest = (stored.id, stored.content) if stored else None
        content = content_of(payload)
        if latest is not None and latest[1] == content:
            return
        envelope = daily_envelope(
            payload,
            school=listing.school,
            child=listing.child,
            centre=listing.centre,
            supersedes=latest[0] if latest else None,
            content=content,
        )
        self.latest[key] = (envelope["id"], content)
        ticket.planned.append((envelope, "superseded" if latest else "accepted", key))

    # --- publishing and keeping what was refused ----------------------------------------------------------

    def _flush(self, publishing: ThreadPoolExecutor) -> None:
        """Plan the rows resolved since the last flush and hand their envelopes to ``publishing``, a thread that
        publishes while this one reads the next rows (the hub's database works meanwhile on the other core).
        The chunk handed over before is settled first, so that planning sees what the hub stored of it: the
        latest report of a child and month is then the stored one, and nothing of earlier chunks is kept."""
        self._settle_in_flight()
        rows, self.resolved, self.resolved_listings = self.resolved, [], 0
        tickets: list[_Ticket] = []
        keys: set[tuple[str, ...]] = set()
        for n, (parsed, listings) in enumerate(rows):
            row_keys = [self._key(parsed, listing) for listing in listings]
            if keys.intersection(row_keys):
                # A second row for a report of this chunk: it goes in the next one, once the hub has said what
                # became of the first (a correction names what was stored, never a refused report).
                self.resolved = rows[n:]
                self.resolved_listings = sum(len(later) for _, later in self.resolved)
                break
            keys.update(row_keys)
            ticket = _Ticket(parsed)
            for listing in listings:
                if self.format == "school-monthly":
                    self._plan_monthly(ticket, listing)
                else:
                    self._plan_daily(ticket, listing)
            if ticket.planned:
                tickets.append(ticket)
            else:
                self.summary.unchanged += 1
        envelopes = [envelope for t in tickets for envelope, _, _ in t.planned]
        if envelopes:
            self.in_flight = (tickets, publishing.submit(self._publish, envelopes))

    def _settle_in_flight(self) -> None:
        """Wait for the chunk being published, count what became of each of its rows, keep the rejected rows in
        quarantine; then forget the reports planned so far (the indexes now hold what was stored of them), except
        those a transport (Kafka) only queued: the hub stores them later, so until the run ends they are the
        latest of their child and period."""
        if self.in_flight is not None:
            tickets, publishing = self.in_flight
            self.in_flight = None
            results = publishing.result()
            position = 0
            for ticket in tickets:
                ticket.results = results[position : position + len(ticket.planned)]
                position += len(ticket.planned)
                self._settle(ticket)
                for (_envelope, _, key), result in zip(ticket.planned, ticket.results):
                    if result.outcome == "queued":
                        self.queued[key] = self.latest[key]
        self._save_held()
        self.latest = dict(self.queued)
        self.indexes.clear()

    def _publish(self, envelopes: list[dict[str, Any]]) -> list[PublishResult]:
        results: list[PublishResult] = []
        for start in range(0, len(envelopes), CHUNK):
            results += self.importer.publisher.publish(envelopes[start : start + CHUNK])
        return results

    def _settle(self, ticket: _Ticket) -> None:
        line = ticket.parsed.line
        refused = [r for r in ticket.results if r.outcome == "rejected"]
        if refused:
            problems = [
                Problem(p.code, f"line {line}: {p.message}", f"{line}行目: {p.message_ja}", p.field)
                for r in refused
                for p in r.problems
            ]
            self._listed(line, problems)  # the hub keeps the refused envelope in its own quarantine
            return
        fresh = [(intent, r) for (_, intent, _), r in zip(ticket.planned, ticket.results) if r.outcome != "duplicate"]
        if not fresh:
            self.summary.unchanged += 1
        elif any(intent == "superseded" for intent, _ in fresh):
            self.summary.superseded += 1
        else:
            self.summary.accepted += 1
        if any(r.outcome == "queued" for _, r in fresh):
            self.summary.queued += 1

    def _reject(
        self, parsed: ParsedRow, problems: list[Problem], source: str, about: dict[str, str] | None = None
    ) -> None:
        """Keep the row for the quarantine of ``source``; ``about``: whom it names, for its key
        (``Quarantine.hold``), None when the row names no child the hub knows."""
        self._listed(parsed.line, problems)
        raw = {"format": self.format, "file": self.summary.file, "line": parsed.line, "row": parsed.raw}
        self.held.setdefault(source, []).append((raw, problems, about))

    def _listed(self, line: int, problems: list[Problem]) -> None:
        self.summary.rejected_total += 1
        if len(self.summary.rejected) < MAX_LISTED_REJECTIONS:
            self.summary.rejected.append({"line": line, "problems": [p.to_dict() for p in problems]})

    def _save_held(self) -> None:
        """Keep the rejected rows in quarantine, once each (the same row sent again is not held twice)."""
        held, self.held = self.held, {}
        for source, items in held.items():

            def hold(quarantine: Quarantine, items: list = items) -> bool:
                known = {
                    content_digest([h["raw"].get("format"), h["raw"].get("row")])
                    for h in quarantine.held
                    if isinstance(h.get("raw"), dict)
                }
                changed = False
                for raw, problems, about in items:
                    digest = content_digest([raw["format"], raw["row"]])
                    if digest not in known:
                        known.add(digest)
                        quarantine.hold(
                            raw=raw,
                            problems=[p.to_dict() for p in problems],
                            received_at=self.importer.now.isoformat(),
                            about=about,
                        )
                        changed = True
                return changed

            self._save(Quarantine, source, hold)

    def _save(self, cls: type[Quarantine] | type[SchoolCalendar], key: str, change: Callable[[Any], bool]) -> None:
        """Apply ``change`` to the stored aggregate and save it, retrying when another writer got there first."""

        def save_once() -> None:
            aggregate = self.store.get_or_none(cls.create_id(key)) or cls(key)
            if change(aggregate):
                self.store.save(aggregate)

        retry_conflicts(save_once)

    # --- daily: the calendar and the alerts ---------------------------------------------------------------

    def _save_calendars(self) -> None:
        for school, days in self.days.items():

            def report(calendar: SchoolCalendar, days: set[str] = days) -> bool:
                new = sorted(days - calendar.days)
                if new:
                    calendar.report(days=new)
                return bool(new)

            self._save(SchoolCalendar, school, report)

    def _raise_alerts(self) -> None:
        planned: list[tuple[dict[str, Any], str]] = []
        for who, run_days in self.attendance.items():
            school, child, centre = who
            index = peek(self.store, DailyAttendance, *who)  # as it is now, with this file's rows
            attendance = {date.fromisoformat(d): (r.status, r.contacted) for d, r in index.days.items()}
            attendance |= {date.fromisoformat(d): v for d, v in run_days.items()}
            calendar = peek(self.store, SchoolCalendar, school).days | self.days.get(school, set())
            raised = [(reason, date.fromisoformat(since)) for reason, since, _ in index.alerts]
            for streak in unalerted(streaks(map(date.fromisoformat, calendar), attendance), raised):
                envelope = alert_envelope(
                    school=school,
                    child=child,
                    centre=centre,
                    reason=streak.reason,
                    since=streak.since,
                    days=streak.days,
                    reached=streak.reached,
                    student_no=self.student_nos[who],
                )
                planned.append((envelope, self.student_nos[who]))
        results = self._publish([envelope for envelope, _ in planned])
        for (envelope, student_no), result in zip(planned, results):
            self.summary.alerts.append(
                {
                    "id": envelope["id"],
                    "student_no": student_no,
                    "child": envelope["child"],
                    "to": envelope["to"],
                    "reason": envelope["payload"]["reason"],
                    "since": envelope["payload"]["since"],
                    "days": envelope["payload"]["days"],
                    "outcome": result.outcome,
                    **({"problems": [p.to_dict() for p in result.problems]} if result.problems else {}),
                }
            )
