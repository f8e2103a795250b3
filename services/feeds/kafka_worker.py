"""The ingest worker: consumes the events topic in a consumer group and appends through the hub.

For each batch taken from ``poll()``:

1. decode every message (``events.transport.decode_all``); a message that is not a v1 tsunagu message is invalid;
2. publish the envelopes through ``Hub.publish`` (validation, admission, idempotent append in one transaction;
   rejected envelopes are quarantined there, under their source);
3. hold the invalid messages in the ``Quarantine`` stream of source ``kafka``, with the exact bytes and the reason;
4. send every invalid message and every rejected envelope to the dead-letter topic, with the reasons, and wait
   until the broker has them;
5. only then commit the batch's offsets.

A worker killed anywhere before 5 gets the batch again: publish is idempotent by envelope id, so nothing is
stored twice and nothing is lost; the worst case is redelivery (a rejected envelope or an invalid message may then
be quarantined and dead-lettered a second time). SIGTERM (and SIGINT) stop the worker after the batch in hand.
A batch the hub could not store within its time budget (``Busy``: other writers kept changing the same child's
stream) is not committed either: the worker moves back to the batch's offsets and takes it again after a pause;
so is a batch the store did not answer (PostgreSQL restarting), after a pause that grows while it does not answer:
the worker recovers by itself when the store is back, instead of exiting for its supervisor to restart it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import InterfaceError, OperationalError

from events.problems import Busy
from events.retry import retry_conflicts
from events.store import Quarantine, jsonable
from events.transport import (
    EVENTS_TOPIC,
    InvalidMessage,
    TransportError,
    api_version_from_env,
    dead_letter_topic,
    dead_letter_value,
    decode_all,
    original_message,
    producer_options,
)
from services.publishing.ingest import MAX_BATCH

if TYPE_CHECKING:
    from services.hub import Hub

DEFAULT_GROUP = "tsunagu-ingest"
STORE_WAIT_SECONDS = 0.5  # the first pause after the store did not answer; it doubles ...
STORE_WAIT_MAX_SECONDS = 5.0  # ... up to this (below the group's session timeout: the worker keeps its partitions)
QUARANTINE_SOURCE = "kafka"  # where messages that carry no readable envelope are held


@dataclass
class BatchReport:
    """What became of one batch of messages."""

    messages: int = 0
    accepted: int = 0
    duplicate: int = 0
    queued: int = 0  # waiting in the linking queue (紐付け待ち)
    rejected: int = 0
    invalid: int = 0
    deferred: int = 0  # not stored this time (the hub was busy): taken again by the next poll
    committed: dict[str, int] = field(default_factory=dict)  # "topic/partition" -> next offset

    def add(self, other: BatchReport) -> None:
        for name in ("messages", "accepted", "duplicate", "queued", "rejected", "invalid"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.committed.update(other.committed)

    def summary(self) -> str:
        return (
            f"{self.messages} messages: accepted {self.accepted}, duplicate {self.duplicate}, "
            f"waiting for linking {self.queued}, rejected {self.rejected}, invalid {self.invalid}"
            + (f", taken again after the hub was busy {self.deferred}" if self.deferred else "")
        )


class IngestWorker:
    """One member of the ingest consumer group. ``run()`` until ``stop()``; ``process_batch()`` for one poll."""

    def __init__(
        self,
        hub: Hub,
        bootstrap: str,
        *,
        group: str = DEFAULT_GROUP,
        topic: str = EVENTS_TOPIC,
        dead_letters: str | None = None,
        api_version: tuple[int, ...] | None = None,
        max_batch: int = 500,
        poll_timeout_ms: int = 500,
        session_timeout_ms: int = 10000,
        client_id: str = "tsunagu-ingest-worker",
        connect_timeout: float = 10.0,
        log: Callable[[str], None] | None = None,
    ):
        from kafka import KafkaConsumer, KafkaProducer
        from kafka.errors import KafkaError

        if not 1 <= max_batch <= MAX_BATCH:
            raise ValueError(f"max_batch must be between 1 and {MAX_BATCH}")
        self.hub = hub
        self.bootstrap = bootstrap
        self.topic = topic
        self.dead_letters = dead_letters or dead_letter_topic(topic)
        self.group = group
        self.max_batch = max_batch
        self.poll_timeout_ms = poll_timeout_ms
        self.log = log or (lambda message: None)
        self.totals = BatchReport()
        self._stopping = False
        self._store_waits = 0  # batches in a row the store did not answer (``_store_unavailable``)
        if api_version is None:
            api_version = api_version_from_env()
        versioned = {"api_version": api_version} if api_version is not None else {}
        servers = bootstrap.split(",")
        try:
            self._consumer = KafkaConsumer(
                bootstrap_servers=servers,
                group_id=group,
                client_id=client_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=max_batch,
                session_timeout_ms=session_timeout_ms,
                heartbeat_interval_ms=max(session_timeout_ms // 4, 500),
                request_timeout_ms=30000,
                **versioned,
            )
            self._consumer.subscribe([topic])
            self._producer = KafkaProducer(
                bootstrap_servers=servers,
                client_id=f"{client_id}-dead-letters",
                **producer_options(api_version, connect_timeout=connect_timeout),
            )
            # Fail now, clearly, if the broker is not there (later outages are retried); this also creates the
            # topics on a broker that creates them on first use.
            self._producer.partitions_for(topic)
            self._producer.partitions_for(self.dead_letters)
        except KafkaError as error:
            self.close()
            raise TransportError(f"Kafka at {bootstrap} is not reachable: {error}") from None

    # --- running ----------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the worker to stop after the batch in hand (safe to call from a signal handler)."""
        self._stopping = True

    @property
    def stopping(self) -> bool:
        return self._stopping

    def assignment(self) -> set:
        """The partitions this member holds now (empty until the group has assigned them)."""
        return set(self._consumer.assignment())

    def run(self, *, idle_stop_after: float | None = None) -> BatchReport:
        """Process batches until ``stop()`` (or, with ``idle_stop_after``, until no message came for that many
        seconds). Returns the totals. An error from the store or the broker ends the run without committing the
        batch in hand (it is delivered again)."""
        idle_since = time.monotonic()
        while not self._stopping:
            report = self.process_batch()
            if report.messages or not self.assignment():  # idle time counts only while holding partitions
                idle_since = time.monotonic()
            if report.messages:
                self.log(f"batch of {report.summary()}")
            elif idle_stop_after is not None and time.monotonic() - idle_since >= idle_stop_after:
                break
        return self.totals

    def process_batch(self, timeout_ms: int | None = None) -> BatchReport:
        """Poll once and process what came (possibly nothing); commit only after it is stored."""

        polled = self._consumer.poll(timeout_ms=self.poll_timeout_ms if timeout_ms is None else timeout_ms)
        records = [record for partition_records in polled.values() for record in partition_records]
        report = BatchReport(messages=len(records))
        if not records:
            return report
        try:
            stored = self._store_batch(polled, records, report)
        except (OperationalError, InterfaceError) as error:  # the library has already tried again
            return self._store_unavailable(polled, report, error)
        self._store_waits = 0
        return stored

    def _store_batch(self, polled: dict[Any, list[Any]], records: list[Any], report: BatchReport) -> BatchReport:
        """Steps 1 to 5 of the module's docstring for the batch ``polled`` (its ``records``)."""
        from kafka.errors import CommitFailedError, KafkaError
        from kafka.structs import OffsetAndMetadata

        now = self.hub.clock().isoformat()

        envelopes: list[dict[str, Any]] = []
        carried: list[Any] = []  # the record of each envelope
        invalid: list[tuple[Any, InvalidMessage]] = []
        for record, decoded in zip(records, decode_all([record.value for record in records], self.hub.store.keys)):
            if isinstance(decoded, InvalidMessage):
                invalid.append((record, decoded))
            else:
                envelopes.append(decoded)
                carried.append(record)

        dead: list[tuple[Any, bytes]] = []
        if envelopes:
            try:
                results = self.hub.publish(envelopes)
            except Busy as busy:
                return self._again_later(polled, report, busy)
            for result in results:
                if result.outcome == "rejected":
                    record = carried[result.index]
                    source = envelopes[result.index].get("source") or "unknown"
                    dead.append(
                        (
                            record,
                            dead_letter_value(
                                self._original(record),
                                [p.to_dict() for p in result.problems],
                                stage="ingest",
                                failed_at=now,
                                quarantined_as=str(source),
                            ),
                        )
                    )
            report.accepted = sum(r.outcome == "accepted" for r in results)
            report.duplicate = sum(r.outcome == "duplicate" for r in results)
            report.queued = sum(r.outcome == "queued" for r in results)
            report.rejected = sum(r.outcome == "rejected" for r in results)
        if invalid:
            try:
                self._quarantine(invalid, now)
            except Busy as busy:  # the envelopes are stored: they are recognised as duplicates next time
                return self._again_later(polled, report, busy)
            report.invalid = len(invalid)
            for record, problem in invalid:
                dead.append(
                    (
                        record,
                        dead_letter_value(
                            self._original(record),
                            [problem.to_problem()],
                            stage="decode",
                            failed_at=now,
                            quarantined_as=QUARANTINE_SOURCE,
                        ),
                    )
                )
        if dead:
            self._send_dead_letters(dead)

        offsets: dict[Any, Any] = {}
        for partition, partition_records in polled.items():
            offsets[partition] = OffsetAndMetadata(partition_records[-1].offset + 1, "", -1)
        try:
            self._consumer.commit(offsets)
        except CommitFailedError as error:
            # The group rebalanced while the batch was processed: its new owner gets it again (stored once).
            self.log(f"commit failed ({error}); the batch will be delivered again and recognised as duplicates")
        except KafkaError as error:
            raise TransportError(f"could not commit offsets to Kafka at {self.bootstrap}: {error}") from None
        else:
            report.committed = {f"{tp.topic}/{tp.partition}": meta.offset for tp, meta in offsets.items()}
        self.totals.add(report)
        return report

    # --- the parts --------------------------------------------------------------------------------------------

    def _store_unavailable(self, polled: dict[Any, list[Any]], report: BatchReport, error: Exception) -> BatchReport:
        """The store did not answer (PostgreSQL restarting, the connection lost): as ``_again_later``, after a
        pause that doubles with each batch that failed so in a row (``STORE_WAIT_SECONDS`` up to
        ``STORE_WAIT_MAX_SECONDS``, below the group's session timeout), so that the worker reconnects by itself
        once the store is back instead of exiting (the pool makes new connections, checked before use)."""
        wait = min(STORE_WAIT_SECONDS * 2**self._store_waits, STORE_WAIT_MAX_SECONDS)
        self._store_waits += 1
        self._take_again(
            polled,
            report,
            f"the store did not answer ({str(error).strip()[:200]}); the batch of {report.messages} messages is "
            f"taken again in {wait:.1f} s / データベースに接続できません。{wait:.1f} 秒後に再試行します",
        )
        deadline = time.monotonic() + wait
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        return report

    def _again_later(self, polled: dict[Any, list[Any]], report: BatchReport, busy: Busy) -> BatchReport:
        """The hub could not store the batch in its time budget (``Busy``): taken again after a pause."""
        self._take_again(
            polled,
            report,
            f"{busy.problem.message} ({busy.problem.message_ja}); the batch of {report.messages} messages "
            f"is taken again",
        )
        time.sleep(busy.retry_after)
        return report

    def _take_again(self, polled: dict[Any, list[Any]], report: BatchReport, said: str) -> None:
        """Nothing of the batch is committed: the consumer is moved back to its first offsets, so that the next
        poll takes it again, and the report says it was deferred (the messages themselves are counted when they
        are stored)."""
        for partition, partition_records in polled.items():
            self._consumer.seek(partition, partition_records[0].offset)
        self.log(said)
        report.deferred = report.messages
        self.totals.deferred += report.messages

    @staticmethod
    def _original(record: Any) -> dict[str, Any]:
        return original_message(record.topic, record.partition, record.offset, record.key, record.value)

    def _quarantine(self, invalid: list[tuple[Any, InvalidMessage]], now: str) -> None:
        """Hold messages that carry no readable envelope, with their bytes and reasons, in one transaction."""

        def hold_once() -> None:
            quarantine = self.hub.store.get_or_none(Quarantine.create_id(QUARANTINE_SOURCE)) or Quarantine(
                QUARANTINE_SOURCE
            )
            for record, problem in invalid:
                quarantine.hold(
                    raw=jsonable({"kafka": self._original(record)}), problems=[problem.to_problem()], received_at=now
                )
            self.hub.store.save(quarantine)

        retry_conflicts(hold_once)  # another worker of the group may hold into the same stream at the same time

    def _send_dead_letters(self, dead: list[tuple[Any, bytes]]) -> None:
        from kafka.errors import KafkaError

        try:
            futures = [self._producer.send(self.dead_letters, key=record.key, value=value) for record, value in dead]
            self._producer.flush(timeout=60)
            for future in futures:
                future.get(timeout=0)
        except KafkaError as error:
            raise TransportError(
                f"could not write to the dead-letter topic {self.dead_letters} at "
                f"{self.bootstrap}: {error}; the batch is not committed and will be retried"
            ) from None

    def close(self) -> None:
        """Leave the group without committing anything more, and close the producer."""
        consumer, producer = getattr(self, "_consumer", None), getattr(self, "_producer", None)
        if consumer is not None:
            consumer.close(autocommit=False)
        if producer is not None:
            producer.close(timeout=10)

    def __enter__(self) -> IngestWorker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
