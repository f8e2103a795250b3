"""``tsunagu household …``: households (世帯, meetings-and-services.md §3). A centre links a child to one of its
households and removes it; ``show`` prints a child's households with their other children as the acting
organisation may see them, each child read once (recorded). Registered on the ``tsunagu`` command by
``services/cli/__init__.py`` importing this module."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from events.clock import JST
from events.labels import ALERT_JA, CASE_TYPE_JA, CATEGORY_JA, label
from services.casework.commands import Actor
from services.casework.households import Households
from services.cli.case import AsJson, Center, OrgOpt, Role, User, _command
from services.cli.root import Database, app, command_hub, out
from services.schools.overdue import overdue_reports

household_app = typer.Typer(help="Households (世帯): link siblings, see a child's household.", no_args_is_help=True)
app.add_typer(household_app, name="household")

Relation = Annotated[
    str | None, typer.Option("--relation", help="続柄: sibling, mother, father, newborn, child, grandparent, other.")
]


@household_app.command("join")
def join(
    child: str,
    household: str,
    center: Center,
    relation: Relation = None,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Link CHILD to the centre's HOUSEHOLD (household.joined)."""
    _command(
        database,
        as_json,
        lambda hub: Households(hub).join(Actor(center, role, user), child, household, relation),
        f"joined household {household}",
    )


@household_app.command("leave")
def leave(
    child: str,
    household: str,
    center: Center,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Remove CHILD from the centre's HOUSEHOLD (household.left)."""
    _command(
        database,
        as_json,
        lambda hub: Households(hub).leave(Actor(center, role, user), child, household),
        f"left household {household}",
    )


@household_app.command("show")
def show(
    child: str,
    org: OrgOpt,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """CHILD's households and their other children (open cases, open alerts, overdue monthly reports), each
    child read once as ORG (recorded). Nothing for an organisation that is not a centre or a 児童相談所."""
    with command_hub(database) as hub:
        today = hub.clock().astimezone(JST).date()
        view = Households(hub).view(
            Actor(org, role, user),
            child,
            overdue=lambda: overdue_reports(hub.store, hub.settings, reader=org, today=today, kept=hub.overdue_lines),
        )
    if as_json:
        print(json.dumps(view.to_dict(), ensure_ascii=False))
        return
    if not view.households:
        out.print(f"児童 {child}: 表示できる世帯はありません / no household to show")
    for h in view.households:
        table = Table(title=f"世帯 {h.household}（{h.centre}）: {child} の続柄 {h.relation_ja}")
        for column in ("児童", "続柄", "対応中のケース", "未対応の警告", "未提出の月次報告"):
            table.add_column(column)
        for s in h.siblings:
            if not s.readable:
                table.add_row(s.child, s.relation_ja, "閲覧が認められた記録はありません", "", "")
                continue
            table.add_row(
                s.child,
                s.relation_ja,
                "\n".join(
                    f"{r.case} {label(CATEGORY_JA, r.category)}／{label(CASE_TYPE_JA, r.case_type)}" for r in s.cases
                )
                or "なし",
                "\n".join(f"{label(ALERT_JA, a.get('reason'))} {str(a.get('at'))[:10]}" for a in s.alerts) or "なし",
                "\n".join(f"{o['school']} {o['month']}" for o in s.overdue) or "なし",
            )
        out.print(table)
    out.print(f"access records: {', '.join(view.access_records) or '-'}")
