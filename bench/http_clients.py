"""Timeline reads through HTTP with 1, 2, 4, 8 clients on ``tsunagu serve --workers 1`` and ``2`` (issue 16, item 2:
throughput should grow, never fall, as clients are added up to the cores, and 2 processes serve ≥ 1.6× one).

    .venv/bin/python -m bench.http_clients [--workers 1,2] [--clients 1,2,4,8] [--seconds 15] [--cases 100]

On loopback only: a throwaway PostgreSQL (``deploy/local-postgres.sh``), the city of ``bench/load.py``
(``build_world``: ``--cases`` open cases, 24 events a child, one centre), then for each N ``tsunagu serve
--workers N`` and, for each client count, that many threads each reading a random child's timeline (purpose
support, a caseworker's token of its own) back to back for ``--seconds``. Every answer but 200 is counted as a
failure. Prints, per N and client count, the reads per second, p50/p95 in ms, and the CPU seconds the API
processes used per read (from ``/proc``: the machine is shared, so the wall clock alone says little).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.load import api_processes, build_world, cpu_seconds, percentile
from bench.soak import Postgres


def run_clients(base: str, config: dict[str, Any], clients: int, seconds: float) -> dict[str, Any]:
    took: list[float] = []
    failures = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(n: int) -> None:
        nonlocal failures
        token = config["staff_tokens"][n % len(config["staff_tokens"])]
        rng = random.Random(n)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            while time.monotonic() < stop:
                child = rng.choice(config["children"])
                started = time.perf_counter()
                answer = http.get(f"/v1/children/{child}/timeline", params={"purpose": "support"})
                ms = (time.perf_counter() - started) * 1000
                with lock:
                    if answer.status_code == 200:
                        took.append(ms)
                    else:
                        failures += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return {
        "clients": clients,
        "reads": len(took),
        "failures": failures,
        "rps": round(len(took) / elapsed, 1),
        "p50": round(statistics.median(took), 1) if took else None,
        "p95": round(percentile(took, 95), 1) if took else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--clients", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tsunagu-clients-"))
    postgres = None
    results: list[dict[str, Any]] = []
    try:
        postgres = Postgres(work)
        key_file = work / "signing-key.pem"
        print(f"building a city of {options.cases} cases …", flush=True)
        config = build_world(postgres.url, options.cases, key_file, work)
        for n in [int(w) for w in options.workers.split(",")]:
            env = {**os.environ, "TSUNAGU_RATE_LIMIT": "1000000/minute"}
            with api_processes(n, postgres.url, key_file, work, env) as (serve, base):
                run_clients(base, config, 2, 3)  # warm: caches and connections in every worker
                for clients in [int(c) for c in options.clients.split(",")]:
                    before, load = cpu_seconds(serve.pid), os.getloadavg()[0]
                    result = run_clients(base, config, clients, options.seconds)
                    used = cpu_seconds(serve.pid) - before
                    result |= {
                        "workers": n,
                        "cpu_ms_per_read": round(1000 * used / max(1, result["reads"]), 1),
                        "load": round(load, 1),
                    }
                    results.append(result)
                    print(json.dumps(result), flush=True)
    finally:
        if postgres is not None:
            postgres.close()
        shutil.rmtree(work, ignore_errors=True)
    print("| N | clients | reads/s | p50 ms | p95 ms | API CPU ms/read | failures | load |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['workers']} | {r['clients']} | {r['rps']} | {r['p50']} | {r['p95']} | {r['cpu_ms_per_read']} | "
            f"{r['failures']} | {r['load']} |"
        )
    if options.json:
        options.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
