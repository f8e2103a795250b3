"""``tsunagu case …`` and ``tsunagu plan …``: 要対協 case work, the ledgers, the meeting agenda, support plans and
consent, and case transfers. Registered on the ``tsunagu`` command by ``services/cli/root.py`` importing this module.

Every command acts as one organisation (``--center`` / ``--org``) in a role (``--role``), and every view is
built from that organisation's own policy-decided, recorded reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from events.dates import DAY_RANGE_JA, day_in_range
from events.labels import CASE_TYPE_JA, CATEGORY_JA, STATUS_JA, label
from services.casework.agenda import agenda_csv, agenda_html, alert_text, attendance_text, ledger_text
from services.casework.commands import Actor, CaseWork, Done
from services.casework.ledger import CaseViews, Ledger
from services.cli.root import Database, app, command_hub, err, out
from services.hub import Hub

case_app = typer.Typer(
    help="要対協 case work: cases, ledgers, meeting agendas, transfers (ケース移管).", no_args_is_help=True
)
plan_app = typer.Typer(help="Support plans (サポートプラン) and the family's consent (同意).", no_args_is_help=True)
app.add_typer(case_app, name="case")
app.add_typer(plan_app, name="plan")

Center = Annotated[str, typer.Option("--center", help="The acting こども家庭センター (its organisation id).")]
OrgOpt = Annotated[str, typer.Option("--org", help="The acting organisation (a centre or a 児童相談所).")]
Role = Annotated[str, typer.Option("--role", help="The role the person acts in.")]
User = Annotated[str | None, typer.Option("--user", help="The person acting (recorded in access records).")]
AsJson = Annotated[bool, typer.Option("--json", help="The result as JSON.")]


class Format(str, Enum):
    json = "json"
    csv = "csv"
    html = "html"


def _command(database: str | None, as_json: bool, run: Callable[[Hub], Done], what: str) -> None:
    with command_hub(database) as hub:
        done = run(hub)
    if as_json:
        print(json.dumps(done.to_dict(), ensure_ascii=False))
    else:
        out.print(f"{what}: {done.case or done.plan or ''} (event {done.event})")


def _day(value: str | None) -> date:
    if not value:
        return date.today()
    try:
        day = date.fromisoformat(value)
    except ValueError:
        err.print(f"[red]エラー[/red]: 日付「{value}」の形式が正しくありません（例: 2026-07-15）")
        raise typer.Exit(2) from None
    if not day_in_range(day):
        err.print(f"[red]エラー[/red]: 日付「{value}」: {DAY_RANGE_JA}")
        raise typer.Exit(2)
    return day


# --- Cases ------------------------------------------------------------------------------------------------


@case_app.command("register")
def register(
    child: str,
    center: Center,
    category: Annotated[
        str, typer.Option(help="youhogo (要保護児童), youshien (要支援児童) or tokutei_ninpu (特定妊婦).")
    ],
    case_type: Annotated[str, typer.Option("--type", help="相談種別, e.g. abuse_neglect, neglect.")],
    case: Annotated[str | None, typer.Option(help="The case number (default: a new one).")] = None,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Register a 要対協 case for CHILD (case.registered)."""
    _command(
        database,
        as_json,
        lambda hub: CaseWork(hub).register(
            Actor(center, role, user), child=child, category=category, case_type=case_type, case=case
        ),
        "registered",
    )


@case_app.command("assign")
def assign(
    case: str,
    member: str,
    center: Center,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Assign MEMBER (a registered organisation) to CASE."""
    _command(
        database,
        as_json,
        lambda hub: CaseWork(hub).assign_member(Actor(center, role, user), case, member),
        "member assigned",
    )


@case_app.command("remove")
def remove(
    case: str,
    member: str,
    center: Center,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Remove MEMBER from CASE."""
    _command(
        database,
        as_json,
        lambda hub: CaseWork(hub).remove_member(Actor(center, role, user), case, member),
        "member removed",
    )


@case_app.command("share")
def share(
    case: str,
    center: Center,
    summary: Annotated[str, typer.Option(help="What the members may read.")],
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Share information with the members of CASE (case.shared, basis cwa-25-2)."""
    _command(database, as_json, lambda hub: CaseWork(hub).share(Actor(center, role, user), case, summary), "shared")


@case_app.command("review")
def review(
    case: str,
    center: Center,
    decision: Annotated[str, typer.Option(help="The meeting's decision.")],
    next_review: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Record a review of CASE (進行管理) with the next review date."""
    _command(
        database,
        as_json,
        lambda hub: CaseWork(hub).review(Actor(center, role, user), case, decision, next_review),
        "reviewed",
    )


@case_app.command("change-type")
def change_type(
    case: str,
    case_type: str,
    center: Center,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Change the 相談種別 of CASE to CASE_TYPE."""
    _command(
        database,
        as_json,
        lambda hub: CaseWork(hub).change_type(Actor(center, role, user), case, case_type),
        "case type changed",
    )


@case_app.command("close")
def close(
    case: str,
    center: Center,
    reason: Annotated[str, typer.Option(help="終結の理由.")],
    meeting: Annotated[str, typer.Option(help="The meeting that decided it, e.g. '2026-09-30 実務者会議'.")],
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Close CASE (終結): its members stop reading what was shared to it."""
    _command(
        database, as_json, lambda hub: CaseWork(hub).close(Actor(center, role, user), case, reason, meeting), "closed"
    )


@case_app.command("transfer")
def transfer(
    case: str,
    center: Center,
    to: Annotated[str, typer.Option(help="The new municipality's centre.")],
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Transfer CASE to the centre of the municipality the family moved to (ケース移管)."""
    _command(database, as_json, lambda hub: CaseWork(hub).transfer(Actor(center, role, user), case, to), "transferred")


@case_app.command("package")
def package(
    case: str,
    center: Center,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """The hand-over package of CASE as the receiving centre may read it (rule TRANSFER). The read is recorded."""
    with command_hub(database) as hub:
        transfer_, timeline = CaseWork(hub).transfer_package(Actor(center, role, user), case)
    if as_json:
        print(json.dumps({"transfer": transfer_, "timeline": timeline.to_dict()}, ensure_ascii=False))
        return
    table = Table(
        "at",
        "kind",
        "source",
        "rule",
        "content",
        title=f"引継ぎ資料 ケース {case}（{transfer_['from']} → {transfer_['to']}、{transfer_['at'][:10]}）",
    )
    for e in timeline.entries:
        content = json.dumps(e.payload, ensure_ascii=False)
        table.add_row(e.at, e.kind, e.source, e.rule, content if len(content) < 100 else content[:97] + "…")
    out.print(table)
    out.print(f"access record {timeline.access_record}")


@case_app.command("acknowledge")
def acknowledge(
    case: str,
    center: Center,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Acknowledge receipt of a transferred CASE (case.transfer_acknowledged), after reading the package."""
    _command(
        database,
        as_json,
        lambda hub: CaseWork(hub).acknowledge_transfer(Actor(center, role, user), case),
        "acknowledged",
    )


@case_app.command("transfers")
def transfers(
    center: Center,
    all_: Annotated[bool, typer.Option("--all", help="Every transfer, not only the overdue ones.")] = False,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Transfers sent or received by the centre that were not acknowledged within 14 days (with --all: all)."""
    with command_hub(database) as hub:
        items = CaseViews(hub).transfers(center, overdue_only=not all_)
    if as_json:
        print(json.dumps(items, ensure_ascii=False))
        return
    table = Table(
        "case",
        "child",
        "from",
        "to",
        "transferred",
        "acknowledged",
        "days",
        "overdue",
        title="ケース移管" + ("" if all_ else "（14日以内に受理されていないもの）"),
    )
    for t in items:
        table.add_row(
            t["case"],
            t["child"],
            t["from"],
            t["to"],
            t["at"][:10],
            (t["acknowledged_at"] or "")[:10],
            str(t["days_waiting"]),
            "超過" if t["overdue"] else "",
        )
    out.print(table)


@case_app.command("ledger-update")
def ledger_update(
    case: str,
    org: OrgOpt,
    severity: Annotated[str | None, typer.Option(help="重症度")] = None,
    status: Annotated[str | None, typer.Option(help="状況")] = None,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Update the joint ledger (共同管理台帳) for CASE, as its centre or the covering 児童相談所."""
    _command(
        database,
        as_json,
        lambda hub: CaseWork(hub).update_ledger(Actor(org, role, user), case, severity=severity, status=status),
        "ledger updated",
    )


@case_app.command("protection")
def protection(
    case: str,
    org: OrgOpt,
    start: Annotated[bool, typer.Option("--start/--end", help="一時保護の開始／解除")] = True,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Record the start or end of temporary protection (一時保護) on the joint ledger (児童相談所 only)."""
    _command(
        database,
        as_json,
        lambda hub: CaseWork(hub).protection(Actor(org, role, user), case, started=start),
        "protection started" if start else "protection ended",
    )


def _print_ledger(ledger: Ledger, title: str) -> None:
    table = Table(
        "case",
        "child",
        "状態",
        "区分・相談種別",
        "前回検討",
        "次回検討",
        "直近の出欠",
        "警告",
        "気づき",
        "児相",
        title=title,
    )
    for r in ledger.rows:
        table.add_row(
            r.case,
            r.child,
            label(STATUS_JA, r.status),
            f"{label(CATEGORY_JA, r.category)} {label(CASE_TYPE_JA, r.case_type)}",
            r.last_review["at"][:10] if r.last_review else "",
            r.next_review,
            attendance_text(r),
            alert_text(r),
            str(len(r.concerns)),
            ledger_text(r) + (" 一時保護中" if r.protection else ""),
        )
    out.print(table)
    out.print(f"{len(ledger.rows)} case(s); {len(ledger.reads)} recorded read(s)")


@case_app.command("ledger")
def ledger(
    center: Center, role: Role = "caseworker", user: User = None, database: Database = None, as_json: AsJson = False
) -> None:
    """The centre's progress ledger (進行管理台帳), from its own recorded reads."""
    with command_hub(database) as hub:
        result = CaseViews(hub).progress_ledger(center, role=role, user=user)
    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        _print_ledger(result, f"進行管理台帳 {center}")


@case_app.command("joint-ledger")
def joint_ledger(
    org: OrgOpt, role: Role = "caseworker", user: User = None, database: Database = None, as_json: AsJson = False
) -> None:
    """The joint ledger (共同管理台帳) of a 児童相談所: every abuse case of the municipalities it covers."""
    with command_hub(database) as hub:
        result = CaseViews(hub).joint_ledger(org, role=role, user=user)
    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        _print_ledger(result, f"共同管理台帳 {org}")


@case_app.command("agenda")
def agenda(
    org: OrgOpt,
    on: Annotated[str | None, typer.Option("--date", help="The meeting day (default today).")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="json, csv (Excel) or html (printable).")] = Format.json,
    output: Annotated[Path | None, typer.Option(help="Write to this file.")] = None,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
) -> None:
    """The agenda of the practitioners' meeting (実務者会議) on --date: the cases due, those with new alerts or
    concerns first, each with what changed since its last review."""
    day = _day(on)
    with command_hub(database) as hub:
        result = CaseViews(hub).agenda(org, day, role=role, user=user)
        names = {o.id: o.name or o.id for o in hub.orgs().values()}
    if fmt is Format.csv:
        data: bytes = agenda_csv(result)
    elif fmt is Format.html:
        data = agenda_html(result, names).encode("utf-8")
    else:
        data = json.dumps(result.to_dict(), ensure_ascii=False).encode("utf-8")
    if output is not None:
        output.write_bytes(data)
        out.print(f"wrote {output} ({len(result.attention)} to discuss, {len(result.confirmation)} to confirm)")
    else:
        typer.echo(data, nl=False)


# --- Support plans and consent ------------------------------------------------------------------------------

Wishes = Annotated[list[str], typer.Option("--wishes", help="意向 (repeat for several).")]
Issues = Annotated[list[str], typer.Option("--issues", help="課題 (repeat for several).")]
Supports = Annotated[list[str], typer.Option("--supports", help="支援の種類及び内容 (repeat for several).")]
ReviewDue = Annotated[str, typer.Option("--review-due", help="見直し時期 YYYY-MM-DD.")]


def _one_or_list(values: list[str]) -> Any:
    return values[0] if len(values) == 1 else values


@plan_app.command("create")
def plan_create(
    child: str,
    center: Center,
    wishes: Wishes,
    issues: Issues,
    supports: Supports,
    review_due: ReviewDue,
    plan: Annotated[str | None, typer.Option(help="Plan number.")] = None,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Create a support plan for CHILD (plan.created, version 1)."""
    _command(
        database,
        as_json,
        lambda hub: CaseWork(hub).create_plan(
            Actor(center, role, user),
            child=child,
            wishes=_one_or_list(wishes),
            issues=_one_or_list(issues),
            supports=_one_or_list(supports),
            review_due=review_due,
            plan=plan,
        ),
        "plan created",
    )


@plan_app.command("revise")
def plan_revise(
    plan: str,
    center: Center,
    wishes: Wishes,
    issues: Issues,
    supports: Supports,
    review_due: ReviewDue,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Revise PLAN (plan.revised, the next version). Consents given cover earlier versions only."""
    _command(
        database,
        as_json,
        lambda hub: CaseWork(hub).revise_plan(
            Actor(center, role, user),
            plan,
            wishes=_one_or_list(wishes),
            issues=_one_or_list(issues),
            supports=_one_or_list(supports),
            review_due=review_due,
        ),
        "plan revised",
    )


@plan_app.command("consent")
def plan_consent(
    plan: str,
    center: Center,
    version: Annotated[int, typer.Option(help="The version signed.")],
    recipient: Annotated[list[str], typer.Option("--recipient", help="An organisation to share with (repeat).")],
    signed_by: Annotated[str, typer.Option(help="Who signed, e.g. 母.")],
    valid_until: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Record the family's consent to share VERSION of PLAN with the recipients (consent.granted)."""
    _command(
        database,
        as_json,
        lambda hub: CaseWork(hub).grant_consent(
            Actor(center, role, user),
            plan,
            version=version,
            recipients=recipient,
            signed_by=signed_by,
            valid_until=valid_until,
        ),
        "consent recorded",
    )


@plan_app.command("withdraw")
def plan_withdraw(
    plan: str,
    consent: str,
    center: Center,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Record that the family withdrew CONSENT (the consent.granted event id) for PLAN."""
    _command(
        database,
        as_json,
        lambda hub: CaseWork(hub).withdraw_consent(Actor(center, role, user), plan, consent),
        "consent withdrawn",
    )


@plan_app.command("refuse")
def plan_refuse(
    plan: str,
    center: Center,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Record that the family refused to share PLAN: support goes on, nothing is shared."""
    _command(
        database, as_json, lambda hub: CaseWork(hub).refuse_consent(Actor(center, role, user), plan), "refusal recorded"
    )


@plan_app.command("due")
def plan_due(
    center: Center,
    on: Annotated[str | None, typer.Option("--date", help="Default today.")] = None,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """The centre's support plans whose review date is on or before --date."""
    day = _day(on)
    with command_hub(database) as hub:
        plans, reads = CaseViews(hub).plans_due(center, day, role=role, user=user)
        now = hub.clock()
    if as_json:
        print(
            json.dumps(
                {"date": day.isoformat(), "plans": [p.to_dict(now) for p in plans], "access_records": reads},
                ensure_ascii=False,
            )
        )
        return
    table = Table(
        "plan", "child", "version", "review due", "shared version", "refused", title=f"見直し時期のプラン {day}"
    )
    for p in plans:
        shared = p.shared_version(now)
        table.add_row(
            p.plan,
            p.child,
            str(p.latest_version),
            p.review_due or "",
            str(shared or "なし"),
            "同意しない" if p.refusals else "",
        )
    out.print(table)
