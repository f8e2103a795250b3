"""Retiring a signing key is refused, in Japanese too (for the administrator's page): the key that signs, a key
whose tokens may still be in use, and a key that is not there."""

from __future__ import annotations

import pytest

from services.auth.tokens import KeyFileError, SigningKeys

pytestmark = [pytest.mark.store]


def test_retiring_refusals_say_why_in_japanese(tmp_path):
    keys = SigningKeys(tmp_path / "sign.pem", create=True)
    old = keys.keys()[0].kid
    with pytest.raises(KeyFileError) as signing:
        keys.retire(old)
    assert "現在トークンの署名に使われている" in signing.value.message_ja
    keys.rotate()
    with pytest.raises(KeyFileError) as early:
        keys.retire(old)
    assert "まだ有効な可能性があります" in early.value.message_ja and "分ほど待って" in early.value.message_ja
    with pytest.raises(KeyFileError) as missing:
        keys.retire("no-such-kid")
    assert "ありません" in missing.value.message_ja
    keys.retire(old, force=True)
    assert old not in {k.kid for k in keys.keys()}
    assert str(KeyFileError("english only")) == KeyFileError("english only").message_ja
