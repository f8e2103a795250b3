"""``tsunagu import school-monthly|school-daily FILE`` and ``tsunagu reports overdue``: what schools and nurseries
send (school-reports.md) and which of their monthly reports are missing."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Protocol, TypeVar

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from adapters.publisher import Publisher, publisher_for
from events.clock import JST
from events.labels import ALERT_JA, label
from events.problems import Rejected
from events.transport import TransportError
from services.cli.root import Database, app, err, fail, out
from services.hub import Hub
from services.schools.imports import ImportSummary, SchoolImporter
from services.schools.overdue import recorded_overdue

import_app = typer.Typer(help="Import files from schools and nurseries (取り込み).", no_args_is_help=True)
reports_app = typer.Typer(help="Periodic reports from schools and nurseries (定期的な情報提供).", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(reports_app, name="reports")

AsJson = Annotated[bool, typer.Option("--json", help="The summary as one JSON object.")]
ViaKafka = Annotated[
    str | None,
    typer.Option(
        "--via-kafka",
        metavar="BOOTSTRAP",
        help="Hand the events to the Kafka events topic at HOST:PORT instead of "
        "storing them directly (the ingest worker stores them). The target lists are still read from --database.",
    ),
]
PROGRESS_FROM_BYTES = 1024 * 1024  # files this long get a progress bar


class FileSummary(Protocol):
    """What every file import's summary gives its command: a status and itself as JSON."""

    @property
    def status(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


Summary = TypeVar("Summary", bound=FileSummary)


EXIT_CODES = {"ok": 0, "rejected": 1, "refused": 2}  # a file import's status -> the command's exit code


def run_file_import(
    file: Path,
    database: str | None,
    as_json: bool,
    via_kafka: str | None,
    run: Callable[[Hub, Publisher], Summary],
    show: Callable[[Summary], None],
) -> None:
    """Every file import's command: open the hub on ``database``, hand ``run`` the hub and where the envelopes go
    (the hub itself, or the Kafka events topic with ``via_kafka``; the target lists, the quarantine and the school
    calendars are always the hub's), then print the summary (``show``, or JSON) and exit with its status."""
    if not file.is_file():
        fail(f"{file}: ファイルがありません (no such file)")
    hub = Hub(database)
    try:
        publisher = publisher_for(hub, via_kafka)
        try:
            summary = run(hub, publisher)
        finally:
            publisher.close()  # the Kafka producer's connection; nothing for the hub itself
    except TransportError as error:
        fail(str(error), 1)
    finally:
        hub.close()
    if as_json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False))
    else:
        show(summary)
    raise typer.Exit(EXIT_CODES[summary.status])


def _school_import(
    file: Path,
    database: str | None,
    as_json: bool,
    via_kafka: str | None,
    run: Callable[[SchoolImporter], Callable[..., ImportSummary]],
) -> None:
    """A school file's import, with a progress bar for a long file."""

    def with_progress(hub: Hub, publisher: Publisher) -> ImportSummary:
        importer = SchoolImporter(hub.store, publisher, now=hub.clock())
        show = not as_json and file.stat().st_size >= PROGRESS_FROM_BYTES
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
            disable=not show,
        ) as progress:
            task = progress.add_task(f"{file.name} を読み込み中", total=file.stat().st_size)
            return run(importer)(
                file, name=file.name, progress=lambda done, total: progress.update(task, completed=done)
            )

    run_file_import(file, database, as_json, via_kafka, with_progress, _print_summary)


def print_file_summary(summary, title: str, counts: list[tuple[str, int]]) -> None:
    """What every file import prints: why a file was refused, the counts, warnings, and the rejected rows with
    row and column, in Japanese (shared by the school and the other organisations' imports)."""
    for p in summary.refused:
        err.print(f"[red]読み込めません[/red] {summary.file}: {p['message_ja']}")
    table = Table("結果", "行数", title=title)
    for heading, count in counts:
        table.add_row(heading, str(count))
    if summary.queued:
        table.add_row("Kafka へ送信済み (queued)", str(summary.queued))
    out.print(table)
    for w in summary.warnings:
        out.print(f"[yellow]注意[/yellow] {w['message_ja']}")
    if summary.rejected:
        rejected = Table("行", "列", "内容", title="不備のある行（修正して再送してください）")
        for r in summary.rejected:
            for p in r["problems"]:
                rejected.add_row(str(r["line"]), p.get("field") or "-", p["message_ja"])
        out.print(rejected)
        if summary.rejected_total > len(summary.rejected):
            out.print(f"… ほか {summary.rejected_total - len(summary.rejected)} 行（すべて保留中）")


def _print_summary(summary: ImportSummary) -> None:
    print_file_summary(
        summary,
        f"{summary.file}（{summary.encoding or '-'}、{summary.rows} 行）",
        [
            ("受理 (accepted)", summary.accepted),
            ("訂正 (superseded: replaces an earlier report)", summary.superseded),
            ("変更なし (unchanged)", summary.unchanged),
            ("名簿外・保存せず (not on the target list)", summary.not_listed),
            ("不備・保留 (rejected, kept for correction)", summary.rejected_total),
        ],
    )
    if summary.alerts:
        alerts = Table("児童生徒番号", "理由", "開始日", "日数", "結果", title="連続欠席の通知 (absence.alert)")
        for a in summary.alerts:
            alerts.add_row(a["student_no"], label(ALERT_JA, a["reason"]), a["since"], str(a["days"]), a["outcome"])
        out.print(alerts)


@import_app.command("school-monthly")
def school_monthly(file: Path, database: Database = None, as_json: AsJson = False, via_kafka: ViaKafka = None) -> None:
    """Import a monthly report file (定期的な情報提供 月次) from a school or nursery: CSV, CP932 or UTF-8.
    Exit 0: every row accepted, unchanged or not on a list; 1: rows rejected (kept for correction); 2: the file
    cannot be read."""
    _school_import(file, database, as_json, via_kafka, lambda importer: importer.monthly)


@import_app.command("school-daily")
def school_daily(file: Path, database: Database = None, as_json: AsJson = False, via_kafka: ViaKafka = None) -> None:
    """Import a daily attendance file (日次出欠) and raise absence alerts (7 consecutive school days absent; 3
    without contact). Exit codes as for school-monthly."""
    _school_import(file, database, as_json, via_kafka, lambda importer: importer.daily)


@reports_app.command("overdue")
def reports_overdue(
    center: Annotated[str | None, typer.Option("--center", help="As this centre: its lists.")] = None,
    school: Annotated[str | None, typer.Option("--school", help="As this school: its list.")] = None,
    month: Annotated[str | None, typer.Option("--month", help="Only this month (YYYY-MM).")] = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Monthly reports that are due and missing, per school and month, as a centre or a school sees them."""
    if (center is None) == (school is None):
        fail("--center ID か --school ID のどちらか一つを指定してください (give exactly one of --center, --school)")
    if month is not None:
        from adapters.csvfile import CellError, to_month

        try:
            month = to_month(month)
        except CellError as error:
            fail(f"--month: {error.message_ja}")
    hub = Hub(database)
    try:
        found, _, _ = recorded_overdue(
            hub,
            reader=center or school or "",
            role="clerk",
            user=getpass.getuser(),
            month=month,
            today=hub.clock().astimezone(JST).date(),
        )
    except Rejected as rejected:
        fail("; ".join(p.message_ja for p in rejected.problems))
    finally:
        hub.close()
    rows: list[dict[str, Any]] = [r.to_dict() for r in found]
    if as_json:
        print(json.dumps({"reader": center or school, "month": month, "overdue": rows}, ensure_ascii=False))
        return
    table = Table("学校", "年月", "児童生徒番号", "児童", "センター", "提出期限", title="未提出の月次報告")
    for r in rows:
        table.add_row(r["school"], r["month"], r["student_no"], r["child"], r["centre"], r["due"])
    out.print(table)
    out.print(f"{len(rows)} 件")
