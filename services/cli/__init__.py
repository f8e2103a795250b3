"""The ``tsunagu`` command (an edge): the typer app (``root``: shared options, output helpers and the root
commands) and one module per command group, each registering its commands on ``app`` when imported here."""

# Command groups, one module each, registered on ``app`` by being imported.
from services.cli import (
    aggregates,  # noqa: F401  aggregates MEASURE (集計, small cells suppressed)
    audit,  # noqa: F401  audit anchor|reads|reconstruct|emergencies|finding|disclosure|impact|queries
    auth,  # noqa: F401  clients add|list|rotate-secret|disable, keys list|rotate|retire
    case,  # noqa: F401  case …, plan … (要対協 case work, ledgers, agenda, transfers)
    demo,  # noqa: F401  demo
    feeds,  # noqa: F401  import jsonl|health-checkup|provider (other organisations' feeds)
    households,  # noqa: F401  household join|leave|show (世帯)
    identity,  # noqa: F401  identity link, unlink, queue (紐付け)
    imports,  # noqa: F401  import school-monthly|school-daily, reports overdue (定期的な情報提供)
    inquiries,  # noqa: F401  inquiries round|outstanding|inbox|answer (事前照会)
    keys,  # noqa: F401  master-key generate|rotate|rewrap (encryption at rest)
    report_lines,  # noqa: F401  report-lines move (store format 6: the old report lines moved once)
    serve,  # noqa: F401  serve, token issue
    services,  # noqa: F401  services … (家庭支援事業: referrals, monitoring, urgent reports)
    settings,  # noqa: F401  settings show|set (the deployment's policy settings)
    snapshots,  # noqa: F401  snapshots status|drop (the children's snapshots: derived data)
    worker,  # noqa: F401  worker ingest (the Kafka log transport)
)
from services.cli.root import app

__all__ = ["app"]


def main() -> None:  # pragma: no cover
    app()
