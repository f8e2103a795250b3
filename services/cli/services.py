"""``tsunagu services …``: family-support services (家庭支援事業, meetings-and-services.md §2): recommendations
(利用勧奨) and their results, orders (措置), referrals to a provider, monitoring, the end of a service, the
acknowledgement of a provider's report, and the views (a centre's referrals with monitoring due and its urgent
inbox; a provider's referrals and reports) built from the organisation's own recorded reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table

from events.labels import MONITORING_JA, label
from services.casework.commands import Actor, Done
from services.cli.root import Database, app, command_hub, out
from services.family_support.work import FamilySupport, SupportViews

services_app = typer.Typer(
    help="家庭支援事業: recommendations, orders, referrals to providers, monitoring, urgent reports.",
    no_args_is_help=True,
)
app.add_typer(services_app, name="services")

Org = Annotated[str, typer.Option("--org", help="The acting organisation (a こども家庭センター or a 委託事業者).")]
Role = Annotated[str, typer.Option("--role", help="The role the person acts in.")]
User = Annotated[str | None, typer.Option("--user", help="The person acting (recorded in access records).")]
Child = Annotated[str, typer.Option("--child", help="The child's hub id.")]
AsJson = Annotated[bool, typer.Option("--json", help="The result as JSON.")]


def _command(database: str | None, as_json: bool, run: Callable[[FamilySupport], Done], what: str) -> None:
    with command_hub(database) as hub:
        done = run(FamilySupport(hub))
    if as_json:
        print(json.dumps(done.to_dict(), ensure_ascii=False))
    else:
        out.print(f"{what}: {done.child} (event {done.event})")


@services_app.command("recommend")
def recommend(
    org: Org,
    child: Child,
    service: Annotated[str, typer.Option("--service", help="The service recommended.")],
    form: Annotated[str, typer.Option("--form", help="oral (口頭) or written (文書).")],
    reason: Annotated[str, typer.Option("--reason")],
    recommendation: Annotated[str | None, typer.Option("--id", help="The recommendation's id.")] = None,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """利用勧奨 (service.recommended)."""
    _command(
        database,
        as_json,
        lambda w: w.recommend(
            Actor(org, role, user),
            child=child,
            service=service,
            form=form,
            reason=reason,
            recommendation=recommendation,
        ),
        "利用勧奨を記録しました",
    )


@services_app.command("result")
def result(
    org: Org,
    child: Child,
    recommendation: Annotated[str, typer.Option("--recommendation")],
    outcome: Annotated[str, typer.Option("--result", help="accepted, declined or no_answer.")],
    note: Annotated[str | None, typer.Option("--note")] = None,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """利用勧奨の結果 (service.recommendation_result)."""
    _command(
        database,
        as_json,
        lambda w: w.record_result(
            Actor(org, role, user), child=child, recommendation=recommendation, result=outcome, note=note
        ),
        "利用勧奨の結果を記録しました",
    )


@services_app.command("order")
def order(
    org: Org,
    child: Child,
    service: Annotated[str, typer.Option("--service")],
    start: Annotated[str, typer.Option("--from", help="The day the service starts (YYYY-MM-DD).")],
    notice_date: Annotated[str, typer.Option("--notice-date", help="The day of the written notice.")],
    order_id: Annotated[str | None, typer.Option("--id")] = None,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """措置 (service.ordered)."""
    _command(
        database,
        as_json,
        lambda w: w.order(
            Actor(org, role, user), child=child, service=service, from_=start, notice_date=notice_date, order=order_id
        ),
        "措置を記録しました",
    )


@services_app.command("refer")
def refer(
    org: Org,
    child: Child,
    provider: Annotated[str, typer.Option("--provider", help="The 委託事業者 (its organisation id).")],
    service: Annotated[str, typer.Option("--service")],
    start: Annotated[str, typer.Option("--start", help="The day the service starts (YYYY-MM-DD).")],
    summary: Annotated[str, typer.Option("--summary", help="What the provider needs to know.")],
    frequency: Annotated[str | None, typer.Option("--frequency")] = None,
    referral: Annotated[str | None, typer.Option("--id")] = None,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """事業者への依頼 (service.referred, to the provider)."""
    _command(
        database,
        as_json,
        lambda w: w.refer(
            Actor(org, role, user),
            child=child,
            provider=provider,
            service=service,
            start=start,
            summary=summary,
            frequency=frequency,
            referral=referral,
        ),
        "事業者へ依頼しました",
    )


@services_app.command("monitor")
def monitor(
    org: Org,
    child: Child,
    referral: Annotated[str, typer.Option("--referral")],
    observations: Annotated[str, typer.Option("--observations")],
    recommendation: Annotated[str, typer.Option("--recommendation", help="continue, extend, change or end.")],
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """モニタリング (service.monitoring) to the other side of the referral."""
    _command(
        database,
        as_json,
        lambda w: w.monitor(
            Actor(org, role, user),
            child=child,
            referral=referral,
            observations=observations,
            recommendation=recommendation,
        ),
        "モニタリングを記録しました",
    )


@services_app.command("end")
def end(
    org: Org,
    child: Child,
    referral: Annotated[str, typer.Option("--referral")],
    reason: Annotated[str, typer.Option("--reason")],
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """サービスの終了 (service.ended), told to the provider."""
    _command(
        database,
        as_json,
        lambda w: w.end(Actor(org, role, user), child=child, referral=referral, reason=reason),
        "サービスの終了を記録しました",
    )


@services_app.command("acknowledge")
def acknowledge(
    org: Org,
    report: Annotated[str, typer.Option("--report", help="The report's event id.")],
    note: Annotated[str | None, typer.Option("--note", help="What the centre will do.")] = None,
    handled_by: Annotated[str | None, typer.Option("--handled-by")] = None,
    role: Role = "caseworker",
    user: User = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """報告の確認 (report.acknowledged), to the report's source."""
    _command(
        database,
        as_json,
        lambda w: w.acknowledge(Actor(org, role, user), report=report, note=note, handled_by=handled_by),
        "報告を確認済みにしました",
    )


@services_app.command("list")
def overview(
    org: Org, role: Role = "caseworker", user: User = None, database: Database = None, as_json: AsJson = False
) -> None:
    """A centre's referrals (monitoring due first) or a provider's referrals and reports."""
    with command_hub(database) as hub:
        views = SupportViews(hub).overview(org, role=role, user=user)
    if as_json:
        print(json.dumps(views.to_dict(), ensure_ascii=False))
        return
    table = Table("依頼", "児童", "事業", "事業者", "開始", "最終モニタリング", "モニタリング期限", title="依頼")
    for r in views.referrals:
        last = r.last_monitoring
        table.add_row(
            r.referral,
            r.child,
            r.service,
            r.provider,
            r.start,
            f"{last['at'][:10]} {label(MONITORING_JA, last['recommendation'])}" if last else "なし",
            ("終了" if r.ended else (f"{r.monitoring_due} 期限超過" if r.due else r.monitoring_due or "")),
        )
    out.print(table)
    reports = Table("報告", "児童", "受付", "緊急", "確認", title="報告")
    for p in views.reports:
        ack = p.acknowledged
        reports.add_row(p.report, p.child, p.at[:16], "緊急" if p.urgent else "", ack["at"][:16] if ack else "未確認")
    out.print(reports)


@services_app.command("urgent")
def urgent(
    org: Org, role: Role = "caseworker", user: User = None, database: Database = None, as_json: AsJson = False
) -> None:
    """The centre's urgent inbox: urgent reports not yet acknowledged, oldest first."""
    with command_hub(database) as hub:
        reports, reads = SupportViews(hub).urgent_inbox(org, role=role, user=user)
    if as_json:
        print(json.dumps({"reports": [r.to_dict() for r in reports], "access_records": reads}, ensure_ascii=False))
        return
    table = Table("報告", "児童", "事業者", "受付", "待ち時間", "緊急の理由", title="未確認の緊急報告")
    for r in reports:
        table.add_row(r.report, r.child, r.source, r.at[:16], f"{r.waited_hours}時間", r.urgent_reason or "")
    out.print(table)


@services_app.command("counts")
def counts(org: Org, role: Role = "caseworker", user: User = None, database: Database = None) -> None:
    """Usage per service and provider and time to acknowledge urgent reports (JSON)."""
    with command_hub(database) as hub:
        result: dict[str, Any] = SupportViews(hub).counts(org, role=role, user=user)
    print(json.dumps(result, ensure_ascii=False))
