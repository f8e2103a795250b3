"""Where adapters send envelopes: straight into the hub (embedded), or through the log transport (Kafka)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from events.problems import PublishResult

if TYPE_CHECKING:  # for the annotation only: the Kafka client is loaded when a Kafka publisher is asked for
    from events.transport import KafkaPublisher


class Publisher(Protocol):
    """Publishes envelopes and says what became of each. A transport that cannot know yet (Kafka) reports
    ``outcome="queued"`` for what it handed over."""

    def publish(self, envelopes: Sequence[dict[str, Any]]) -> list[PublishResult]: ...


class HubPublisher:
    """Publishes directly through the hub's ingest (the embedded default: no Kafka needed)."""

    def __init__(self, hub: Any):
        self.hub = hub

    def publish(self, envelopes: Sequence[dict[str, Any]]) -> list[PublishResult]:
        return self.hub.publish(list(envelopes))

    def close(self) -> None:
        """Nothing to release: the hub belongs to the caller."""


def publisher_for(
    hub: Any, via_kafka: str | None = None, *, kafka_api_version: tuple[int, ...] | None = None
) -> HubPublisher | KafkaPublisher:
    """The publisher an import or publish command uses: through the Kafka events topic when ``via_kafka`` names
    the bootstrap servers (each envelope sealed under its child's data key from ``hub``'s key table; results are
    ``queued``; ``events.transport.TransportError`` if the broker is down), else straight into ``hub``. Close
    it with ``close()`` when done (the hub stays open)."""
    if via_kafka:
        from events.transport import KafkaPublisher

        return KafkaPublisher(via_kafka, keys=hub.store.keys, api_version=kafka_api_version)
    return HubPublisher(hub)
