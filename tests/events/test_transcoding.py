"""The store's JSON encoding (``events.transcoding.OrjsonTranscoder``) writes what the library's own encoder writes,
for every kind of state the hub stores: the demo municipality's events, projections, registry, access records."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum

import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.model import Settings
from events.transcoding import OrjsonTranscoder
from services.demo import load_demo

pytestmark = pytest.mark.store


def transcoders() -> tuple[JSONTranscoder, OrjsonTranscoder]:
    out = (JSONTranscoder(), OrjsonTranscoder())
    for transcoder in out:
        for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
            transcoder.register(transcoding)
    return out


class Colour(StrEnum):
    RED = "red"


def test_values_read_back_as_the_librarys_encoder_writes_them():
    library, fast = transcoders()
    moment = datetime(2026, 5, 12, 9, 30, tzinfo=timezone(timedelta(hours=9)))
    state = {
        "at": moment,
        "amount": Decimal("1.50"),
        "text": "服装の汚れ",
        "colour": Colour.RED,
        "n": 2**80,
        "nested": {"list": [1, (2, 3)], 7: "int key"},
        "none": None,
    }
    assert fast.decode(fast.encode(state)) == library.decode(library.encode(state))
    assert fast.decode(fast.encode(state))["at"] == moment  # still a datetime
    assert fast.encode({"a": 1, "b": "ü"}) == library.encode({"a": 1, "b": "ü"})  # the same bytes


def test_a_type_without_a_transcoding_is_refused_as_by_the_library():
    _, fast = transcoders()

    class Unknown:
        pass

    with pytest.raises(TranscodingNotRegisteredError):
        fast.encode({"x": Unknown()})


def test_every_state_the_demo_stores_reads_back_the_same_through_either_encoder(make_hub, clock):
    clock.at = datetime.fromisoformat("2026-11-23T12:00:00+09:00")
    hub = make_hub(settings=Settings(joint_ledger=True))
    assert load_demo(hub).rejected == []
    hub.timeline(org="beppu-center", role="caseworker", child="child-01", purpose="support")  # an access record
    library, fast = transcoders()
    topics = set()
    for notification in hub.store.recorder.select_notifications(1, 1_000_000):
        state = dict(vars(hub.store.mapper.to_domain_event(notification)))
        state.pop("originator_id"), state.pop("originator_version")
        assert fast.decode(fast.encode(state)) == library.decode(library.encode(state)), notification.topic
        topics.add(notification.topic)
    assert {
        "events.store:ChildRecord.Published",
        "events.store:AccessLog.ReadRecorded",
        "services.projections.admission_facts:ChildFacts.FactsRecorded",
        "services.projections.rosters:MonthlyReports.ReportsRecorded",
    } <= topics


moments = st.datetimes(timezones=st.just(timezone(timedelta(hours=9))))
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.sampled_from(["_type_", '"_type_"', "\\u005f", "\\"])
    | moments
    | st.decimals(allow_nan=False, allow_infinity=False, places=2)
)
states = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=6) | st.sampled_from(["_type_", "_data_", "\u005ftype_"]), children, max_size=4
        )
    ),
    max_leaves=30,
)


@pytest.mark.unit
@settings(max_examples=1000, deadline=None)
@given(st.dictionaries(st.text(max_size=8), states, max_size=5), moments)
def test_fast_decoding_reads_what_the_librarys_decoder_reads(state, moment):
    library, fast = transcoders()
    state["timestamp"] = moment
    for data in (library.encode(state), fast.encode(state)):
        try:
            expected = library.decode(data)
        except Exception as error:  # a state the hub never writes ({"_type_": None, …}): refused alike
            with pytest.raises(type(error)):
                fast.decode(data)
        else:
            assert fast.decode(data) == expected


@pytest.mark.unit
def test_fast_decoding_of_what_orjson_refuses_or_cannot_tell():
    library, fast = transcoders()
    for data in [
        b'{"n": 123456789012345678901234567890}',
        b'{"x": NaN, "y": Infinity}',
        b'{"a": {"_type_": "decimal_str", "_data_": "1.5"}, "t": {"_type_": "datetime_iso", "_data_": "2026-05-12"}}',
        b'{"a": [{"_type_": "decimal_str", "_data_": "1.5"}]}',
        b'{"\\u005ftype_": "decimal_str", "_data_": "1.5"}',
        b'{"_type_": "decimal_str", "_data_": "1.5"}',
        b'{"a": {"_type_": "x"}}',
        b'[1, 2, "\\ud800"]',
    ]:
        assert fast.decode(data) == library.decode(data), data
    for data in [
        b'{"a": {"_type_": "unknown", "_data_": 1}}',
        b'{"a": 1',
        '{"a": "\udcff"}'.encode("utf-8", "surrogatepass"),
    ]:
        with pytest.raises(Exception) as expected:
            library.decode(data)
        with pytest.raises(expected.type):
            fast.decode(data)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.binary(max_size=12) | st.text(alphabet="0123456789", min_size=15, max_size=22).map(str.encode),
        max_size=6,
    ).map(b"".join)
)
def test_long_digits_at_a_glance_find_what_the_pattern_finds(data):
    from events.transcoding import _LONG_DIGITS, has_long_digits

    assert has_long_digits(data) == bool(_LONG_DIGITS.search(data))
    assert has_long_digits(bytearray(data)) == bool(_LONG_DIGITS.search(data))
