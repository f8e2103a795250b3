"""``tsunagu snapshots``: the children's snapshots (``events.snapshots``) and the indexes' (``events.index_snapshots``:
the monthly report lines of a school and centre), derived data that the read path takes and
uses to load a child without replaying every event. ``status`` says how many there are and how large; ``drop``
deletes them all (the events are untouched; reads and views take them again as they load children). When to drop
them (deploy/RUNBOOK.md, "Children's snapshots"): after deploying an upcaster of the children's events (older
snapshots no longer open: each would be tried, logged and replaced one child at a time), when the log says a
snapshot does not open, after any restore of the database, or to start again from the events after any doubt
about them (a key incident).
"""

from __future__ import annotations

import typer

from services.cli.root import Database, app, command_hub, out

snapshots_app = typer.Typer(
    help="Children's snapshots (スナップショット: derived data for faster reads): status, drop.", no_args_is_help=True
)
app.add_typer(snapshots_app, name="snapshots")


@snapshots_app.command("status")
def status(database: Database = None) -> None:
    """How many children's snapshots the store holds, and how large they are."""
    with command_hub(database) as hub:
        count, size = hub.store.child_snapshots.status()
        indexes, index_size = hub.store.index_snapshots.status()
    out.print(
        f"スナップショット {count} 件、{size / 1_000_000:.1f} MB / {count} children's snapshots, {size:,} bytes sealed"
    )
    out.print(
        f"集計用スナップショット {indexes} 件、{index_size / 1_000_000:.1f} MB / {indexes} indexes' snapshots "
        f"(events.index_snapshots), {index_size:,} bytes sealed"
    )


@snapshots_app.command("drop")
def drop(database: Database = None) -> None:
    """Delete every child's snapshot and every index's (derived data: the events are untouched, and loads take them
    again)."""
    with command_hub(database) as hub:
        count = hub.store.child_snapshots.drop() + hub.store.index_snapshots.drop()
    out.print(
        f"スナップショットを {count} 件削除しました。記録（イベント）はそのままで、閲覧時に作り直されます / "
        f"dropped {count} children's snapshots; the events are untouched and reads take them again"
    )
