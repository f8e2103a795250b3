"""What the authentication tests share."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _generous_rate_limits(monkeypatch):
    """These tests ask for many tokens from one address; the limits themselves are tested in tests/http/."""
    monkeypatch.setenv("TSUNAGU_TOKEN_RATE_LIMIT", "10000/minute")
    monkeypatch.setenv("TSUNAGU_RATE_LIMIT", "100000/minute")
