"""The event vocabulary and its storage: the envelope and its validation, the kinds and their payloads, the plain
values (organisations, recorded events), the event store on the ``eventsourcing`` library with per-child sealing,
and the Kafka log transport. Imports nothing of the hub above it."""
