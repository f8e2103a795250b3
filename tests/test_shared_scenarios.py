"""The shared scenarios (../shared/scenarios) must always pass, on the embedded store and on PostgreSQL,
through the real CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from services.cli import app
from tests.conftest import ROOT, SHARED

SCENARIO_DIRS = [SHARED / "scenarios", ROOT / "tests" / "scenarios"]


def run_cli(*args: str):
    return CliRunner().invoke(app, ["scenario", "run", *args, "--json"])


def _check(result) -> list[dict]:
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    failed = [r for r in lines if not r["passed"]]
    assert lines, result.output
    assert not failed, json.dumps(failed, ensure_ascii=False, indent=1)
    assert result.exit_code == 0, result.output
    return lines


@pytest.mark.parametrize("directory", [d for d in SCENARIO_DIRS if d.exists()], ids=lambda d: d.parent.name)
def test_scenarios_on_sqlite(directory):
    _check(run_cli(str(directory)))


@pytest.mark.postgres
@pytest.mark.parametrize("directory", [d for d in SCENARIO_DIRS if d.exists()], ids=lambda d: d.parent.name)
def test_scenarios_on_postgresql(directory, postgres_server):
    _check(run_cli(str(directory), "--database", postgres_server))
