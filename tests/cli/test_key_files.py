"""Key and secret files (the master keys, the token signing keys) are written through a fresh temporary file in
their directory, readable by the owner only from the moment it exists, and renamed into place: never through a
fixed name (``keys.json.new``) that someone may have created beforehand, world-readable, to read the keys from.
Through the real commands."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli.root import app

pytestmark = pytest.mark.store


@pytest.fixture(autouse=True)
def _open_umask():
    """A umask that lets every file be world-readable: the mode must come from how the file is created."""
    old = os.umask(0)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def planted(path: Path) -> Path:
    """A world-readable (and writable) file at ``path``, as an attacker on the machine would leave it."""
    path.write_text("planted", encoding="utf-8")
    path.chmod(0o666)
    return path


def only_planted_and_the_keys(directory: Path, keys: Path, traps: list[Path]) -> None:
    """No temporary file is left behind, and every planted file is as it was."""
    assert sorted(directory.iterdir()) == sorted([keys, *traps])
    for trap in traps:
        assert trap.read_text(encoding="utf-8") == "planted" and mode(trap) == 0o666


def test_master_key_generate_and_rotate_write_mode_0600_and_never_through_a_planted_file(tmp_path):
    directory = tmp_path / "keys"
    directory.mkdir()
    keys = directory / "keys.json"
    traps = [
        planted(directory / "keys.json.new"),
        planted(directory / "keys.json.tmp"),
        planted(directory / ".keys.json.new"),
    ]
    runner = CliRunner()

    generated = runner.invoke(app, ["master-key", "generate", "--keys-file", str(keys)])
    assert generated.exit_code == 0, generated.output
    assert mode(keys) == 0o600
    first = json.loads(keys.read_text(encoding="utf-8"))
    only_planted_and_the_keys(directory, keys, traps)

    rotated = runner.invoke(app, ["master-key", "rotate", "--keys-file", str(keys)])
    assert rotated.exit_code == 0, rotated.output
    assert mode(keys) == 0o600
    data = json.loads(keys.read_text(encoding="utf-8"))
    assert [k["id"] for k in data["master_keys"][1:]] == [k["id"] for k in first["master_keys"]]
    assert data["stream_secret"] == first["stream_secret"]
    only_planted_and_the_keys(directory, keys, traps)


def test_master_key_rotate_tightens_a_keys_file_that_was_world_readable(tmp_path):
    """The rotated file is a new file of mode 0600 whatever the old one's mode was."""
    keys = tmp_path / "keys.json"
    assert CliRunner().invoke(app, ["master-key", "generate", "--keys-file", str(keys)]).exit_code == 0
    keys.chmod(0o644)
    assert CliRunner().invoke(app, ["master-key", "rotate", "--keys-file", str(keys)]).exit_code == 0
    assert mode(keys) == 0o600


def test_signing_keys_are_created_and_rotated_with_mode_0600(tmp_path):
    from services.auth.tokens import SigningKeys

    key_file = tmp_path / "signing" / "signing-keys.pem"
    SigningKeys(key_file, create=True)  # as 'tsunagu serve' makes it on first start
    assert mode(key_file) == 0o600 and sorted(key_file.parent.iterdir()) == [key_file]
    traps = [planted(key_file.with_name("signing-keys.pem.new"))]
    rotated = CliRunner().invoke(app, ["keys", "rotate", "--key-file", str(key_file)])
    assert rotated.exit_code == 0, rotated.output
    assert mode(key_file) == 0o600
    only_planted_and_the_keys(key_file.parent, key_file, traps)


def test_the_keys_file_a_store_creates_for_development_has_mode_0600(tmp_path, monkeypatch):
    from events.sealing import KEYS_FILE_ENV, MASTER_KEY_ENV, Keyring

    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)
    keys = tmp_path / "dev" / "tsunagu-keys.json"
    Keyring.from_config({KEYS_FILE_ENV: str(keys)})
    assert mode(keys) == 0o600 and sorted(keys.parent.iterdir()) == [keys]
