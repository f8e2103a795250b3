"""``tsunagu inquiries …``: status inquiries before a meeting (事前照会, meetings-and-services.md §1). The centre sends
a round and lists what is outstanding per member; a member lists its inbox and answers. Registered on the
``tsunagu`` command by ``services/cli/__init__.py`` importing this module."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from services.casework.commands import Actor
from services.casework.inquiries import Inquiries
from services.cli.case import AsJson, Center, Role, User
from services.cli.root import Database, app, command_hub, out

inquiries_app = typer.Typer(
    help="Status inquiries before a meeting (事前照会): rounds, inboxes, answers.", no_args_is_help=True
)
app.add_typer(inquiries_app, name="inquiries")
Org = Annotated[str, typer.Option("--org", help="The organisation asked (a school, nursery …).")]


@inquiries_app.command("round")
def send_round(
    center: Center,
    meeting_date: Annotated[str, typer.Option("--meeting-date", help="The meeting's day (YYYY-MM-DD).")],
    due: Annotated[str, typer.Option("--due", help="The day answers are due (YYYY-MM-DD).")],
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Ask every member of every case due for review on or before the meeting, in one action."""
    with command_hub(database) as hub:
        result = Inquiries(hub).send_round(Actor(center, role, user), meeting_date, due)
    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
        return
    out.print(
        f"照会 {len(result.sent)} 件を送りました（既に照会済み {len(result.skipped)} 件）: 会議 {result.meeting_date}、期限 {result.due}"
    )
    for s in result.sent:
        out.print(f"  {s['inquiry']}  ケース {s['case']} → {s['member']}")


@inquiries_app.command("outstanding")
def outstanding(center: Center, database: Database = None, as_json: AsJson = False) -> None:
    """The centre's unanswered inquiries per member, overdue ones first."""
    with command_hub(database) as hub:
        members = Inquiries(hub).outstanding(center)
    if as_json:
        print(json.dumps(members, ensure_ascii=False))
        return
    table = Table("メンバー", "未回答", "期限超過", "照会（ケース・期限）")
    for m in members:
        table.add_row(
            m["member"],
            str(m["count"]),
            str(m["overdue"]),
            "、".join(f"{i['case']}（{i['due']}）" for i in m["inquiries"]),
        )
    out.print(table)


@inquiries_app.command("inbox")
def inbox(
    org: Org,
    role: Role = "teacher",
    user: User = None,
    answered: Annotated[bool, typer.Option("--answered", help="Also the inquiries already answered.")] = False,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """The inquiries addressed to the organisation, due first (each child read once, recorded)."""
    with command_hub(database) as hub:
        items, reads = Inquiries(hub).inbox(Actor(org, role, user), answered=answered)
    if as_json:
        print(json.dumps({"inquiries": [i.to_dict() for i in items], "access_records": reads}, ensure_ascii=False))
        return
    table = Table("照会", "期限", "会議", "ケース", "児童", "回答")
    for i in items:
        table.add_row(
            i.inquiry,
            i.due + ("（超過）" if i.overdue else ""),
            i.meeting_date,
            i.case,
            i.child,
            "済" if i.answer else "未",
        )
    out.print(table)


@inquiries_app.command("answer")
def answer(
    inquiry: Annotated[str, typer.Argument(help="The inquiry id.")],
    org: Org,
    role: Role = "teacher",
    user: User = None,
    no_change: Annotated[bool, typer.Option("--no-change", help="変わりなし")] = False,
    observations: Annotated[str, typer.Option("--observations", help="様子")] = "",
    actions: Annotated[str, typer.Option("--actions", help="対応したこと")] = "",
    concerns: Annotated[str, typer.Option("--concerns", help="心配なこと")] = "",
    safety_scale: Annotated[int | None, typer.Option("--safety-scale", help="安全の尺度 0–10")] = None,
    checklist: Annotated[
        list[str] | None, typer.Option("--check", help="在宅支援アセスメントの項目 (repeatable)")
    ] = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Answer an inquiry addressed to the organisation (to the centre that asked)."""
    with command_hub(database) as hub:
        done = Inquiries(hub).answer(
            Actor(org, role, user),
            inquiry,
            no_change=no_change,
            observations=observations,
            actions=actions,
            concerns=concerns,
            safety_scale=safety_scale,
            checklist=checklist or [],
        )
    if as_json:
        print(json.dumps(done, ensure_ascii=False))
    else:
        out.print(f"回答しました: 照会 {inquiry}（ケース {done['case']}、event {done['event']}）")
