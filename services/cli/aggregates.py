"""``tsunagu aggregates``: one measure's table (municipalities × months, with totals) as the acting organisation
may read it (``services.aggregates.service``): small cells of other municipalities suppressed, the request
recorded. A rich table, ``--csv`` (UTF-8 with BOM, for Excel) or ``--json``. Registered on the ``tsunagu``
command by ``services/cli/__init__.py`` importing this module."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table as RichTable

from events.problems import Rejected
from services.administration.regions import load_regions, read_regions_file
from services.aggregates.service import Aggregates, AggregatesRefused, Table
from services.cli.case import User
from services.cli.root import Database, app, command_hub, err, fail, out

regions_app = typer.Typer(help="Regions (圏域) and municipalities' names of the registry.", no_args_is_help=True)
app.add_typer(regions_app, name="regions")


def as_csv(table: Table) -> str:
    """UTF-8 with a BOM, so that Excel opens it as UTF-8."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(table.as_rows())
    return "\ufeff" + buffer.getvalue()


@app.command("aggregates")
def aggregates(
    measure: str,
    first: Annotated[str, typer.Option("--from", help="The first month, YYYY-MM.")],
    last: Annotated[str, typer.Option("--to", help="The last month, YYYY-MM.")],
    org: Annotated[str, typer.Option("--org", help="The reading organisation (a prefecture office, a centre …).")],
    user: User = None,
    by: Annotated[str, typer.Option("--by", help="Rows per municipality or per region (圏域).")] = "municipality",
    as_csv_: Annotated[bool, typer.Option("--csv", help="CSV for Excel (UTF-8 with BOM).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The table as JSON.")] = False,
    database: Database = None,
) -> None:
    """MEASURE (e.g. cases.open, alerts:reason=no_contact) per municipality and month, small cells suppressed."""
    with command_hub(database) as hub:
        try:
            table = Aggregates(hub.store, hub.clock).table(
                org=org, user=user, measure=measure, first=first, last=last, by=by
            )
        except AggregatesRefused as refused:
            err.print(f"[red]エラー[/red]: {refused}")
            raise typer.Exit(1) from None
    if as_csv_:
        sys.stdout.buffer.write(as_csv(table).encode("utf-8"))
    elif as_json:
        out.print_json(
            json.dumps(
                {
                    "measure": table.measure,
                    "municipalities": table.municipalities,
                    "months": table.months,
                    "cells": [[e.value for e in row] for row in table.entries],
                    "labels": [[e.label for e in row] for row in table.entries],
                    "suppressed": [[e.status for e in row] for row in table.entries],
                    "total": table.total,
                    "record": table.record,
                },
                ensure_ascii=False,
            )
        )
    else:
        header, *body = table.as_rows()
        shown = RichTable(title=f"{measure}（{first}〜{last}）")
        for name in header:
            shown.add_column(name)
        for row in body:
            shown.add_row(*row)
        out.print(shown)


@regions_app.command("load")
def regions_load(file: Path, database: Database = None) -> None:
    """Record the prefectures, 圏域 and municipalities' names of FILE.yaml (a mapping with a 'prefectures' list)."""
    try:
        prefectures = read_regions_file(file.read_bytes())
    except OSError as error:
        fail(f"{file}: {error}")
    except Rejected as rejected:
        fail(f"{file}: {rejected.problems[0].message} / {rejected.problems[0].message_ja}")
    with command_hub(database) as hub:
        result = load_regions(hub.store, prefectures)
    out.print(f"recorded {len(result.recorded)}, unchanged {len(result.unchanged)}")
