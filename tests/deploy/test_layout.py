"""deploy/ is checked, since it cannot run here: the Compose file against the Compose specification's schema
(check-jsonschema's vendored copy), the Kubernetes manifests against the Kubernetes schemas (kubernetes-validate,
strict: an unknown field fails), the systemd units with ``systemd-analyze verify`` (with the commands they start
pointed at this installation), and every ``tsunagu`` command in deploy/RUNBOOK.md exists with the options it
is given there. The validators ship their schemas: nothing is fetched."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from services.cli import app

pytestmark = pytest.mark.unit

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
BIN = Path(sys.executable).parent


def test_the_compose_file_follows_the_compose_specification():
    checked = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(DEPLOY / "compose.yaml")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_kubernetes_manifests_follow_the_kubernetes_schemas():
    manifests = sorted((DEPLOY / "k8s").glob("*.yaml"))
    assert len(manifests) >= 5
    checked = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", "--quiet", *map(str, manifests)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_systemd_units_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not found (not a systemd machine)")
    units = []
    for unit in sorted((DEPLOY / "systemd").glob("*.service")) + sorted((DEPLOY / "systemd").glob("*.timer")):
        # A template is verified as an instance; the commands it starts must exist in this installation.
        name = unit.name.replace("@.", "@8081.")
        (tmp_path / name).write_text(unit.read_text().replace("/opt/tsunagu/.venv/bin/", f"{BIN}/"))
        units.append(str(tmp_path / name))
    assert len(units) >= 4
    checked = subprocess.run([analyze, "verify", "--man=no", *units], capture_output=True, text=True, cwd=tmp_path)
    assert checked.returncode == 0 and not checked.stderr.strip(), checked.stdout + checked.stderr


def _runbook_commands() -> list[list[str]]:
    """Every ``tsunagu …`` line of the runbook's code blocks (continuation lines joined), as words."""
    text = (DEPLOY / "RUNBOOK.md").read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #", 1)[0].strip()
            match = re.search(r"(?:^|[\s;(])tsunagu (.+)$", line)
            if match and not line.startswith("#"):
                commands.append(shlex.split(match.group(1).split(" | ")[0].split(" > ")[0]))
    return commands


def test_every_tsunagu_command_in_the_runbook_exists_with_its_options():
    commands = _runbook_commands()
    assert len(commands) >= 10, commands
    runner = CliRunner()
    for words in commands:
        path = []
        for word in words:  # the command's words: up to the first option or argument that is not a subcommand
            if word.startswith("-"):
                break
            probe = runner.invoke(app, [*path, word, "--help"])
            if probe.exit_code != 0:
                assert "No such command" not in probe.output, f"tsunagu {' '.join(words)}: {probe.output}"
                break
            path.append(word)
        assert path, words
        shown = runner.invoke(app, [*path, "--help"], terminal_width=200)
        assert shown.exit_code == 0, (words, shown.output)
        for option in (w.split("=")[0] for w in words if w.startswith("--")):
            assert option in shown.output, f"tsunagu {' '.join(path)}: no option {option} ({' '.join(words)})"


def test_the_hub_s_deployments_never_run_old_and_new_pods_side_by_side():
    """Upgrades are one way (deploy/README.md): a rolling update would run an old pod beside a new one, which fails
    on the new version's event types; the API and the ingest workers are recreated instead."""
    for name in ("api.yaml", "ingest.yaml"):
        documents = [d for d in yaml.safe_load_all((DEPLOY / "k8s" / name).read_text()) if d]
        deployments = [d for d in documents if d["kind"] == "Deployment"]
        assert deployments, name
        for deployment in deployments:
            assert deployment["spec"]["strategy"] == {"type": "Recreate"}, (name, deployment["metadata"]["name"])
