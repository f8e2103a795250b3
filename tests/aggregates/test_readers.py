"""Who reads aggregates (issue 17 §3): a prefecture office its prefecture's municipalities, a centre its own
unsuppressed and its neighbours suppressed, a 児相 those it covers, an auditor and a school nothing; every
request leaves one record in the aggregate-access log, whose chain ``Hub.verify`` checks."""

from __future__ import annotations

from datetime import datetime

import pytest

from events.clock import JST
from services.aggregates.access_log import AggregateAccessLog, records
from services.aggregates.service import Aggregates, AggregatesRefused
from services.hub import Hub, SettableClock
from tests.helpers import registered_cases

pytestmark = pytest.mark.store

ORGS = [
    {"id": "cA", "type": "municipal_center", "municipality": "100001", "prefecture": "10"},
    {"id": "cB", "type": "municipal_center", "municipality": "100002", "prefecture": "10"},
    {"id": "cX", "type": "municipal_center", "municipality": "200001", "prefecture": "20"},
    {"id": "s1", "type": "school", "regime": "public", "municipality": "100001"},
    {"id": "jA", "type": "child_guidance_center", "prefecture": "10", "covers": ["100002"]},
    {"id": "pf", "type": "prefecture_office", "prefecture": "10"},
    {"id": "au", "type": "auditor", "prefecture": "10"},
]


@pytest.fixture
def hub():
    hub = Hub("sqlite:///:memory:", clock=SettableClock(datetime(2026, 12, 1, 9, tzinfo=JST)))
    hub.load_orgs(ORGS)
    items = registered_cases([("cA", "100001", 2), ("cB", "100002", 3), ("cX", "200001", 1)])
    assert {r.outcome for r in hub.publish(items)} == {"accepted"}
    yield hub
    hub.close()


def labels(table) -> list[list[str]]:
    return [[e.label for e in row] for row in table.entries]


def test_a_prefecture_office_reads_its_prefecture_with_every_small_cell_hidden(hub):
    table = Aggregates(hub.store, hub.clock).table(
        org="pf", user="県 企画", measure="cases.registered", first="2026-04", last="2026-05"
    )
    assert table.municipalities == ["100001", "100002"]  # not 200001 of prefecture 20
    assert all(not 0 < (e.value or 0) < 5 for row in table.entries for e in row)  # no count under 5 shown
    assert labels(table)[0][:2] == ["0", "<5"]


def test_a_centre_sees_its_own_small_counts_and_its_neighbours_hidden(hub):
    table = Aggregates(hub.store, hub.clock).table(
        org="cA", user="佐藤", measure="cases.registered", first="2026-05", last="2026-05"
    )
    assert table.own == "100001"
    assert labels(table)[0] == ["2", "2"]
    assert table.entries[1][0].value is None and labels(table)[1][0] == "<5"


def test_a_jiso_reads_the_municipalities_it_covers(hub):
    table = Aggregates(hub.store, hub.clock).table(
        org="jA", user=None, measure="cases.open", first="2026-05", last="2026-06"
    )
    assert table.municipalities == ["100002"]


@pytest.mark.parametrize("org", ["au", "s1", "nobody"])
def test_an_auditor_a_school_and_a_stranger_get_nothing_and_the_refusal_is_recorded(hub, org):
    with pytest.raises(AggregatesRefused):
        Aggregates(hub.store, hub.clock).table(
            org=org, user="x", measure="cases.registered", first="2026-05", last="2026-05"
        )
    [record] = records(hub.store)
    assert record["org"] == org and record["refused"] and record["cells"] == []


def test_every_request_leaves_one_chained_record_that_verify_checks(hub):
    aggregates = Aggregates(hub.store, hub.clock)
    for org in ("pf", "cA", "jA"):
        aggregates.table(org=org, user="u", measure="cases.registered", first="2026-05", last="2026-05")
    found = records(hub.store)
    assert [r["org"] for r in found] == ["pf", "cA", "jA"]
    assert found[0]["suppressed"] and found[0]["query"]["measure"] == "cases.registered"
    assert all(set(r) >= {"org", "user", "query", "at", "cells", "suppressed"} for r in found)
    assert hub.verify().ok
    log = hub.store.get_or_none(AggregateAccessLog.create_id())
    forged = {**found[1], "prev_hash": found[1]["prev_hash"], "hash": found[1]["hash"], "cells": [["99"]]}
    log.record(record={**forged, "sequence": 4, "prev_hash": log.last_hash})  # a record whose hash is not its own
    hub.store.save(log)
    report = hub.verify()
    assert not report.ok
    assert report.mismatches[0].child == "(aggregate access log)" and report.mismatches[0].fault == "edited"


def test_every_period_is_cut_from_one_fixed_table_so_no_two_queries_can_be_subtracted(hub):
    """A planner may ask for any period: April–June minus April–May must not give June back, nor two periods hide
    different cells. Every cell and month total a query shows is the 年度 table's entry, hidden or shown as there,
    whatever the period; a row or grand total of a part of the year is shown only when it is the sum of shown
    entries (``services.aggregates.service``)."""
    aggregates = Aggregates(hub.store, hub.clock)
    months = [f"2026-{m:02d}" for m in range(4, 13)]
    seen: dict[tuple[str, str, str], str] = {}  # (measure, row, month or "total") -> label, over all queries
    for measure in ("cases.registered", "cases.open"):
        for i, first in enumerate(months):
            for last in months[i:]:
                table = aggregates.table(org="pf", user="県 企画", measure=measure, first=first, last=last)
                names = [*table.municipalities, "合計"]
                for row, entries in zip(names, table.entries, strict=True):
                    cells, total = entries[:-1], entries[-1]
                    for month, entry in zip(table.months, cells, strict=True):
                        assert seen.setdefault((measure, row, month), entry.label) == entry.label, (row, month)
                    if table.total == "last":  # a level: its last month-end, hidden as that cell is
                        assert total == cells[-1], (row, first, last)
                    elif total.value is not None:  # a part of the year: shown only as the sum of shown entries
                        assert all(e.value is not None for e in cells), (row, first, last)
                        assert total.value == sum(e.value or 0 for e in cells)
    assert seen[("cases.registered", "100001", "2026-05")] == "<5"  # cA registered 2 cases in May
