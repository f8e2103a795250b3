"""Where adapters send envelopes: straight into the hub (embedded), or through the log transport (Kafka)."""

from __future__ import annotations

from typing import Any, Protocol, Sequence

from events.problems import PublishResult


class Publisher(Protocol):
    """Publishes envelopes and says what became of each. A transport that cannot know yet (Kafka) reports
    ``outcome="queued"`` for what it handed over."""

    def publish(self, envelopes: Sequence[dict[str, Any]]) -> list[PublishResult]: ...


class HubPublisher:
    """Publishes directly through the hub's ingest (the embedded default: no Kafka needed)."""

    def __init__(self, hub: Any, *, owns_hub: bool = False):
        self.hub = hub
        self.owns_hub = owns_hub  # close() closes the hub too

    def publish(self, envelopes: Sequence[dict[str, Any]]) -> list[PublishResult]:
        return self.hub.publish(list(envelopes))

    def close(self) -> None:
        if self.owns_hub:
            self.hub.close()


def publisher_for(database: str | None = None, via_kafka: str | None = None, *,
                  kafka_api_version: tuple[int, ...] | None = None) -> Any:
    """The publisher an import or publish command uses: through the Kafka events topic when ``via_kafka`` names
    the bootstrap servers (results are ``queued``; ``events.transport.TransportError`` if the broker is down),
    else straight into the hub on ``database``. Close it with ``close()`` when done."""
    if via_kafka:
        from events.transport import KafkaPublisher

        return KafkaPublisher(via_kafka, api_version=kafka_api_version)
    from services.hub import Hub

    return HubPublisher(Hub(database), owns_hub=True)
