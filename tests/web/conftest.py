"""The staff UI under test: the demo loaded into a fresh store, a real ``tsunagu serve`` with the development
sign-in on a free loopback port, and Debian's Chromium driven by Playwright (never a browser download).

In CI (``CI=true``) the browser must start: a missing Chromium fails the tests instead of skipping them.
Screenshots of every page a journey visits go to ``$TSUNAGU_SCREENSHOTS`` (default ``test-screenshots/`` beside
the project, ignored by git) for people to look at.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import IN_CI, ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TSUNAGU = str(Path(sys.executable).parent / "tsunagu")
SCREENSHOTS = Path(os.environ.get("TSUNAGU_SCREENSHOTS") or ROOT / "test-screenshots")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running ``tsunagu serve`` on the demo store: its address, its store and the environment it runs in."""

    def __init__(self, base: str, database: str, env: dict[str, str]):
        self.base = base
        self.database = database
        self.env = env

    def tsunagu(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run another ``tsunagu`` command on the same store."""
        return subprocess.run(
            [TSUNAGU, *args, "--database", self.database],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """The demo (``tsunagu demo``) served with the development sign-in, for the tests of one module."""
    directory = tmp_path_factory.mktemp("web")
    database = f"sqlite:///{directory / 'hub.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TSUNAGU_")}
    env |= {
        "TSUNAGU_KEYS_FILE": str(directory / "keys.json"),
        "TSUNAGU_SIGNING_KEY_FILE": str(directory / "sign.pem"),
        "TSUNAGU_DEV_OIDC": "1",
    }
    subprocess.run(
        [TSUNAGU, "demo", "--database", database],
        env=env,
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    port = _free_port()
    log = open(directory / "serve.log", "w")  # noqa: SIM115 - closed when the server stops
    process = subprocess.Popen(
        [TSUNAGU, "serve", "--port", str(port), "--database", database],
        env=env,
        cwd=directory,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60  # only so that a server that never starts cannot hang the suite
    while True:
        try:
            if httpx.get(f"{base}/v1/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, (directory / "serve.log").read_text()
        time.sleep(0.1)
    try:
        yield Server(base, database, env)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium, headless, through Playwright."""
    from playwright.sync_api import Error, sync_playwright

    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is not installed (apt-get install chromium fonts-noto-cjk)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Error as error:
            if IN_CI:
                pytest.fail(f"Chromium did not start: {error}")
            pytest.skip(f"Chromium did not start: {error}")
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser context (no cookies) and page; a screenshot of the last page when the test ends."""
    context = browser.new_context(locale="ja-JP", timezone_id="Asia/Tokyo", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{request.node.name}-last.png"), full_page=True)
    context.close()


def shoot(page, name: str) -> None:
    """Keep a screenshot of the page as it is now, for people to look at (not committed)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def assert_accessible(page, name: str) -> None:
    """axe-core on the page as it is now: no serious or critical violation (WCAG 2.1 A and AA rules)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(
        page, options={"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}
    )
    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    assert not bad, f"{name}: " + "; ".join(f"{v['id']}: {v['help']} ({len(v['nodes'])})" for v in bad)


def sign_in(page, base: str, person: str) -> None:
    """Sign in through the sign-in page and the development provider's list of people, as ``person`` (a name
    shown on that list, e.g. 佐藤 花子)."""
    page.goto(f"{base}/")
    page.get_by_role("button", name="ログイン").click()
    page.get_by_role("button", name=person).click()
    page.wait_for_url(f"{base}/ui/")
