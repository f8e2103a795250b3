"""The runbook's backup and restore (deploy/RUNBOOK.md), done for real: a hub on PostgreSQL publishes and reads,
its store is backed up with ``pg_dump`` (the events without the key table, and the key table apart), both are
restored into a new PostgreSQL cluster (with the same master key, ``TSUNAGU_KEYS_FILE``), and there
``tsunagu audit verify`` is clean and the same reads give the same content."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from services.hub import Hub
from tests.helpers import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.store]

ROOT = Path(__file__).resolve().parents[2]
TSUNAGU = Path(sys.executable).with_name("tsunagu")
ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020"},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": "442020"},
    {"id": "chuo-jiso", "type": "child_guidance_center", "prefecture": "44", "covers": ["442020"]},
]
EVENTS = [
    {
        "id": "r1",
        "kind": "child.registered",
        "child": "c1",
        "source": "beppu-center",
        "basis": "internal",
        "at": "2026-04-01T09:00:00+09:00",
        "payload": {"residence": "442020"},
    },
    {
        "id": "k1",
        "kind": "concern.reported",
        "child": "c1",
        "source": "beppu-es-1",
        "basis": "cwa-21-10-5",
        "at": "2026-04-10T09:00:00+09:00",
        "payload": {"summary": "給食のおかわりが多く、服が汚れている"},
    },
    {
        "id": "n1",
        "kind": "note.recorded",
        "child": "c1",
        "source": "beppu-center",
        "basis": "internal",
        "at": "2026-04-11T09:00:00+09:00",
        "payload": {"text": "家庭訪問", "shelter": "非公開"},
        "sensitive": ["shelter"],
    },
]
READS = [("beppu-center", "caseworker"), ("beppu-es-1", "teacher"), ("chuo-jiso", "caseworker")]


def _pg(tool: str) -> str:
    """A PostgreSQL client program of the installed server's version (Debian keeps them per version)."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"), reverse=True):
        return str(candidate)
    found = shutil.which(tool)
    assert found, f"{tool} not found"
    return found


def _contents(hub: Hub) -> list[dict]:
    out = []
    for org, role in READS:
        timeline = hub.timeline(org=org, role=role, child="c1", purpose="support", user="restore-check")
        out.append({"org": org, "allowed": timeline.allowed, "entries": [e.to_dict() for e in timeline.entries]})
    return out


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, env=dict(os.environ), timeout=300)


def test_a_pg_dump_backup_with_the_key_table_apart_restores_into_a_new_cluster_that_verifies(postgres_url, tmp_path):
    server, _, schema = postgres_url.partition("?schema=")
    hub = Hub(postgres_url)
    try:
        hub.load_orgs(ORGS)
        assert [r.outcome for r in hub.publish(EVENTS)] == ["accepted"] * len(EVENTS)
        before = _contents(hub)
    finally:
        hub.close()
    assert [len(read["entries"]) for read in before] == [3, 1, 0]  # the centre, the school's own, nothing

    # The backup, as the runbook says: the events without the key table, and the key table apart.
    events_dump, keys_dump = tmp_path / "events.dump", tmp_path / "keys.dump"
    dumped = _run(
        _pg("pg_dump"), "--format=custom", f"--schema={schema}", f"--exclude-table={schema}.tsunagu_data_keys",
        f"--file={events_dump}", server,
    )  # fmt: skip
    assert dumped.returncode == 0, dumped.stderr
    dumped = _run(
        _pg("pg_dump"), "--format=custom", f"--table={schema}.tsunagu_data_keys", f"--file={keys_dump}", server
    )
    assert dumped.returncode == 0, dumped.stderr

    directory = tempfile.mkdtemp(prefix="tsunagu-pg-restore-")  # the server runs as postgres: not under pytest's tmp
    os.chmod(directory, 0o755)
    script = ROOT / "deploy" / "local-postgres.sh"
    started = _run(str(script), "start", directory, str(free_port()))
    assert started.returncode == 0, started.stderr
    new_server = started.stdout.strip().splitlines()[-1]
    restored = f"{new_server}?schema={schema}"
    try:
        # The events first (they create the schema), then the key table from its own backup.
        loaded = _run(_pg("pg_restore"), "--exit-on-error", f"--dbname={new_server}", str(events_dump))
        assert loaded.returncode == 0, loaded.stderr
        loaded = _run(_pg("pg_restore"), "--exit-on-error", f"--dbname={new_server}", str(keys_dump))
        assert loaded.returncode == 0, loaded.stderr

        verified = _run(str(TSUNAGU), "audit", "verify", "--database", restored)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        hub = Hub(restored)
        try:
            assert _contents(hub) == before
            assert hub.verify().ok  # the reads made on the restored store are recorded and replay too
        finally:
            hub.close()
    finally:
        _run(str(script), "stop", directory)
        shutil.rmtree(directory, ignore_errors=True)
