"""Views at centre scale (issue 16 item 1), through HTTP: the progress ledger, the joint ledger, the agenda, the
start page and the CSV of a city's centre.

    .venv/bin/python -m bench.ledger_scale --cases 500,5000 [--database sqlite:////tmp/ledger-{cases}.db]
    .venv/bin/python -m bench.ledger_scale --cases 5000 --reuse    # measure again on the stores already built
    .venv/bin/python -m bench.ledger_scale --cases 20000 --build-only    # build only (13 min loaded, 1.6 GB)

A prefecture of 10 municipalities (``bench/prefecture.py``): the city (municipality 1: one こども家庭センター
``center-442001``, 200 schools and 100 nurseries) with ``--cases`` children, and nine towns with ``--cases`` / 10
children each, every child with one open 要対協 case (40 % abuse) and about 24 events (registration, target list, a
year of monthly reports and daily attendance, concerns, notes, shares, reviews, a plan and its consent, the 児相's
ledger updates for abuse cases); the 児童相談所 ``jiso-0`` covers the 10 municipalities. The store is built once
(``--reuse`` measures again on it: before and after the same data).

Then, warm (each view once before timing), through HTTP on loopback (uvicorn in this process, in a thread; httpx;
the centre's caseworker's bearer token): ``GET /v1/ledger?page=1&per_page=50``, a filter change (open cases with
alerts or concerns), a sort change (case number, descending), each ``--repeat`` times (p50, p95); the agenda
(``GET /v1/agenda``) of a meeting day with about 100 cases due; the start page ``GET /ui/`` (a signed session
cookie of the centre's caseworker, made with the app's session key as the sign-in would); the CSV of every row
(``GET /ui/ledger.csv``); the joint ledger's first page as ``jiso-0`` (``GET /v1/joint-ledger``). Every view records
its reads. Runs on the code it is imported with (a tree from before this bench: copy it and ``prefecture.py`` in).

Cold (``--cold VIEW``, one of ``COLD_VIEWS``): the first request of one view in this new process (a new API
process: nothing cached, every child the view covers loaded and decided), its wall and CPU time, then the same
view warm (``--repeat`` times). The agenda's day is given (``--meeting-day``, from a warm run's output), so that no
other view runs first. ``--take-snapshots``: write every child's snapshot into the store (``--database``, not a
copy) through the views' own mechanism (``HubStore.load_children`` and ``ChildSnapshots.keep_all``, threshold 1)
and stop: a store whose children all have one, as the views leave it once they have loaded every child cold
(``VIEW_SNAPSHOT_AFTER``, 20 events: the generated children have about 24).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.prefecture import JST, Prefecture, event_stream, make_prefecture
from consent.model import Settings
from events.store import ChildRecord
from services.hub import Hub, SettableClock

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=JST)
CENTRE, JISO = "center-442001", "jiso-0"
FIRST = {"page": "1", "per_page": "50"}
FILTER = FIRST | {"status": "open", "alerts": "any"}
SORT = FIRST | {"sort": "case", "order": "desc"}
TOWNS = 9


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def prefecture() -> Prefecture:
    """10 municipalities, 200 schools and 100 nurseries each, one 児相 (``jiso-0``) covering all of them."""
    pref = make_prefecture(municipalities=1 + TOWNS, schools_per=200, nurseries_per=100)
    orgs = [
        dict(o, covers=list(pref.municipalities) if o["id"] == JISO else [])
        if o["type"] == "child_guidance_center"
        else o
        for o in pref.orgs
    ]
    return replace(pref, orgs=orgs, jiso={m: JISO for m in pref.municipalities})


def build(database: str, cases: int, batch: int = 1000) -> None:
    """The prefecture's store, published in batches of ``batch`` events with the hub's default cache (the centre's
    indexes are kept apart in it, ``events.store.WeighedCache``, so the rate does not fall as the store grows); its
    progress (events, seconds, events/s of the last 50,000) on stderr."""
    pref = prefecture()
    hub = Hub(database, settings=Settings(joint_ledger=True), clock=SettableClock(NOW))
    hub.load_orgs(pref.orgs)
    city = replace(pref, municipalities=pref.municipalities[:1])
    towns = replace(pref, municipalities=pref.municipalities[1:])
    chunk: list[dict[str, Any]] = []
    published, started, last = 0, time.perf_counter(), time.perf_counter()

    def send() -> None:
        nonlocal published, last
        bad = [r for r in hub.publish(chunk) if r.outcome != "accepted"]
        assert not bad, bad[0].to_dict()
        published += len(chunk)
        chunk.clear()
        if published % 50_000 < batch:
            now = time.perf_counter()
            rate = 50_000 / (now - last)
            print(f"  {published} events, {now - started:.0f} s, {rate:.0f} events/s", file=sys.stderr, flush=True)
            last = now

    for stream in (
        event_stream(city, cases, 24, prefix="city"),
        event_stream(towns, cases * TOWNS // 10, 24, prefix="town"),
    ):
        for envelope in stream:
            chunk.append(envelope)
            if len(chunk) == batch:
                send()
    if chunk:
        send()
    hub.close()


class Server:
    """The API and the web pages (``create_app``) on a loopback port, in a thread of this process."""

    def __init__(self, hub: Hub, key_dir: Path):
        import uvicorn

        from services.auth.tokens import keys_from_file
        from services.http.app import create_app
        from services.web.session import WebSettings

        self.issuer, verifier = keys_from_file(key_dir / "signing-key.pem")
        self.session_key = os.urandom(32)
        web = WebSettings(issuer="http://127.0.0.1:9/", client_id="bench", session_key=self.session_key)
        app = create_app(hub, verifier, web=web)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        self.base = f"http://127.0.0.1:{self.port}"

    def token(self, org: str, role: str = "caseworker") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.issue(org=org, role=role, user='bench')}"}

    def session(self, org: str, role: str = "caseworker") -> dict[str, str]:
        """The cookie the sign-in would set (Starlette's signed session), for ``org``'s ``role``."""
        from itsdangerous import TimestampSigner

        from services.web.session import SESSION_COOKIE

        person = {"name": "ベンチ", "subject": "bench", "org": org, "role": role, "roles": [role]}
        data = base64.b64encode(json.dumps({"person": person, "seen": time.time() + 86400}).encode())
        signed = TimestampSigner(self.session_key.hex()).sign(data).decode()
        return {"Cookie": f"{SESSION_COOKIE}={signed}"}

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def timed(call: Callable[[], Any], repeat: int) -> dict[str, float]:
    call()  # warm
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(percentile(times, 95), 1)}


def meeting_day(client: httpx.Client, server: Server, due: int) -> date:
    """A meeting day on which about ``due`` open cases are due for review (from the ledger's open rows, sorted by
    next review, through the API: the ``due``-th row's day)."""
    params = {"status": "open", "sort": "next_review", "per_page": "1", "page": str(due)}
    got = client.get("/v1/ledger", params=params, headers=server.token(CENTRE)).json()
    return date.fromisoformat(got["rows"][0]["next_review"])


def fresh_copy(database: str) -> str:
    """A copy of a SQLite store to measure on (every run the same data); other databases as they are."""
    if database.startswith("sqlite:///") and not database.endswith(":memory:"):
        built = Path(database[len("sqlite:///") :])
        run = built.with_suffix(".run.db")
        for stale in (run, Path(f"{run}-wal"), Path(f"{run}-shm")):  # a run stopped midway leaves its WAL
            stale.unlink(missing_ok=True)
        shutil.copyfile(built, run)
        return f"sqlite:///{run}"
    return database


def measure(database: str, cases: int, repeat: int, key_dir: Path) -> dict[str, Any]:
    database = fresh_copy(database)
    hub = Hub(database, settings=Settings(joint_ledger=True), clock=SettableClock(NOW))
    server = Server(hub, key_dir)
    out: dict[str, Any] = {"cases": cases}
    try:
        with httpx.Client(base_url=server.base, timeout=600) as client:
            token, jiso = server.token(CENTRE), server.token(JISO)

            def get(path: str, params: dict[str, str] | None = None, headers: dict[str, str] = token) -> httpx.Response:
                response = client.get(path, params=params, headers=headers)
                assert response.status_code == 200, (path, response.status_code, response.text[:300])
                return response

            first = get("/v1/ledger", FIRST).json()
            out["ledger_total"] = first["total"]
            on = meeting_day(client, server, 100)
            out["meeting_day"] = on.isoformat()
            agenda = get("/v1/agenda", {"date": on.isoformat()}).json()
            out["agenda_cases"] = len(agenda["attention"]) + len(agenda["confirmation"])
            out["joint_total"] = get("/v1/joint-ledger", FIRST, jiso).json()["total"]
            out["first_page"] = timed(lambda: get("/v1/ledger", FIRST), repeat)
            out["filter_change"] = timed(lambda: get("/v1/ledger", FILTER), repeat)
            out["sort_change"] = timed(lambda: get("/v1/ledger", SORT), repeat)
            out["agenda"] = timed(lambda: get("/v1/agenda", {"date": on.isoformat()}), max(3, repeat // 4))
            cookie = server.session(CENTRE)
            out["start_page"] = timed(lambda: get("/ui/", headers=cookie), max(3, repeat // 4))
            out["csv_all_rows"] = timed(lambda: get("/ui/ledger.csv", headers=cookie), 3)
            out["joint_first_page"] = timed(lambda: get("/v1/joint-ledger", FIRST, jiso), repeat)
    finally:
        server.stop()
        hub.close()
    return out


COLD_VIEWS = ("ledger", "agenda", "start", "joint", "csv")


def measure_cold(database: str, view: str, repeat: int, key_dir: Path, meeting_day: str) -> dict[str, Any]:
    """``view``'s first request in this process (cold: wall and CPU ms), then ``repeat`` warm ones (see the module
    docstring)."""
    database = fresh_copy(database)
    hub = Hub(database, settings=Settings(joint_ledger=True), clock=SettableClock(NOW))
    server = Server(hub, key_dir)
    out: dict[str, Any] = {"view": view}
    try:
        with httpx.Client(base_url=server.base, timeout=600) as client:
            token, jiso, cookie = server.token(CENTRE), server.token(JISO), server.session(CENTRE)
            path, params, headers = {
                "ledger": ("/v1/ledger", FIRST, token),
                "agenda": ("/v1/agenda", {"date": meeting_day}, token),
                "start": ("/ui/", None, cookie),
                "joint": ("/v1/joint-ledger", FIRST, jiso),
                "csv": ("/ui/ledger.csv", None, cookie),
            }[view]

            def get() -> httpx.Response:
                response = client.get(path, params=params, headers=headers)
                assert response.status_code == 200, (path, response.status_code, response.text[:300])
                return response

            cpu, started = time.process_time(), time.perf_counter()
            get()
            out["cold_ms"] = round((time.perf_counter() - started) * 1000, 1)
            out["cold_cpu_ms"] = round((time.process_time() - cpu) * 1000, 1)
            out["warm"] = timed(get, repeat)
            out["snapshots_taken"] = hub.store.child_snapshots.count()
    finally:
        server.stop()
        hub.close()
    return out


def take_snapshots(database: str, cases: int) -> int:
    """Every generated child's snapshot, written into ``database`` by the views' mechanism (see the module
    docstring); how many were written."""
    hub = Hub(database, settings=Settings(joint_ledger=True), clock=SettableClock(NOW))
    try:
        hub.store.child_snapshots.view_after = 1
        children = [f"city{i:07d}" for i in range(cases)] + [f"town{i:07d}" for i in range(cases * TOWNS // 10)]
        written = 0
        for first in range(0, len(children), 1000):
            _, due = hub.store.load_children({ChildRecord.create_id(c): c for c in children[first : first + 1000]})
            written += hub.store.child_snapshots.keep_all(due)
        return written
    finally:
        hub.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="500,5000")
    parser.add_argument("--database", default="sqlite:////tmp/tsunagu-ledger-scale-{cases}.db")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--reuse", action="store_true", help="measure on the stores already built")
    parser.add_argument("--batch", type=int, default=1000, help="events per publish while building")
    parser.add_argument("--build-only", action="store_true", help="build the stores, measure nothing")
    parser.add_argument("--keys", default="/tmp/tsunagu-ledger-scale-keys")
    parser.add_argument("--out", default="")
    parser.add_argument("--cold", choices=COLD_VIEWS, help="one view's first request in this new process, then warm")
    parser.add_argument("--meeting-day", default="", help="the agenda's day for --cold agenda (a warm run's output)")
    parser.add_argument("--take-snapshots", action="store_true", help="write every child's snapshot, then stop")
    args = parser.parse_args()
    results = []
    key_dir = Path(args.keys)
    key_dir.mkdir(parents=True, exist_ok=True)
    for cases in [int(c) for c in args.cases.split(",")]:
        database = args.database.format(cases=cases)
        if not args.reuse:
            if database.startswith("sqlite:///") and not database.endswith(":memory:"):
                Path(database[len("sqlite:///") :]).unlink(missing_ok=True)
            started = time.perf_counter()
            build(database, cases, args.batch)
            print(json.dumps({"cases": cases, "build_s": round(time.perf_counter() - started, 1)}), flush=True)
        if args.build_only:
            continue
        if args.take_snapshots:
            print(json.dumps({"cases": cases, "snapshots_written": take_snapshots(database, cases)}), flush=True)
            continue
        if args.cold:
            results.append(measure_cold(database, args.cold, args.repeat, key_dir, args.meeting_day))
            print(json.dumps(results[-1] | {"cases": cases}, ensure_ascii=False), flush=True)
            continue
        results.append(measure(database, cases, args.repeat, key_dir))
        print(json.dumps(results[-1], ensure_ascii=False), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
