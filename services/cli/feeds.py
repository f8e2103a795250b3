"""``tsunagu import jsonl|health-checkup|provider FILE``: the feeds of organisations other than schools, on the
``import`` command group (``services.cli.imports``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from adapters.health_center import BASES, is_basis
from services.cli.imports import AsJson, ViaKafka, import_app, print_file_summary, run_file_import
from services.cli.root import Database, fail, out
from services.feeds.imports import FeedImporter, FeedSummary

Org = Annotated[str, typer.Option("--org", help="The sending organisation (its id in the hub).")]


def _import(
    file: Path, database: str | None, as_json: bool, via_kafka: str | None, run: Callable[[FeedImporter], FeedSummary]
) -> None:
    """A feed file's import (``run_file_import``)."""
    run_file_import(
        file,
        database,
        as_json,
        via_kafka,
        lambda hub, publisher: run(FeedImporter(hub.store, publisher, now=hub.clock())),
        _print_summary,
    )


def _print_summary(summary: FeedSummary) -> None:
    print_file_summary(
        summary,
        f"{summary.file}（{summary.org}、{summary.encoding or '-'}、{summary.rows} 行）",
        [
            ("受理 (accepted)", summary.accepted),
            ("変更なし (unchanged)", summary.unchanged),
            ("紐付け待ち (queued for linking)", summary.waiting_for_link),
            ("不備・保留 (rejected, kept for correction)", summary.rejected_total),
        ],
    )
    if summary.waiting_for_link:
        out.print("紐付け待ちの記録はセンターが紐付けると登録されます（tsunagu identity queue / identity link）")


@import_app.command("jsonl")
def import_jsonl(
    file: Path, org: Org, database: Database = None, as_json: AsJson = False, via_kafka: ViaKafka = None
) -> None:
    """Import a JSON-lines feed: one event envelope per line, from ORG, naming the child by ORG's own number
    (local_child) or the hub id (child). Exit 0: every line accepted, unchanged or waiting for a link; 1: lines
    rejected (kept for correction); 2: the file cannot be read."""
    _import(file, database, as_json, via_kafka, lambda importer: importer.jsonl(file, org=org, name=file.name))


@import_app.command("health-checkup")
def import_health_checkup(
    file: Path,
    org: Org,
    database: Database = None,
    as_json: AsJson = False,
    via_kafka: ViaKafka = None,
    basis: Annotated[
        str,
        typer.Option(
            "--basis",
            help="cwa-21-10-5: a 保健所 providing to the centre of residence (default); internal: a "
            "centre's own 母子保健 check-ups.",
        ),
    ] = "cwa-21-10-5",
) -> None:
    """Import 乳幼児健診 results (対象者番号/宛名番号, 健診名, 健診日, 受診, 所見): CSV, CP932 or UTF-8. Exit codes
    as for jsonl."""
    if not is_basis(basis):
        fail(f"--basis は {' か '.join(BASES)} です (one of {', '.join(BASES)})")
    _import(
        file,
        database,
        as_json,
        via_kafka,
        lambda importer: importer.health_checkup(file, org=org, basis=basis, name=file.name),
    )


@import_app.command("provider")
def import_provider(
    file: Path,
    org: Org,
    database: Database = None,
    as_json: AsJson = False,
    via_kafka: ViaKafka = None,
    to: Annotated[
        str | None, typer.Option("--to", help="The commissioning centre (委託元) for rows without a 委託元 column.")
    ] = None,
) -> None:
    """Import a 委託事業者 usage and visit report (利用者番号, サービス種別, 利用開始日, 利用終了日, 訪問日, 様子,
    委託元): CSV, CP932 or UTF-8. Exit codes as for jsonl."""
    _import(
        file, database, as_json, via_kafka, lambda importer: importer.provider(file, org=org, to=to, name=file.name)
    )
