"""The process settings of ``services.runtime``: every ``tsunagu`` command applies them, and the assumption they
rest on holds: publishing (accepted, duplicate, rejected, new children, events whose admission reads the child's
history), reading (allowed and refused) and importing a school's file leave no reference cycles behind, so
nothing waits for the garbage collector."""

from __future__ import annotations

import gc

import pytest
from typer.testing import CliRunner

from services.cli.root import app
from services.runtime import GC_THRESHOLDS
from tests.helpers import at
from tests.schoolfiles import ES1_CODE, MONTHLY_HEADER, import_monthly, list_child, setup, write_csv

pytestmark = pytest.mark.store


def test_every_command_runs_with_the_hubs_garbage_collector_thresholds(tmp_path):
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        result = CliRunner().invoke(app, ["orgs", "list", "--database", f"sqlite:///{tmp_path / 'hub.db'}"])
        assert result.exit_code == 0, result.output
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        gc.set_threshold(*before)


def work(hub, tmp_path, round_: int) -> None:
    n = round_ * 100
    events = [
        {
            "id": f"r{n}",
            "kind": "child.registered",
            "child": f"k{n}",
            "source": "beppu-center",
            "basis": "internal",
            "at": "2026-04-01T09:00:00+09:00",
            "payload": {"residence": "442020"},
        },
        {
            "id": f"c{n}",
            "kind": "concern.reported",
            "child": f"k{n}",
            "source": "beppu-es-1",
            "basis": "cwa-21-10-5",
            "at": "2026-05-08T10:00:00+09:00",
            "payload": {"summary": "連絡なしの欠席が続く"},
        },
        {
            "id": f"x{n}",
            "kind": "concern.reported",
            "child": f"k{n}",
            "source": "beppu-es-1",
            "basis": "nonsense",
            "at": "2026-05-08T10:00:00+09:00",
            "payload": {},
        },  # rejected, and kept in quarantine
        {
            "id": f"y{n}",
            "kind": "no.such.kind",
            "child": f"k{n}",
            "source": "beppu-es-1",
            "basis": "internal",
            "at": "2026-05-08T10:00:00+09:00",
            "payload": {},
        },
    ]
    assert [r.outcome for r in hub.publish(events)] == ["accepted", "accepted", "rejected", "rejected"]
    assert [r.outcome for r in hub.publish(events[:2])] == ["duplicate", "duplicate"]  # a resend: retried
    assert hub.timeline(org="beppu-center", role="caseworker", child=f"k{n}", purpose="support").allowed
    assert not hub.timeline(org="beppu-center", role="caseworker", child=f"k{n}", purpose="gossip").allowed
    list_child(hub, f"k{n}", f"2026-{n:04d}")
    path = tmp_path / f"monthly-{round_}.csv"
    write_csv(
        path,
        MONTHLY_HEADER,
        [
            [ES1_CODE, f"2026-{n:04d}", "令和8年5月", 19, 15, 4, 2, 0, 0, "", ""],
            [ES1_CODE, "9999", "令和8年5月", 19, 19, 0, 0, 0, 0, "", ""],
            [ES1_CODE, f"2026-{n:04d}", "令和8年13月", 19, 15, 4, 2, 0, 0, "", ""],
        ],
    )
    summary = import_monthly(hub, path)
    assert summary.accepted == 1 and summary.not_listed == 1 and summary.rejected_total == 1


def test_publishing_reading_and_importing_leave_no_cyclic_garbage(hub, clock, tmp_path):
    clock.at = at("2026-06-05T09:00:00+09:00")
    setup(hub)
    work(hub, tmp_path, 1)  # first use: imports, compiled patterns and schemas are made once
    gc.collect()
    gc.disable()
    try:
        for round_ in (2, 3, 4):
            work(hub, tmp_path, round_)
        found = gc.collect()
    finally:
        gc.enable()
    assert found == 0, f"{found} objects in reference cycles were left for the collector"
