"""The Kafka log transport against a real broker (deploy/local-kafka.sh, started once per session by the
``kafka_server`` fixture): publish through the topic, the ingest worker stores, per-child order, dead letters and
quarantine, and a worker killed in the middle of a large batch loses nothing and stores nothing twice."""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from typer.testing import CliRunner

from events.clock import JST
from events.store import ChildRecord, Quarantine
from events.transport import (
    DEAD_LETTER_TOPIC,
    EVENTS_TOPIC,
    InvalidMessage,
    KafkaPublisher,
    TransportError,
    dead_letter_topic,
    decode,
    encode,
    partition_key,
)
from services.cli.root import app
from services.feeds.kafka_worker import QUARANTINE_SOURCE, IngestWorker
from services.hub import Hub
from tests.conftest import ROOT
from tests.helpers import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.store]

V09 = (0, 9)
ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020", "name": "別府市こども家庭センター"},
    {"id": "oita-center", "type": "municipal_center", "municipality": "442011", "name": "大分市こども家庭センター"},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": "442020", "name": "別府市立第一小学校"},
]


def fresh_topic() -> str:
    return f"test.{uuid.uuid4().hex[:12]}.{EVENTS_TOPIC}"


def registered(child: str, at: datetime) -> dict:
    return {
        "id": f"{child}-r",
        "kind": "child.registered",
        "child": child,
        "source": "beppu-center",
        "basis": "internal",
        "at": at.isoformat(),
        "payload": {"residence": "442020"},
    }


def concern(child: str, n: int, at: datetime) -> dict:
    """A concern under 21-10-5: admitted only when the child's residence is already known (order matters)."""
    return {
        "id": f"{child}-e{n}",
        "kind": "concern.reported",
        "child": child,
        "source": "beppu-es-1",
        "basis": "cwa-21-10-5",
        "at": at.isoformat(),
        "payload": {"summary": f"連絡なしの欠席 {n}"},
    }


def child_events(children: int, per_child: int, start: datetime) -> list[dict]:
    """``per_child`` events for each child (registration first), interleaved across children."""
    names = [f"c{uuid.uuid4().hex[:8]}" for _ in range(children)]
    out = []
    for n in range(per_child):
        for child in names:
            at = start + timedelta(minutes=n)
            out.append(registered(child, at) if n == 0 else concern(child, n, at))
    return out


def drain(worker: IngestWorker, messages: int, timeout: float = 60.0):
    """Run the worker until it has processed ``messages`` messages."""
    deadline = time.monotonic() + timeout
    seen = 0
    reports = []
    while seen < messages:
        assert time.monotonic() < deadline, f"the worker processed {seen} of {messages} messages in {timeout}s"
        report = worker.process_batch(timeout_ms=500)
        seen += report.messages
        if report.messages:
            reports.append(report)
    return reports


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list:
    """Every message of ``topic`` from the beginning, once ``count`` of them are there."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, api_version=V09, enable_auto_commit=False, group_id=None, consumer_timeout_ms=1000
    )
    try:
        deadline = time.monotonic() + timeout
        partitions = None
        while not partitions:
            partitions = consumer.partitions_for_topic(topic)
            assert partitions or time.monotonic() < deadline, f"topic {topic} does not exist"
            if not partitions:
                time.sleep(0.2)
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        consumer.seek_to_beginning()
        records = []
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records += batch
        return records
    finally:
        consumer.close(autocommit=False)


def committed_total(bootstrap: str, group: str, topic: str) -> int:
    """The sum of the group's committed offsets over the topic's partitions (= messages consumed for good)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, api_version=V09, group_id=group, enable_auto_commit=False)
    try:
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in consumer.partitions_for_topic(topic))
    finally:
        consumer.close(autocommit=False)


def worker_for(hub: Hub, bootstrap: str, topic: str, **options) -> IngestWorker:
    return IngestWorker(hub, bootstrap, group=f"test-{uuid.uuid4().hex[:8]}", topic=topic, api_version=V09, **options)


# --- the message format (no broker needed) ----------------------------------------------------------------------


def test_messages_carry_the_envelope_sealed_and_keyed_by_an_hmac_of_the_child(hub):
    # Markers that cannot turn up by chance: a hyphen is neither a hex digit nor a base64 character, and the
    # sealed bytes themselves are searched, not their base64 text (where "442020" would, now and then).
    envelope = registered("kodomo-01", datetime(2026, 4, 1, 9, tzinfo=JST))
    key, value = encode(envelope, hub.store.keys)
    assert key == partition_key(envelope) and b"kodomo-01" not in key and len(key) == 32
    message = json.loads(value)
    assert set(message) == {"v", "sealed"} and message["v"] == 1
    sealed = base64.b64decode(message["sealed"])
    for marker in (b"kodomo-01", b"442020", b"child.registered"):
        assert marker not in value and marker not in sealed
    assert decode(value, hub.store.keys) == envelope
    assert encode(envelope, hub.store.keys)[1] != value  # a fresh nonce each time
    local = {"local_child": "S-0042", "source": "beppu-es-1", "id": "x"}
    assert partition_key(local) not in (None, key) and b"S-0042" not in partition_key(local)
    assert dead_letter_topic(EVENTS_TOPIC) == DEAD_LETTER_TOPIC == "tsunagu.events.v1.dead-letter"
    with pytest.raises(InvalidMessage) as plain:
        decode(json.dumps({"v": 1, "envelope": envelope}).encode(), hub.store.keys)
    assert plain.value.code == "unsealed_message"


# --- against the broker -----------------------------------------------------------------------------------------


def test_published_through_kafka_the_worker_stores_and_the_addressee_reads(kafka_server, hub):
    hub.load_orgs(ORGS)
    topic = fresh_topic()
    events = child_events(children=3, per_child=2, start=datetime(2026, 3, 2, 9, tzinfo=JST))
    with KafkaPublisher(kafka_server, keys=hub.store.keys, topic=topic, api_version=V09) as publisher:
        results = publisher.publish(events)
    assert [(r.index, r.id, r.outcome) for r in results] == [(i, e["id"], "queued") for i, e in enumerate(events)]
    assert hub.store.stored_envelope(events[0]["id"]) is None  # nothing stored before the worker runs

    with worker_for(hub, kafka_server, topic) as worker:
        drain(worker, len(events))
        group = worker.group
    assert (worker.totals.accepted, worker.totals.rejected, worker.totals.invalid) == (len(events), 0, 0)
    assert committed_total(kafka_server, group, topic) == len(events)  # committed after the append

    child = events[0]["child"]
    timeline = hub.timeline(org="beppu-center", role="caseworker", child=child, purpose="support")
    assert timeline.allowed
    assert {e.id: e.rule for e in timeline.entries} == {f"{child}-r": "OWN", f"{child}-e1": "DIRECT"}
    other = hub.timeline(org="oita-center", role="caseworker", child=child, purpose="support")
    assert [e.id for e in other.entries] == []
    assert hub.verify().ok

    # Delivered again (here: to another group on the same store), every event is a duplicate, stored once.
    with worker_for(hub, kafka_server, topic) as again:
        drain(again, len(events))
    assert (again.totals.accepted, again.totals.duplicate) == (0, len(events))
    assert [e.id for e in hub.store.peek(ChildRecord.create_id(child)).entries] == [f"{child}-r", f"{child}-e1"]


def test_one_childs_events_stay_in_order(kafka_server, hub):
    hub.load_orgs(ORGS)
    topic = fresh_topic()
    events = child_events(children=12, per_child=6, start=datetime(2026, 3, 2, 9, tzinfo=JST))
    with KafkaPublisher(kafka_server, keys=hub.store.keys, topic=topic, api_version=V09) as publisher:
        for start in range(0, len(events), 10):  # several sends, children interleaved
            publisher.publish(events[start : start + 10])

    # On the topic: each child's events in one partition, in the order published; the children spread out.
    records = read_topic(kafka_server, topic, len(events))
    assert len(records) == len(events)
    partitions = defaultdict(set)
    on_topic = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        partitions[record.key].add(record.partition)
        envelope = decode(record.value, hub.store.keys)
        on_topic[envelope["child"]].append(envelope["id"])
    assert all(len(p) == 1 for p in partitions.values())
    assert len({next(iter(p)) for p in partitions.values()}) > 1
    published = defaultdict(list)
    for e in events:
        published[e["child"]].append(e["id"])
    assert on_topic == published

    # Stored: every concern found the registration before it (small batches, many partitions).
    with worker_for(hub, kafka_server, topic, max_batch=7) as worker:
        drain(worker, len(events))
    assert (worker.totals.accepted, worker.totals.rejected) == (len(events), 0)
    for child, ids in published.items():
        assert [e.id for e in hub.store.peek(ChildRecord.create_id(child)).entries] == ids


def test_invalid_messages_go_to_the_dead_letter_topic_and_the_quarantine(kafka_server, hub):
    hub.load_orgs(ORGS)
    topic = fresh_topic()
    good = registered("c-good", datetime(2026, 3, 2, 9, tzinfo=JST))
    no_basis = {k: v for k, v in concern("c-good", 1, datetime(2026, 3, 3, 9, tzinfo=JST)).items() if k != "basis"}
    sent = {
        "not_utf8": b"\xff\xfe\x00garbage",
        "not_json": b"{this is not json",
        "unknown_message_version": json.dumps({"v": 2, "envelope": good}).encode(),
        "unsealed_message": json.dumps({"v": 1, "envelope": good}).encode(),
        "unreadable_message": json.dumps({"v": 1, "sealed": base64.b64encode(b"\x01" + bytes(60)).decode()}).encode(),
        "not_v1_message": json.dumps([good]).encode(),
        "missing_basis": encode(no_basis, hub.store.keys)[1],
    }
    producer = KafkaProducer(bootstrap_servers=kafka_server, api_version=V09, enable_idempotence=False)
    for value in sent.values():
        producer.send(topic, key=b"c-good", value=value)
    producer.send(topic, key=b"c-good", value=encode(good, hub.store.keys)[1])
    producer.flush()
    producer.close()

    with worker_for(hub, kafka_server, topic) as worker:
        drain(worker, len(sent) + 1)
        group = worker.group
    assert (worker.totals.accepted, worker.totals.rejected, worker.totals.invalid) == (1, 1, 6)
    assert committed_total(kafka_server, group, topic) == len(sent) + 1

    dead = read_topic(kafka_server, dead_letter_topic(topic), len(sent))
    assert len(dead) == len(sent)
    by_code = {}
    for record in dead:
        letter = json.loads(record.value)
        assert record.key == b"c-good"
        by_code[letter["problems"][0]["code"]] = letter
    assert set(by_code) == set(sent)
    for code, value in sent.items():
        assert base64.b64decode(by_code[code]["original"]["value_base64"]) == value  # the bytes, exactly
        assert by_code[code]["original"]["topic"] == topic
    assert by_code["missing_basis"]["stage"] == "ingest" and by_code["missing_basis"]["quarantine"] == "beppu-es-1"
    assert by_code["not_json"]["stage"] == "decode" and by_code["not_json"]["quarantine"] == QUARANTINE_SOURCE

    held = hub.store.peek(Quarantine.create_id(QUARANTINE_SOURCE)).held
    assert sorted(h["problems"][0]["code"] for h in held) == sorted(set(sent) - {"missing_basis"})
    assert {base64.b64decode(h["raw"]["kafka"]["value_base64"]) for h in held} == set(sent.values()) - {
        sent["missing_basis"]
    }
    rejected = hub.store.peek(Quarantine.create_id("beppu-es-1")).held
    assert [(h["raw"]["id"], h["problems"][0]["code"]) for h in rejected] == [(no_basis["id"], "missing_basis")]
    assert hub.store.peek(ChildRecord.create_id("c-good")).entries[0].id == good["id"]


def test_an_infinite_or_nan_number_sent_through_kafka_is_rejected_naming_its_field(kafka_server, hub):
    """Python writes an infinite float as ``Infinity`` and reads it back: the worker rejects the envelope naming
    the field (dead letter and the publisher's quarantine), and the good one beside it is stored."""
    hub.load_orgs(ORGS)
    topic = fresh_topic()
    good = registered("c-num", datetime(2026, 3, 2, 9, tzinfo=JST))
    note = {
        "kind": "note.recorded",
        "child": "c-num",
        "source": "beppu-center",
        "basis": "internal",
        "at": "2026-03-02T10:00:00+09:00",
    }
    bad = [
        {**note, "id": "n-inf", "payload": {"text": "x", "score": float("1e400")}},
        {**note, "id": "n-nan", "payload": {"text": "x", "scores": [1, float("nan")]}},
    ]
    with KafkaPublisher(kafka_server, keys=hub.store.keys, topic=topic, api_version=V09) as publisher:
        publisher.publish([good, *bad])
    with worker_for(hub, kafka_server, topic) as worker:
        drain(worker, 3)
    assert (worker.totals.accepted, worker.totals.rejected) == (1, 2)
    held = hub.store.peek(Quarantine.create_id("beppu-center")).held
    assert [(h["raw"]["id"], [p["field"] for p in h["problems"]]) for h in held] == [
        ("n-inf", ["payload.score"]),
        ("n-nan", ["payload.scores.1"]),
    ]
    assert [e.id for e in hub.store.peek(ChildRecord.create_id("c-num")).entries] == [good["id"]]
    letters = [json.loads(r.value) for r in read_topic(kafka_server, dead_letter_topic(topic), 2)]
    assert sorted(p["field"] for letter in letters for p in letter["problems"]) == ["payload.score", "payload.scores.1"]


def test_a_broker_that_is_down_is_a_clear_error(hub):
    bootstrap = f"127.0.0.1:{free_port()}"
    publisher = KafkaPublisher(bootstrap, keys=hub.store.keys, api_version=V09, connect_timeout=1.0)
    try:
        # The publish gives up (after connect_timeout and kafka-python's retries) with an error that says what to
        # do; how long that takes is measured by bench.timings.
        with pytest.raises(TransportError, match=f"Kafka at {bootstrap} did not answer.*publish them again"):
            publisher.publish([registered("c1", datetime(2026, 3, 2, 9, tzinfo=JST))])
    finally:
        publisher.close()
    with pytest.raises(TransportError, match=f"Kafka at {bootstrap} is not reachable"):
        IngestWorker(hub, bootstrap, api_version=V09, connect_timeout=1.0)


def _stored(db: str) -> int:
    """Events stored so far, read from the worker's SQLite file while it runs (WAL: readers do not block it)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        return conn.execute(
            "SELECT count(*) FROM stored_events WHERE topic = 'events.store:ChildRecord.Published'"
        ).fetchone()[0]


def test_a_worker_killed_mid_batch_loses_nothing_and_stores_nothing_twice(kafka_server, tmp_path):
    db = tmp_path / "hub.db"
    database = f"sqlite:///{db}"
    hub = Hub(database)
    hub.load_orgs(ORGS)
    hub.close()
    topic, group = fresh_topic(), f"test-{uuid.uuid4().hex[:8]}"
    start = datetime.now(JST) - timedelta(days=30)
    events = child_events(children=600, per_child=5, start=start)
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")

    env = {**os.environ, "TSUNAGU_KAFKA_API_VERSION": "0.9", "TSUNAGU_KAFKA_TOPIC": topic}
    published = CliRunner().invoke(
        app, ["publish", str(jsonl), "--via-kafka", kafka_server, "--database", database, "--json"], env=env
    )
    assert published.exit_code == 0, published.output
    assert json.loads(published.output)["queued"] == len(events)

    command = [
        str(ROOT / ".venv" / "bin" / "tsunagu"),
        "worker",
        "ingest",
        "--bootstrap",
        kafka_server,
        "--group",
        group,
        "--database",
        database,
        "--max-batch",
        "500",
        "--session-timeout-ms",
        "6000",
    ]
    if not os.path.exists(command[0]):
        command[:1] = [sys.executable, "-c", "from services.cli.root import main; main()"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # Watch two batches land, and kill the worker the moment the second one is seen in the store: its
        # offsets are not yet committed (the worker commits after the append) and the next batch is being read or
        # appended. Which of these the kill hits is up to the scheduler; every one of them must lose nothing and
        # store nothing twice. The deadline only stops a hung worker.
        deadline = time.monotonic() + 120
        landed: list[int] = []
        while len(landed) < 2:
            count = _stored(str(db))
            if count > (landed[-1] if landed else 0):
                landed.append(count)
            assert first.poll() is None, first.communicate()[0]
            assert time.monotonic() < deadline, f"the worker stored {count} events in 120 s (hung?)"
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    first_output = first.stdout.read()
    stored_when_killed = _stored(str(db))
    assert 0 < stored_when_killed < len(events), first_output  # killed in the middle of the run

    second = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while _stored(str(db)) < len(events):
            assert second.poll() is None, second.communicate()[0]
            assert time.monotonic() < deadline, f"{_stored(str(db))} of {len(events)} stored after the restart"
            time.sleep(0.1)
        time.sleep(1)  # let it commit and poll again
        second.send_signal(signal.SIGTERM)  # a graceful stop
        output, _ = second.communicate(timeout=30)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, output
    assert "ingest worker stopped" in output

    hub = Hub(database)
    try:
        stored = Counter()
        for child in {e["child"] for e in events}:
            record = hub.store.peek(ChildRecord.create_id(child))
            stored.update(entry.id for entry in record.entries)
            assert [entry.id for entry in record.entries] == [e["id"] for e in events if e["child"] == child]
        assert stored == Counter(e["id"] for e in events)  # every event, exactly once
        assert all(hub.store.stored_envelope(e["id"]) is not None for e in events)
        assert _stored(str(db)) == len(events)
        assert hub.verify().ok
    finally:
        hub.close()
    assert committed_total(kafka_server, group, topic) == len(events)
    print(f"killed with {stored_when_killed} stored; the restarted worker said:\n{output}")


def test_oversized_and_deeply_nested_messages_are_invalid_not_a_crash(hub):
    from events.limits import MAX_MESSAGE_BYTES

    cases = {"message_too_large": b" " * (MAX_MESSAGE_BYTES + 1), "not_v1_message": b"[" * 100_000 + b"]" * 100_000}
    for code, value in cases.items():
        with pytest.raises(InvalidMessage) as refused:
            decode(value, hub.store.keys)
        assert refused.value.code == code and refused.value.message_ja
