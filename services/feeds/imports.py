"""Importing the feeds of organisations other than schools: a JSON-lines feed (``adapters.jsonl``), 乳幼児健診
results (``adapters.health_center``) and 委託事業者 usage and visit reports (``adapters.service_provider``).

The file is streamed; each row (or line) is parsed by its adapter into envelopes or problems, and the envelopes
go to a ``Publisher`` in chunks. A row's outcome follows from what the hub did with its envelopes:

- ``accepted``: stored (or, through a transport, handed over: also counted in ``queued``);
- ``unchanged``: every envelope was already stored (the same file sent again changes nothing: ids are
  deterministic);
- ``waiting_for_link`` (紐付け待ち): the sender's number is not linked to a child yet; the hub keeps the record
  in the linking queue until a centre links the number (``services.publishing.linking``);
- ``rejected``: listed with its line and reasons. Rows the adapter could not read are kept in the ``Quarantine``
  of the sending organisation, each once (raw row, file, line, reasons); envelopes the hub refused are kept by
  the hub's own quarantine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal

from adapters import health_center, service_provider
from adapters.csvfile import CsvReader, FileRefused
from adapters.feed import FeedRow
from adapters.jsonl import JsonlReader
from adapters.publisher import Publisher
from events.clock import JST
from events.envelope import content_digest
from events.problems import Problem
from events.retry import retry_conflicts
from events.store import HubStore, Quarantine
from services.publishing.ingest import PublishResult
from services.publishing.linking import WAITING_FOR_LINK

Format = Literal["jsonl", "health-checkup", "provider"]
CHUNK = 1000  # envelopes per publish (the hub takes at most 5000)
MAX_LISTED_REJECTIONS = 5000  # rows listed in a summary; every one is kept all the same

Source = str | Path | BinaryIO


@dataclass
class FeedSummary:
    """What became of a feed file: counts per outcome, every rejected row with its reasons (up to
    ``MAX_LISTED_REJECTIONS``; ``rejected_total`` counts all), warnings, and ``refused`` when the file (or the
    import as a whole) could not be read."""

    format: Format
    file: str
    org: str
    encoding: str | None = None
    rows: int = 0
    accepted: int = 0
    unchanged: int = 0
    waiting_for_link: int = 0  # 紐付け待ち
    queued: int = 0  # of accepted: handed to a transport, not yet confirmed by the hub
    rejected: list[dict[str, Any]] = field(default_factory=list)
    rejected_total: int = 0
    warnings: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``refused`` (nothing could be read), ``rejected`` (some rows were not accepted) or ``ok``."""
        return "refused" if self.refused else "rejected" if self.rejected_total else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "status": self.status}


class FeedImporter:
    """Imports feed files from organisation ``org`` through ``publisher``; ``store`` keeps the rows that could
    not be read (and knows the registry); ``now`` is the hub's clock (no dates in the future)."""

    def __init__(self, store: HubStore, publisher: Publisher, *, now: datetime, chunk: int = CHUNK):
        self.store = store
        self.publisher = publisher
        self.now = now
        self.today: date = now.astimezone(JST).date()
        self.chunk = chunk

    def jsonl(self, source: Source, *, org: str, name: str | None = None) -> FeedSummary:
        """A JSON-lines feed: one envelope per line, each with ``source`` = ``org``."""

        def rows(reader: JsonlReader) -> Iterable[FeedRow]:
            for row in reader:
                sent_by = row.envelopes[0].get("source") if row.envelopes else None
                if sent_by is not None and sent_by != org:  # a missing source is the hub's to name
                    row = FeedRow(
                        row.line,
                        problems=[
                            Problem(
                                "source_mismatch",
                                f"line {row.line}: source {sent_by!r} is not the sending organisation {org!r}",
                                f"{row.line}行目: source「{sent_by}」が送信元の機関（{org}）と一致しません。自機関のイベントだけを送れます",
                                "source",
                            )
                        ],
                        raw=row.raw,
                    )
                yield row

        return _Run(self, "jsonl", org, source, name).run(lambda: JsonlReader(source), rows)

    def health_checkup(
        self, source: Source, *, org: str, basis: health_center.Basis = "cwa-21-10-5", name: str | None = None
    ) -> FeedSummary:
        """乳幼児健診 results (health.checkup) from a 保健所 (``cwa-21-10-5``) or a centre's 母子保健 (``internal``)."""

        def rows(reader: CsvReader) -> Iterable[FeedRow]:
            return (
                health_center.parse_checkup(row, reader.column_headers, org=org, today=self.today, basis=basis)
                for row in reader
            )

        return _Run(self, "health-checkup", org, source, name).run(
            lambda: CsvReader(source, health_center.COLUMNS), rows
        )

    def provider(self, source: Source, *, org: str, to: str | None = None, name: str | None = None) -> FeedSummary:
        """委託事業者 usage and visit reports (service.usage, visit.report); ``to``: the commissioning centre for
        rows without a 委託元 column."""

        def rows(reader: CsvReader) -> Iterable[FeedRow]:
            return (
                service_provider.parse_provider_row(row, reader.column_headers, org=org, today=self.today, to=to)
                for row in reader
            )

        return _Run(self, "provider", org, source, name).run(lambda: CsvReader(source, service_provider.COLUMNS), rows)


class _Run:
    def __init__(self, importer: FeedImporter, fmt: Format, org: str, source: Source, name: str | None):
        self.importer, self.store, self.format, self.org = importer, importer.store, fmt, org
        self.summary = FeedSummary(fmt, name or str(source), org)
        self.pending: list[FeedRow] = []
        self.pending_envelopes = 0
        self.held: list[tuple[dict[str, Any], list[Problem]]] = []

    def run(
        self, open_reader: Callable[[], AbstractContextManager[Any]], rows: Callable[[Any], Iterable[FeedRow]]
    ) -> FeedSummary:
        if self.org not in self.store.registry().orgs:
            self.summary.refused = [
                Problem(
                    "unknown_source",
                    f"{self.org!r} is not a registered organisation",
                    f"送信元の機関「{self.org}」はハブに登録されていません",
                    "org",
                ).to_dict()
            ]
            return self.summary
        try:
            with open_reader() as reader:
                self.summary.encoding = reader.encoding
                self.summary.warnings = [p.to_dict() for p in getattr(reader, "warnings", [])]
                for row in rows(reader):
                    self.summary.rows += 1
                    if row.problems:
                        self._reject(row)
                        continue
                    self.pending.append(row)
                    self.pending_envelopes += len(row.envelopes)
                    if self.pending_envelopes >= self.importer.chunk:
                        self._flush()
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
        self._flush()
        self._save_held()
        return self.summary

    def _flush(self) -> None:
        rows, self.pending, self.pending_envelopes = self.pending, [], 0
        envelopes = [e for row in rows for e in row.envelopes]
        results: list[PublishResult] = []
        for start in range(0, len(envelopes), self.importer.chunk):
            results += self.importer.publisher.publish(envelopes[start : start + self.importer.chunk])
        position = 0
        for row in rows:
            self._settle(row, results[position : position + len(row.envelopes)])
            position += len(row.envelopes)

    def _settle(self, row: FeedRow, results: list[PublishResult]) -> None:
        refused = [p for r in results if r.outcome == "rejected" for p in r.problems]
        waiting = [r for r in results if r.outcome == "queued" and any(p.code == WAITING_FOR_LINK for p in r.problems)]
        if refused:  # the hub keeps the refused envelopes in its own quarantine
            self._listed(
                row.line,
                [
                    Problem(p.code, f"line {row.line}: {p.message}", f"{row.line}行目: {p.message_ja}", p.field)
                    for p in refused
                ],
            )
        elif waiting:
            self.summary.waiting_for_link += 1
        elif all(r.outcome == "duplicate" for r in results):
            self.summary.unchanged += 1
        else:
            self.summary.accepted += 1
            if any(r.outcome == "queued" for r in results):
                self.summary.queued += 1

    def _reject(self, row: FeedRow) -> None:
        self._listed(row.line, row.problems)
        self.held.append(
            ({"format": self.format, "file": self.summary.file, "line": row.line, "row": row.raw}, row.problems)
        )

    def _listed(self, line: int, problems: list[Problem]) -> None:
        self.summary.rejected_total += 1
        if len(self.summary.rejected) < MAX_LISTED_REJECTIONS:
            self.summary.rejected.append({"line": line, "problems": [p.to_dict() for p in problems]})

    def _save_held(self) -> None:
        """Keep the rows that could not be read in the sender's quarantine, once each (the same row sent again is
        not held twice)."""
        if not self.held:
            return

        def hold_once() -> None:
            quarantine = self.store.get_or_none(Quarantine.create_id(self.org)) or Quarantine(self.org)
            known = {
                content_digest([h["raw"].get("format"), h["raw"].get("row")])
                for h in quarantine.held
                if isinstance(h.get("raw"), dict)
            }
            for raw, problems in self.held:
                digest = content_digest([raw["format"], raw["row"]])
                if digest not in known:
                    known.add(digest)
                    quarantine.hold(
                        raw=raw, problems=[p.to_dict() for p in problems], received_at=self.importer.now.isoformat()
                    )
            self.store.save(quarantine)

        retry_conflicts(hold_once)  # a publish rejecting an event of the same sender may hold at the same time
