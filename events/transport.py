"""The log transport between organisations and the hub: Kafka topics, message format, and the publisher side.

Topics
------
``tsunagu.events.v1``
    Every envelope an organisation publishes, one message each. The ingest worker (``services.feeds.kafka_worker``) consumes
    it in a consumer group and appends through ``Ingest.publish``.
``tsunagu.events.v1.dead-letter``
    Every message the worker could not accept: not JSON, not a v1 message, or an envelope the hub rejected,
    with the reasons and the original message (the rejected envelopes are also in the hub's quarantine).

Partitioning
------------
Messages are keyed by the child, so all events about one child land in one partition and are appended in the
order they were published (the policy depends on it: a concern under 21-10-5 needs the child's residence,
registered before it). The key is an HMAC of the child's hub id under the deployment's stream secret
(``events.sealing.routing_key``): stable, and telling nothing. An envelope that names the child by the source's
local number instead (``local_child``, no ``child``) is keyed the same way by source and local number: that
source's events about that child stay in order until the municipality links the number. Keys only choose
partitions: two keys that collide share a partition and lose nothing.

A deployment may name its own events topic with ``TSUNAGU_KAFKA_TOPIC`` (read by publishers and the worker alike);
its dead-letter topic is that name with ``.dead-letter`` appended.

Message value (UTF-8 JSON, no Kafka headers, so the same code works on 0.9 and on current brokers)::

    {"v": 1, "sealed": "<base64: the envelope's JSON sealed with AES-256-GCM under the child's data key>"}

The envelope is sealed whole under the same data key as the child's events in the store (``events.sealing``:
format byte, key id, nonce, ciphertext), so a message is unreadable on the topic, in the broker's files and in
any copy once the child is erased. A plain ``{"v": 1, "envelope": {...}}`` is refused (``unsealed_message``):
nothing identifying travels in the clear. A sealed message whose key was destroyed is dead-lettered as
``erased_child``; one that does not open as ``unreadable_message``.

Publishers seal with the hub's data keys: here the publisher opens the hub's key table with the deployment's
master key (``adapters.publisher.publisher_for``); an organisation's adapter outside the hub would be given
data keys by a KMS grant that allows wrapping new keys and nothing else.

Topic creation
--------------
Production creates both topics explicitly (see ``deploy/KAFKA.md`` for partitions and retention). The local
0.9 broker (``deploy/local-kafka.sh``) has no CreateTopics request, so it creates topics on first use with
``num.partitions`` set in its configuration.

Broker versions
---------------
kafka-python cannot detect a 0.9 broker's version; name it with ``api_version`` (``TSUNAGU_KAFKA_API_VERSION=0.9``,
or ``--kafka-api-version 0.9`` on the commands). Against a current broker leave it unset.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from events.limits import MAX_MESSAGE_BYTES

if TYPE_CHECKING:
    from events.problems import PublishResult
    from events.sealing import DataKeys

EVENTS_TOPIC = "tsunagu.events.v1"
DEAD_LETTER_TOPIC = "tsunagu.events.v1.dead-letter"
MESSAGE_VERSION = 1
MESSAGE_AAD = b"tsunagu.events.v1"  # bound to every sealed message: a store's sealed state does not open as one
API_VERSION_ENV = "TSUNAGU_KAFKA_API_VERSION"
TOPIC_ENV = "TSUNAGU_KAFKA_TOPIC"  # a deployment's own events topic (e.g. per environment); default EVENTS_TOPIC


class TransportError(Exception):
    """The broker could not be reached, or did not take what was handed to it."""


class InvalidMessage(Exception):
    """A message that is not a v1 tsunagu message: the code and the reason, in English and in Japanese."""

    def __init__(self, code: str, message: str, message_ja: str):
        super().__init__(message)
        self.code = code
        self.message = message
        self.message_ja = message_ja

    def to_problem(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "message_ja": self.message_ja, "field": None}


def events_topic() -> str:
    """The events topic of this deployment: ``TSUNAGU_KAFKA_TOPIC``, else ``tsunagu.events.v1``."""
    return os.environ.get(TOPIC_ENV) or EVENTS_TOPIC


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dead-letter"


def parse_api_version(text: str | None) -> tuple[int, ...] | None:
    """``"0.9"`` -> ``(0, 9)``; empty or ``auto`` -> None (kafka-python detects it)."""
    if text is None or not text.strip() or text.strip() == "auto":
        return None
    try:
        return tuple(int(part) for part in text.strip().split("."))
    except ValueError:
        raise ValueError(f"not a Kafka version: {text!r} (write it like 0.9 or 2.8.1)") from None


def api_version_from_env() -> tuple[int, ...] | None:
    return parse_api_version(os.environ.get(API_VERSION_ENV))


def _plain(envelope: Any) -> Any:
    canonical = getattr(envelope, "canonical", None)  # an events.envelope.Envelope
    return canonical() if callable(canonical) else envelope


def _scope(envelope: Any) -> str:
    from events.sealing import HUB_SCOPE, key_scope

    return key_scope(envelope) if isinstance(envelope, dict) else HUB_SCOPE


def partition_key(envelope: Any) -> bytes | None:
    """The message key: an HMAC of the child (or of source and local number), or None when the envelope names
    neither (it will be refused by the worker, wherever it lands)."""
    from events.sealing import HUB_SCOPE, routing_key

    scope = _scope(envelope)
    return None if scope == HUB_SCOPE else routing_key(scope)


def encode(envelope: Any, keys: DataKeys) -> tuple[bytes | None, bytes]:
    """The key and value of the message that carries ``envelope``, sealed under its child's data key."""
    envelope = _plain(envelope)
    plaintext = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
    sealed = keys.seal(_scope(envelope), plaintext, MESSAGE_AAD)
    value = json.dumps({"v": MESSAGE_VERSION, "sealed": base64.b64encode(sealed).decode()}, separators=(",", ":"))
    return partition_key(envelope), value.encode()


def decode(value: bytes | None, keys: DataKeys) -> dict[str, Any]:
    """The envelope a message carries; ``InvalidMessage`` when it is not a sealed v1 tsunagu message."""
    return _opened(_sealed_in(value), keys)


def decode_all(values: Sequence[bytes | None], keys: DataKeys) -> list[dict[str, Any] | InvalidMessage]:
    """``decode`` for each of ``values`` (a polled batch), the problem as a value where there is one; the data
    keys that sealed them are loaded in one go first (one query instead of one per key not in memory)."""
    from events.sealing import FORMAT

    sealed: list[bytes | InvalidMessage] = []
    for value in values:
        try:
            sealed.append(_sealed_in(value))
        except InvalidMessage as problem:  # kept as a value, without the traceback that holds this frame
            sealed.append(problem.with_traceback(None))
    keys.preload(s[1:17] for s in sealed if isinstance(s, bytes) and s[:1] == FORMAT)
    out: list[dict[str, Any] | InvalidMessage] = []
    for item in sealed:
        if isinstance(item, InvalidMessage):
            out.append(item)
            continue
        try:
            out.append(_opened(item, keys))
        except InvalidMessage as problem:
            out.append(problem.with_traceback(None))
    return out


def _sealed_in(value: bytes | None) -> bytes:
    """The sealed envelope of a v1 message, checked for shape; ``InvalidMessage`` otherwise."""
    if value is None:
        raise InvalidMessage("empty_message", "the message has no value", "メッセージが空です")
    if len(value) > MAX_MESSAGE_BYTES:
        raise InvalidMessage(
            "message_too_large",
            f"the message is larger than {MAX_MESSAGE_BYTES} bytes",
            f"メッセージが大きすぎます（上限 {MAX_MESSAGE_BYTES} バイト）",
        )
    try:
        message = json.loads(value.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidMessage(
            "not_utf8", "the message is not UTF-8 text", "メッセージが UTF-8 の文字列ではありません"
        ) from None
    except json.JSONDecodeError as error:
        raise InvalidMessage(
            "not_json",
            f"the message is not JSON: {error.msg} (position {error.pos})",
            "メッセージが JSON として読めません",
        ) from None
    except RecursionError:
        raise InvalidMessage(
            "not_v1_message", "the message is nested too deeply", "メッセージの入れ子が深すぎます"
        ) from None
    if not isinstance(message, dict):
        raise InvalidMessage(
            "not_v1_message",
            'the message is not a JSON object {"v": 1, ...}',
            'メッセージの形式が違います（{"v": 1, ...} ではありません）',
        )
    if message.get("v") != MESSAGE_VERSION:
        raise InvalidMessage(
            "unknown_message_version",
            f"unknown message version v={message.get('v')!r}",
            f"メッセージの版 v={message.get('v')!r} には対応していません",
        )
    if "envelope" in message:
        raise InvalidMessage(
            "unsealed_message",
            "the envelope travels in the clear: it must be sealed",
            "イベントが暗号化されずに送られました。暗号化して送ってください",
        )
    extra = sorted(set(message) - {"v", "sealed"})
    if extra:
        raise InvalidMessage(
            "not_v1_message",
            f"unknown fields in the message: {', '.join(extra)}",
            f"メッセージに使えない項目があります: {', '.join(extra)}",
        )
    sealed = message.get("sealed")
    if not isinstance(sealed, str):
        raise InvalidMessage(
            "not_v1_message",
            "the message has no sealed envelope",
            "メッセージに暗号化されたイベント（sealed）がありません",
        )
    try:
        return base64.b64decode(sealed, validate=True)
    except ValueError:
        raise InvalidMessage(
            "unreadable_message",
            "the sealed envelope does not open with this hub's keys",
            "暗号化されたイベントをこのハブの鍵で開けません（改ざん、または別の鍵）",
        ) from None


def _opened(sealed: bytes, keys: DataKeys) -> dict[str, Any]:
    """The envelope in ``sealed``; ``InvalidMessage`` when it does not open or is not an envelope."""
    from cryptography.exceptions import InvalidTag

    from events.sealing import KeyDestroyed, KeyUnknown

    try:
        plaintext = keys.open(sealed, MESSAGE_AAD)
    except KeyDestroyed:
        raise InvalidMessage(
            "erased_child",
            "the child's record was erased: the message can no longer be opened",
            "児童の記録は消去済みのため、このメッセージは開けません",
        ) from None
    except (InvalidTag, KeyUnknown):
        raise InvalidMessage(
            "unreadable_message",
            "the sealed envelope does not open with this hub's keys",
            "暗号化されたイベントをこのハブの鍵で開けません（改ざん、または別の鍵）",
        ) from None
    try:
        envelope = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InvalidMessage(
            "not_v1_message", "the sealed envelope is not JSON", "暗号化されたイベントが JSON ではありません"
        ) from None
    if not isinstance(envelope, dict):
        raise InvalidMessage(
            "not_v1_message", "the message has no envelope object", "メッセージに envelope（イベント）がありません"
        )
    return envelope


def original_message(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None) -> dict[str, Any]:
    """A message as plain JSON values, bytes kept exactly (base64), with the text when it is UTF-8."""
    out: dict[str, Any] = {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": key.decode("utf-8", "replace") if key is not None else None,
        "value_base64": base64.b64encode(value).decode() if value is not None else None,
    }
    if value is not None:
        try:
            out["value_text"] = value.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return out


def dead_letter_value(
    original: dict[str, Any], problems: list[dict[str, Any]], *, stage: str, failed_at: str, quarantined_as: str | None
) -> bytes:
    """A dead-letter message: what was wrong (``stage`` ``decode`` or ``ingest``), when, where the hub keeps it,
    and the original message."""
    return json.dumps(
        {
            "v": MESSAGE_VERSION,
            "stage": stage,
            "problems": problems,
            "failed_at": failed_at,
            "quarantine": quarantined_as,
            "original": original,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def producer_options(api_version: tuple[int, ...] | None, *, connect_timeout: float = 10.0) -> dict[str, Any]:
    """Producer settings shared by publishers and the worker's dead-letter producer: acknowledged by all
    in-sync replicas, retried, one request in flight so retries keep the order, and no idempotent producer or
    transactions (not available on every broker the hub must work with)."""
    options: dict[str, Any] = {
        "acks": "all",
        "retries": 5,
        "max_in_flight_requests_per_connection": 1,
        "max_request_size": MAX_MESSAGE_BYTES,
        "enable_idempotence": False,
        "linger_ms": 5,
        "max_block_ms": int(connect_timeout * 1000),
        "request_timeout_ms": 15000,
        "delivery_timeout_ms": 60000,
    }
    if api_version is not None:
        options["api_version"] = api_version
    return options


class KafkaPublisher:
    """The ``Publisher`` that hands envelopes to the events topic. Each envelope handed over and acknowledged by
    the broker is ``queued``: the ingest worker decides, and rejected ones go to the dead-letter topic and to the
    quarantine. Raises ``TransportError`` when the broker is unreachable or does not acknowledge; re-publishing
    is then safe (the hub stores an envelope id once)."""

    def __init__(
        self,
        bootstrap: str,
        *,
        keys: DataKeys,
        topic: str | None = None,
        api_version: tuple[int, ...] | None = None,
        client_id: str = "tsunagu-publisher",
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
    ):
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        self.bootstrap = bootstrap
        self.keys = keys
        self.topic = topic or events_topic()
        self.timeout = timeout
        if api_version is None:
            api_version = api_version_from_env()
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap.split(","),
                client_id=client_id,
                **producer_options(api_version, connect_timeout=connect_timeout),
            )
        except KafkaError as error:
            raise TransportError(f"Kafka at {bootstrap} is not reachable: {error}") from None

    def partitions(self) -> set[int]:
        """The events topic's partitions (a broker that creates topics on first use creates it now)."""
        from kafka.errors import KafkaError

        try:
            return set(self._producer.partitions_for(self.topic))
        except KafkaError as error:
            raise TransportError(f"Kafka at {self.bootstrap} did not answer: {error}") from None

    def publish(self, envelopes: Sequence[Any]) -> list[PublishResult]:
        from kafka.errors import KafkaError, KafkaTimeoutError

        from events.problems import PublishResult

        futures = []
        self.keys.ensure(_scope(_plain(envelope)) for envelope in envelopes)  # one query for the batch's keys
        try:
            for envelope in envelopes:
                key, value = encode(envelope, self.keys)
                futures.append(self._producer.send(self.topic, key=key, value=value))
            self._producer.flush(timeout=self.timeout)
        except KafkaTimeoutError as error:
            raise TransportError(
                f"Kafka at {self.bootstrap} did not answer ({error}); {len(futures)} of "
                f"{len(envelopes)} events were handed over, none is known to be queued: "
                "publish them again when the broker is back (ids are stored once)"
            ) from None
        failed = []
        for i, future in enumerate(futures):
            try:
                future.get(timeout=0)
            except KafkaError as error:
                failed.append((i, error))
        if failed:
            first, first_error = failed[0]
            raise TransportError(
                f"Kafka at {self.bootstrap} did not take {len(failed)} of {len(envelopes)} events "
                f"(the first at index {first}: {first_error}); publish them again (ids are stored once)"
            )
        results = []
        for i, envelope in enumerate(envelopes):
            plain = _plain(envelope)
            envelope_id = plain.get("id") if isinstance(plain, dict) else None
            results.append(PublishResult(i, str(envelope_id) if envelope_id not in (None, "") else None, "queued"))
        return results

    def close(self) -> None:
        self._producer.close(timeout=self.timeout)

    def __enter__(self) -> KafkaPublisher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
