"""Stream ids (``events.sealing.stream_id``): HMAC from its pads computed once gives ``hmac.new``'s bytes, for any
key and name; the ids of names used once (``stream_id_once``) are the same ids, and are not remembered."""

from __future__ import annotations

import hashlib
import hmac
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events import sealing
from events.envelope_ids import digest_mark, envelope_key

pytestmark = pytest.mark.unit


def reference(key: bytes, name: str) -> UUID:
    """The stream id as ``hmac.new`` makes it (what every store was written with)."""
    return UUID(bytes=hmac.new(key, b"stream\x00" + name.encode("utf-8"), hashlib.sha256).digest()[:16])


@settings(max_examples=300, deadline=None)
@given(key=st.binary(min_size=0, max_size=200), name=st.text(max_size=300))
def test_hmac_from_its_pads_is_hmac(key, name):
    inner, outer = sealing._hmac_pads(key, b"stream\x00")
    inner, outer = inner.copy(), outer.copy()
    inner.update(name.encode("utf-8"))
    outer.update(inner.digest())
    assert UUID(bytes=outer.digest()[:16]) == reference(key, name)


@pytest.fixture
def secret():
    """The process's stream secret (set by the first store opened; a test's own when none was)."""
    if sealing._stream_secret is None:
        sealing.configure_stream_ids(b"k" * 32)
    assert sealing._stream_secret is not None
    return sealing._stream_secret


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=200))
def test_stream_ids_remembered_or_not_are_the_hmac(name):
    if sealing._stream_secret is None:
        sealing.configure_stream_ids(b"k" * 32)
    key = sealing._stream_secret
    assert key is not None
    assert sealing.stream_id(name) == sealing.stream_id_once(name) == reference(key, name)


def test_envelope_keys_and_digest_marks_are_not_remembered(secret):
    before = sealing._remembered_stream_id.cache_info().currsize
    keys = {envelope_key(f"e-{i}") for i in range(50)} | {digest_mark(f"d-{i}") for i in range(50)}
    assert len(keys) == 100
    assert sealing._remembered_stream_id.cache_info().currsize == before
    assert envelope_key("e-1") == reference(secret, "envelope:e-1")
    assert digest_mark("d-1") == reference(secret, "envelope-digest:d-1")
