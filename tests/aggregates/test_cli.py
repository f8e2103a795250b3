"""``tsunagu aggregates`` (issue 17 §5): a CSV for Excel (UTF-8 with BOM) with small cells suppressed, JSON, and
a refusal for a school."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from services.cli import app
from services.hub import Hub

pytestmark = pytest.mark.store

ORGS = [
    {"id": "cA", "type": "municipal_center", "municipality": "100001", "prefecture": "10"},
    {"id": "cB", "type": "municipal_center", "municipality": "100002", "prefecture": "10"},
    {"id": "s1", "type": "school", "regime": "public", "municipality": "100001"},
    {"id": "pf", "type": "prefecture_office", "prefecture": "10"},
]


def test_csv_json_and_a_refusal(tmp_path):
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = Hub(database)
    hub.load_orgs(ORGS)
    hub.publish(
        [
            {"id": "r1", "kind": "child.registered", "child": "c1", "source": "cA", "basis": "internal",
             "at": "2026-05-01T09:00:00+09:00", "payload": {"residence": "100001"}},
            {"id": "k1", "kind": "case.registered", "child": "c1", "source": "cA", "basis": "internal",
             "at": "2026-05-02T09:00:00+09:00", "payload": {"case": "K1", "category": "youhogo", "case_type": "neglect"}},
        ]
    )  # fmt: skip
    hub.close()
    runner = CliRunner()
    args = ["aggregates", "cases.open", "--from", "2026-05", "--to", "2026-06", "--org", "pf", "--database", database]
    result = runner.invoke(app, [*args, "--csv"])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.startswith("\ufeff".encode())
    text = result.stdout_bytes.decode("utf-8-sig")
    # a level's row total is the period's last month-end (期末), never the sum of its month-ends
    assert text.splitlines()[0] == "市町村,2026-05,2026-06,期末"
    assert "100001,<5,<5,<5\r\n" in text and "c1" not in text and "K1" not in text
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["cells"][0] == [None, None, None]
    assert json.loads(result.stdout)["total"] == "last"
    result = runner.invoke(app, [*args[:-4], "--org", "s1", "--database", database])
    assert result.exit_code == 1
