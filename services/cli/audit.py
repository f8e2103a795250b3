"""``tsunagu audit …``: the auditors' tools (監査), next to ``audit verify`` (``services/cli/root.py``), and ``audit anchor``
(``services.audit.anchors``). Registered by ``services/cli/root.py`` importing this module.

The command line is for the hub's operators, who hold the database URL; their queries are recorded like an
auditor's (``services.audit.auditors``), in the audit trail of ``cli`` with the operating-system user as the person.
Tables for people, ``--json`` for programs; bad input gets a Japanese message and exit status 2, something not
found exit status 1.
"""

from __future__ import annotations

import contextlib
import getpass
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.table import Table

from consent.policy import POLICY_VERSIONS
from events.labels import FINDING_JA
from events.problems import Rejected
from services.audit.disclosure import disclosure_html
from services.audit.models import Reconstruction
from services.audit.queries import NotFound, Period
from services.audit.service import Auditing
from services.audit.trail import Actor, audit_trail
from services.cli.root import Database, SigningKeyFile, audit_app, err, out, signing_keys
from services.hub import Hub

CLI_ORG = "cli"  # the audit trail of queries made on the command line
Since = Annotated[str | None, typer.Option("--since", help="From this day (YYYY-MM-DD) or date-time.")]
Until = Annotated[str | None, typer.Option("--until", help="Up to this day (included) or before this date-time.")]
AsJson = Annotated[bool, typer.Option("--json", help="The result as JSON.")]


def _actor() -> Actor:
    try:
        user = getpass.getuser()
    except Exception:  # no login name (e.g. a container without one)
        user = "unknown"
    return Actor(org=CLI_ORG, user=user, via="cli")


@contextlib.contextmanager
def _auditing(database: str | None) -> Iterator[Auditing]:
    hub = Hub(database)
    try:
        yield Auditing(hub.store, hub.clock)
    except Rejected as rejected:
        for p in rejected.problems:
            err.print(f"[red]エラー[/red]: {p.message_ja}")
        raise typer.Exit(2) from None
    except NotFound as missing:
        err.print(f"[red]見つかりません[/red]: {missing.message_ja}")
        raise typer.Exit(1) from None
    finally:
        hub.close()


def _print_json(model: BaseModel) -> None:
    print(model.model_dump_json())


def _rules(rules: dict[str, int]) -> str:
    return ", ".join(f"{rule} {n}" for rule, n in rules.items())


def _who(reader: Any) -> str:
    name = reader.org_name or reader.org
    return f"{name} / {reader.role or '-'} / {reader.user or '-'}"


@audit_app.command("anchor")
def anchor(
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="Write the anchor to this new file (never overwritten); default: standard output."),
    ] = None,
    database: Database = None,
    key_file: SigningKeyFile = None,
) -> None:
    """Sign the head of every child's access-record chain with the hub's signing key (チェーンのアンカー).

    Keep the anchor OUTSIDE the database, where whoever can change the database cannot reach it: print it, send it
    to the 個人情報保護 officer, put it in a write-once (WORM) bucket. 'tsunagu audit verify --anchor FILE' later
    shows any chain cut short or rewritten since. The anchor is one line of text, a compact JWS (ES256, the kid of
    the hub's key; check it with the hub's JWKS); it names no child. Anchor regularly (e.g. daily), and before
    retiring a signing key ('tsunagu keys retire'), since an anchor is checkable only while its key is in the key
    file."""
    from services.audit.anchors import AnchorError, open_anchor, signed_anchor

    keys = signing_keys(key_file)
    if out_file is not None and out_file.exists():
        err.print(
            f"[red]エラー[/red]: {out_file} は既に存在します。アンカーは上書きしません / the file exists; an anchor "
            "is never overwritten"
        )
        raise typer.Exit(2)
    hub = Hub(database)
    try:
        token = signed_anchor(hub.store, keys, at=hub.clock())
    except AnchorError as error:
        err.print(
            f"[red]アンカーを作成できません[/red]: 末尾の記録が正しくありません。先に tsunagu audit verify で確認して"
            f"ください / {error}"
        )
        raise typer.Exit(1) from None
    finally:
        hub.close()
    made = open_anchor(token, keys.key_set())  # what was signed, read back as a verifier will
    if out_file is None:
        print(token)
    else:
        try:
            with out_file.open("x", encoding="utf-8") as file:
                file.write(token + "\n")
        except OSError as error:
            err.print(f"[red]エラー[/red]: {out_file} に書き込めません（{error.strerror}）")
            raise typer.Exit(2) from None
    err.print(
        f"anchor of {made['at']}: {len(made['heads'])} access logs and {len(made.get('views', []))} view logs up to "
        f"log position {made['log_position']}, "
        f"digest {made['digest']} / アンカーを作成しました（{len(made['heads'])} 件）。データベースの外に保管してください"
        + (f": {out_file}" if out_file else "")
    )


@audit_app.command("reads")
def reads(
    child: str, since: Since = None, until: Until = None, database: Database = None, as_json: AsJson = False
) -> None:
    """Who read CHILD's record in the period: reader, purpose, decision, rules (閲覧の記録)."""
    with _auditing(database) as auditing:
        result = auditing.reads_of_child(child, Period.of(since, until), actor=_actor())
    if as_json:
        return _print_json(result)
    table = Table(
        "#",
        "at",
        "reader (org / role / user)",
        "purpose",
        "decision",
        "rules",
        "shown",
        "withheld",
        title=f"reads of child {child}",
    )
    for r in result.reads:
        decision = r.reason if r.allowed else f"[red]refused: {r.reason}[/red]"
        table.add_row(
            str(r.sequence), r.t, _who(r.reader), r.purpose, decision, _rules(r.rules), str(r.shown), str(r.withheld)
        )
    out.print(table)
    out.print(f"{len(result.reads)} 件の閲覧記録")
    for v in result.consulted:  # services.reading.view_log: counted, not shown (no content returned)
        out.print(
            f"{v.t} {_who(v.reader)}: {v.view_ja}（{v.view}）の件数に含まれた（表示なし・内容の返却なし、"
            f"含まれた児童 {v.consulted} 人・表示 {v.shown} 人、view record {v.record}）"
        )
    if result.unreadable:
        out.print(
            f"[red]読み取れない記録があります[/red]: #{', #'.join(map(str, result.unreadable))}"
            "（tsunagu audit verify で確認してください）"
        )


@audit_app.command("reconstruct")
def reconstruct(
    record_id: Annotated[str | None, typer.Argument(help="The access record's id.")] = None,
    child: Annotated[str | None, typer.Option("--child", help="The child (narrows the search).")] = None,
    org: Annotated[str | None, typer.Option("--org", help="Without RECORD_ID: the reader.")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Without RECORD_ID: the time.")] = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """What a past read returned, rebuilt from the log (metadata only), and whether it is exact (digest).

    By RECORD_ID, or what --org saw about --child at --at (its last read at or before that time)."""
    if record_id is None and not (child and org and at):
        err.print("[red]エラー[/red]: 閲覧記録のID、または --child・--org・--at のすべてを指定してください")
        raise typer.Exit(2)
    with _auditing(database) as auditing:
        result = (
            auditing.reconstruct(record_id, child=child, actor=_actor())
            if record_id
            else auditing.reconstruct_at(str(org), str(child), at, actor=_actor())
        )
    if as_json:
        return _print_json(result)
    _print_reconstruction(result)


def _print_reconstruction(r: Reconstruction) -> None:
    out.print(f"record {r.record} (child {r.child} #{r.sequence}) at {r.t}: {_who(r.reader)}, purpose {r.purpose}")
    if not r.allowed:
        out.print(f"[red]refused as a whole[/red]: {r.reason}")
    table = Table("at", "id", "kind", "source", "basis", "rule", "redacted")
    for e in r.entries:
        table.add_row(e.at, e.id, e.kind, e.source, e.basis, e.rule, ", ".join(e.redacted))
    out.print(table)
    if r.withheld is not None:
        out.print(f"withheld (told to the reader): {r.withheld}")
    if r.exact is True:
        out.print(f"[green]再現は正確です[/green]: digest {r.replayed_digest} = recorded")
    elif r.exact is False:
        out.print(f"[red]再現が記録と一致しません[/red]: recorded {r.recorded_digest}, replay {r.replayed_digest}")
    elif r.erased_since:
        out.print(f"{r.erased_since} 件の記録がその後消去されたため、内容の一致は確認できません")
    else:
        out.print("この閲覧記録には内容のダイジェストがありません（古い形式）")


@audit_app.command("emergencies")
def emergencies(since: Since = None, until: Until = None, database: Database = None, as_json: AsJson = False) -> None:
    """Every emergency access in the period, with the declared reason and the review findings."""
    with _auditing(database) as auditing:
        result = auditing.emergency_accesses(Period.of(since, until), actor=_actor())
    if as_json:
        return _print_json(result)
    table = Table(
        "record",
        "at",
        "child",
        "reader",
        "shown",
        "declared reason",
        "findings",
        title="緊急時の閲覧 (emergency accesses)",
    )
    for a in result.accesses:
        reason = a.declaration.reason or "（消去済み）" if a.declaration else "[red]宣言なし[/red]"
        findings = "; ".join(f"{f.finding_ja}（{f.reviewer}）{f.note}" for f in a.findings) or "[yellow]未確認[/yellow]"
        table.add_row(a.record, a.t, a.child, _who(a.reader), str(a.shown), reason, findings)
    out.print(table)
    out.print(f"{len(result.accesses)} 件（未確認 {sum(not a.reviewed for a in result.accesses)} 件）")


@audit_app.command("finding")
def finding(
    record_id: str,
    reviewer: Annotated[str, typer.Option("--reviewer", help="Who reviewed the access.")],
    finding: Annotated[str, typer.Option("--finding", help="justified, not_justified or needs_follow_up.")],
    note: Annotated[str, typer.Option("--note", help="The reviewer's note.")] = "",
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Record a reviewer's finding on an emergency access (stored as an event; the same finding again is
    stored once)."""
    with _auditing(database) as auditing:
        result = auditing.record_finding(record_id, reviewer=reviewer, finding=finding, note=note, actor=_actor())
    if as_json:
        return _print_json(result)
    out.print(
        f"記録しました: {record_id}: {FINDING_JA[finding]}（{reviewer}）; この閲覧の所見 {len(result.findings)} 件"
    )


@audit_app.command("disclosure")
def disclosure(
    child: str,
    html: Annotated[Path | None, typer.Option("--html", help="Write the printable page to FILE.")] = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """The family's disclosure report (開示): which organisations read CHILD's record, when, on what ground."""
    with _auditing(database) as auditing:
        report = auditing.disclosure_report(child, actor=_actor())
    if html is not None:
        try:
            html.write_text(disclosure_html(report), encoding="utf-8")
        except OSError as error:
            err.print(f"[red]エラー[/red]: {html} に書き込めません（{error.strerror}）")
            raise typer.Exit(2) from None
        out.print(f"{html} に書き出しました（{report.total_reads} 件の閲覧、{len(report.organisations)} 機関）")
        return
    if as_json:
        return _print_json(report)
    for org in report.organisations:
        table = Table("日時", "目的", "見た人", "結果", "理由（根拠）", title=f"{org.name}（{org.type_ja}）")
        for r in org.reads:
            table.add_row(
                r.at_ja,
                r.purpose_ja,
                r.role_ja,
                r.result_ja,
                "、".join(f"{g.name_ja}（{g.events}件）" for g in r.grounds) or "—",
            )
        out.print(table)
    if not report.organisations:
        out.print("これまでに、この記録を見た機関はありません。")
    for g in report.grounds:
        out.print(f"{g.name_ja}: {g.law_ja}")


@audit_app.command("policy-impact")
def impact(
    since: Since = None,
    until: Until = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="A changed setting, e.g. joint_ledger=true.")] = None,
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy",
            help=f"Replay under this policy version ({', '.join(POLICY_VERSIONS)}) instead of the "
            "version each record names.",
        ),
    ] = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Replay the period under changed settings or another policy version: the reads whose decision would differ."""
    changes = _settings(set_ or [])
    if policy is not None and policy not in POLICY_VERSIONS:
        err.print(
            f"[red]エラー[/red]: --policy には {'、'.join(POLICY_VERSIONS)} のいずれかを指定してください: {policy}"
        )
        raise typer.Exit(2)
    with _auditing(database) as auditing:
        result = auditing.policy_impact(Period.of(since, until), changes, actor=_actor(), version=policy)
    if as_json:
        return _print_json(result)
    table = Table(
        "record",
        "at",
        "child",
        "reader",
        "before",
        "after",
        "events",
        title=f"impact of {changes}" + (f" under {policy}" if policy else ""),
    )
    for c in result.changed:
        table.add_row(
            c.record,
            c.t,
            c.child,
            _who(c.reader),
            f"{c.before.shown} ({_rules(c.before.rules)})",
            f"{c.after.shown} ({_rules(c.after.rules)})",
            "; ".join(f"{e.event}: {e.before or '-'} → {e.after or '-'}" for e in c.events),
        )
    out.print(table)
    out.print(
        f"{result.replayed} 件を再評価、判定が変わるもの {len(result.changed)} 件"
        + (f"、再評価できないもの {result.unreplayable} 件" if result.unreplayable else "")
    )


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _settings(pairs: list[str]) -> dict[str, Any]:
    """``name=value`` pairs as setting values (booleans and integers); validated by ``settings_changes``."""
    changes: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        value = raw.strip().lower()
        if not sep or not name.strip():
            err.print(f"[red]エラー[/red]: --set は 名前=値 の形で指定してください（例: joint_ledger=true）: {pair}")
            raise typer.Exit(2)
        changes[name.strip()] = (
            True if value in _TRUE else False if value in _FALSE else int(value) if value.isdigit() else raw
        )
    return changes


@audit_app.command("queries")
def queries(
    org: Annotated[str, typer.Argument(help="The auditor organisation (cli: the command line).")] = CLI_ORG,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """The queries an auditor organisation made (the auditors' own trail)."""
    hub = Hub(database)
    try:
        trail = audit_trail(hub.store, org)
    finally:
        hub.close()
    if as_json:
        print(json.dumps(trail, ensure_ascii=False))
        return
    table = Table("at", "user", "via", "query", "child", "params", "results", title=f"audit trail of {org}")
    for q in trail:
        table.add_row(
            str(q.get("at")),
            str(q.get("user")),
            str(q.get("via")),
            str(q.get("query")),
            str(q.get("child") or ""),
            json.dumps(q.get("params") or {}, ensure_ascii=False),
            str(q.get("results")),
        )
    out.print(table)
