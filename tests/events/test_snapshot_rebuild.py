"""A snapshot's entries rebuilt with shared audiences (``events.snapshots.rebuilt_entries``) against what it
replaces: ``ChildRecord._add`` for each (envelope, audience) pair, as publishing and replaying build a record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.snapshots import ChildSnapshots, rebuilt_entries
from events.store import ChildRecord

pytestmark = pytest.mark.unit

ORGS = ["beppu-center", "beppu-es-1", "oita-jiso", "beppu-hc", "beppu-nursery-2"]
OFFSETS = [UTC, timezone(timedelta(hours=9)), timezone(timedelta(hours=-5, minutes=-30))]

ats = st.builds(
    lambda seconds, offset: (
        (datetime(2025, 4, 1, tzinfo=UTC) + timedelta(seconds=seconds)).astimezone(offset).isoformat()
    ),
    st.integers(0, 10**8),
    st.sampled_from(OFFSETS),
)
texts = st.text(max_size=6)
envelopes = st.fixed_dictionaries(
    {
        "id": st.uuids().map(str),
        "kind": st.sampled_from(["concern.reported", "case.registered", "attendance.noted"]),
        "child": st.just("k1"),
        "source": st.sampled_from(ORGS),
        "basis": st.sampled_from(["internal", "cwa-21-10-5", "cwa-25"]),
        "at": ats,
        "payload": st.dictionaries(texts, texts, max_size=3),
    },
    optional={
        "function": st.sampled_from(["child_welfare", "maternal_health"]),
        "to": st.sampled_from(ORGS),
        "sensitive": st.lists(texts, max_size=2),
    },
)
audiences = st.lists(st.sampled_from(ORGS), max_size=4, unique=True).map(sorted)  # as a snapshot keeps them
published = st.lists(st.tuples(envelopes, audiences).map(list), max_size=40)


def record_as_added(pairs: list[list[Any]]) -> ChildRecord:
    """The former way: an empty record and ``_add`` for each pair."""
    record = object.__new__(ChildRecord)
    record.__dict__.update(entries=[], envelopes=[])
    for envelope, audience in pairs:
        record._add(envelope, audience)
    return record


def typed(fields: dict[str, Any]) -> list[tuple[str, type, Any]]:
    """Each field's name, type and value, a datetime's with its offset (for a comparison that tells zones apart)."""
    return [
        (name, type(value), (value, value.utcoffset()) if isinstance(value, datetime) else value)
        for name, value in sorted(fields.items())
    ]


@settings(max_examples=300, deadline=None)
@given(published)
def test_rebuilt_entries_are_those_added_one_by_one_and_equal_audiences_share_one_set(pairs):
    added = record_as_added(pairs)
    envelopes_, entries = rebuilt_entries(pairs)
    assert envelopes_ == added.envelopes
    assert all(a is b for a, b in zip(envelopes_, added.envelopes))  # the snapshot's own envelopes, as _add kept
    assert entries == added.entries
    assert [vars(e) for e in entries] == [vars(e) for e in added.entries]  # every field, equal
    # ... of the same types, and each time with its own offset (an aware datetime equals the same instant in another
    # zone, and a day or month read from ``at`` depends on the offset: s10-load review LOW 1)
    assert [typed(vars(e)) for e in entries] == [typed(vars(e)) for e in added.entries]
    by_audience: dict[frozenset[str], frozenset[str]] = {}
    for entry in entries:
        assert type(entry.audience) is frozenset
        assert by_audience.setdefault(entry.audience, entry.audience) is entry.audience  # one object per audience


@settings(max_examples=100, deadline=None)
@given(published)
def test_a_record_rebuilt_from_a_snapshot_state_equals_the_record_added_one_by_one(pairs):
    stream = uuid4()
    version = len(pairs) + 1
    state = {
        "format": 3,
        "version": version,
        "child": "k1",
        "created_on": "2026-01-01T00:00:00+00:00",
        "modified_on": "2026-02-01T00:00:00+00:00",
        "published": pairs,
    }
    record = ChildSnapshots._record(object.__new__(ChildSnapshots), stream, version, state)
    added = record_as_added(pairs)
    assert record.entries == added.entries and record.envelopes == added.envelopes
    assert record.version == version and record.child == "k1" and record.id == stream
    assert ChildSnapshots.state_of(record) == state  # the snapshot it would take again is the one it came from
