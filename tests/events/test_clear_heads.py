"""An access record's chain head in the clear (``events.sealing.CLEAR_HEAD``): stored beside the sealed record, it
is the record's own ``hash`` and ``sequence`` (what the record opens to), the turn gives it to the next read
without opening the record (``HubStore.append_in_turn(chain_heads=True)``) and equal to what opening gives, a head
stored before them (none in the clear) is opened as before, and a head altered in the database makes its record
not open, so ``audit verify`` names it."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.sealing import CLEAR_HEAD, FORMAT, SealingMapper
from events.store import AccessLog, ChainHead
from services.audit.replay import ACCESS_TOPIC, verify
from services.hub import Hub
from tests.audit.test_tamper import READERS, Table, populate


def stored_records(hub: Hub, child: str = "c1") -> list:
    return [s for s in hub.store.recorder.select_events(AccessLog.create_id(child)) if s.topic == ACCESS_TOPIC]


def opened_head(hub: Hub, stored) -> ChainHead:
    """What the next record is chained to, as it was read before the clear heads: the record opened."""
    record = hub.store.mapper.to_domain_event(stored).record
    return ChainHead(stored.originator_version, record["hash"], record["sequence"])


def turn_heads(hub: Hub, *streams) -> dict:
    with hub.store.append_in_turn(streams, chain_heads=True) as turn:
        return dict(turn.heads)


@pytest.mark.store
def test_each_record_carries_its_own_hash_and_sequence_in_the_clear_and_the_turn_reads_them(hub, clock):
    populate(hub, clock)
    c1_log = AccessLog.create_id("c1")  # c1 read four times, c2 twice
    for child in ("c1", "c2"):
        for stored in stored_records(hub, child):
            state = bytes(stored.state)
            assert state[:1] == CLEAR_HEAD and FORMAT in state
            head = opened_head(hub, stored)
            assert hub.store.mapper.clear_head(stored) == {"hash": head.hash, "sequence": head.sequence}
    last_c1, last_c2 = stored_records(hub, "c1")[-1], stored_records(hub, "c2")[-1]
    expected = {c1_log: opened_head(hub, last_c1), AccessLog.create_id("c2"): opened_head(hub, last_c2)}
    assert turn_heads(hub, c1_log) == {c1_log: expected[c1_log]}  # one log: one query
    assert turn_heads(hub, c1_log, AccessLog.create_id("c2"), AccessLog.create_id("none")) == expected


@pytest.mark.store
def test_a_head_stored_before_the_clear_heads_is_opened_and_the_log_goes_on(hub, clock):
    """The head re-stored as the code before it stored every record (the state sealed whole, nothing in the
    clear): the turn opens it and gives the same ``ChainHead``; the next read chains to it; verify holds."""
    populate(hub, clock)
    last = stored_records(hub, "c1")[-1]
    expected = opened_head(hub, last)
    mapper, c1_log = hub.store.mapper, AccessLog.create_id("c1")
    event = mapper.to_domain_event(last)
    state = {"timestamp": event.timestamp, "record": event.record}
    aad = SealingMapper._aad(last.originator_id, last.originator_version, last.topic)
    sealed_whole = mapper.keys.seal("hub", mapper.transcoder.encode(state), aad)
    with hub.store.recorder.datastore.transaction(commit=True) as cursor:
        cursor.execute(
            "UPDATE stored_events SET state = ? WHERE originator_id = ? AND originator_version = ?",
            (sealed_whole, c1_log.hex, last.originator_version),
        )
    (restored,) = [s for s in stored_records(hub) if s.originator_version == last.originator_version]
    assert bytes(restored.state)[:1] == FORMAT and mapper.clear_head(restored) is None
    assert turn_heads(hub, c1_log) == {c1_log: expected}
    clock.at = datetime.fromisoformat("2026-05-10T11:00:00+09:00")
    hub.timeline(org="beppu-center", role="caseworker", child="c1", purpose="support", user="u")
    after = stored_records(hub)[-1]
    assert mapper.to_domain_event(after).record["prev_hash"] == expected.hash
    assert verify(hub.store).ok


@pytest.mark.store
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    chained=st.text(min_size=0, max_size=80),
    sequence=st.integers(1, 2**63 - 1),
    extra=st.dictionaries(st.text(max_size=5), st.text(max_size=5) | st.none(), max_size=3),
)
def test_the_clear_head_is_what_the_sealed_record_opens_to(hub, chained, sequence, extra):
    """Any record the mapper stores with a hash and a sequence reads back whole, and its clear head is those two."""
    record = {**extra, "hash": chained, "sequence": sequence, "prev_hash": ""}
    c1_log = AccessLog.create_id("c1")
    event = AccessLog.ReadRecorded(
        originator_id=c1_log,
        originator_version=sequence + 1,
        timestamp=AccessLog.ReadRecorded.create_timestamp(),
        record=record,
    )
    stored = hub.store.mapper.to_stored_event(event)
    assert hub.store.mapper.clear_head(stored) == {"hash": chained, "sequence": sequence}
    assert hub.store.mapper.to_domain_event(stored).record == record


@pytest.mark.unit
def test_a_record_without_a_hash_and_a_sequence_has_no_clear_head():
    assert AccessLog.ReadRecorded.chain_head({"record": {"writer": "w", "hash": "h"}}) is None
    assert AccessLog.ReadRecorded.chain_head({"record": {"hash": "h", "sequence": True}}) is None
    assert AccessLog.ReadRecorded.chain_head({"record": {"hash": "h", "sequence": 3}}) == {"hash": "h", "sequence": 3}


def _altered_head(state: bytes, change) -> bytes:
    length = int.from_bytes(state[1:3], "big")
    head = change(state[3 : 3 + length])
    return CLEAR_HEAD + len(head).to_bytes(2, "big") + head + state[3 + length :]


@pytest.fixture
def pg_hub(postgres_url, clock):
    hub = Hub(postgres_url, clock=clock)
    yield hub
    hub.close()


@pytest.mark.postgres
@pytest.mark.parametrize(
    "change",
    [
        lambda head: head.replace(b'"hash":"', b'"hash":"0'),  # the head's hash
        lambda head: head.replace(b'"sequence":4', b'"sequence":5'),  # the head's sequence
    ],
    ids=["hash", "sequence"],
)
def test_a_clear_head_altered_in_postgresql_is_named_by_audit_verify(pg_hub, postgres_url, clock, change):
    populate(pg_hub, clock)
    table = Table(postgres_url)
    state = table.state("c1", 4)
    altered = _altered_head(state, change)
    assert altered != state
    table.set_state("c1", 4, altered)
    report = verify(pg_hub.store)
    (broken,) = report.broken_chains
    assert (broken.child, broken.sequence, broken.fault) == ("c1", 4, "unreadable"), report.to_dict()

    # The next read chains to what the altered head says; the chain stays broken there, never repaired.
    clock.at = datetime.fromisoformat("2026-05-10T11:00:00+09:00")
    org, role = READERS[0]
    pg_hub.timeline(org=org, role=role, child="c1", purpose="support", user="u")
    report = verify(pg_hub.store)
    assert not report.ok and report.broken_chains[0].sequence == 4
