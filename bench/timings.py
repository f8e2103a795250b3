"""How long the hub takes for what the test suite checks as behaviour only (issue 12: no test asserts wall-clock
time; the figures are here, and in ``docs/benchmarks.md``).

    .venv/bin/python -m bench.timings            # text
    .venv/bin/python -m bench.timings --json     # one JSON object

Measured, each the median of ``--repeat`` runs (default 5) in this process:

- ``refuse_50mb_binary`` / ``refuse_50mb_text``: ``CsvReader`` refusing a 50 MB file of random bytes, and of one
  endless line (``tests/schools/test_school_reports.py`` checks that it is refused in under 4 MB of memory);
- ``dead_broker_publish``: ``KafkaPublisher.publish`` to a loopback port where no broker listens, with
  ``connect_timeout=1.0``, until its ``TransportError`` (``tests/feeds/test_kafka_transport.py``);
- ``settings_seen_by_another_hub``: a setting changed through one ``Hub`` until a second ``Hub`` on the same
  SQLite file sees it (``SettingsSource.MAX_AGE``; ``tests/administration/test_settings.py``);
- ``token_wrong_secret`` / ``token_unknown_client``: a refused client-credentials request to the token endpoint
  (in-process HTTP), with a wrong secret and with an unknown client id, and their ratio: about 1 means an unknown
  id costs the same scrypt verification (``tests/auth/test_auth_oauth.py`` counts the verifications).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from fastapi.testclient import TestClient

from adapters.csvfile import CsvReader, FileRefused
from adapters.school import MONTHLY_COLUMNS
from events.clock import JST
from events.transport import KafkaPublisher, TransportError
from services.auth.clients import add_client
from services.auth.tokens import keys_from_file
from services.demo import ORGS
from services.http.app import create_app
from services.hub import Hub

FIFTY_MB = 50


def median_seconds(run: Callable[[], None], repeat: int) -> float:
    """The median wall-clock time of ``run()`` over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def refusing_a_garbage_file(directory: Path, kind: str, repeat: int) -> float:
    """Seconds for ``CsvReader`` to refuse a 50 MB file of random bytes (``binary``) or of one line (``text``)."""
    path = directory / f"garbage-{kind}.csv"
    chunk = os.urandom(1 << 20) if kind == "binary" else b"A" * (1 << 20)
    with path.open("wb") as f:
        for _ in range(FIFTY_MB):
            f.write(chunk)

    def refuse() -> None:
        try:
            CsvReader(path, MONTHLY_COLUMNS)
        except FileRefused:
            return
        raise AssertionError(f"the {kind} garbage file was not refused")

    return median_seconds(refuse, repeat)


def free_port() -> int:
    """A loopback TCP port that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def publishing_to_a_dead_broker(repeat: int) -> float:
    """Seconds until ``KafkaPublisher.publish`` gives up on a broker that is not there."""
    hub = Hub("sqlite:///:memory:")
    envelope = {
        "id": "c1-r",
        "kind": "child.registered",
        "child": "c1",
        "source": "beppu-center",
        "basis": "internal",
        "at": datetime(2026, 3, 2, 9, tzinfo=JST).isoformat(),
        "payload": {"residence": "442020"},
    }

    def publish() -> None:
        publisher = KafkaPublisher(
            f"127.0.0.1:{free_port()}", keys=hub.store.keys, api_version=(0, 9), connect_timeout=1.0
        )
        try:
            publisher.publish([envelope])
        except TransportError:
            return
        finally:
            publisher.close()
        raise AssertionError("publishing to a dead broker did not fail")

    try:
        return median_seconds(publish, repeat)
    finally:
        hub.close()


def a_setting_reaching_another_hub(directory: Path, repeat: int) -> float:
    """Seconds from a setting changed through one hub to a second hub on the same SQLite file seeing it."""
    database = f"sqlite:///{directory / 'settings.db'}"
    here, there = Hub(database), Hub(database)
    value = [here.settings.emergency_hours]  # read once: each change is then a change to a cached copy

    def change_and_wait() -> None:
        value[0] = 48 if value[0] != 48 else 72
        there.settings_source.change({"emergency_hours": value[0]}, by="bench", at=datetime.now(JST))
        while here.settings.emergency_hours != value[0]:
            time.sleep(0.01)

    try:
        return median_seconds(change_and_wait, repeat)
    finally:
        here.close()
        there.close()


def refused_token_requests(directory: Path, repeat: int) -> tuple[float, float]:
    """Seconds for a refused client-credentials request with a wrong secret, and with an unknown client id."""
    hub = Hub(f"sqlite:///{directory / 'tokens.db'}")
    hub.load_orgs(ORGS)
    client, secret = add_client(hub, org="beppu-center", scopes=["read"], by="bench")
    issuer, verifier = keys_from_file(directory / "signing-key.pem")
    form = {"grant_type": "client_credentials"}
    try:
        with TestClient(create_app(hub, verifier, issuer=issuer), base_url="https://testserver") as http:

            def request(who: str, what: str) -> Callable[[], None]:
                def run() -> None:
                    assert http.post("/oauth/token", data=form, auth=(who, what)).status_code == 401

                return run

            wrong = median_seconds(request(client.client_id, secret + "x"), repeat)
            unknown = median_seconds(request("tc_0123456789abcdef", secret), repeat)
            return wrong, unknown
    finally:
        hub.close()


def main() -> None:
    """Measure everything and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tsunagu-bench-") as tmp:
        directory = Path(tmp)
        wrong, unknown = refused_token_requests(directory, options.repeat)
        figures = {
            "refuse_50mb_binary": refusing_a_garbage_file(directory, "binary", options.repeat),
            "refuse_50mb_text": refusing_a_garbage_file(directory, "text", options.repeat),
            "dead_broker_publish": publishing_to_a_dead_broker(options.repeat),
            "settings_seen_by_another_hub": a_setting_reaching_another_hub(directory, options.repeat),
            "token_wrong_secret": wrong,
            "token_unknown_client": unknown,
            "token_unknown_over_wrong": unknown / wrong,
        }
    if options.json:
        print(json.dumps({name: round(value, 4) for name, value in figures.items()}))
        return
    for name, value in figures.items():
        print(f"{name:32} {value:8.3f}" + ("" if name.endswith("_over_wrong") else " s"))


if __name__ == "__main__":
    main()
