"""A new access record's chain hash (``services.reading.timeline.new_record_chain_hash``) is ``chain_hash``, the
definition the auditors check stored records with, on records made by ``access_record`` and chained as
``TimelineReader`` chains them: random readers, decisions, settings, positions and views."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.model import EventDecision, ReadDecision, Reader, Settings
from services.reading.timeline import TimelineReader, access_record, chain_hash, new_record_chain_hash

pytestmark = [pytest.mark.unit]

texts = st.text(max_size=8) | st.sampled_from(["面談", "null", "NaN", "1e-07", "0.00001", 'a\\u0041"', "🙂"])
names = st.none() | texts
event_decisions = st.builds(
    EventDecision,
    event=texts,
    allowed=st.booleans(),
    rule=st.none() | st.sampled_from(["OWN", "CASE", "LEDGER", "DIRECT", "TRANSFER"]) | texts,
    redacted=st.lists(texts, max_size=3).map(tuple),
)
decisions = st.builds(
    ReadDecision,
    allowed=st.booleans(),
    reason=texts,
    events=st.lists(event_decisions, max_size=30).map(tuple),
    policy_version=st.sampled_from(["1", "2"]) | texts,
)
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)).map(
    lambda t: t.replace(tzinfo=timezone(timedelta(hours=9)))
)
readers = st.builds(Reader, org=texts, role=names, purpose=texts, t=times, user=names)
settings_values = st.builds(
    Settings,
    integrated_center=st.booleans(),
    joint_ledger=st.booleans(),
    emergency_hours=st.integers(0, 10**6),
    monthly_report_due_day=st.integers(1, 31),
)
positions = st.integers(0, 2**63 - 1)


@settings(max_examples=400, deadline=None)
@given(
    readers,
    texts,
    decisions,
    positions,
    positions,
    positions,
    settings_values,
    st.none() | texts,
    st.text(alphabet="0123456789abcdef", max_size=64),
    st.integers(1, 10**6),
)
def test_the_hash_of_a_new_record_is_the_definitions(
    reader: Reader,
    child: str,
    decision: ReadDecision,
    log_position: int,
    child_position: int,
    registry_version: int,
    config: Settings,
    view: str | None,
    previous: str,
    sequence: int,
) -> None:
    record = access_record(
        reader,
        child,
        decision,
        log_position=log_position,
        child_position=child_position,
        registry_version=registry_version,
        settings=config,
        recorded_at=reader.t,
        content="0" * 64,
        view=view,
    )
    chained: dict[str, Any] = TimelineReader._chained(record, previous, sequence)
    assert chained["hash"] == chain_hash(previous, chained)  # what audit verify checks
    assert new_record_chain_hash(previous, record) == chain_hash(previous, record)


@pytest.mark.unit
def test_nothing_an_access_record_is_made_of_is_typed_to_hold_a_float() -> None:
    """``new_record_chain_hash`` relies on an access record holding no float (``canonical_json_without_floats``
    writes one differently from ``chain_hash``'s definition): the parts a record is made of are typed without one.
    Fails when a float field is added to the settings, the reader or the decisions; then the record's hash must go
    back to ``chain_hash`` (review of s9-read, LOW 1)."""
    import typing

    from consent.model import EventDecision, ReadDecision, Reader, Settings

    for part in (Settings, Reader, ReadDecision, EventDecision):
        for name, hint in typing.get_type_hints(part).items():
            assert "float" not in str(hint), (part.__name__, name, hint)
