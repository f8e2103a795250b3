"""The report lines behind the monthly reports' counts (``services.projections.municipal_counts.ReportLines``):
one aggregate per (school, centre), worked on during a publish and recorded once at its end, each line sealed
under its child's key, instead of one ``ReportLine`` stream per (school, child, centre) with an event per change.
The lines and the counts kept this way equal the ones rebuilt from the log one event at a time (the rebuild runs
the same counting on a unit of work in memory, with nothing staged), whatever the batches; an erased child's line
is gone with its key; and a store written by main's code (``tests/fixtures/report-lines-main.db``, lines kept one
stream a line) opens, counts and goes on as one that always kept ``ReportLines``."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.clock import JST
from services.aggregates.figures import _InMemory, correct, kept, rebuild, resolve_levels
from services.hub import Hub, SettableClock
from services.projections.municipal_counts import ReportLines
from tests.conftest import ROOT

pytestmark = pytest.mark.store

ORGS = [
    {"id": "cA", "type": "municipal_center", "municipality": "100001", "prefecture": "10"},
    {"id": "s1", "type": "school", "municipality": "100001", "prefecture": "10"},
]
CHILDREN = ("a1", "a2", "a3")
_runs = itertools.count()


def registered(child: str) -> dict:
    return {"id": f"r-{child}", "kind": "child.registered", "child": child, "source": "cA", "basis": "internal",
            "at": "2026-03-01T10:00:00+09:00", "payload": {"residence": "100001"}}  # fmt: skip


def listing(n: str, child: str, student: str, day: str, kind: str = "target_list.assigned", school: str = "s1") -> dict:
    return {"id": n, "kind": kind, "child": child, "source": "cA", "to": school, "basis": "cwa-25-3",
            "at": f"2026-{day}T10:00:00+09:00",
            "payload": {"school": school, "student_no": student, "from_month": "2026-04"}}  # fmt: skip


def monthly(n: str, child: str, month: str, day: str, school: str = "s1") -> dict:
    return {"id": n, "kind": "attendance.monthly", "child": child, "source": school, "to": "cA", "basis": "cwa-25-3",
            "at": f"2026-{day}T10:00:00+09:00",
            "payload": {"month": month, "school_days": 20, "attended": 18, "absent": 2,
                        "absent_without_contact": 0}}  # fmt: skip


def rebuilt_lines(hub: Hub) -> dict[str, dict]:
    """The lines of (s1, cA) rebuilt from the log, one event at a time (``figures.rebuild``)."""
    work = _InMemory(hub.store.registry().orgs)
    rebuild(hub.store, work)
    found = work.aggregates.get(ReportLines.create_id("s1", "cA"))
    return dict(found.lines) if found is not None else {}


def kept_lines(hub: Hub) -> dict[str, dict]:
    found = hub.store.get_or_none(ReportLines.create_id("s1", "cA"))
    return dict(found.lines) if found is not None else {}


def topics(hub: Hub) -> list[str]:
    stream = ReportLines.create_id("s1", "cA")
    return [e.topic.rsplit(".", 1)[-1] for e in hub.store.recorder.select_events(stream)]


# a step: (child, what) with what 0 = listed (student number 1 or 2), 1 = removed, 2.. = a report for a month
steps = st.lists(
    st.tuples(st.sampled_from(CHILDREN), st.sampled_from(["list-1", "list-2", "remove", "04", "05", "06"])),
    min_size=1,
    max_size=14,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps, cuts=st.lists(st.integers(min_value=1, max_value=13), max_size=5))
def test_the_lines_and_counts_kept_per_publish_are_the_ones_rebuilt_one_event_at_a_time(tmp_path, steps, cuts):
    """Random listings, removals and reports (a second report for a month included) of three children at one
    school, in random batches: the lines the hub keeps, the lines a new process loads and the lines rebuilt from
    the log one event at a time are the same; so are the kept and the rebuilt counts (nothing to correct)."""
    run = next(_runs)
    envelopes = []
    for n, (child, what) in enumerate(steps):
        day = f"{4 + n // 5:02d}-{1 + n % 5 * 5:02d}"  # in time order, April to June
        if what.startswith("list-"):
            envelopes.append(listing(f"e{n}", child, f"00{what[-1]}", day))
        elif what == "remove":
            envelopes.append(listing(f"e{n}", child, "001", day, kind="target_list.removed"))
        else:
            envelopes.append(monthly(f"e{n}", child, f"2026-{what}", day))
    bounds = sorted({c for c in cuts if c < len(envelopes)})
    batches = [envelopes[a:b] for a, b in zip([0, *bounds], [*bounds, len(envelopes)])]
    database = f"sqlite:///{tmp_path / f'hub-{run}.db'}"
    hub = Hub(database, clock=SettableClock(datetime(2026, 7, 1, 9, tzinfo=JST)))
    try:
        hub.load_orgs(ORGS)
        assert {r.outcome for r in hub.publish([registered(c) for c in CHILDREN])} == {"accepted"}
        published = 0
        for batch in batches:
            results = hub.publish(batch)
            published += any(r.outcome == "accepted" for r in results)
        kept_now = kept_lines(hub)
        assert kept_now == rebuilt_lines(hub)
        assert kept(hub.store, "100001") == resolve_levels(rebuild(hub.store).get("100001", {}))
        assert correct(hub.store) == 0
        assert topics(hub).count("LinesCounted") <= published  # at most one a publish
    finally:
        hub.close()
    fresh = Hub(database)
    try:
        assert kept_lines(fresh) == kept_now
    finally:
        fresh.close()


def test_one_event_a_publish_and_an_erased_childs_line_goes_with_its_key(tmp_path):
    """Three listings in one publish, two reports in the next: two ``LinesCounted``; after a2's erasure a new
    process's lines are a1's and a3's, and ``correct`` (which rebuilds from the log, a2's events included) records
    none for a2."""
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = Hub(database, clock=SettableClock(datetime(2026, 7, 1, 9, tzinfo=JST)))
    try:
        hub.load_orgs(ORGS)
        assert {r.outcome for r in hub.publish([registered(c) for c in CHILDREN])} == {"accepted"}
        batch = [listing(f"l-{c}", c, f"00{n}", "04-02") for n, c in enumerate(CHILDREN)]
        assert {r.outcome for r in hub.publish(batch)} == {"accepted"}
        reports = [monthly("m-a1", "a1", "2026-04", "05-08"), monthly("m-a2", "a2", "2026-04", "05-20")]
        assert {r.outcome for r in hub.publish(reports)} == {"accepted"}
        assert topics(hub) == ["Created", "LinesCounted", "LinesCounted"]
        lines = kept_lines(hub)
        assert lines["a1"]["received"] == {"2026-04": "2026-05-08"}
        assert lines["a3"]["received"] == {}
        erasure = {"id": "a2-erased", "kind": "child.erased", "child": "a2", "source": "cA", "basis": "internal",
                   "at": "2026-06-30T09:00:00+09:00", "payload": {"reason": "保存期間の満了"}}  # fmt: skip
        assert [r.outcome for r in hub.publish([erasure])] == ["accepted"]
    finally:
        hub.close()
    fresh = Hub(database)
    try:
        assert sorted(kept_lines(fresh)) == ["a1", "a3"]
        assert kept_lines(fresh)["a1"] == lines["a1"]
        correct(fresh.store)
        assert sorted(kept_lines(fresh)) == ["a1", "a3"]
        assert topics(fresh) == ["Created", "LinesCounted", "LinesCounted"]  # nothing recorded for a2
    finally:
        fresh.close()


@pytest.fixture
def main_store(tmp_path, monkeypatch):
    shutil.copy(ROOT / "tests" / "fixtures" / "report-lines-main.db", tmp_path / "main.db")
    shutil.copy(ROOT / "tests" / "fixtures" / "report-lines-main-keys.json", tmp_path / "keys.json")
    os.chmod(tmp_path / "keys.json", 0o600)
    for name in [k for k in os.environ if k.startswith("TSUNAGU_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TSUNAGU_KEYS_FILE", str(tmp_path / "keys.json"))
    return f"sqlite:///{tmp_path / 'main.db'}"


def test_a_store_written_by_main_counts_and_goes_on_from_its_lines_kept_alone(main_store):
    """In a process of its own (a process opens stores of one stream secret only): ``check``."""
    done = subprocess.run(
        [sys.executable, "-c", f"from tests.projections.test_report_lines import check; check({main_store!r})"],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "ok"


def check(main_store: str) -> None:
    """main's store opens with its counts equal to the rebuilt ones; a publish reads each line from its
    ``ReportLine`` stream (a1's May report is on time only if a1's April listing is read from there, a2's second
    April report counts nothing, a3 listed again takes back nothing twice, a4 at another school), moves the lines
    it changes into ``ReportLines`` and leaves the old streams as they were; the counts still equal the rebuilt
    ones and a new process replays the same lines."""
    from services.projections.municipal_counts import ReportLine, report_line_key

    hub = Hub(main_store, clock=SettableClock(datetime(2026, 7, 1, 9, tzinfo=JST)))
    try:
        assert kept(hub.store, "100001") == resolve_levels(rebuild(hub.store)["100001"])
        before = kept(hub.store, "100001")
        assert (before["2026-04"]["reports.on_time"], before["2026-04"]["reports.late"]) == (2, 1)
        alone = {
            c: hub.store.get_or_none(ReportLine.create_id(report_line_key(s, c, "cA")))
            for s, c in (("s1", "a1"), ("s1", "a2"), ("s1", "a3"), ("s2", "a4"))
        }
        assert all(line is not None for line in alone.values())
        assert hub.store.get_or_none(ReportLines.create_id("s1", "cA")) is None
        items = [
            monthly("m1-5", "a1", "2026-05", "06-05"),  # on time
            monthly("m2-4b", "a2", "2026-04", "06-06"),  # April's again: nothing
            listing("l3b", "a3", "003", "06-10"),  # listed again (from April: its removed listing stays)
            monthly("m4-5", "a4", "2026-05", "06-25", school="s2"),  # late
        ]
        results = hub.publish(items)
        assert [r.outcome for r in results] == ["accepted"] * len(items), [r.problems for r in results]
        after = kept(hub.store, "100001")
        assert after == resolve_levels(rebuild(hub.store)["100001"])
        assert (after["2026-05"]["reports.on_time"], after["2026-05"]["reports.late"]) == (1, 1)
        assert after["2026-04"]["reports.received"] == before["2026-04"]["reports.received"] + 1
        assert after["2026-04"]["reports.on_time"] == 2 and after["2026-04"]["reports.late"] == 1
        lines = kept_lines(hub)
        assert sorted(lines) == ["a1", "a3"]  # a2's line did not change: it is still read from its own stream
        assert lines["a1"] == {
            "municipality": "100001",
            "periods": alone["a1"].periods,
            "received": {**alone["a1"].received, "2026-05": "2026-06-05"},
        }
        assert len(lines["a3"]["periods"]) == 2 and lines["a3"]["periods"][0] == alone["a3"].periods[0]
        for (s, c), old in zip((("s1", "a1"), ("s1", "a2"), ("s1", "a3"), ("s2", "a4")), alone.values()):
            now = hub.store.get_or_none(ReportLine.create_id(report_line_key(s, c, "cA")))
            assert now.version == old.version  # left as it was
        assert correct(hub.store) == 0  # no month to correct; the lines still kept alone are moved as rebuilt
        lines = kept_lines(hub)
        assert lines["a2"] == {
            "municipality": "100001",
            "periods": alone["a2"].periods,
            "received": alone["a2"].received,
        }
        assert sorted(lines) == ["a1", "a2", "a3"]  # a4's is in (s2, cA)'s
    finally:
        hub.close()
    reopened = Hub(main_store)
    try:
        assert kept_lines(reopened) == lines
        assert kept(reopened.store, "100001") == after
    finally:
        reopened.close()
    print("ok")
