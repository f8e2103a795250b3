"""Saturating HTTP load, closed loop (issue 16, item 2 through HTTP: throughput grows, never falls, as clients are
added up to the cores, and 2 API processes serve ≥ 1.6× one).

    apt-get install -y wrk      # Debian's wrk 4.1 (LuaJIT); for this bench only, not in CI
    .venv/bin/python -m bench.http_saturate [--workers 1,2,4] [--clients 1,2,4,8] [--seconds 12] [--cases 200]
        [--ledger-share 0.2] [--layout ports|shared] [--profile DIR]
        [--py-spy-flags "--gil"]

Why wrk and not locust: the load run (``bench/load.py``) paces 50 sessions and offers about 42 requests a second,
which one process already answers, so it cannot show growth; locust without pauses spends a core of Python on
making the requests, on a machine of two. wrk is C (an epoll loop per thread): it used 0.01–0.02 of a core here,
about 2 % of the API's CPU (measured and printed), so the API and PostgreSQL keep the cores. Closed loop:
``--clients`` c runs ``wrk -t c -c c`` (one connection a thread), each connection sending its next request when
the answer came; the Lua script (``bench/http_saturate.lua``) pairs each request with its answer and writes the
kind, status and time of each.

On loopback only: a throwaway PostgreSQL (``deploy/local-postgres.sh``, not durable), the city of
``bench/load.py`` (``build_world``: ``--cases`` open cases, 24 events a child, one centre, 60 caseworkers with
tokens of their own), then for each N ``tsunagu serve --workers N`` (rate limit set far above the load, counted
in each process's memory), a warm-up, and for each client count ``--seconds`` of requests: a timeline read of a
random child (purpose support), or, with ``--ledger-share``, a ledger page (``GET /v1/ledger?page=…&per_page=50``,
a filter or a sort one time in two; every request with one of the caseworkers' tokens, at random). Every answer but 200 is a failure (the figures count only with none).

**Layouts of N API processes** (``--layout``):

- ``ports`` (the default since session 6): N ``tsunagu serve`` processes of one worker each, each on a port of its
  own, as the production layout runs them (``deploy/README.md``: ``tsunagu-api@PORT`` behind a reverse proxy that
  balances requests). wrk's threads are given the N addresses in turn (``setup`` in the Lua script sets
  ``thread.addr``), so c clients are split evenly over the N processes (c = 1 uses only the first).
- ``nginx``: the ``ports`` layout behind nginx (``apt-get install -y nginx-light``) on a port of its own, one
  nginx worker, ``least_conn`` over the N processes with kept-alive connections to them (``keepalive``,
  HTTP/1.1), as a request-balancing front would; wrk's c connections all go to nginx, which gives each request to
  the process with the fewest requests in hand. nginx's CPU is recorded (``front``): it is what the front costs.
- ``shared`` (the only one before session 6): one ``tsunagu serve --workers N``, uvicorn's N workers accepting on
  one listening socket. wrk opens all its kept-alive connections at once and the kernel gives each to whichever
  worker is awake: often every connection lands on one worker, and two processes serve as one (the figures of
  "Saturating HTTP load" in ``docs/benchmarks.md`` were measured so). ``cores of each worker`` shows it.
- ``nginx-shared``: nginx (as in ``nginx``) in front of one ``tsunagu serve --workers N``: a proxy's kept-alive
  connections to one port whose workers share its socket, the layout ``deploy/README.md`` advised before session 6.

Prints per N and client count: requests per second, p50/p95/p99 per kind, and the CPU (user + system, from
``/proc``) of the API processes per request, of PostgreSQL (the postmaster and its backends) per request, and the
cores used by the API, PostgreSQL, wrk and the whole machine (``/proc/stat``: the difference is other users'), and
the cores of each API process. ``--profile DIR`` runs ``py-spy record`` on each API worker during the largest
client count of each N (raw stacks in DIR; ``--py-spy-flags`` adds e.g. ``--gil`` or ``--idle``; the profiler's own
CPU disturbs that step's figures).

"Before and after" on one machine: run this file from the newer tree with ``--code DIR`` pointing at a
``git archive`` of the older one, so that the servers run the older code (``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.load import _free_port, _wait, api_processes, build_world, cpu_seconds, percentile
from bench.soak import TSUNAGU, Postgres

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ["", "", "", "&status=open&alerts=any", "&sort=case&order=desc", "&sort=child"]


def lua_data(config: dict[str, Any], ledger_share: float) -> str:
    """The run's settings as a Lua table for ``bench/http_saturate.lua`` (``dofile``)."""

    def strings(values: list[str]) -> str:
        return "{" + ",".join(json.dumps(v) for v in values) + "}"

    return (
        f"return {{tokens={strings(config['staff_tokens'])}, children={strings(config['children'])}, "
        f"pages={max(1, config['cases'] // 50)}, ledger_share={ledger_share}, variants={strings(VARIANTS)}}}\n"
    )


def tree_cpu(pid: int) -> float:
    """User + system CPU of ``pid``, of its children that ended (waited for), and of its children running."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += sum(int(f) for f in fields[11:15]) / ticks
        children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return total
    for child in children:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def context_switches(pids: list[int]) -> int:
    """Context switches (voluntary + involuntary) of every thread of ``pids`` so far (``/proc/PID/task/*/status``;
    threads that ended are not counted, anyio's worker threads live for the whole run): with more threads wanting
    the one GIL of a process, each request costs more hand-overs between them."""
    total = 0
    for pid in pids:
        for status in Path(f"/proc/{pid}/task").glob("*/status"):
            try:
                lines = status.read_text().splitlines()
            except OSError:
                continue
            for line in lines:
                name, _, value = line.partition(":")
                if name in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                    total += int(value)
    return total


def machine_busy() -> float:
    """CPU seconds the whole machine spent not idle (all cores, ``/proc/stat``): with the API's, PostgreSQL's and
    wrk's, it says how much went to everything else (other users of a shared machine)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def postmaster(postgres: Postgres) -> int:
    return int((postgres.directory / "data" / "postmaster.pid").read_text().split()[0])


def run_wrk(bases: list[str], clients: int, seconds: float, data_file: Path, out: Path) -> list[tuple[str, int, float]]:
    """``wrk -t c -c c`` for ``seconds``; with several ``bases`` (the ``ports`` layout) thread i connects to
    ``bases[i mod N]`` (``TSUNAGU_WRK_ADDRS``, read by the Lua script's ``setup``)."""
    addresses = ",".join(base.removeprefix("http://") for base in bases)
    env = {
        **os.environ,
        "TSUNAGU_WRK_DATA": str(data_file),
        "TSUNAGU_WRK_OUT": str(out),
        "TSUNAGU_WRK_ADDRS": addresses,
    }
    done = subprocess.run(
        ["wrk", "-t", str(clients), "-c", str(clients), "-d", f"{int(seconds)}s", "--timeout", "60s",
         "-s", str(ROOT / "bench" / "http_saturate.lua"), bases[0]],
        env=env, capture_output=True, text=True, timeout=seconds + 120,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")
    answers = []
    for line in out.read_text().splitlines():
        kind, status, micros = line.split()
        answers.append((kind, int(status), int(micros) / 1000))
    return answers


NGINX_CONF = """worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream tsunagu_api {{
        least_conn;
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://tsunagu_api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_buffers 64 16k;
            proxy_max_temp_file_size 0;
        }}
    }}
}}
"""


@contextmanager
def nginx_front(bases: list[str]) -> Iterator[tuple[str, int]]:
    """nginx balancing requests over ``bases`` (least_conn, kept-alive upstream connections) on a free loopback
    port, in a directory of its own (readable by nginx's worker user); yields its base address and master pid."""
    directory = Path(tempfile.mkdtemp(prefix="tsunagu-nginx-"))
    os.chmod(directory, 0o755)
    port = _free_port()
    servers = "\n".join(f"        server {base.removeprefix('http://')};" for base in bases)
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=directory, servers=servers, port=port))
    front = subprocess.Popen(["nginx", "-p", str(directory), "-c", str(conf), "-g", "daemon off;"])
    base = f"http://127.0.0.1:{port}"
    try:
        if not _wait(lambda: httpx.get(f"{base}/v1/health", timeout=2).status_code == 200, 30):
            raise SystemExit(f"nginx did not answer: {(directory / 'error.log').read_text(errors='replace')[-2000:]}")
        yield base, front.pid
    finally:
        front.terminate()
        front.wait(timeout=30)
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def api_layout(
    layout: str, n: int, database: str, key_file: Path, work: Path, env: dict[str, str]
) -> Iterator[tuple[list[str], list[int], list[int], int | None]]:
    """N API processes in ``layout`` (see the module); yields their base addresses, the pids whose CPU is the
    API's (with their children), each worker's pid, and the front's pid (nginx's master: its workers are its
    children) or ``None``."""
    with ExitStack() as stack:
        if layout in ("shared", "nginx-shared"):
            serve, base = stack.enter_context(api_processes(n, database, key_file, work, env))
            workers = children_of(serve.pid) or [serve.pid]
            if layout == "nginx-shared":
                front, front_pid = stack.enter_context(nginx_front([base]))
                yield [front], [serve.pid], workers, front_pid
                return
            yield [base], [serve.pid], workers, None
            return
        servers = [
            stack.enter_context(api_processes(1, database, key_file, work, env, log_name=f"serve-port-{i}"))
            for i in range(n)
        ]
        pids = [serve.pid for serve, _ in servers]
        bases = [base for _, base in servers]
        if layout == "nginx":
            front, front_pid = stack.enter_context(nginx_front(bases))
            yield [front], pids, pids, front_pid
            return
        yield bases, pids, pids, None


def children_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--clients", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=12)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--ledger-share", type=float, default=0.2)
    parser.add_argument("--code", type=Path, help="a tree whose code the servers run (PYTHONPATH)")
    parser.add_argument("--profile", type=Path, help="py-spy raw stacks of the workers at the largest client count")
    parser.add_argument("--layout", choices=["ports", "nginx", "shared", "nginx-shared"], default="ports")
    parser.add_argument("--py-spy-flags", default="", help="added to py-spy record, e.g. --gil or --idle")
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    if options.layout.startswith("nginx") and shutil.which("nginx") is None:
        raise SystemExit("nginx not found: apt-get install -y nginx-light")
    work = Path(tempfile.mkdtemp(prefix="tsunagu-saturate-"))
    postgres = None
    results: list[dict[str, Any]] = []
    env = {**os.environ, "TSUNAGU_RATE_LIMIT": "100000000/minute"}
    if options.code is not None:
        env["PYTHONPATH"] = str(options.code.resolve())
    client_counts = [int(c) for c in options.clients.split(",")]
    try:
        postgres = Postgres(work)
        key_file = work / "signing-key.pem"
        print(f"building a city of {options.cases} cases …", flush=True)
        config = build_world(postgres.url, options.cases, key_file, work)
        data_file = work / "wrk-data.lua"
        data_file.write_text(lua_data(config, options.ledger_share))
        pg_pid = postmaster(postgres)
        for n in [int(w) for w in options.workers.split(",")]:
            with api_layout(options.layout, n, postgres.url, key_file, work, env) as layout:
                bases, api_pids, workers, front_pid = layout
                run_wrk(bases, max(2, n), 6, data_file, work / "warm.txt")  # caches and connections in every worker
                for clients in client_counts:
                    spies = []
                    if options.profile is not None and clients == max(client_counts):
                        options.profile.mkdir(parents=True, exist_ok=True)
                        for worker in workers:
                            spies.append(
                                subprocess.Popen(
                                    [
                                        str(Path(TSUNAGU).with_name("py-spy")),
                                        "record",
                                        "-r",
                                        "50",
                                        "-d",
                                        str(int(options.seconds)),
                                        "-f",
                                        "raw",
                                        *options.py_spy_flags.split(),
                                        "-o",
                                        str(options.profile / f"{options.layout}-n{n}-c{clients}-{worker}.txt"),
                                        "-p",
                                        str(worker),
                                    ],
                                    stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL,
                                )  # fmt: skip
                            )
                    each = {worker: cpu_seconds(worker) for worker in workers}  # a worker has no children
                    api = sum(cpu_seconds(pid) for pid in api_pids)
                    pg, load = tree_cpu(pg_pid), os.getloadavg()[0]
                    front = 0.0 if front_pid is None else cpu_seconds(front_pid)
                    switches = context_switches(workers)
                    busy = machine_busy()
                    own = resource.getrusage(resource.RUSAGE_CHILDREN)
                    started = time.monotonic()
                    answers = run_wrk(bases, clients, options.seconds, data_file, work / "answers.txt")
                    elapsed = time.monotonic() - started
                    mine = resource.getrusage(resource.RUSAGE_CHILDREN)
                    api = sum(cpu_seconds(pid) for pid in api_pids) - api
                    pg = tree_cpu(pg_pid) - pg
                    front = 0.0 if front_pid is None else cpu_seconds(front_pid) - front
                    switches = context_switches(workers) - switches
                    each = {worker: cpu_seconds(worker) - before for worker, before in each.items()}
                    busy = machine_busy() - busy
                    generator = (mine.ru_utime + mine.ru_stime) - (own.ru_utime + own.ru_stime)
                    for spy in spies:
                        spy.wait(timeout=120)
                    if spies:  # py-spy is a child too: its CPU is not the generator's
                        generator = None
                    took: dict[str, list[float]] = defaultdict(list)
                    failures: dict[str, int] = defaultdict(int)
                    for kind, status, ms in answers:
                        if status == 200:
                            took[kind].append(ms)
                        else:
                            failures[kind] += 1
                    ok = sum(len(v) for v in took.values())
                    result = {
                        "layout": options.layout,
                        "workers": n,
                        "clients": clients,
                        "rps": round(ok / elapsed, 1),
                        "failures": sum(failures.values()),
                        "kinds": {
                            kind: {
                                "requests": len(values),
                                "failures": failures[kind],
                                "p50": round(percentile(values, 50), 1),
                                "p95": round(percentile(values, 95), 1),
                                "p99": round(percentile(values, 99), 1),
                            }
                            for kind, values in sorted(took.items())
                        },
                        "api_cpu_ms_per_request": round(1000 * api / max(1, ok), 2),
                        "pg_cpu_ms_per_request": round(1000 * pg / max(1, ok), 2),
                        "api_context_switches_per_request": round(switches / max(1, ok), 1),
                        "api_cores": round(api / elapsed, 2),
                        # each worker's share, busiest first: in the shared layout two workers at 1.0 and 0.0
                        # serve as one (the kernel hands each of wrk's kept-alive connections to whichever worker
                        # accepts it)
                        "worker_cores": sorted((round(cpu / elapsed, 2) for cpu in each.values()), reverse=True),
                        "pg_cores": round(pg / elapsed, 2),
                        "front_cpu_ms_per_request": None if front_pid is None else round(1000 * front / max(1, ok), 2),
                        "front_cores": None if front_pid is None else round(front / elapsed, 3),
                        "wrk_cores": None if generator is None else round(generator / elapsed, 3),
                        "machine_busy_cores": round(busy / elapsed, 2),
                        "load": round(load, 1),
                        "profiled": bool(spies),
                    }
                    results.append(result)
                    print(json.dumps(result), flush=True)
    finally:
        if postgres is not None:
            postgres.close()
        shutil.rmtree(work, ignore_errors=True)
    print(table(results))
    if options.json:
        options.json.write_text(json.dumps(results, indent=1))


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| layout | N | clients | requests/s | failures | timeline p50 / p95 / p99 ms | ledger page p50 / p95 / p99 ms | "
        "API CPU ms/request | API context switches/request | PostgreSQL CPU ms/request | nginx CPU ms/request | cores: API / PostgreSQL / nginx / wrk / machine busy | cores of each worker | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cells = []
        for kind in ("timeline", "ledger"):
            k = r["kinds"].get(kind)
            cells.append(f"{k['p50']:g} / {k['p95']:g} / {k['p99']:g}" if k else "-")
        lines.append(
            f"| {r['layout']} | {r['workers']} | {r['clients']} | {r['rps']} | {r['failures']} | {cells[0]} | {cells[1]} | "
            f"{r['api_cpu_ms_per_request']} | {r['api_context_switches_per_request']} | {r['pg_cpu_ms_per_request']} | {r['front_cpu_ms_per_request']} | "
            f"{r['api_cores']} / {r['pg_cores']} / {r['front_cores']} / "
            f"{r['wrk_cores']} / {r['machine_busy_cores']} | {' + '.join(str(c) for c in r['worker_cores'])} | {r['load']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
