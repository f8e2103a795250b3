"""Contention on one child: many publishers and readers at once never get a server error.

Everything that writes with optimistic concurrency (a child's stream, its access log, quarantine, audit trails)
retries a lost race with jittered backoff within a time budget (``events.retry``); only a request that still
cannot be served in its budget gets 503 with ``Retry-After``. Checked through real paths, loopback only, bounded
in count and time:

- on the real PostgreSQL: three ``tsunagu serve`` processes on one database and a Kafka ingest worker
  (``tsunagu worker ingest``) storing events for the same child, while client *processes* publish to and read
  that child through all three servers;
- on SQLite: one app, many threads publishing and reading one child.

Both then check what the store holds: every read that returned content has exactly one access record (matched by
the ``access_record`` id of the response), no record is there twice or without a read that returned it, every
accepted event is stored once, and ``tsunagu audit verify`` is clean.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from events.clock import JST
from events.store import ChildRecord
from services.audit.replay import access_records
from services.auth.tokens import keys_from_file
from services.http.app import create_app
from services.hub import Hub
from tests.helpers import free_port

pytestmark = [pytest.mark.store, pytest.mark.http]

ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020", "name": "別府市こども家庭センター"},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": "442020", "name": "別府市立第一小学校"},
]
CHILD = "c-contended"
TSUNAGU = Path(sys.executable).with_name("tsunagu")
UNLIMITED = {"TSUNAGU_RATE_LIMIT": "1000000/minute"}  # the load comes from a few tokens: no rate limit here


def registration(at: datetime) -> dict:
    return {
        "id": f"{CHILD}-registered",
        "kind": "child.registered",
        "child": CHILD,
        "source": "beppu-center",
        "basis": "internal",
        "at": at.isoformat(),
        "payload": {"residence": "442020"},
    }


def concern(envelope_id: str, at: datetime) -> dict:
    """A school's concern about the child (cwa-21-10-5: the centre of the child's residence receives it)."""
    return {
        "id": envelope_id,
        "kind": "concern.reported",
        "child": CHILD,
        "source": "beppu-es-1",
        "basis": "cwa-21-10-5",
        "at": at.isoformat(),
        "payload": {"summary": "連絡なしの欠席が続いている"},
    }


# --- the clients ------------------------------------------------------------------------------------------------


def _answer(operation: str, response: httpx.Response) -> tuple:
    """What a client keeps of one answer: (operation, status, Retry-After, access record id or outcomes, error,
    how long it took)."""
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    kept = None
    if operation == "read" and response.status_code == 200:
        kept = body["access_record"]
    elif operation == "publish" and response.status_code == 200:
        kept = tuple(r["outcome"] for r in body["results"])
    error = body.get("error") if isinstance(body, dict) else None
    return operation, response.status_code, response.headers.get("retry-after"), kept, error, response.elapsed


def run_client(
    bases: list[str], name: str, read_headers: dict, publish_headers: dict, requests: int, seconds: float
) -> list[tuple]:
    """One client: alternately publishes a concern about the child and reads the child's timeline, through each
    server in turn, until ``requests`` answers or ``seconds`` passed. Runs in a process of its own (or a thread)."""
    answers: list[tuple] = []
    at = datetime.now(JST) - timedelta(days=1)
    with httpx.Client(timeout=30) as client:
        if _START is not None:  # all together, once every client process is up
            client.get(f"{bases[0]}/v1/health")
            _START.wait(timeout=60)
        deadline = time.monotonic() + seconds
        for n in range(requests):
            if time.monotonic() > deadline:
                break
            base = bases[n % len(bases)]
            operation = "read" if n % 2 == 0 else "publish"
            try:
                if operation == "read":
                    response = client.get(
                        f"{base}/v1/children/{CHILD}/timeline", params={"purpose": "support"}, headers=read_headers
                    )
                else:
                    response = client.post(
                        f"{base}/v1/events", json=concern(f"{name}-{n}", at), headers=publish_headers
                    )
            except httpx.TransportError as error:  # no answer at all: counted as status 0
                answers.append((operation, 0, None, None, {"code": type(error).__name__}, timedelta(0)))
                continue
            answers.append(_answer(operation, response))
    return answers


_START: Any = None  # in a client process: the barrier at which every client waits for the others


def _keep_start(barrier: Any) -> None:
    """A client process's initializer: keep the start barrier (shared only by inheritance)."""
    global _START
    _START = barrier


def _run_client_args(args: tuple) -> list[tuple]:
    return run_client(*args)


# --- what the store holds afterwards ------------------------------------------------------------------------------


def check_answers(answers: list[tuple], hub: Hub, *, also_accepted: int = 0) -> None:
    """The assertions both tests make on the answers and the store."""
    statuses = Counter(status for _, status, *_ in answers)
    errors = [a for a in answers if a[1] >= 500 and a[1] != 503 or a[1] == 0]
    assert not errors, f"server errors: {errors[:5]} (statuses {dict(statuses)})"
    assert statuses[503] <= len(answers) // 20, f"{statuses[503]} of {len(answers)} requests were told to retry"
    for _, status, retry_after, _, error, _ in answers:
        if status == 503:  # allowed only as an answer that says when to come back, in the hub's error format
            assert retry_after is not None and int(retry_after) >= 1, error
            assert error["code"] == "busy" and error["message"] and error["message_ja"], error
        else:
            assert status == 200, (status, error)

    returned = [kept for operation, status, _, kept, *_ in answers if operation == "read" and status == 200]
    records = [r for r in access_records(hub.store) if r["child"] == CHILD]
    stored = Counter(r["id"] for r in records)
    assert not [i for i, n in stored.items() if n > 1], "an access record was stored twice"
    assert len(returned) == len(set(returned))
    assert set(returned) == set(stored), (
        f"{len(set(returned) - set(stored))} reads returned without a record, "
        f"{len(set(stored) - set(returned))} records of reads that returned nothing"
    )
    assert sorted(r["sequence"] for r in records) == list(range(1, len(records) + 1))  # the chain has no gap

    # a school is told "received" (受付) for an accepted event (policy.md, "Rejections leak nothing")
    accepted = sum(
        kept.count("accepted") + kept.count("received")
        for operation, status, _, kept, *_ in answers
        if operation == "publish" and status == 200
    )
    record = hub.store.get_or_none(ChildRecord.create_id(CHILD))
    ids = [entry.id for entry in record.entries]
    assert len(ids) == len(set(ids)) == 1 + accepted + also_accepted  # the registration, and each accepted once


def latencies(answers: list[tuple]) -> str:
    """The median and the longest time an answer took, per operation (for the report)."""
    out = []
    for operation in ("read", "publish"):
        took = sorted(a[-1].total_seconds() for a in answers if a[0] == operation)
        if took:
            out.append(f"{operation} median {took[len(took) // 2]:.2f} s, max {took[-1]:.2f} s")
    return ", ".join(out)


def audit_verify(database: str) -> None:
    verified = subprocess.run(
        [str(TSUNAGU), "audit", "verify", "--database", database, "--child", CHILD],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


# --- PostgreSQL: three API processes, a Kafka worker, client processes ----------------------------------------------


@pytest.mark.postgres
@pytest.mark.kafka
def test_three_servers_a_worker_and_client_processes_on_one_child_get_no_server_error(
    postgres_url, kafka_server, tmp_path
):
    from events.transport import KafkaPublisher

    key_file = tmp_path / "signing-key.pem"
    issuer, _ = keys_from_file(key_file)
    start = datetime.now(JST) - timedelta(days=2)
    hub = Hub(postgres_url)
    hub.load_orgs(ORGS)
    assert [r.outcome for r in hub.publish([registration(start)])] == ["accepted"]

    topic = f"test.{uuid.uuid4().hex[:12]}.tsunagu.events.v1"
    through_kafka = [concern(f"kafka-{n}", start + timedelta(minutes=n)) for n in range(120)]
    env = {**os.environ, **UNLIMITED, "TSUNAGU_KAFKA_API_VERSION": "0.9"}
    servers, ports = [], [free_port() for _ in range(3)]
    worker = None
    try:
        for port in ports:
            servers.append(
                subprocess.Popen(
                    [
                        str(TSUNAGU),
                        "serve",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--database",
                        postgres_url,
                        "--key-file",
                        str(key_file),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=(tmp_path / f"server-{port}.log").open("wb"),
                    env=env,
                )
            )
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        deadline = time.monotonic() + 60
        for server, base in zip(servers, bases):
            while True:
                try:
                    if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.poll() is None and time.monotonic() < deadline, "a server did not start"
                time.sleep(0.2)

        read = {"Authorization": f"Bearer {issuer.issue(org='beppu-center', role='caseworker', user='佐藤')}"}
        publish = {"Authorization": f"Bearer {issuer.issue(org='beppu-es-1', role='adapter', user='校務')}"}
        clients = [(bases, f"p{n}", read, publish, 24, 20.0) for n in range(10)]
        spawn = multiprocessing.get_context("spawn")
        start_together = spawn.Barrier(len(clients) + 1)  # the clients and this process
        with (
            spawn.Pool(len(clients), initializer=_keep_start, initargs=(start_together,)) as pool,
            # a new topic's first metadata can take longer than the publisher's 10 s on a loaded machine (seen once
            # at load 14): this test is about contention at the hub, not the broker's timeouts
            KafkaPublisher(
                kafka_server, keys=hub.store.keys, topic=topic, api_version=(0, 9), connect_timeout=60
            ) as publisher,
        ):
            running = pool.map_async(_run_client_args, clients)
            start_together.wait(timeout=90)
            # The worker starts once every client is ready: under load, spawning the clients can outlast its
            # idle stop (it reads the topic from the start, so nothing published before it joined is missed).
            worker = subprocess.Popen(
                [
                    str(TSUNAGU),
                    "worker",
                    "ingest",
                    "--bootstrap",
                    kafka_server,
                    "--topic",
                    topic,
                    "--group",
                    f"test-{uuid.uuid4().hex[:8]}",
                    "--database",
                    postgres_url,
                    "--max-batch",
                    "10",
                    "--until-idle",
                    "5",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            began = time.monotonic()
            for n in range(0, len(through_kafka), 10):  # the worker stores these while the clients run
                assert {r.outcome for r in publisher.publish(through_kafka[n : n + 10])} == {"queued"}
                time.sleep(1)
            answers = [a for client in running.get(timeout=120) for a in client]
            took = time.monotonic() - began

        _, worker_said = worker.communicate(timeout=90)
    finally:
        for process in [*servers, *([worker] if worker is not None else [])]:
            if process.poll() is None:
                process.terminate()
        for process in servers:
            process.wait(timeout=30)
        logs = [(tmp_path / f"server-{port}.log").read_text(errors="replace") for port in ports]
        if worker is not None and worker.poll() is None:
            worker.kill()

    print(
        f"PostgreSQL: {len(answers)} requests in {took:.1f} s through 3 servers and a worker: "
        f"{dict(Counter((operation, status) for operation, status, *_ in answers))}; {latencies(answers)}"
    )
    try:
        check_answers(answers, hub, also_accepted=len(through_kafka))
    finally:
        hub.close()
    assert worker.returncode == 0, worker_said
    for log in logs:
        assert "Traceback" not in log, log[-3000:]
    audit_verify(postgres_url)


# --- SQLite: one app, many threads ---------------------------------------------------------------------------------


def test_many_threads_on_one_child_on_sqlite_get_no_server_error(tmp_path, monkeypatch):
    for name, value in UNLIMITED.items():
        monkeypatch.setenv(name, value)
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    issuer, verifier = keys_from_file(tmp_path / "signing-key.pem")
    hub = Hub(database)
    hub.load_orgs(ORGS)
    assert [r.outcome for r in hub.publish([registration(datetime.now(JST) - timedelta(days=2))])] == ["accepted"]
    read = {"Authorization": f"Bearer {issuer.issue(org='beppu-center', role='caseworker', user='佐藤')}"}
    publish = {"Authorization": f"Bearer {issuer.issue(org='beppu-es-1', role='adapter', user='校務')}"}
    try:
        with TestClient(create_app(hub, verifier), raise_server_exceptions=False) as client:

            def one_client(name: str) -> list[tuple]:
                answers = []
                at = datetime.now(JST) - timedelta(days=1)
                for n in range(30):
                    if n % 2 == 0:
                        response = client.get(
                            f"/v1/children/{CHILD}/timeline", params={"purpose": "support"}, headers=read
                        )
                        answers.append(_answer("read", response))
                    else:
                        response = client.post("/v1/events", json=concern(f"{name}-{n}", at), headers=publish)
                        answers.append(_answer("publish", response))
                return answers

            with ThreadPoolExecutor(16) as pool:
                answers = [
                    a for client_answers in pool.map(one_client, [f"t{n}" for n in range(16)]) for a in client_answers
                ]
        print(
            f"SQLite: {len(answers)} requests from 16 threads: "
            f"{dict(Counter((operation, status) for operation, status, *_ in answers))}; {latencies(answers)}"
        )
        check_answers(answers, hub)
    finally:
        hub.close()
    audit_verify(database)


# --- when the budget runs out: 503 with Retry-After, and exit 75 on the command line ------------------------------


def test_a_request_that_loses_every_race_gets_503_with_retry_after_and_stores_nothing(tmp_path, monkeypatch):
    """Another hub process on the same database reads or publishes about the child just before each of this
    process's appends, every time: the conflicts are real (the store refuses the version), and after the budget
    the caller is told to come back, in Japanese, with nothing of its request stored."""
    from typer.testing import CliRunner

    import events.retry
    from events.store import AccessLog, HubStore, _StreamTurns
    from services.cli.root import EXIT_BUSY, app

    database = f"sqlite:///{tmp_path / 'hub.db'}"
    issuer, verifier = keys_from_file(tmp_path / "signing-key.pem")
    hub, other = Hub(database), Hub(database)
    # another process's turns: its reads append to the access log while this one holds its turn in this process
    # (on SQLite the turn is the process's only; on PostgreSQL it would wait for the database's lock instead)
    other.store.turns = _StreamTurns()
    hub.load_orgs(ORGS)
    at = datetime.now(JST) - timedelta(days=2)
    assert [r.outcome for r in hub.publish([registration(at)])] == ["accepted"]
    assert hub.timeline(org="beppu-center", role="caseworker", child=CHILD, purpose="support").allowed
    monkeypatch.setattr(events.retry, "CONFLICT_BUDGET_SECONDS", 0.3)
    others = {"reads": 0, "publishes": 0}
    save_sealed = HubStore.save_sealed  # where every save stores (a publish's: in its indexes' turn)

    def another_process_first(store: HubStore, *parts, **options):
        if store is not other.store:
            objects = [o for part in parts for o in (*part.processing.events, *part.processing.aggregates.values())]
            if any(isinstance(o, (AccessLog, AccessLog.ReadRecorded)) for o in objects):
                others["reads"] += 1
                other.timeline(org="beppu-center", role="caseworker", child=CHILD, purpose="support", user="別の人")
            elif options.get("envelopes"):
                others["publishes"] += 1
                other.publish([concern(f"other-{others['publishes']}", at)])
        return save_sealed(store, *parts, **options)

    monkeypatch.setattr(HubStore, "save_sealed", another_process_first)
    read = {"Authorization": f"Bearer {issuer.issue(org='beppu-center', role='caseworker', user='佐藤')}"}
    publish = {"Authorization": f"Bearer {issuer.issue(org='beppu-es-1', role='adapter', user='校務')}"}
    try:
        with TestClient(create_app(hub, verifier), raise_server_exceptions=False) as client:
            answers = [
                client.get(f"/v1/children/{CHILD}/timeline", params={"purpose": "support"}, headers=read),
                client.post("/v1/events", json=concern("mine", at), headers=publish),
            ]
        for answer in answers:
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "2"
            error = answer.json()["error"]
            assert error["code"] == "busy" and "もう一度お試しください" in error["message_ja"], error
        assert others["reads"] >= events.retry.MIN_ATTEMPTS and others["publishes"] >= events.retry.MIN_ATTEMPTS

        cli = CliRunner().invoke(
            app,
            [
                "timeline",
                CHILD,
                "--org",
                "beppu-center",
                "--role",
                "caseworker",
                "--purpose",
                "support",
                "--database",
                database,
            ],
        )
        assert cli.exit_code == EXIT_BUSY, cli.output
        assert "混み合っているため" in cli.output and "Traceback" not in cli.output
    finally:
        monkeypatch.setattr(HubStore, "save_sealed", save_sealed)
        other.close()
    try:
        records = [r for r in access_records(hub.store) if r["child"] == CHILD]
        # the first read, and the other process's; none of the reads that got 503 or exit 75
        assert len(records) == 1 + others["reads"]
        assert [r["reader"]["user"] for r in records[1:]] == ["別の人"] * others["reads"]
        assert hub.store.stored_envelope("mine") is None
        assert hub.verify().ok
    finally:
        hub.close()
