"""Several API processes, one hub: ``tsunagu serve --workers N`` (uvicorn worker processes built by
``services.http.asgi.app_from_env``) and the rate limits shared through a real Redis on loopback
(``TSUNAGU_RATE_LIMIT_STORAGE``), so that a client's budget is one budget whichever process answers it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from events.clock import JST
from services.auth.tokens import keys_from_file
from services.hub import Hub
from services.runtime import GC_THRESHOLDS
from tests.helpers import free_port, token_header

pytestmark = [pytest.mark.store, pytest.mark.http]

TSUNAGU = Path(sys.executable).with_name("tsunagu")
ORGS = [{"id": "beppu-center", "type": "municipal_center", "municipality": "442020"}]


def _store(tmp_path: Path) -> tuple[str, Path]:
    """A hub on a SQLite file with one child the Beppu centre registered, and the API's signing-key file."""
    database, key_file = f"sqlite:///{tmp_path / 'hub.db'}", tmp_path / "key.pem"
    hub = Hub(database)
    hub.load_orgs(ORGS)
    at = (datetime.now(JST) - timedelta(days=1)).isoformat()
    registration = {
        "id": "r1",
        "kind": "child.registered",
        "child": "c1",
        "source": "beppu-center",
        "basis": "internal",
        "at": at,
        "payload": {"residence": "442020"},
    }
    assert [r.outcome for r in hub.publish([registration])] == ["accepted"]
    hub.close()
    keys_from_file(key_file)
    return database, key_file


def _serve(tmp_path: Path, port: int, database: str, key_file: Path, env: dict[str, str], *more: str):
    log = tmp_path / f"serve-{port}.log"
    process = subprocess.Popen(
        [str(TSUNAGU), "serve", "--port", str(port), "--database", database, "--key-file", str(key_file), *more],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        env={**os.environ, **env},
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.1)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _read(port: int, headers: dict[str, str]) -> int:
    return httpx.get(
        f"http://127.0.0.1:{port}/v1/children/c1/timeline", params={"purpose": "support"}, headers=headers, timeout=30
    ).status_code


def test_a_clients_rate_limit_is_one_budget_across_two_api_processes_on_one_redis(tmp_path, redis_url):
    database, key_file = _store(tmp_path)
    issuer, _ = keys_from_file(key_file)
    env = {"TSUNAGU_RATE_LIMIT": "4/hour", "TSUNAGU_RATE_LIMIT_STORAGE": redis_url}
    a, b = free_port(), free_port()
    servers = [_serve(tmp_path, port, database, key_file, env) for port in (a, b)]
    try:
        sato = token_header(issuer, "beppu-center", "caseworker", user="佐藤")
        assert [_read(a, sato), _read(a, sato), _read(a, sato), _read(b, sato)] == [200] * 4
        # B has answered this client once; alone it would allow three more. The budget is the client's, in Redis.
        response = httpx.get(
            f"http://127.0.0.1:{b}/v1/children/c1/timeline", params={"purpose": "support"}, headers=sato, timeout=30
        )
        assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1
        assert response.json()["error"]["code"] == "rate_limited"
        assert _read(a, sato) == 429
        # Another person of the same centre has a budget of their own.
        assert _read(b, token_header(issuer, "beppu-center", "caseworker", user="田中")) == 200
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=15)


def test_serve_with_two_workers_runs_two_processes_that_answer_and_share_the_limits(tmp_path, redis_url):
    database, key_file = _store(tmp_path)
    issuer, _ = keys_from_file(key_file)
    port = free_port()
    env = {"TSUNAGU_RATE_LIMIT": "6/hour", "TSUNAGU_RATE_LIMIT_STORAGE": redis_url}
    server = _serve(tmp_path, port, database, key_file, env, "--workers", "2")
    try:
        workers = [pid for pid in _children(server.pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(workers) == 2, workers  # uvicorn's worker processes (multiprocessing's spawn)
        suzuki = token_header(issuer, "beppu-center", "caseworker", user="鈴木")
        # Each request on a new connection: the kernel hands them to either worker.
        assert [_read(port, suzuki) for _ in range(6)] == [200] * 6
        assert _read(port, suzuki) == 429
    finally:
        server.terminate()
        server.wait(timeout=30)
    hub = Hub(database)
    try:
        assert hub.verify().ok  # six reads, six access records, from two processes
    finally:
        hub.close()


def test_serve_refuses_several_workers_with_the_development_sign_in(tmp_path):
    database, key_file = _store(tmp_path)
    refused = subprocess.run(
        [str(TSUNAGU), "serve", "--workers", "2", "--database", database, "--key-file", str(key_file)],
        capture_output=True,
        text=True,
        env={**os.environ, "TSUNAGU_DEV_OIDC": "1"},
        timeout=60,
    )
    assert refused.returncode == 2 and "--workers 1" in refused.stderr, refused.stderr


def test_a_worker_process_applies_the_collector_thresholds_and_freezes_its_startup_heap(tmp_path):
    """A worker is a new interpreter (uvicorn spawns it): ``app_from_env`` applies ``GC_THRESHOLDS`` itself, which
    it does not inherit from ``tsunagu serve`` (``services.runtime.start_serving_process``), and once its app is
    built leaves what it holds out of later collections (``freeze_startup_heap``)."""
    database, key_file = _store(tmp_path)
    script = (
        "import gc, json; from services.http.asgi import app_from_env; app_from_env(); "
        "print(json.dumps([list(gc.get_threshold()), gc.get_freeze_count()]))"
    )
    built = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TSUNAGU_DATABASE_URL": database, "TSUNAGU_SIGNING_KEY_FILE": str(key_file)},
    )
    assert built.returncode == 0, built.stderr
    thresholds, frozen = json.loads(built.stdout.strip().splitlines()[-1])
    assert tuple(thresholds) == GC_THRESHOLDS
    assert frozen > 10_000  # the modules, the hub and the app: tens of thousands of objects
