"""**Store format 6: every old report line moved once** (``move_report_lines``), so that the publish path never asks
for a ``ReportLine`` stream again.

What it replaces: stores written by main's code before session 8 kept each monthly report line (定期的な情報提供:
what counting needs of one child's reports from one school to one centre) in a ``ReportLine`` stream of its own;
session 8 keeps them per (school, centre) in ``ReportLines`` and moved an old line there on the first publish that
changed it, so every row of every monthly file still declared and loaded its ``ReportLine`` (two stream-id HMACs
and one more id in the load query a row), for good, in case it was an old line not moved yet.

What the step does: it reads the log once (``published_in_log``: routing fields under the hub's key, so an erased
child's target-list events and reports name their line too, ``municipal_counts.erased_report_line``), collects
every (school, child, centre) a line was kept for, and for each line **not yet in** its (school, centre)'s
``ReportLines`` whose ``ReportLine`` exists, records it there whole (``ReportLines.LinesMoved``, one event a pair).
A line already in ``ReportLines`` is left: a session 8 publish moved it and changed it since, and the
``ReportLine`` is the stale one (the review's M2). The ``ReportLine`` streams are left as main wrote them (under the
hub's key, like ``ReportLines``: an erasure takes neither, the lead's rule of session 7); nothing reads them after.

Recorded as store format 6 (``events.store.STORE_FORMAT``): the hub runs it as an upgrade when it opens a store of
an older format (``services.hub.upgrade_report_lines``), before the publish path runs on the store (``Ingest``
marks the format after its upgrades), so the publish path may take every line to be in ``ReportLines``
(``municipal_counts._line``). A new store is of format 6 from the start (no line was ever kept alone).
``tsunagu report-lines move`` runs it from the command line (deploy/RUNBOOK.md).

- **Idempotent**: a second run finds every line in its ``ReportLines`` and records nothing.
- **While the hub runs**: safe with processes of this version (each runs it before publishing, and a line that a
  publish and the step both record conflicts on the pair's stream: the step loads the pair again and moves only
  what is still missing; a publish is refused by ``Batch.record_lines_on_newest`` and tried again, as after
  another publisher). **Not** while a process of an older version (main before session 8) still publishes to the
  store: it would go on writing ``ReportLine`` streams that nothing reads any more. Stop those first.
- Every line an event names is found, from the events alone, whatever the registry says of its centre now (a
  centre retyped and set back later finds its lines again, as main's code did).
"""

from __future__ import annotations

from collections import defaultdict

from eventsourcing.persistence import IntegrityError

from events.store import HubStore
from events.streams import load_many
from services.aggregates.figures import _log_events
from services.projections.municipal_counts import (
    LinePlace,
    ReportLine,
    ReportLines,
    erased_report_line_named,
    line_of,
    report_line_key,
    report_line_named,
)

MOVE_ATTEMPTS = 10  # a pair's move tried again after a publish recorded on it meanwhile (``IntegrityError``)


def lines_in_log(store: HubStore) -> dict[tuple[str, str], set[str]]:
    """Every report line the log's events name, by (school, centre): the keys (``report_line_key``) of the lines
    of readable events and of erased children's events alike, **from the events alone**: whatever the registry
    says of a centre's type now, as main's code read a line's ``ReportLine`` whatever it said (a centre retyped
    at the upgrade and set back later would otherwise count from empty lines; review of s9-import, M1). Moving a
    line whose centre is not a municipality's now is harmless: it is moved whole, and counted only if the centre
    is one again."""
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in _log_events(store):
        place: LinePlace | None = report_line_named(e) or erased_report_line_named(e)
        if place is not None:
            school, _, centre = place
            found[(school, centre)].add(report_line_key(*place))
    return found


def move_report_lines(store: HubStore) -> int:
    """Move every line kept alone (``ReportLine``) into its (school, centre)'s ``ReportLines`` (see the module);
    how many lines were moved (0 on a second run)."""
    moved = 0
    for (school, centre), keys in sorted(lines_in_log(store).items()):
        moved += _move_pair(store, school, centre, keys)
    return moved


def _move_pair(store: HubStore, school: str, centre: str, keys: set[str]) -> int:
    """Move the lines ``keys`` of one (school, centre) not in its ``ReportLines`` yet; loaded again and tried again
    when a publish recorded on it meanwhile."""
    for attempt in range(MOVE_ATTEMPTS):
        pair = ReportLines.create_id(school, centre)
        lines: ReportLines = load_many(store, [pair])[pair] or ReportLines(school, centre)  # as stored now
        entries = []
        for key in sorted(keys - set(lines.lines)):
            alone: ReportLine | None = store.peek(ReportLine.create_id(key))
            if alone is not None:
                entries.append({"line": key, **line_of(alone)})
        if not entries:
            return 0
        lines.move_lines(lines=entries)
        try:
            store.save(lines)
        except IntegrityError:
            if attempt == MOVE_ATTEMPTS - 1:
                raise
            continue
        return len(entries)
    return 0  # pragma: no cover - the loop returns or raises


def upgrade_report_lines(store: HubStore, was: int) -> None:
    """The publish path's upgrade to store format 6 (``Ingest(upgrades=…)``, ``services.hub``): the old lines moved
    (``move_report_lines``) before the store is marked."""
    if was < LINES_MOVED_FORMAT:
        move_report_lines(store)


LINES_MOVED_FORMAT = 6  # the store format from which every report line is in ``ReportLines`` (events.store)
