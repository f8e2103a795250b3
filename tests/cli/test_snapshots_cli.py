"""``tsunagu snapshots status`` and ``tsunagu snapshots drop`` through the command line: how many snapshots there
are and how large, and dropping them all, which changes no read (derived data: the next cold read takes one
again)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bench.prefecture import event_stream, make_prefecture
from events.store import ChildRecord
from services.cli.root import app
from tests.events.test_snapshots import center_of, hub_on, publish, timeline_of

pytestmark = pytest.mark.store


def said(result) -> str:
    """What a command printed, without the line breaks the console wraps it at."""
    return " ".join(result.output.split())


def test_snapshots_status_and_drop_through_the_command_line(tmp_path):
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    pref = make_prefecture()
    hub = hub_on(database)
    hub.load_orgs(pref.orgs)
    publish(hub, list(event_stream(pref, 3, 20, prefix="k", seed=2)))
    children = [f"k{i:07d}" for i in range(3)]
    centers = {child: center_of(hub, child) for child in children}
    hub.close()
    hub = hub_on(database)  # cold reads: each takes its child's snapshot
    reads = {child: timeline_of(hub, child, centers[child]) for child in children}
    count, size = hub.store.child_snapshots.status()
    assert count == 3 and size > 0
    hub.close()
    runner = CliRunner()

    status = runner.invoke(app, ["snapshots", "status", "--database", database])
    assert status.exit_code == 0, status.output
    assert "スナップショット 3 件" in said(status) and f"3 children's snapshots, {size:,} bytes" in said(status)

    dropped = runner.invoke(app, ["snapshots", "drop", "--database", database])
    assert dropped.exit_code == 0, dropped.output
    assert "スナップショットを 3 件削除しました" in said(dropped) and "dropped 3 children's snapshots" in said(dropped)

    after = runner.invoke(app, ["snapshots", "status", "--database", database])
    assert after.exit_code == 0 and "スナップショット 0 件" in said(after)
    hub = hub_on(database, after=10**9)  # the same clock as the reads before; no snapshot taken
    try:
        assert hub.store.child_snapshots.status() == (0, 0)
        assert not hub.store.child_snapshots.load(ChildRecord.create_id(children[0])).from_snapshot
        assert {child: timeline_of(hub, child, centers[child]) for child in children} == reads
        assert hub.verify().ok
    finally:
        hub.close()


@pytest.mark.parametrize(
    "command", [["snapshots", "status"], ["snapshots", "drop"], ["case", "transfers", "--center", "c"]]
)
def test_a_key_configuration_that_is_not_valid_is_said_so_by_every_command(tmp_path, monkeypatch, command):
    """The snapshots' commands open the hub as the others do (``command_hub``): a keys file that is not valid is
    said so, in Japanese and English, exit 2, no traceback."""
    keys = tmp_path / "keys.json"
    keys.write_text("[]", encoding="utf-8")
    monkeypatch.setenv("TSUNAGU_KEYS_FILE", str(keys))
    result = CliRunner().invoke(app, [*command, "--database", f"sqlite:///{tmp_path / 'hub.db'}"])
    assert result.exit_code == 2, result.output
    assert "鍵の設定に誤りがあります" in said(result) and "is not a JSON object" in said(result)
