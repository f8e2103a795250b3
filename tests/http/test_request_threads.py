"""Request threads bounded (``services.http.threads``, ``TSUNAGU_REQUEST_THREADS``) and the turn's wait bounded
(``TSUNAGU_TURN_LOCK_TIMEOUT``), on a real ``tsunagu serve`` process on PostgreSQL, while another process (this
test's) holds a child's access log in its turn, as a writer that stopped in it would: with one request thread
waiting, a read of another child goes on; with every request thread waiting, ``/v1/health`` still answers and
other requests queue (not refused); the waiters get 503 ``busy`` with ``Retry-After`` once the wait is spent
(they do not hang), having stored nothing; the queued read is answered then; once the holder commits, the child is
read again, and the audit log verifies."""

from __future__ import annotations

import os
import subprocess
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from events.clock import JST
from events.store import AccessLog
from services.audit.replay import access_records
from services.auth.tokens import keys_from_file
from services.http.threads import request_threads_from_env
from services.hub import Hub
from tests.events.test_turn_wait import waiting_for
from tests.helpers import free_port, token_header
from tests.http.test_workers import TSUNAGU, _serve

pytestmark = [pytest.mark.store, pytest.mark.http]

ORGS = [{"id": "beppu-center", "type": "municipal_center", "municipality": "442020"}]


def _store(database: str, key_file: Path) -> None:
    hub = Hub(database)
    try:
        hub.load_orgs(ORGS)
        at = (datetime.now(JST) - timedelta(days=1)).isoformat()
        registrations = [
            {
                "id": f"r-{child}",
                "kind": "child.registered",
                "child": child,
                "source": "beppu-center",
                "basis": "internal",
                "at": at,
                "payload": {"residence": "442020"},
            }
            for child in ("c1", "c2", "c3")
        ]
        assert {r.outcome for r in hub.publish(registrations)} == {"accepted"}
    finally:
        hub.close()
    keys_from_file(key_file)


class Read(threading.Thread):
    """A timeline read of ``child`` in a thread of its own; ``response`` once answered."""

    def __init__(self, port: int, child: str, headers: dict[str, str]):
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/v1/children/{child}/timeline"
        self.headers = headers
        self.response: httpx.Response | None = None
        self.start()

    def run(self) -> None:
        self.response = httpx.get(self.url, params={"purpose": "support"}, headers=self.headers, timeout=120)

    def answered(self, timeout: float) -> httpx.Response:
        self.join(timeout)
        assert self.response is not None, f"{self.url} was not answered"
        return self.response


def _until(condition: Any, what: str) -> None:
    for _ in range(600):
        if condition():
            return
        threading.Event().wait(0.05)
    raise AssertionError(what)


@pytest.mark.postgres
def test_every_request_thread_waiting_for_a_held_child_health_answers_and_the_waiters_get_busy(tmp_path, postgres_url):
    server, schema = postgres_url.split("?schema=")
    key_file = tmp_path / "key.pem"
    _store(postgres_url, key_file)
    issuer, _ = keys_from_file(key_file)
    headers = token_header(issuer, "beppu-center", "caseworker", user="佐藤")
    port = free_port()
    env = {"TSUNAGU_REQUEST_THREADS": "2", "TSUNAGU_TURN_LOCK_TIMEOUT": "10"}
    api = _serve(tmp_path, port, postgres_url, key_file, env)
    holder = Hub(postgres_url)  # another process's writer
    logs = [AccessLog.create_id("c1"), AccessLog.create_id("c3")]
    try:
        assert Read(port, "c1", headers).answered(60).status_code == 200
        with holder.store.recorder.streams_locked(logs) as (held, _):  # c1's and c3's logs held in their turn
            # held for as long as the test needs: the server's idle limit would end the holder after 5 s
            held.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
            first = Read(port, "c1", headers)
            _until(lambda: waiting_for(server, schema, logs[0]) == 1, "the read of c1 did not wait for its turn")
            # one request thread waits: the other reads another child
            assert Read(port, "c2", headers).answered(60).status_code == 200
            second = Read(port, "c3", headers)
            _until(lambda: waiting_for(server, schema, logs[1]) == 1, "the read of c3 did not wait for its turn")
            queued = Read(port, "c2", headers)  # no request thread is free: it queues
            health = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=60)
            assert health.status_code == 200 and health.json()["status"] == "ok"
            assert [waiting_for(server, schema, log) for log in logs] == [1, 1], "health waited for the waiters"
            assert queued.response is None  # the bound holds: two requests at a time
            for waiter in (first, second):
                busy = waiter.answered(90)  # not hanging: the turn's wait is spent
                assert busy.status_code == 503, busy.text
                assert int(busy.headers["Retry-After"]) >= 1
                error = busy.json()["error"]
                assert error["code"] == "busy" and "混み合っている" in error["message_ja"]
            assert queued.answered(60).status_code == 200
            assert [waiting_for(server, schema, log) for log in logs] == [0, 0]
        # nothing of the waiters was stored: c1 has the first read's record only, c3 none
        children = [r["child"] for r in access_records(holder.store)]
        assert (children.count("c1"), children.count("c3")) == (1, 0)
        assert Read(port, "c1", headers).answered(60).status_code == 200  # the turn is free again
        records = list(access_records(holder.store))
        assert sorted(r["sequence"] for r in records if r["child"] == "c1") == [1, 2]
        assert holder.verify().ok
        audit = subprocess.run(
            [str(TSUNAGU), "audit", "verify", "--database", postgres_url], capture_output=True, text=True, timeout=300
        )
        assert audit.returncode == 0, audit.stdout + audit.stderr
    finally:
        holder.close()
        api.terminate()
        api.wait(timeout=15)


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_serve_refuses_request_threads_that_are_not_a_positive_integer(tmp_path, value):
    key_file = tmp_path / "key.pem"
    keys_from_file(key_file)
    served = subprocess.run(
        [str(TSUNAGU), "serve", "--port", str(free_port()), "--database", f"sqlite:///{tmp_path / 'hub.db'}"]
        + ["--key-file", str(key_file)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TSUNAGU_REQUEST_THREADS": value},
    )
    assert served.returncode != 0
    assert "TSUNAGU_REQUEST_THREADS" in served.stderr and "1以上の整数" in served.stderr, served.stderr


@pytest.mark.unit
def test_a_worker_is_not_built_with_request_threads_that_are_not_a_positive_integer(monkeypatch):
    from services.http.asgi import app_from_env

    monkeypatch.setenv("TSUNAGU_REQUEST_THREADS", "many")
    with pytest.raises(RuntimeError, match="TSUNAGU_REQUEST_THREADS='many'"):
        app_from_env()


def test_an_app_runs_under_the_bound_however_it_is_built(tmp_path, monkeypatch):
    """``create_app`` bounds the request threads in its lifespan: a ``TestClient`` used with ``with`` runs the
    app's requests under the bound, as ``tsunagu serve`` does. It opens a store (SQLite): marked ``store`` (the
    module's), not ``unit``."""
    import anyio.to_thread
    from fastapi.testclient import TestClient

    from services.http.app import create_app

    monkeypatch.setenv("TSUNAGU_REQUEST_THREADS", "3")
    hub = Hub(f"sqlite:///{tmp_path / 'hub.db'}")
    try:
        _, verifier = keys_from_file(tmp_path / "key.pem")
        with TestClient(create_app(hub, verifier)) as client:

            async def tokens() -> float:
                return anyio.to_thread.current_default_thread_limiter().total_tokens

            assert client.portal is not None
            assert client.portal.call(tokens) == 3
    finally:
        hub.close()


@pytest.mark.unit
def test_the_request_threads_default_to_anyio_s_own_and_read_a_positive_integer():
    """Anyio's 40 unless set (session 7's alternated runs did not show a gain from fewer, ``docs/benchmarks.md``);
    a deployment that has measured one sets fewer."""
    assert request_threads_from_env({}) == request_threads_from_env({"TSUNAGU_REQUEST_THREADS": " "}) == 40
    assert request_threads_from_env({"TSUNAGU_REQUEST_THREADS": "2"}) == 2
