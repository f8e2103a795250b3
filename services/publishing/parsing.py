"""Step 1 of a publish: parse the envelopes of a batch.

Each item becomes an ``Envelope`` (its shape, kind, payload and times valid) or a ``Rejected`` naming every
problem found, kept as a value so that the batch goes on with the other items. An organisation publishes only as
itself (the HTTP API passes the authenticated ``publisher``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from events.envelope import Envelope, parse_envelope
from events.problems import Problem, Rejected


def parse_batch(items: Sequence[Any], now: datetime, publisher: str | None = None) -> list[Envelope | Rejected]:
    """The items of a batch parsed at ``now``, in order; as published by ``publisher`` when one is given."""
    parsed = [parse_item(raw, now) for raw in items]
    if publisher is None:
        return parsed
    return [as_publisher(raw, item, publisher) for raw, item in zip(items, parsed)]


def parse_item(raw: Any, now: datetime) -> Envelope | Rejected:
    """``raw`` as an envelope, or the rejection of it as a value (without its traceback, which holds the frame)."""
    try:
        return parse_envelope(raw, now=now)
    except Rejected as rejected:
        return rejected.with_traceback(None)


def as_publisher(raw: Any, item: Envelope | Rejected, publisher: str) -> Envelope | Rejected:
    """``item`` as published by ``publisher``: rejected with ``source_mismatch`` when its source is another
    organisation (checked before admission, and before its id is looked up)."""
    source = item.source if isinstance(item, Envelope) else (raw.get("source") if isinstance(raw, dict) else None)
    if source in (None, "", publisher):
        return item
    problem = Problem(
        "source_mismatch",
        f"source {source!r} is not the publishing organisation {publisher!r}",
        f"source「{source}」が送信元の機関（{publisher}）と一致しません。自機関のイベントだけを送れます",
        "source",
    )
    return Rejected([problem] + (item.problems if isinstance(item, Rejected) else []))
