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
