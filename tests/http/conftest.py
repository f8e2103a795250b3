"""What the HTTP tests share: the app ``tsunagu serve`` runs, on the test's hub (``world``), with the token issuer
that signs the requests' tokens."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from services.auth.tokens import TokenIssuer
from services.http.app import create_app


@pytest.fixture
def issuer(keys) -> TokenIssuer:
    """The issuer of the tokens the app accepts."""
    return keys[0]


@pytest.fixture
def client(world, keys) -> TestClient:
    """A test client of the app on the hub ``world`` of the test module."""
    with TestClient(create_app(world, keys[1])) as client:
        yield client


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> str:
    """A throwaway Redis (Debian's ``redis-server``, installed by ``scripts/setup.sh``) on a free loopback port,
    without persistence, for the module; yields its ``limits`` storage URL. Fails instead of skipping in CI."""
    import os
    import shutil
    import subprocess
    import time

    from tests.helpers import free_port

    server = shutil.which("redis-server")
    if server is None:
        message = "redis-server not found (scripts/setup.sh installs it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    import redis

    port = free_port()
    directory = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", directory],
        stdout=(directory / "redis.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 30
    while True:
        try:
            if client.ping():
                break
        except redis.ConnectionError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, (directory / "redis.log").read_text()
        time.sleep(0.05)
    client.close()
    yield f"async+redis://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=15)
