"""Where adapters send envelopes: straight into the hub (embedded), or through the log transport (Kafka)."""

from __future__ import annotations

from typing import Any, Protocol, Sequence

from services.ingest import PublishResult


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
