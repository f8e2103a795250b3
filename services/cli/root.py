"""The ``tsunagu`` command's app, its shared options and output helpers, and its root commands (orgs, publish,
timeline, scenario run, audit verify). The command groups of the other modules register on ``app``
(``services.cli``)."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from events.problems import Busy, Rejected
from events.retry import RETRY_AFTER_SECONDS
from events.sealing import KeyConfigError
from services.administration.organisations import read_orgs_file
from services.auth.tokens import DEFAULT_KEY_FILE, KEY_FILE_ENV, KeyFileError, SigningKeys, key_file_path
from services.hub import Hub
from services.runtime import tune_garbage_collector

if TYPE_CHECKING:  # typer carries its own copy of click: its groups are invoked with that copy's Context
    from typer._click import Context

EXIT_BUSY = 75  # EX_TEMPFAIL: try again later


class HubCommands(TyperGroup):
    """The ``tsunagu`` command group. A command the hub could not serve in its time budget (``Busy``: other
    writers kept changing the same records, or the store did not answer) says so in Japanese (with the English
    beside it) and exits 75 (EX_TEMPFAIL), never with a traceback: running it again later is the remedy."""

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except Busy as busy:
            _busy(busy)
        except IntegrityError:  # a conflict outside events.retry: the same remedy
            _busy(Busy.contended(RETRY_AFTER_SECONDS))
        except (OperationalError, InterfaceError):  # the library has already tried again
            _busy(Busy.store_unavailable(RETRY_AFTER_SECONDS))


def _busy(busy: Busy) -> None:
    Console(stderr=True).print(f"[red]error:[/red] {busy.problem.message_ja} / {busy.problem.message}")
    raise typer.Exit(EXIT_BUSY)


app = typer.Typer(
    help="tsunagu (つなぐ): the hub for lawful, audited sharing about children at risk.",
    no_args_is_help=True,
    add_completion=False,
    cls=HubCommands,
)
orgs_app = typer.Typer(help="Organisations registered in the hub (機関登録).", no_args_is_help=True)
scenario_app = typer.Typer(help="Executable policy scenarios (shared/spec/scenarios.md).", no_args_is_help=True)
audit_app = typer.Typer(help="Auditors' tools (監査).", no_args_is_help=True)
app.add_typer(orgs_app, name="orgs")
app.add_typer(scenario_app, name="scenario")
app.add_typer(audit_app, name="audit")

Database = Annotated[
    str | None,
    typer.Option(
        "--database",
        envvar="TSUNAGU_DATABASE_URL",
        help="sqlite:///FILE (default sqlite:///tsunagu.db) or postgresql://user:pw@host:port/db",
    ),
]

SigningKeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        envvar=KEY_FILE_ENV,
        help=f"The hub's signing keys, the PEM file of 'tsunagu serve' (default ./{DEFAULT_KEY_FILE}); never created "
        f"here.",
    ),
]

out = Console()
err = Console(stderr=True)


@app.callback()
def process_settings() -> None:
    """tsunagu (つなぐ): the hub for lawful, audited sharing about children at risk."""
    tune_garbage_collector()  # services.runtime: every command runs with the hub's process settings


@contextlib.contextmanager
def command_hub(database: str | None) -> Iterator[Hub]:
    """The hub a command works on, closed afterwards; a refusal of the application's services (``Rejected``) is
    printed in Japanese, each problem with its field, and the command exits 1; a key configuration that is not
    valid (``KeyConfigError``) is said so, and the command exits 2."""
    try:
        hub = Hub(database)
    except KeyConfigError as error:
        fail(f"鍵の設定に誤りがあります / the key configuration is not valid: {error}")
    try:
        yield hub
    except Rejected as rejected:
        for p in rejected.problems:
            err.print(f"[red]エラー[/red]: {p.message_ja}" + (f"（{p.field}）" if p.field else ""))
        raise typer.Exit(1) from None
    finally:
        hub.close()


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def signing_keys(key_file: Path | None) -> SigningKeys:
    """The hub's signing keys from ``key_file`` (see ``services.auth.key_file_path``); exit 2 when they cannot be
    read."""
    try:
        return SigningKeys(key_file_path(key_file))
    except KeyFileError as error:
        fail(f"署名鍵ファイルを読めません / {error}")
        raise  # unreachable: fail() exits


@orgs_app.command("load")
def orgs_load(file: Path, database: Database = None) -> None:
    """Register the organisations in FILE.yaml (a list, or a mapping with an 'orgs' list)."""
    try:
        data = file.read_bytes()
    except OSError as error:
        fail(f"{file}: {error}")
    try:
        items = read_orgs_file(data)
    except Rejected as rejected:
        fail(f"{file}: {rejected.problems[0].message} / {rejected.problems[0].message_ja}")
    hub = Hub(database)
    try:
        result = hub.load_orgs(items, by=login_name())
    except Rejected as rejected:
        for p in rejected.problems:
            err.print(f"{p.field}: {p.message} / {p.message_ja}")
        raise typer.Exit(1) from None
    finally:
        hub.close()
    out.print(f"registered {len(result.registered)}, updated {len(result.updated)}, unchanged {len(result.unchanged)}")


@orgs_app.command("list")
def orgs_list(database: Database = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the registered organisations."""
    hub = Hub(database)
    orgs = hub.orgs()
    hub.close()
    if as_json:
        print(json.dumps([o.to_dict() for o in orgs.values()], ensure_ascii=False))
        return
    table = Table("id", "type", "name", "municipality", "covers")
    for o in orgs.values():
        table.add_row(o.id, o.type, o.name or "", o.municipality or "", ", ".join(o.covers))
    out.print(table)


@app.command()
def publish(
    file: Path,
    database: Database = None,
    as_json: Annotated[bool, typer.Option("--json", help="The summary as one JSON object.")] = False,
    via_kafka: Annotated[
        str | None,
        typer.Option(
            "--via-kafka",
            metavar="BOOTSTRAP",
            help="Hand the events to the Kafka events topic at HOST:PORT "
            "instead (the ingest worker stores them; set TSUNAGU_KAFKA_API_VERSION=0.9 for a 0.9 broker).",
        ),
    ] = None,
) -> None:
    """Publish FILE.jsonl: one event envelope per line. Prints accepted, duplicate and rejected with reasons."""
    items: list = []
    bad_lines: list[tuple[int, str]] = []
    try:
        lines = file.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        fail(f"{file}: {error}")
    numbers = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
            numbers.append(n)
        except ValueError as error:  # not JSON, or an integer of more digits than Python converts
            bad_lines.append((n, f"not JSON: {error.msg if isinstance(error, json.JSONDecodeError) else error}"))
    from adapters.publisher import publisher_for
    from events.transport import TransportError

    results = []
    hub = Hub(database)
    try:
        publisher = publisher_for(hub, via_kafka)
        try:
            for start in range(0, len(items), 1000):  # result indexes are per chunk: make them per file
                results += [replace(r, index=start + r.index) for r in publisher.publish(items[start : start + 1000])]
        finally:
            publisher.close()
    except TransportError as error:
        fail(f"{error} ({len(results)} of {len(items)} events were queued before)", 1)
    finally:
        hub.close()
    summary: dict[str, Any] = {
        **({"queued": sum(r.outcome == "queued" for r in results)} if via_kafka else {}),
        "accepted": sum(r.outcome == "accepted" for r in results),
        "duplicate": sum(r.outcome == "duplicate" for r in results),
        "rejected": [
            {"line": numbers[r.index], "id": r.id, "problems": [p.to_dict() for p in r.problems]}
            for r in results
            if r.outcome == "rejected"
        ]
        + [
            {
                "line": n,
                "id": None,
                "problems": [
                    {"code": "invalid_json", "message": why, "message_ja": "JSONとして読めません", "field": None}
                ],
            }
            for n, why in bad_lines
        ],
    }
    summary["rejected"].sort(key=lambda r: r["line"])
    if as_json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        out.print(
            f"queued {summary['queued']} for the ingest worker (its rejections go to the dead-letter topic "
            f"and the quarantine), rejected {len(summary['rejected'])}"
            if via_kafka
            else f"accepted {summary['accepted']}, duplicate {summary['duplicate']}, "
            f"rejected {len(summary['rejected'])}"
        )
        for r in summary["rejected"]:
            for p in r["problems"]:
                out.print(f"  line {r['line']} ({r['id']}): {p['field'] or '-'}: {p['message']} / {p['message_ja']}")
    if summary["rejected"]:
        raise typer.Exit(1)


@app.command()
def timeline(
    child: str,
    org: Annotated[str, typer.Option(help="The reading organisation.")],
    role: Annotated[str, typer.Option(help="The role the reader acts in.")],
    purpose: Annotated[str, typer.Option(help="support, meeting or emergency.")],
    user: Annotated[str | None, typer.Option(help="The person reading.")] = None,
    database: Database = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A child's timeline as ORG may see it. The read is decided by the policy and recorded."""
    hub = Hub(database)
    try:
        result = hub.timeline(org=org, role=role, child=child, purpose=purpose, user=user)
    finally:
        hub.close()
    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    elif not result.allowed:
        out.print(f"[red]refused[/red]: {result.reason} (access record {result.access_record})")
    else:
        table = Table("at", "kind", "source", "basis", "rule", "content", title=f"child {child} for {org}/{role}")
        for e in result.entries:
            content = json.dumps(e.payload, ensure_ascii=False)
            table.add_row(
                e.at, e.kind, e.source, e.basis, e.rule, content if len(content) < 120 else content[:117] + "…"
            )
        out.print(table)
        if result.withheld:
            out.print(f"{result.withheld} event(s) withheld by the policy")
        out.print(f"access record {result.access_record}, policy {result.policy_version}")
    if not result.allowed:
        raise typer.Exit(1)


@scenario_app.command("run")
def scenario_run(
    paths: Annotated[list[str], typer.Argument(help="Scenario files or directories.")],
    database: Annotated[
        str | None, typer.Option("--database", help="Run on this PostgreSQL database (a fresh schema per scenario).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per scenario.")] = False,
) -> None:
    """Run policy scenarios, each on a fresh store; exit 0 when all hold, 1 when any fails, 2 on a bad file."""
    from services.scenarios import ScenarioError, format_result, run
    from services.scenarios import as_json as to_json

    passed = failed = 0
    try:
        for result in run(paths, database):
            if result.passed:
                passed += 1
            else:
                failed += 1
            if as_json:
                print(to_json(result), flush=True)
            else:
                for line in format_result(result):
                    print(line, flush=True)
    except ScenarioError as error:
        fail(str(error), 2)
    if not as_json:
        print(f"{passed} passed, {failed} failed")
    raise typer.Exit(1 if failed else 0)


@audit_app.command("verify")
def audit_verify(
    database: Database = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    child: Annotated[
        str | None,
        typer.Option("--child", help="Check this child's access log and the view records that name the child only."),
    ] = None,
    anchor_file: Annotated[
        Path | None,
        typer.Option(
            "--anchor",
            help="Also check the chains against this anchor ('tsunagu audit anchor'): its "
            "signature against the hub's keys (--key-file), then that every chain still holds the record the "
            "anchor saw. Catches records cut off the end of a chain and chains rewritten to their end.",
        ),
    ] = None,
    key_file: SigningKeyFile = None,
) -> None:
    """Check each child's hash chain (naming its first broken record) and re-evaluate every access record from
    the log up to its recorded position; with --anchor, also check the chains against an anchor. Exit 1 when
    anything is wrong, 2 when the anchor is refused (not signed by this hub's keys, or altered)."""
    from services.audit.anchors import AnchorRefused, open_anchor, verify_anchored
    from services.audit.replay import verify

    anchor = None
    if anchor_file is not None:
        try:
            token = anchor_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            fail(f"{anchor_file}: アンカーのファイルを読めません / cannot read the anchor ({error})")
        try:
            anchor = open_anchor(token, signing_keys(key_file).key_set())
        except AnchorRefused as refused:
            fail(f"{anchor_file}: {refused.message_ja} / {refused.message}")
    hub = Hub(database)
    try:
        report = verify(hub.store, child=child) if anchor is None else verify_anchored(hub.store, anchor, child=child)
    finally:
        hub.close()
    if as_json:
        summary = {"anchor": {k: anchor[k] for k in ("at", "log_position", "digest")}} if anchor is not None else {}
        print(json.dumps(report.to_dict() | summary, ensure_ascii=False))
        raise typer.Exit(0 if report.ok else 1)
    for m in report.broken_chains:
        out.print(f"[red]BROKEN CHAIN 改ざんの疑い[/red] first broken record of {m.describe()}")
    for m in report.replay_mismatches:
        out.print(f"[red]MISMATCH[/red] {m.describe()}")
    for m in report.mismatches:
        if m.problem == "view":
            out.print(f"[red]VIEW 一覧の閲覧記録と閲覧記録の不一致[/red] {m.describe()}")
    for m in report.not_as_anchored:
        out.print(f"[red]NOT AS ANCHORED アンカー作成時の記録と一致しません[/red] {m.describe()}")
    out.print(
        f"{report.records} access records checked, {len(report.broken_chains)} broken chains, "
        f"{len(report.replay_mismatches)} replay mismatches"
        + (f", {report.unreplayable} not replayable (events erased since)" if report.unreplayable else "")
        + (f", {report.view_records} view records chain-checked" if report.view_records else "")
    )
    if anchor is not None:
        out.print(
            f"anchor of {anchor['at']} (digest {anchor['digest']}): {report.anchored} chains checked, "
            f"{len(report.not_as_anchored)} no longer hold what it saw / アンカーとの照合: "
            f"{report.anchored} 件中 {len(report.not_as_anchored)} 件が不一致"
        )
    raise typer.Exit(0 if report.ok else 1)


def login_name() -> str:
    """Who runs a command that changes the hub's administration (settings, organisations, clients): the name of
    the operating-system account the process runs as (not ``$USER``, which the caller sets), recorded as ``by``
    with the change. It says which account ran the command, not which person: the person is whoever holds that
    account's login (the runbook gives each administrator an account of their own)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except (KeyError, OSError):  # an account without a name (e.g. a container's numeric user)
        return f"uid:{os.getuid()}"
