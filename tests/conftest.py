"""Shared fixtures: a hub on a fresh embedded store, the API's token keys, and real PostgreSQL and Kafka servers
started for the session; and the check that every test says what it needs (its markers, ``pyproject.toml``).

PostgreSQL and Kafka tests never skip in CI (``CI=true``): if the server cannot be started there, they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from consent.model import Settings
from services.auth.tokens import TokenIssuer, TokenVerifier, keys_from_file
from services.hub import Hub, SettableClock
from tests.helpers import at, free_port

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

KINDS = ("unit", "store", "postgres", "kafka", "http", "browser")  # the markers that say what a test needs
SERVER_FIXTURES = {"postgres_server": "postgres", "postgres_url": "postgres", "kafka_server": "kafka"}


def marking_problems(items: list[pytest.Item]) -> list[str]:
    """What is wrong with the markers of the collected tests: a test that uses a PostgreSQL or Kafka fixture
    without that server's marker (``-m "not postgres"`` would still start the server), or a test that carries
    none of ``KINDS``."""
    problems = []
    for item in items:
        for fixture, marker in SERVER_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()) and item.get_closest_marker(marker) is None:
                problems.append(f"{item.nodeid} uses the fixture {fixture} but is not marked @pytest.mark.{marker}")
        if not any(item.get_closest_marker(kind) for kind in KINDS):
            problems.append(f"{item.nodeid} carries none of the markers {', '.join(KINDS)}")
    return problems


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse to run a suite in which a test does not say what it needs (see ``marking_problems``)."""
    problems = marking_problems(items)
    if problems:
        raise pytest.UsageError("Tests must carry the markers of what they need:\n  " + "\n  ".join(problems))


@pytest.fixture(scope="session")
def keys_file(tmp_path_factory) -> Path:
    """The session's master key and stream secret (events.sealing), in a file as a deployment has them; CLI
    commands run as subprocesses get it through the environment."""
    return tmp_path_factory.mktemp("keys") / "tsunagu-keys.json"


@pytest.fixture(autouse=True)
def _no_deployment_settings(monkeypatch, keys_file):
    """Tests state their settings; a developer's TSUNAGU_* environment (e.g. from the demo) must not leak in."""
    for name in list(os.environ):
        if name.startswith("TSUNAGU_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TSUNAGU_KEYS_FILE", str(keys_file))


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(at("2026-04-01T09:00:00+09:00"))


@pytest.fixture
def make_hub(clock):
    """Build hubs on fresh in-memory stores: ``make_hub(settings=...)``."""
    hubs = []

    def build(settings: Settings | None = None, database: str = "sqlite:///:memory:") -> Hub:
        hub = Hub(database, settings=settings, clock=clock)
        hubs.append(hub)
        return hub

    yield build
    for hub in hubs:
        hub.close()


@pytest.fixture
def hub(make_hub) -> Hub:
    return make_hub()


@pytest.fixture
def keys(tmp_path) -> tuple[TokenIssuer, TokenVerifier]:
    """The API's token issuer and verifier, on a fresh signing-key file as a deployment has it."""
    return keys_from_file(tmp_path / "signing-key.pem")


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """A throwaway PostgreSQL cluster on 127.0.0.1 for the whole test session; yields its URL."""
    directory = tempfile.mkdtemp(prefix="tsunagu-pg-")  # not under pytest's 0700 tmp: the server runs as postgres
    os.chmod(directory, 0o755)
    script = ROOT / "deploy" / "local-postgres.sh"
    started = subprocess.run([str(script), "start", str(directory), str(free_port())], capture_output=True, text=True)
    if started.returncode != 0:
        message = f"PostgreSQL could not be started: {started.stderr.strip()}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    url = started.stdout.strip().splitlines()[-1]
    yield url
    subprocess.run([str(script), "stop", str(directory)], capture_output=True)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def postgres_url(request, postgres_server) -> str:
    """A fresh schema in the session's PostgreSQL, dropped after the test; the URL selects it. Also asked for
    through ``request.getfixturevalue`` (by a fixture parametrized over stores), which collection cannot see:
    then the parameter must carry the marker, checked here."""
    if request.node.get_closest_marker("postgres") is None:
        pytest.fail(f"{request.node.nodeid} uses PostgreSQL but is not marked @pytest.mark.postgres", pytrace=False)
    schema = f"test_{uuid.uuid4().hex[:10]}"
    yield f"{postgres_server}?schema={schema}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        # A test that left a transaction hanging (a stuck publish) would block the drop for ever: end it first.
        conn.execute(
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
            "AND l.pid <> pg_backend_pid()",
            (schema,),
        )
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(scope="session")
def kafka_server() -> str:
    """A throwaway ZooKeeper and Kafka broker (0.9, deploy/local-kafka.sh) on free loopback ports for the whole
    session (one per pytest-xdist worker); yields the bootstrap address. Fails instead of skipping in CI."""
    directory = tempfile.mkdtemp(prefix="tsunagu-kafka-")
    script = ROOT / "deploy" / "local-kafka.sh"
    started = subprocess.run(
        [str(script), "start", directory, str(free_port()), str(free_port())], capture_output=True, text=True
    )
    if started.returncode != 0:
        subprocess.run([str(script), "stop", directory], capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)
        message = f"Kafka could not be started: {started.stderr.strip()[-2000:]}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    yield started.stdout.strip().splitlines()[-1]
    subprocess.run([str(script), "stop", directory], capture_output=True)
    shutil.rmtree(directory, ignore_errors=True)
