"""Small helpers the tests of several packages share, each written once: times, envelopes, loopback ports, the
hub's error shape over HTTP, bearer tokens, and waiting for something another process does.

Fixtures are in ``tests/conftest.py``; the helpers of one area are next to it (``tests/authkit.py`` for
authentication, ``tests/schoolfiles.py`` for school files).
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Callable
from datetime import datetime

import httpx

from services.auth.tokens import TokenIssuer


def at(text: str) -> datetime:
    """A time written as ISO 8601 (with its offset, e.g. ``2026-04-10T09:00:00+09:00``)."""
    return datetime.fromisoformat(text)


def ev(
    id: str,
    kind: str = "note.recorded",
    *,
    child: str = "c1",
    source: str = "beppu-center",
    basis: str | None = "internal",
    at: str = "2026-04-10T09:00:00+09:00",
    payload: dict | None = None,
    **more,
) -> dict:
    """An envelope as a publisher sends it: an internal note by the Beppu centre unless told otherwise;
    ``basis=None`` leaves the basis out."""
    out = {
        "id": id,
        "kind": kind,
        "child": child,
        "source": source,
        "at": at,
        "payload": {"text": f"記録 {id}"} if payload is None else payload,
        **more,
    }
    if basis is not None:
        out["basis"] = basis
    return out


def daily_attendance(id: str, child: str, day: str, status: str = "absent", contacted: bool = False) -> dict:
    """A school's daily attendance of ``day`` (``YYYY-MM-DD``) sent to the Beppu centre under 児童福祉法第25条の3,
    with its addressee: an event whose admission needs no history."""
    return ev(
        id,
        "attendance.daily",
        child=child,
        source="beppu-es-1",
        basis="cwa-25-3",
        to="beppu-center",
        at=f"{day}T09:00:00+09:00",
        payload={"date": day, "status": status, "contacted": contacted},
    )


def erased(id: str, child: str, at: str = "2026-04-30T09:00:00+09:00") -> dict:
    """The Beppu centre's erasure of ``child`` (its retention period over)."""
    return ev(id, "child.erased", child=child, at=at, payload={"reason": "保存期間の満了"})


def stored_topics(store, stream) -> list[str]:
    """The short names of ``stream``'s stored event types, in order (``Created``, ``DaysRecorded`` …)."""
    return [e.topic.rsplit(".", 1)[-1] for e in store.recorder.select_events(stream)]


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def has_japanese(text: str) -> bool:
    """Whether ``text`` has kana or kanji in it (every message the hub gives has a Japanese version)."""
    return any("\u3040" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff" for c in text)


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    """The hub's error shape: the status, the code, a message and its Japanese version; returns the error."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"] and has_japanese(error["message_ja"]), error
    return error


def token_header(
    issuer: TokenIssuer, org: str = "beppu-center", role: str = "caseworker", user: str = "tester"
) -> dict[str, str]:
    """The Authorization header of a token the hub's issuer signs for a person of ``org`` in ``role``."""
    return {"Authorization": f"Bearer {issuer.issue(org=org, role=role, user=user)}"}


def b64url_json(value: dict) -> str:
    """One part of a JWT: JSON, base64url without padding (to build tokens the hub must refuse)."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def wait_until(happened: Callable[[], bool], what: str, *, deadline_seconds: float = 60) -> None:
    """Poll ``happened`` until it holds. The deadline only stops a test whose process hangs from running for ever:
    it is far above what the behaviour takes, and the test asserts what happened, never how fast."""
    give_up = time.monotonic() + deadline_seconds
    while not happened():
        assert time.monotonic() < give_up, f"{what}: not seen after {deadline_seconds} s (hung?)"
        time.sleep(0.05)


def registered_cases(counts: list[tuple[str, str, int]]) -> list[dict]:
    """For each (centre, residence, n): n children registered by the centre (living in ``residence``) on
    2026-05-01, each with a case (要支援, 育成) registered the next day: a small world of counted cases, the
    children named ``{centre}-{i}``."""
    items: list[dict] = []
    for centre, residence, n in counts:
        for i in range(n):
            child = f"{centre}-{i}"
            items += [
                {"id": f"r-{child}", "kind": "child.registered", "child": child, "source": centre,
                 "basis": "internal", "at": "2026-05-01T09:00:00+09:00", "payload": {"residence": residence}},
                {"id": f"k-{child}", "kind": "case.registered", "child": child, "source": centre,
                 "basis": "internal", "at": "2026-05-02T09:00:00+09:00",
                 "payload": {"case": f"K-{child}", "category": "youshien", "case_type": "upbringing"}},
            ]  # fmt: skip
    return items
