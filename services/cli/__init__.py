"""The ``tsunagu`` command (an edge): the typer app (``root``: shared options, output helpers and the root
commands) and one module per command group, each registering its commands on ``app`` when imported here."""

from services.cli.root import app

# Command groups, one module each, registered on ``app`` by being imported.
from services.cli import identity  # noqa: F401  identity link, unlink, queue (紐付け)
from services.cli import case  # noqa: F401  case …, plan … (要対協 case work, ledgers, agenda, transfers)
from services.cli import serve  # noqa: F401  serve, token issue
from services.cli import auth  # noqa: F401  clients add|list|rotate-secret|disable, keys list|rotate|retire
from services.cli import worker  # noqa: F401  worker ingest (the Kafka log transport)
from services.cli import demo  # noqa: F401  demo
from services.cli import imports  # noqa: F401  import school-monthly|school-daily, reports overdue (定期的な情報提供)
from services.cli import feeds  # noqa: F401  import jsonl|health-checkup|provider (other organisations' feeds)
from services.cli import audit  # noqa: F401  audit anchor|reads|reconstruct|emergencies|finding|disclosure|impact|queries
from services.cli import keys  # noqa: F401  master-key generate|rotate|rewrap (encryption at rest)
from services.cli import settings  # noqa: F401  settings show|set (the deployment's policy settings)

__all__ = ["app"]


def main() -> None:  # pragma: no cover
    app()
