"""Kafka transport throughput: producer -> events topic -> ingest worker -> stored, in events/s.

    .venv/bin/python -m bench.kafka_throughput --start-broker --events 100000
    .venv/bin/python -m bench.kafka_throughput --bootstrap 127.0.0.1:59092 --kafka-api-version 0.9 \\
        --database postgresql://postgres@127.0.0.1:55432/postgres?schema=kbench --events 100000

Method: a fresh topic and consumer group; ``--children`` children of one municipality, each with a registration
and then concerns under 21-10-5 (which need the registration first, so per-child order is exercised), ``--events``
in all. Three timings, each over all N events:

- produce: ``KafkaPublisher.publish`` in chunks of ``--chunk`` until the broker acknowledged every message
  (acks=all, one request in flight per connection, as the product sends);
- ingest: one ``IngestWorker`` (in this process) draining the topic: poll, ``Hub.publish`` (validation, admission,
  register of envelope ids, one transaction per batch), dead letters, commit after the append;
- end to end (``--mode pipelined``, default): the producer runs in a process of its own, as an organisation's
  adapter does (a thread beside the worker would share this process's interpreter lock with it, and measure
  that), while the worker, already holding its partitions, drains the topic here; from the first send until the
  last event is stored (wall-clock time of both processes).

``--mode sequential`` produces everything first, then starts the worker (produce and ingest rates separately).
Every event must be accepted; the script checks the stored count. Prints a summary, or one JSON object with
``--json``. ``--start-broker`` starts a throwaway broker with deploy/local-kafka.sh and stops it afterwards.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from events.clock import JST
from events.transport import EVENTS_TOPIC, KafkaPublisher, parse_api_version
from services.feeds.kafka_worker import IngestWorker
from services.hub import Hub
from services.runtime import tune_garbage_collector

ROOT = Path(__file__).resolve().parent.parent
ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020", "name": "別府市こども家庭センター"},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": "442020", "name": "別府市立第一小学校"},
]


def make_events(count: int, children: int) -> list[dict]:
    """``count`` envelopes over ``children`` children, interleaved; each child's first event is its registration."""
    start = datetime.now(JST) - timedelta(days=60)
    run = uuid.uuid4().hex[:8]
    out = []
    for n in range(count):
        child, step = f"k{run}-{n % children}", n // children
        at = (start + timedelta(seconds=step)).isoformat()
        if step == 0:
            out.append(
                {
                    "id": f"{child}-r",
                    "kind": "child.registered",
                    "child": child,
                    "source": "beppu-center",
                    "basis": "internal",
                    "at": at,
                    "payload": {"residence": "442020"},
                }
            )
        else:
            out.append(
                {
                    "id": f"{child}-e{step}",
                    "kind": "concern.reported",
                    "child": child,
                    "source": "beppu-es-1",
                    "basis": "cwa-21-10-5",
                    "at": at,
                    "payload": {"summary": f"欠席が続いている ({step})"},
                }
            )
    return out


def produce(publisher: KafkaPublisher, events: list[dict], chunk: int) -> float:
    started = time.perf_counter()
    for i in range(0, len(events), chunk):
        publisher.publish(events[i : i + chunk])
    return time.perf_counter() - started


def produce_elsewhere(
    bootstrap: str, api_version, database: str, topic: str, events: list[dict], chunk: int, go: Any, report: Any
) -> None:
    """The producer's process: its own hub connection for the data keys, then ``produce`` when told to go;
    reports (wall-clock start, seconds) or the error."""
    try:
        tune_garbage_collector()
        hub = Hub(database)
        publisher = KafkaPublisher(bootstrap, keys=hub.store.keys, topic=topic, api_version=api_version)
        publisher.partitions()
        report.put(("ready", None))
        go.wait()
        started = time.time()
        report.put(("done", (started, produce(publisher, events, chunk))))
        publisher.close()
        hub.close()
    except BaseException as error:  # reported to the measuring process
        report.put(("error", repr(error)))


def drain(worker: IngestWorker, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    seen = 0
    while seen < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"the worker processed {seen} of {count} messages within {timeout:.0f}s")
        seen += worker.process_batch(timeout_ms=200).messages


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    tune_garbage_collector()  # as every tsunagu command does (services/runtime.py)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="Kafka bootstrap HOST:PORT (or --start-broker)")
    parser.add_argument("--start-broker", action="store_true", help="start a throwaway 0.9 broker for the run")
    parser.add_argument("--kafka-api-version", default=None, help="0.9 for deploy/local-kafka.sh")
    parser.add_argument("--database", default=None, help="default: a SQLite file in a temporary directory")
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--children", type=int, default=2000)
    parser.add_argument("--chunk", type=int, default=1000, help="envelopes per KafkaPublisher.publish")
    parser.add_argument("--max-batch", type=int, default=1000, help="worker messages per poll and append")
    parser.add_argument("--mode", choices=("pipelined", "sequential"), default="pipelined")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.bootstrap and not args.start_broker:
        parser.error("give --bootstrap HOST:PORT or --start-broker")

    scratch = Path(tempfile.mkdtemp(prefix="tsunagu-kbench-"))
    broker_dir = scratch / "kafka"
    api_version = parse_api_version(args.kafka_api_version)
    try:
        bootstrap = args.bootstrap
        if args.start_broker:
            started = subprocess.run(
                [str(ROOT / "deploy" / "local-kafka.sh"), "start", str(broker_dir), str(free_port()), str(free_port())],
                capture_output=True,
                text=True,
            )
            if started.returncode != 0:
                raise SystemExit(f"Kafka could not be started: {started.stderr.strip()}")
            bootstrap = started.stdout.strip().splitlines()[-1]
            api_version = api_version or (0, 9)
        database = args.database or f"sqlite:///{scratch / 'bench.db'}"
        result = run(bootstrap, api_version, database, args)
    finally:
        if args.start_broker:
            subprocess.run([str(ROOT / "deploy" / "local-kafka.sh"), "stop", str(broker_dir)], capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")


def run(bootstrap: str, api_version, database: str, args) -> dict:
    events = make_events(args.events, args.children)
    topic = f"bench.{uuid.uuid4().hex[:10]}.{EVENTS_TOPIC}"
    hub = Hub(database)
    hub.load_orgs(ORGS)
    worker = IngestWorker(
        hub,
        bootstrap,
        group=f"bench-{uuid.uuid4().hex[:8]}",
        topic=topic,
        api_version=api_version,
        max_batch=args.max_batch,
        session_timeout_ms=30000,
    )
    publisher = KafkaPublisher(bootstrap, keys=hub.store.keys, topic=topic, api_version=api_version)
    result: dict = {
        "events": len(events),
        "children": args.children,
        "mode": args.mode,
        "bootstrap": bootstrap,
        "database": database.split("?")[0].split("@")[-1],
        "max_batch": args.max_batch,
    }
    try:
        # The topic exists and the worker holds its partitions before anything is timed.
        publisher.partitions()
        deadline = time.monotonic() + 60
        while not worker.assignment():
            if time.monotonic() > deadline:
                raise SystemExit("the worker was not assigned any partition within 60 s")
            worker.process_batch(timeout_ms=200)
        if args.mode == "sequential":
            produce_s = produce(publisher, events, args.chunk)
            started = time.perf_counter()
            drain(worker, len(events), args.timeout)
            ingest_s = time.perf_counter() - started
            result.update(
                produce_s=round(produce_s, 2),
                produce_per_s=round(len(events) / produce_s),
                ingest_s=round(ingest_s, 2),
                ingest_per_s=round(len(events) / ingest_s),
            )
        else:
            context = multiprocessing.get_context("spawn")
            go, report = context.Event(), context.Queue()
            producer = context.Process(
                target=produce_elsewhere, args=(bootstrap, api_version, database, topic, events, args.chunk, go, report)
            )
            producer.start()
            state, detail = report.get(timeout=120)
            if state != "ready":
                raise SystemExit(f"the producer process failed: {detail}")
            go.set()
            drain(worker, len(events), args.timeout)
            finished = time.time()
            state, detail = report.get(timeout=120)
            producer.join(timeout=60)
            if state != "done":
                raise SystemExit(f"the producer process failed: {detail}")
            started, produce_s = detail
            total_s = finished - started
            result.update(
                produce_s=round(produce_s, 2),
                produce_per_s=round(len(events) / produce_s),
                end_to_end_s=round(total_s, 2),
                end_to_end_per_s=round(len(events) / total_s),
            )
        totals = worker.totals
        if totals.accepted != len(events) or totals.rejected or totals.invalid:
            raise SystemExit(f"not every event was accepted: {totals.summary()}")
        missing = [e["id"] for e in events[-100:] if hub.store.stored_envelope(e["id"]) is None]
        if missing:
            raise SystemExit(f"events reported stored are missing: {missing[:5]}")
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return result
    finally:
        publisher.close()
        worker.close()
        hub.close()


if __name__ == "__main__":
    main()
