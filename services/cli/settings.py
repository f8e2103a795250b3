"""``tsunagu settings show|set``: the deployment's policy settings kept in the store (``services.administration.settings``).

Registered on the ``tsunagu`` command by ``services/cli/root.py`` importing this module.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Annotated, Any

import typer
from eventsourcing.persistence import PersistenceError
from rich.table import Table

from consent.model import InvalidSetting
from services.administration.settings import (
    SETTING_NAMES,
    SETTINGS_ENV_PREFIX,
    SettingsSource,
    setting_from_text,
    settings_report,
)
from services.cli.root import Database, app, fail, login_name, out
from services.hub import Hub

settings_app = typer.Typer(
    help="The deployment's policy settings, kept in the store with their history (設定).", no_args_is_help=True
)
app.add_typer(settings_app, name="settings")


def _text(value: Any) -> str:
    """A setting's value as written on the command line (true/false, integers); '-' for none."""
    if value is None:
        return "-"
    return json.dumps(value, ensure_ascii=False)


def _when(at: str | None) -> str:
    """A recorded time, to the second, as it was recorded (Japan time for the hub's clock)."""
    return datetime.fromisoformat(at).strftime("%Y-%m-%d %H:%M:%S") if at else ""


def _open(database: str | None) -> Hub:
    try:
        return Hub(database)
    except ValueError as error:  # an unsupported database URL, a bad setting variable for a new store
        fail(str(error))
    except PersistenceError as error:
        fail(f"保存先に接続できません / the store cannot be opened: {error}")
    raise AssertionError("unreachable: fail() exits")


def _ignored_variables(settings: dict[str, Any]) -> list[str]:
    """The ``TSUNAGU_*`` setting variables of this shell whose value differs from the store's (they only seed a
    new store)."""
    ignored = []
    for name in SETTING_NAMES:
        variable = SETTINGS_ENV_PREFIX + name.upper()
        raw = (os.environ.get(variable) or "").strip()
        if not raw:
            continue
        try:
            differs = setting_from_text(name, raw) != settings[name]
        except InvalidSetting:
            differs = True
        if differs:
            ignored.append(variable)
    return ignored


@settings_app.command("show")
def settings_show(
    database: Database = None,
    as_json: Annotated[bool, typer.Option("--json", help="Everything as one JSON object.")] = False,
) -> None:
    """The settings in force (every process on the store decides under them), who set each and when, and the
    history of changes."""
    hub = _open(database)
    try:
        report = settings_report(hub.store)
    finally:
        hub.close()
    if as_json:
        print(json.dumps(report, ensure_ascii=False))
        return
    table = Table("設定 (setting)", "値 (value)", "変更者 (by)", "日時 (at)", title="現在の設定 / Settings in force")
    for name, value in report["settings"].items():
        who = report["set_by"][name]
        table.add_row(
            name,
            _text(value),
            (who["by"] + (f" ({who['org']})" if who.get("org") else "")) if who else "（既定値 / default）",
            _when(who["at"] if who else None),
        )
    out.print(table)
    history = Table(
        "日時 (at)", "設定 (setting)", "変更前 (old)", "変更後 (new)", "変更者 (by)", title="変更履歴 / History"
    )
    for change in report["history"]:
        history.add_row(
            _when(change["at"]),
            change["name"],
            _text(change["old"]),
            _text(change["new"]),
            change["by"] + (f" ({change['org']})" if change.get("org") else ""),
        )
    out.print(history)
    for variable in _ignored_variables(report["settings"]):
        out.print(
            f"[yellow]注意[/yellow] 環境変数 {variable} は使われていません：設定は保存先のものです"
            f"（変更は tsunagu settings set）/ {variable} is ignored: the store's settings are in force"
        )


@settings_app.command("set")
def settings_set(
    name: Annotated[str, typer.Argument(help=f"One of {', '.join(SETTING_NAMES)}.")],
    value: Annotated[str, typer.Argument(help="true/false (1/0, yes/no, on/off) or an integer.")],
    by: Annotated[
        str | None,
        typer.Option("--by", help="Who makes the change (a person or organisation id; default: your login name)."),
    ] = None,
    database: Database = None,
) -> None:
    """Change one setting for every process on the store (in force everywhere within seconds); recorded with
    who and when. emergency_hours: 1-168; monthly_report_due_day: 1-28."""
    try:
        parsed = setting_from_text(name, value)
    except InvalidSetting as error:
        fail(f"{error.message_ja} / {error.message}")
    who = by if by is not None else login_name()
    hub = _open(database)
    try:
        source: SettingsSource = hub.settings_source
        old = source.current().to_dict()[name]
        made = source.change({name: parsed}, by=who, at=hub.clock())
    except InvalidSetting as error:
        fail(f"{error.message_ja} / {error.message}")
    finally:
        hub.close()
    if not made:
        out.print(
            f"{name} はすでに {_text(parsed)} です。変更はありません / {name} is already {_text(parsed)}: "
            f"nothing changed"
        )
        return
    out.print(
        f"{name} を {_text(old)} から {_text(parsed)} に変更しました（変更者: {who}）。すべてのプロセスで"
        f"数秒以内に有効になります / {name} changed from {_text(old)} to {_text(parsed)} by {who}; in force "
        f"in every process within seconds"
    )
