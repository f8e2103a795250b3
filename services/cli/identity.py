"""``tsunagu identity``: link organisations' own numbers to hub children (紐付け) and see what waits for a link."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from events.problems import Rejected
from services.cli.root import Database, app, err, fail, out
from services.hub import Hub
from services.publishing import linking as identity

identity_app = typer.Typer(help="Identity linking (紐付け) and the linking queue (紐付け待ち).", no_args_is_help=True)
app.add_typer(identity_app, name="identity")

Center = Annotated[str, typer.Option("--center", help="The linking こども家庭センター (its organisation id).")]
Org = Annotated[str, typer.Option("--org", help="The organisation whose own number it is.")]
LocalNumber = Annotated[
    str, typer.Option("--local-number", help="Its number for the child (児童生徒番号, 宛名番号 …).")
]
AsJson = Annotated[bool, typer.Option("--json", help="The result as one JSON object.")]


def _problems_text(problems: list[dict[str, Any]]) -> str:
    return "; ".join(f"{p['message_ja']}（{p['field'] or '-'}）" for p in problems)


def _released_dict(released: list) -> list[dict[str, Any]]:
    return [{"id": env["id"], "kind": env["kind"], "at": env["at"], **r.to_dict()} for env, r in released]


def _report(outcome: identity.LinkOutcome, as_json: bool, what: str) -> None:
    data: dict[str, Any] = {
        "link": outcome.link.to_dict() if outcome.link else {"outcome": "already_linked"},
        "released": _released_dict(outcome.released),
    }
    if as_json:
        print(json.dumps(data, ensure_ascii=False))
    elif outcome.refused:
        err.print(f"[red]refused[/red]: {_problems_text(data['link']['problems'])}")
    else:
        out.print(what if outcome.link else "すでに紐付いています（紐付け待ちの記録だけを送りました）")
        if outcome.released:
            table = Table("id", "kind", "at", "outcome", "reason", title="紐付け待ちから送った記録")
            for r in data["released"]:
                table.add_row(r["id"], r["kind"], r["at"], r["outcome"], _problems_text(r.get("problems", [])))
            out.print(table)
    if outcome.refused:
        raise typer.Exit(1)


@identity_app.command("link")
def link(
    org: Org,
    local_number: LocalNumber,
    child: Annotated[str, typer.Option("--child", help="The hub id of the child.")],
    center: Center,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Link ORG's number to a hub child (identity.linked), then publish the records waiting for that number."""
    hub = Hub(database)
    try:
        outcome = identity.link(hub, center=center, org=org, local_number=local_number, child=child)
    finally:
        hub.close()
    _report(outcome, as_json, f"紐付けました: {org} の番号 {local_number} → 児童 {child}")


@identity_app.command("unlink")
def unlink(
    org: Org, local_number: LocalNumber, center: Center, database: Database = None, as_json: AsJson = False
) -> None:
    """Undo a wrong link (identity.unlinked). Records already published onto the child stay in the log."""
    hub = Hub(database)
    try:
        outcome = identity.unlink(hub, center=center, org=org, local_number=local_number)
    except Rejected as rejected:
        fail(_problems_text([p.to_dict() for p in rejected.problems]), 1)
    finally:
        hub.close()
    _report(outcome, as_json, f"紐付けを解除しました: {org} の番号 {local_number}")


@identity_app.command("queue")
def queue(
    center: Annotated[
        str | None, typer.Option("--center", help="Only what this centre may link (default: everything).")
    ] = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Records waiting for a link (紐付け待ち), and 第21条の10の5 records waiting for the child's residence
    (居住地不明: register the child with its residence, and they are published by themselves)."""
    hub = Hub(database)
    try:
        records = identity.waiting(hub.store, center)
    except Rejected as rejected:
        fail(_problems_text([p.to_dict() for p in rejected.problems]), 2)
    finally:
        hub.close()
    if as_json:
        print(json.dumps([w.to_dict() for w in records], ensure_ascii=False))
        return
    table = Table("organisation", "local number", "child", "kind", "at", "arrived", "reason", "id")
    reasons = {identity.WAITING_FOR_LINK: "紐付け待ち", identity.RESIDENCE_UNKNOWN: "居住地不明"}
    for w in records:
        table.add_row(w.org, w.local_number or "", w.child or "", w.kind, w.at, w.arrived, reasons[w.reason], w.id)
    out.print(table)
    out.print(f"{len(records)} 件")
