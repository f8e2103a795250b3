"""Step 4 of a publish: append an admitted event to the child's stream and register its envelope id.

The event goes to the child's stream at the next version without loading the stream
(``services.publishing.child_streams``); its id goes to the register of envelope ids (``events.envelope_ids``),
written in the same transaction, so that the same id is stored once whoever sends it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from events.envelope_ids import StoredEnvelope, digest_mark, envelope_key
from events.model import Recorded
from services.publishing.batch import Batch


def append(
    batch: Batch,
    candidate: Recorded,
    canonical: dict[str, Any],
    digest: str,
    audience: Iterable[str],
    now: datetime,
) -> Recorded:
    """Append the event ``canonical`` (admitted as ``candidate``, with ``audience``) to its child's stream and
    register its id; returns the event as recorded."""
    stream = batch.child(candidate.child)
    entry = stream.append(canonical, sorted(audience), digest, now.isoformat(), candidate)
    batch.envelopes.append(StoredEnvelope(envelope_key(candidate.id), stream.id, entry.position, digest_mark(digest)))
    return entry
