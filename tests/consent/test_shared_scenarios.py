"""The shared scenarios (../shared/scenarios) must always pass, on the embedded store and on PostgreSQL,
through the real CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from services.cli.root import app
from tests.conftest import IN_CI, ROOT, SHARED

pytestmark = pytest.mark.store

SCENARIO_DIRS = [SHARED / "scenarios", ROOT / "tests" / "scenarios"]


def test_the_shared_scenarios_are_beside_the_project():
    """The scenario tests here and the oracle check in test_policy_properties run the shared scenarios only when
    ../shared/scenarios exists; in CI its absence is a failure, not a quieter run."""
    if not (SHARED / "scenarios").is_dir():
        message = f"the shared scenarios are not at {SHARED / 'scenarios'}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    assert list((SHARED / "scenarios").glob("*.yaml"))


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
