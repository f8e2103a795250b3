"""The load run (issue 16, item 3): 50 staff sessions on ``tsunagu serve --workers N`` for N = 1, 2, 4.

    .venv/bin/pip install -e '.[bench]'          # locust
    .venv/bin/python -m bench.load [--workers 1,2,4] [--seconds 60] [--users 50] [--cases 200]

Starts, on loopback only: a throwaway PostgreSQL (``deploy/local-postgres.sh``), a Kafka 0.9 broker
(``deploy/local-kafka.sh``), a Redis for the shared rate limits (``TSUNAGU_RATE_LIMIT_STORAGE``), a city of
``--cases`` open cases (``bench.ledger_scale.build``: one centre, 300 schools and nurseries, 24 events a child),
one ingest worker (``tsunagu worker ingest``); then for each N, ``tsunagu serve --workers N`` and locust
(``bench/locust_staff.py``, headless, ``--users`` users for ``--seconds``), with a Kafka publisher beside it
sending schools' concerns in batches of 10 (``KafkaPublisher``, one batch a second, acknowledged by the broker).

Prints, per N, the requests per second and p50/p95/p99 per kind of request (locust's figures), the Kafka
batches, and the failures (the figures count only when there are none), as a Markdown table for
``docs/benchmarks.md``. The rate limit is set far above the load (it is counted in Redis all the same).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.soak import TSUNAGU, Kafka, Postgres, _free_port, _wait

ROOT = Path(__file__).resolve().parent.parent


def start_redis(work: Path) -> tuple[subprocess.Popen, str]:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server not found (scripts/setup.sh installs it)")
    port = _free_port()
    process = subprocess.Popen(
        [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(work)],
        stdout=(work / "redis.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    if not _wait(lambda: bool(client.ping()), 30):
        raise SystemExit("redis-server did not start")
    client.close()
    return process, f"async+redis://127.0.0.1:{port}"


def build_world(database: str, cases: int, key_file: Path, work: Path) -> dict[str, Any]:
    """The city, and the run's settings for the locust file: tokens, children, each school's monthly file."""
    from bench.ledger_scale import CENTRE, NOW, build, prefecture
    from bench.prefecture import event_stream
    from services.auth.tokens import keys_from_file
    from services.casework.ledger import CaseViews
    from services.hub import Hub, SettableClock

    build(database, cases)
    hub = Hub(database, clock=SettableClock(NOW))
    try:
        # a meeting day on which about 100 open cases are due (bench.ledger_scale.meeting_day asks a server)
        rows = CaseViews(hub).progress_ledger(CENTRE, states={"open"}).rows
        days = sorted(date.fromisoformat(r.next_review) for r in rows)
        on = days[min(100, len(days)) - 1]
    finally:
        hub.close()
    whole = prefecture()
    pref = replace(whole, municipalities=whole.municipalities[:1])  # the city, as bench.ledger_scale.build makes it
    codes = {o["id"]: o.get("code") for o in pref.orgs}
    listed: dict[str, list[tuple[str, str]]] = defaultdict(list)  # school -> (child, student number)
    children = []
    for envelope in event_stream(pref, cases, 24, prefix="city"):
        if envelope["kind"] == "child.registered":
            children.append(envelope["child"])
        if envelope["kind"] == "target_list.assigned":
            listed[envelope["to"]].append((envelope["child"], envelope["payload"]["student_no"]))
    issuer, _ = keys_from_file(key_file)
    header = "学校コード,児童生徒番号,対象年月,授業日数,出席日数,欠席日数,うち連絡なし欠席日数,遅刻日数,早退日数,欠席理由,特記事項"
    schools = []
    for school, pupils in sorted(listed.items(), key=lambda item: -len(item[1]))[:20]:
        rows = [f"{codes[school]},{no},令和8年11月,19,17,2,1,0,0,体調不良," for _, no in pupils]
        schools.append(
            {
                "id": school,
                "token": issuer.issue(
                    org=school, role="adapter", user=f"{school}:adapter", lifetime=timedelta(hours=4)
                ),
                "children": [child for child, _ in pupils],
                "monthly_csv": "\r\n".join([header, *rows]) + "\r\n",
            }
        )
    return {
        "cases": cases,
        "children": children,
        "meeting_day": on.isoformat(),
        "at": (datetime.now().astimezone() - timedelta(days=1)).isoformat(),
        "staff_tokens": [
            issuer.issue(org=CENTRE, role="caseworker", user=f"職員{n:02d}", lifetime=timedelta(hours=4))
            for n in range(60)
        ],
        "schools": schools,
    }


class KafkaBeside:
    """Schools' concerns through Kafka while locust runs: a batch of 10 a second, re-sent until acknowledged."""

    def __init__(self, bootstrap: str, database: str, topic: str, config: dict[str, Any]):
        from events.transport import KafkaPublisher
        from services.hub import Hub

        self.hub = Hub(database)
        self.publisher = KafkaPublisher(bootstrap, keys=self.hub.store.keys, topic=topic, api_version=(0, 9))
        self.publisher.partitions()
        self.config = config
        self.took: list[float] = []
        self.failures = 0
        self.ids: list[str] = []
        self.running = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        schools = self.config["schools"]
        n = 0
        while self.running.is_set():
            batch = []
            for _ in range(10):
                school = schools[n % len(schools)]
                child = school["children"][n % len(school["children"])]
                batch.append(
                    {
                        "id": f"kafka-{uuid.uuid4()}",
                        "kind": "concern.reported",
                        "child": child,
                        "source": school["id"],
                        "basis": "cwa-21-10-5",
                        "at": self.config["at"],
                        "payload": {"summary": "連絡なしの欠席が続いている"},
                    }
                )
                n += 1
            started = time.perf_counter()
            try:
                self.publisher.publish(batch)
            except Exception:
                self.failures += 1
            else:
                self.took.append((time.perf_counter() - started) * 1000)
                self.ids += [e["id"] for e in batch]
            time.sleep(max(0.0, 1.0 - (time.perf_counter() - started)))

    def start(self) -> None:
        self.running.set()
        self.thread.start()

    def stop(self) -> None:
        self.running.clear()
        self.thread.join(timeout=120)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def close(self) -> None:
        self.publisher.close()
        self.hub.close()


@contextmanager
def api_processes(
    workers: int,
    database: str,
    key_file: Path,
    work: Path,
    env: dict[str, str] | None = None,
    log_name: str | None = None,
) -> Iterator[tuple[subprocess.Popen, str]]:
    """``tsunagu serve --workers N`` on a free loopback port, waited for until it answers ``/v1/health`` and every
    worker process is up; yields the process and its base address, and stops it afterwards. Its log goes to
    ``work/serve-N.log`` (or ``work/<log_name>.log``; the end of it is the error when it does not start)."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = work / f"{log_name or f'serve-{workers}'}.log"
    serve = subprocess.Popen(
        [str(TSUNAGU), "serve", "--port", str(port), "--workers", str(workers), "--database", database,
         "--key-file", str(key_file)],
        stdout=subprocess.DEVNULL, stderr=log.open("wb"), env=env,
    )  # fmt: skip
    try:
        if not _wait(lambda: httpx.get(f"{base}/v1/health", timeout=2).status_code == 200, 120):
            raise SystemExit(log.read_text(errors="replace")[-2000:])
        time.sleep(3)  # every worker process up
        yield serve, base
    finally:
        serve.terminate()
        serve.wait(timeout=60)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its children still running (the uvicorn workers), from ``/proc``."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else 0.0


def run_locust(base: str, config_file: Path, users: int, seconds: int, prefix: Path) -> list[dict[str, str]]:
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("locust")),
            "-f",
            str(ROOT / "bench" / "locust_staff.py"),
            "--headless",
            "--users",
            str(users),
            "--spawn-rate",
            "10",
            "--run-time",
            f"{seconds}s",
            "--host",
            base,
            "--csv",
            str(prefix),
            "--only-summary",
            "--stop-timeout",
            "30",
            "--exit-code-on-error",
            "0",
        ],  # fmt: skip
        env={**os.environ, "TSUNAGU_LOAD_CONFIG": str(config_file)},
        capture_output=True,
        text=True,
        timeout=seconds + 300,
    )
    if done.returncode != 0:
        raise SystemExit(f"locust failed: {done.stderr[-3000:]}")
    return list(csv.DictReader(io.StringIO(Path(f"{prefix}_stats.csv").read_text())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tsunagu-load-"))
    postgres = kafka = redis_process = None
    worker = None
    results: list[dict[str, Any]] = []
    try:
        postgres, kafka = Postgres(work), Kafka(work, brokers=1)
        redis_process, redis_url = start_redis(work)
        key_file = work / "signing-key.pem"
        print(f"building a city of {options.cases} cases …", flush=True)
        config = build_world(postgres.url, options.cases, key_file, work)
        config_file = work / "load.json"
        config_file.write_text(json.dumps(config, ensure_ascii=False))
        topic = f"load.{uuid.uuid4().hex[:8]}.tsunagu.events.v1"
        env = {
            **os.environ,
            "TSUNAGU_RATE_LIMIT": "1000000/minute",
            "TSUNAGU_RATE_LIMIT_STORAGE": redis_url,
            "TSUNAGU_KAFKA_API_VERSION": "0.9",
        }
        beside = KafkaBeside(kafka.bootstrap, postgres.url, topic, config)
        worker = subprocess.Popen(
            [
                str(TSUNAGU),
                "worker",
                "ingest",
                "--bootstrap",
                kafka.bootstrap,
                "--topic",
                topic,
                "--group",
                "load",
                "--database",
                postgres.url,
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=(work / "worker.log").open("wb"),
            env=env,
        )
        for n in [int(w) for w in options.workers.split(",")]:
            with api_processes(n, postgres.url, key_file, work, env) as (serve, base):
                print(f"N = {n}: locust, {options.users} users, {options.seconds} s", flush=True)
                beside.took, beside.failures = [], 0
                beside.start()
                cpu, load = cpu_seconds(serve.pid), os.getloadavg()[0]
                stats = run_locust(base, config_file, options.users, options.seconds, work / f"locust-{n}")
                cpu = cpu_seconds(serve.pid) - cpu
                beside.stop()
            kinds = [
                {
                    "kind": row["Name"],
                    "requests": int(row["Request Count"]),
                    "failures": int(row["Failure Count"]),
                    "rps": round(float(row["Requests/s"]), 1),
                    "p50": row["50%"],
                    "p95": row["95%"],
                    "p99": row["99%"],
                }
                for row in stats
            ]
            took = beside.took
            kinds.append(
                {
                    "kind": "Kafka: batch of 10 concerns acknowledged",
                    "requests": len(took),
                    "failures": beside.failures,
                    "rps": round(len(took) / options.seconds, 1),
                    "p50": round(statistics.median(took)) if took else "-",
                    "p95": round(percentile(took, 95)),
                    "p99": round(percentile(took, 99)),
                }
            )
            results.append({"workers": n, "kinds": kinds, "api_cpu_seconds": round(cpu, 1), "load": round(load, 1)})
            print(f"N = {n}: the API processes used {cpu:.1f} s of CPU; load average {load:.1f}", flush=True)
            print(table([results[-1]]), flush=True)
        stored = _wait(lambda: all(beside.hub.store.stored_envelope(i) is not None for i in beside.ids), 300)
        print(f"Kafka: {len(beside.ids)} events acknowledged, all stored by the worker: {stored}")
        beside.close()
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=60)
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait(timeout=30)
        if kafka is not None:
            kafka.close()
        if postgres is not None:
            postgres.close()
        shutil.rmtree(work, ignore_errors=True)
    print(table(results))
    if options.json:
        options.json.write_text(json.dumps(results, ensure_ascii=False, indent=1))


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| N | request | requests | failures | rps | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for k in result["kinds"]:
            lines.append(
                f"| {result['workers']} | {k['kind']} | {k['requests']} | {k['failures']} | {k['rps']} | "
                f"{k['p50']} | {k['p95']} | {k['p99']} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
