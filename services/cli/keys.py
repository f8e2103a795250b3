"""``tsunagu master-key``: the master keys that wrap the children's data keys (events.sealing).

Rotation without re-encrypting any event: ``rotate`` puts a new master key in front of the keys file (the old ones
stay, to unwrap), ``rewrap`` wraps every live data key under the new one; the old master key can then be removed
from the file. Destroyed data keys stay destroyed.
"""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from uuid import uuid4

import typer
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from events.sealing import DEFAULT_KEYS_FILE, KEYS_FILE_ENV, KeyConfigError, create_keys_file
from events.secret_files import write_secret_file
from services.cli.root import Database, app, fail, out

keys_app = typer.Typer(help="Master keys (暗号鍵の管理): generate, rotate, rewrap the data keys.", no_args_is_help=True)
app.add_typer(keys_app, name="master-key")

KeysFile = Annotated[
    Path | None,
    typer.Option("--keys-file", help=f"The keys file (default ${KEYS_FILE_ENV}, else {DEFAULT_KEYS_FILE})."),
]


def _path(keys_file: Path | None) -> Path:
    return keys_file or Path(os.environ.get(KEYS_FILE_ENV) or DEFAULT_KEYS_FILE)


def _new_master() -> dict[str, str]:
    return {
        "id": f"m-{datetime.now(UTC):%Y%m%d}-{uuid4().hex[:6]}",
        "key": base64.b64encode(AESGCM.generate_key(256)).decode(),
    }


@keys_app.command("generate")
def generate(keys_file: KeysFile = None) -> None:
    """Write a new keys file (mode 0600): one master key and the stream secret. Refuses to overwrite one."""
    path = _path(keys_file)
    if path.exists():
        fail(f"{path}: 既に存在します。上書きしません (the keys file exists; it is never overwritten)")
    try:
        create_keys_file(
            path, {"master_keys": [_new_master()], "stream_secret": base64.b64encode(os.urandom(32)).decode()}
        )
    except OSError as error:
        fail(f"{path}: 鍵ファイルを書き込めません ({error})")
    out.print(f"created {path}")


@keys_app.command("rotate")
def rotate(keys_file: KeysFile = None) -> None:
    """Put a new master key in front of the keys file: it wraps new data keys; the others still unwrap. The file is
    replaced atomically by a new one of mode 0600 (``events.secret_files``)."""
    path = _path(keys_file)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        fail(f"{path}: 鍵ファイルを読めません ({error})")
    data["master_keys"] = [_new_master()] + list(data.get("master_keys") or [])
    try:
        write_secret_file(path, json.dumps(data, indent=2).encode("utf-8"))
    except OSError as error:
        fail(f"{path}: 鍵ファイルを書き込めません ({error})")
    out.print(f"new master key {data['master_keys'][0]['id']} in {path}; now run: tsunagu master-key rewrap")


@keys_app.command("rewrap")
def rewrap(database: Database = None) -> None:
    """Wrap every live data key under the current (first) master key."""
    from services.hub import Hub

    try:
        hub = Hub(database)
    except KeyConfigError as error:
        fail(f"鍵の設定に誤りがあります: {error}")
    try:
        count = hub.store.keys.rewrap()
    finally:
        hub.close()
    out.print(f"{count} data keys now wrapped by {hub.store.keyring.current.id}")
