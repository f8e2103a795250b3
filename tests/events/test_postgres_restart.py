"""A PostgreSQL restart (fast shutdown and start, ``bench.soak.Postgres``, a cluster of the test's own) while the
hub runs: the pooled connections all died with the server. An API process goes on without a failed request (the
pool checks a connection before handing it out: ``POSTGRES_PRE_PING``; before, each pooled connection cost one
503), and the ingest worker goes on by itself (it takes the batch again after a growing pause instead of exiting
75 for its supervisor), storing every event once."""

from __future__ import annotations

import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest

from bench import soak
from events.clock import JST
from events.store import ChildRecord
from events.transport import EVENTS_TOPIC, KafkaPublisher
from services.feeds.kafka_worker import IngestWorker
from services.hub import Hub

pytestmark = [pytest.mark.postgres]

ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020", "name": "別府市こども家庭センター"},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": "442020", "name": "別府市立第一小学校"},
]
AT = datetime.now(JST) - timedelta(days=2)


def registered(child: str) -> dict:
    return {
        "id": f"{child}-r",
        "kind": "child.registered",
        "child": child,
        "source": "beppu-center",
        "basis": "internal",
        "at": AT.isoformat(),
        "payload": {"residence": "442020"},
    }


def concern(child: str, n: int) -> dict:
    return {
        "id": f"{child}-c{n}",
        "kind": "concern.reported",
        "child": child,
        "source": "beppu-es-1",
        "basis": "cwa-21-10-5",
        "at": (AT + timedelta(minutes=n)).isoformat(),
        "payload": {"summary": "連絡なしの欠席が続いている"},
    }


@pytest.fixture
def cluster(tmp_path):
    try:
        postgres = soak.Postgres(tmp_path)
    except soak.ServerUnavailable as error:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(str(error))
        pytest.skip(str(error))
    yield postgres
    postgres.close()


def test_after_a_restart_every_read_and_publish_is_answered_without_an_error(cluster):
    hub = Hub(cluster.url)
    try:
        hub.load_orgs(ORGS)
        children = [f"c{n}" for n in range(8)]
        assert {r.outcome for r in hub.publish([registered(c) for c in children])} == {"accepted"}

        def read(child: str) -> bool:
            return hub.timeline(org="beppu-center", role="caseworker", child=child, purpose="support").allowed

        with ThreadPoolExecutor(8) as pool:  # several connections in the pool, all of which the restart kills
            assert all(pool.map(read, children * 4))
        cluster.restart()
        assert all(read(child) for child in children * 3)  # each pooled connection taken at least once
        assert {r.outcome for r in hub.publish([concern(c, 1) for c in children])} == {"accepted"}
        assert hub.verify().ok
    finally:
        hub.close()


@pytest.mark.kafka
def test_the_ingest_worker_waits_for_a_restarting_store_and_stores_every_event_once(cluster, kafka_server):
    hub = Hub(cluster.url)
    topic = f"test.{uuid.uuid4().hex[:12]}.{EVENTS_TOPIC}"
    said: list[str] = []
    worker = IngestWorker(
        hub, kafka_server, group=f"test-{uuid.uuid4().hex[:8]}", topic=topic, api_version=(0, 9), log=said.append
    )
    running = threading.Thread(target=worker.run, daemon=True)
    # The publisher below seals with this hub's keys, whose erasure watch looks at the register (in the store)
    # once its ERASURE_CHECK_SECONDS are up: on a loaded runner the store's stop took that long, and the
    # publisher's look then failed for want of the stopped store (30 s without a connection) before the worker
    # was tested at all. This test is about the worker waiting for the store, not the watch: no look during it.
    hub.store.erasures.interval = 3600.0
    hub.store.erasures.due = time.monotonic() + 3600.0
    try:
        hub.load_orgs(ORGS)
        children = [f"k{n}" for n in range(5)]
        first = [registered(c) for c in children]
        second = [concern(c, n) for n in (1, 2) for c in children]
        running.start()
        with KafkaPublisher(kafka_server, keys=hub.store.keys, topic=topic, api_version=(0, 9)) as publisher:
            publisher.publish(first)
            deadline = time.monotonic() + 60
            while hub.store.stored_envelope(first[-1]["id"]) is None:
                assert time.monotonic() < deadline, said
                time.sleep(0.2)
            cluster.stop()
            publisher.publish(second)  # the worker polls them while the store is down
            deadline = time.monotonic() + 60
            while not any("the store did not answer" in line for line in said):
                assert time.monotonic() < deadline and running.is_alive(), said
                time.sleep(0.2)
            cluster.start()
        deadline = time.monotonic() + 90
        while len(hub.store.stored_envelopes(e["id"] for e in second)) < len(second):
            assert time.monotonic() < deadline and running.is_alive(), said
            time.sleep(0.2)
        assert running.is_alive()
        for child in children:
            ids = [e.id for e in hub.store.peek(ChildRecord.create_id(child)).entries]
            assert ids == [f"{child}-r", f"{child}-c1", f"{child}-c2"], ids  # each once, in order
        assert worker.totals.deferred > 0
    finally:
        worker.stop()
        running.join(timeout=30)
        worker.close()
        hub.close()
