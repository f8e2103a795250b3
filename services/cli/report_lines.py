"""``tsunagu report-lines move``: store format 6, every monthly report line kept alone by a store written before
session 8 (``ReportLine``) moved into its (school, centre)'s ``ReportLines`` (``services.aggregates.report_lines``).

The hub does it when it opens a store of an older format, before it publishes anything; this command opens the
store the same way (so the step runs there, with the store's other upgrades, when the store needs it) and then runs
the step once more as a check, which finds nothing left to move. Run it before starting the API and the workers of
a new version on an older store, with every process of the older version stopped (deploy/RUNBOOK.md, "Store format
6: the report lines moved"), so that the first request does not wait for it; running it again changes nothing.
"""

from __future__ import annotations

import typer

from events.store import open_store
from services.aggregates.report_lines import move_report_lines
from services.cli.root import Database, app, command_hub, out

report_lines_app = typer.Typer(
    help="Monthly report lines (定期的な情報提供の集計行): move (store format 6).", no_args_is_help=True
)
app.add_typer(report_lines_app, name="report-lines")


@report_lines_app.command("move")
def move(database: Database = None) -> None:
    """Move every old report line into its school and centre's lines (store format 6; idempotent)."""
    store = open_store(database)
    try:
        was = store.format
    finally:
        store.close()
    with command_hub(database) as hub:
        now = hub.store.format
        left = move_report_lines(hub.store)
    out.print(
        f"保存形式 {was} → {now}。定期的な情報提供の集計行の移行は完了しています（残り {left} 件を移行） / "
        f"store format {was} -> {now}: every report line is in its school and centre's lines ({left} left and moved now)"
    )
