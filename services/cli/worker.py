"""``tsunagu worker ingest``: the Kafka ingest worker (``services.feeds.kafka_worker``) as a long-running command.

Registered on the ``tsunagu`` command by ``services/cli/root.py`` importing this module.
"""

from __future__ import annotations

import logging
import signal
import sys
from typing import Annotated

import typer

from events.transport import API_VERSION_ENV, EVENTS_TOPIC, TOPIC_ENV, TransportError, parse_api_version
from services.cli.root import Database, app, fail
from services.feeds.kafka_worker import DEFAULT_GROUP, IngestWorker
from services.hub import Hub
from services.publishing.ingest import MAX_BATCH

worker_app = typer.Typer(help="Background workers (the Kafka log transport).", no_args_is_help=True)
app.add_typer(worker_app, name="worker")

Bootstrap = Annotated[
    str,
    typer.Option(
        "--bootstrap", envvar="TSUNAGU_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers, HOST:PORT[,HOST:PORT…]."
    ),
]
ApiVersion = Annotated[
    str | None,
    typer.Option(
        "--kafka-api-version",
        envvar=API_VERSION_ENV,
        help="The broker's protocol version when it cannot be detected (0.9 for deploy/local-kafka.sh); "
        "unset for current brokers.",
    ),
]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@worker_app.command("ingest")
def ingest(
    bootstrap: Bootstrap,
    group: Annotated[
        str, typer.Option(help="Consumer group; workers of one group share the partitions.")
    ] = DEFAULT_GROUP,
    topic: Annotated[
        str, typer.Option(envvar=TOPIC_ENV, help="The events topic (its dead-letter topic is TOPIC.dead-letter).")
    ] = EVENTS_TOPIC,
    database: Database = None,
    kafka_api_version: ApiVersion = None,
    max_batch: Annotated[int, typer.Option(min=1, max=MAX_BATCH, help="Messages per poll and per append.")] = 500,
    session_timeout_ms: Annotated[
        int, typer.Option(min=1000, help="Group session timeout; a batch must be stored within it.")
    ] = 10000,
    until_idle: Annotated[
        float | None,
        typer.Option(
            help="Exit after this many seconds without messages (drain and exit); default: run until stopped."
        ),
    ] = None,
) -> None:
    """Consume the events topic and store the events in the hub; offsets are committed only after the append.

    Invalid messages and rejected envelopes go to the dead-letter topic and to the quarantine. Stops cleanly on
    SIGTERM or Ctrl-C after the batch in hand; killed, it loses nothing (the batch is delivered again)."""
    # The Kafka client says on stderr when it cannot reach the broker (it keeps retrying meanwhile).
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        api_version = parse_api_version(kafka_api_version)
        hub = Hub(database)
    except ValueError as error:
        fail(str(error))
        raise  # unreachable: fail() exits
    try:
        try:
            worker = IngestWorker(
                hub,
                bootstrap,
                group=group,
                topic=topic,
                api_version=api_version,
                max_batch=max_batch,
                session_timeout_ms=session_timeout_ms,
                log=_say,
            )
        except TransportError as error:
            fail(str(error), 1)
            raise  # unreachable
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: worker.stop())
        _say(
            f"ingest worker: group {group}, topic {topic} at {bootstrap}, database "
            f"{database or 'from TSUNAGU_DATABASE_URL or the default'}"
        )
        try:
            totals = worker.run(idle_stop_after=until_idle)
        except TransportError as error:
            fail(f"{error} (nothing was committed for the batch in hand: it will be delivered again)", 1)
        finally:
            worker.close()
        _say(f"ingest worker stopped: {totals.summary()}")
    finally:
        hub.close()
