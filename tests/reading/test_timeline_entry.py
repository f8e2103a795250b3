"""What a timeline read returns: each entry written out for the response and its digest as its fields are."""

from __future__ import annotations

from dataclasses import fields

import pytest

from services.reading.timeline import TimelineEntry

pytestmark = [pytest.mark.unit]


def test_a_timeline_entry_is_returned_and_digested_as_its_fields_are():
    """``TimelineEntry.to_dict`` written out gives what the generic form gave: every field that is not None, in
    declaration order (the order of the response's JSON)."""
    base = {"id": "e1", "kind": "note.recorded", "source": "s", "basis": "internal", "at": "2026-04-01T09:00:00+09:00"}
    for function, to in [(None, None), ("child_welfare", None), (None, "beppu-center"), ("maternal_health", "x")]:
        entry = TimelineEntry(
            **base, payload={"a": 1}, rule="r", redacted=["a"], function=function, to=to, sensitive=["a"]
        )
        generic = {f.name: getattr(entry, f.name) for f in fields(entry) if getattr(entry, f.name) is not None}
        assert list(entry.to_dict().items()) == list(generic.items())
