"""The locust file of the load run (issue 16, item 3): staff sessions and school adapters on a city's hub.

Run by ``bench/load.py`` (which starts the servers, builds the world and writes the run's settings to the JSON file
named by ``TSUNAGU_LOAD_CONFIG``), headless, for a bounded time, against a loopback address only:

    locust -f bench/locust_staff.py --headless -u 50 -r 10 -t 60s --host http://127.0.0.1:PORT

Each simulated user is one person of the centre, signed in (a bearer token from the hub's issuer, as the tests
make them: one token per person, so each has their own rate-limit budget), who reads children's timelines, opens
ledger pages (``GET /v1/ledger?page=…``, a filter or a sort now and then) and the agenda of the next meeting. Some
users are school adapters that upload a monthly report (``POST /v1/imports/school-monthly``) or publish a concern
(``POST /v1/events``). The Kafka publisher runs beside locust, in ``bench/load.py`` (locust patches the standard
library with gevent, which the Kafka and PostgreSQL clients are not written for).

Every answer other than 200 counts as a failure: the run's figures are recorded only with 0 failures.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from typing import Any
from urllib.parse import urlsplit

from locust import HttpUser, between, events, task

CONFIG: dict[str, Any] = json.loads(open(os.environ["TSUNAGU_LOAD_CONFIG"], encoding="utf-8").read())
LEDGER_VARIANTS = [
    {},
    {"status": "open", "alerts": "any"},
    {"sort": "case", "order": "desc"},
    {"sort": "child"},
]


@events.test_start.add_listener
def _loopback_only(environment: Any, **_: Any) -> None:
    host = urlsplit(environment.host or "").hostname
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise SystemExit(f"bench/locust_staff.py runs against a loopback address only, not {host!r}")


class Caseworker(HttpUser):
    """A centre's caseworker: timelines most, ledger pages often, the agenda now and then."""

    weight = 5
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        token = random.choice(CONFIG["staff_tokens"])
        self.client.headers["Authorization"] = f"Bearer {token}"
        self.pages = max(1, CONFIG["cases"] // 50)

    @task(6)
    def timeline(self) -> None:
        child = random.choice(CONFIG["children"])
        self.client.get(
            f"/v1/children/{child}/timeline", params={"purpose": "support"}, name="GET /v1/children/[child]/timeline"
        )

    @task(3)
    def ledger_page(self) -> None:
        params = {"page": str(random.randint(1, self.pages)), "per_page": "50", **random.choice(LEDGER_VARIANTS)}
        self.client.get("/v1/ledger", params=params, name="GET /v1/ledger?page=…")

    @task(1)
    def agenda(self) -> None:
        self.client.get("/v1/agenda", params={"date": CONFIG["meeting_day"]}, name="GET /v1/agenda")


class SchoolAdapter(HttpUser):
    """A school's adapter: concerns one at a time, and the monthly report file now and then."""

    weight = 1
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.school = random.choice(CONFIG["schools"])
        self.client.headers["Authorization"] = f"Bearer {self.school['token']}"

    @task(4)
    def concern(self) -> None:
        child = random.choice(self.school["children"])
        envelope = {
            "id": f"load-{uuid.uuid4()}",
            "kind": "concern.reported",
            "child": child,
            "source": self.school["id"],
            "basis": "cwa-21-10-5",
            "at": CONFIG["at"],
            "payload": {"summary": "連絡なしの欠席が続いている"},
        }
        with self.client.post("/v1/events", json=envelope, name="POST /v1/events", catch_response=True) as answer:
            if answer.status_code == 200 and answer.json()["results"][0]["outcome"] not in ("accepted", "received"):
                answer.failure(answer.text[:200])

    @task(1)
    def monthly_upload(self) -> None:
        self.client.post(
            "/v1/imports/school-monthly",
            files={"file": ("monthly.csv", self.school["monthly_csv"].encode("cp932"), "text/csv")},
            name="POST /v1/imports/school-monthly",
        )
