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
        "services.projections.admission_facts:ChildFacts.FactRecorded",
        "services.projections.rosters:MonthlyReports.ReportsRecorded",
    } <= topics
