"""An access record's stored form 2 (``services.reading.record_form``: the decision in columns) read back through
``logical_record`` is the form-1 record the code before it stored for the same read (``decision`` as
``ReadDecision.to_dict`` writes it): random readers and decisions (redactions, reads refused as a whole, empty
timelines, reads shown by a view), through the store's own transcoder, and chained as ``TimelineReader`` chains
them. Form-1 records and views' records are read as they are; a record in no known form is refused by name."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.model import EventDecision, ReadDecision
from events.transcoding import OrjsonTranscoder
from services.reading.record_form import RECORD_FORMAT, RecordFormError, decision_columns, logical_record
from services.reading.timeline import TimelineReader, access_record, chain_hash, new_record_chain_hash
from tests.reading.test_new_record_hash import decisions, positions, readers, settings_values, texts

pytestmark = [pytest.mark.unit]

refused_as_a_whole = st.builds(ReadDecision, allowed=st.just(False), reason=texts, policy_version=texts)


def form_1(record: dict[str, Any], decision: ReadDecision) -> dict[str, Any]:
    """The record as the code before form 2 made it (``access_record`` at a650a66): no ``format``, the decision
    as ``ReadDecision.to_dict`` writes it. Written out here, not taken from ``logical_record``."""
    old = {k: v for k, v in record.items() if k not in ("format", "decisions")}
    old["decision"] = decision.to_dict()
    return old


@settings(max_examples=300, deadline=None)
@given(
    readers,
    texts,
    decisions | refused_as_a_whole,
    positions,
    positions,
    settings_values,
    st.none() | texts,
    st.text(max_size=12),
    st.integers(1, 10**6),
)
def test_form_2_reads_back_as_the_form_1_record(
    reader, child, decision, log_position, child_position, settings_, view, previous, sequence
):
    made = access_record(
        reader,
        child,
        decision,
        log_position=log_position,
        child_position=child_position,
        registry_version=3,
        settings=settings_,
        recorded_at=reader.t,
        content="digest",
        view=view,
    )
    chained = TimelineReader._chained(made, previous, sequence)
    transcoder = OrjsonTranscoder()
    stored = transcoder.decode(transcoder.encode({"record": chained}))["record"]  # as the store writes and reads it

    assert stored == chained and stored["format"] == RECORD_FORMAT and "decision" not in stored
    assert stored["decisions"] == decision_columns(decision)
    logical = logical_record(stored)
    assert logical == form_1(chained, decision)
    assert ReadDecision.from_dict(logical["decision"]) == decision
    assert ("view" in logical) == (view is not None)
    # The chain hash covers the record as stored (its columns), and is the one definition for both forms.
    assert chained["hash"] == chain_hash(previous, stored) == new_record_chain_hash(previous, stored)
    assert chain_hash(previous, logical) != chained["hash"]  # the form-1 reading is not what was hashed


def test_an_empty_timeline_and_a_refused_read_have_empty_columns():
    for decision in (ReadDecision(True, "evaluated", (), "2"), ReadDecision(False, "unknown_organisation")):
        columns = decision_columns(decision)
        assert columns == {
            "allowed": decision.allowed,
            "reason": decision.reason,
            "event": [],
            "event_allowed": [],
            "rule": [],
            "redacted": [],
        }
        stored = {"format": 2, "id": "r", "policy_version": decision.policy_version, "decisions": columns}
        assert logical_record(stored)["decision"] == decision.to_dict()


def test_form_1_records_and_view_records_are_read_as_they_are():
    old = {"id": "r", "decision": {"allowed": True, "reason": "evaluated", "events": []}, "hash": "h"}
    view = {"id": "v", "reader": {"org": "o"}, "consulted": {"digest": "d", "count": 1}}
    assert logical_record(old) is old and logical_record(view) is view


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.update(format=3), "unknown record format 3"),
        (lambda r: r.pop("decisions"), "not the columns of form 2"),
        (lambda r: r["decisions"].pop("rule"), "not the columns of form 2"),
        (lambda r: r["decisions"]["event_allowed"].pop(), "differ in length"),
    ],
)
def test_a_record_in_no_known_form_is_refused_by_name(change, message):
    decision = ReadDecision(True, "evaluated", (EventDecision("e1", True, "OWN"), EventDecision("e2", False)), "2")
    stored = {"format": 2, "id": "r", "policy_version": "2", "decisions": decision_columns(decision)}
    change(stored)
    with pytest.raises(RecordFormError, match=message):
        logical_record(stored)
