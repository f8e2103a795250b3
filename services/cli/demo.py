"""``tsunagu demo``: load the demo municipality (``services/demo.py``) and print how to try it.

Registered on the ``tsunagu`` command by ``services/cli/root.py`` importing this module.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import typer
from eventsourcing.persistence import PersistenceError

from events.clock import now_jst
from events.store import DEFAULT_DATABASE
from services.cli.root import Database, app, err, fail
from services.demo import ORGS, demo_children, load_demo, record_demo_settings, try_it
from services.hub import Hub


def _prog() -> str:
    """How to call ``tsunagu`` from here: the bare name when it is on PATH, else the venv's script."""
    if shutil.which("tsunagu"):
        return "tsunagu"
    script = Path(sys.executable).parent / "tsunagu"
    if script.exists():
        relative = os.path.relpath(script)
        return str(script) if relative.startswith("..") else relative
    return "tsunagu"


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


@app.command()
def demo(database: Database = None) -> None:
    """Load a demo municipality (別府市・大分市, 2026年4–11月) and print how to try it. Rerunning changes nothing.

    Organisations and events go through the hub's real paths (orgs load, publish), on the embedded store by
    default. The demo is an 大分-style deployment: the joint ledger (共同管理台帳) is on, a setting recorded in the
    store (``tsunagu settings show``), so every process on it reads the demo so."""
    try:
        hub = Hub(database, clock=now_jst)
    except ValueError as error:  # an unsupported database URL, a bad setting in the environment
        fail(str(error))
    except PersistenceError as error:
        fail(f"the store cannot be opened / 保存先に接続できません: {error}")
    try:
        record_demo_settings(hub)
        result = load_demo(hub)
    except PersistenceError as error:
        fail(f"the store failed / 保存先でエラーが発生しました: {error}")
    finally:
        hub.close()
    for envelope, published in result.rejected:
        for p in published.problems:
            err.print(
                f"[red]rejected[/red] {envelope['id']} ({envelope['kind']}): {p.field or '-'}: "
                f"{p.message} / {p.message_ja}"
            )
    if any(p.code == "future_time" for _, r in result.rejected for p in r.problems):
        err.print(
            "the demo's events run until 2026-11-23 (Japan time): this machine's clock is earlier / "
            "デモのイベントは2026年11月23日までの日付です。この端末の時計がそれより前になっています"
        )
    if result.rejected:
        err.print(
            f"demo: {len(result.rejected)} event(s) rejected / {len(result.rejected)}件が受け付けられませんでした"
        )
        raise typer.Exit(1)
    orgs = result.orgs
    print(
        f"デモデータを読み込みました：機関 {len(ORGS)}（新規 {len(orgs.registered)}・変更 {len(orgs.updated)}）、"
        f"児童 {len(demo_children())}人、イベント 新規 {result.accepted}件・登録済み {result.duplicate}件"
    )
    print(
        f"Demo loaded: {len(ORGS)} organisations ({len(orgs.registered)} new, {len(orgs.updated)} updated), "
        f"{len(demo_children())} children, {result.accepted} new events, {result.duplicate} already there"
    )
    print(f"store / 保存先: {_without_password(database or DEFAULT_DATABASE)}")
    print()
    print(try_it(_prog(), database))
