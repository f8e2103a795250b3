"""The deployment's policy settings (policy.md, "Settings"), kept in the hub's store with their history.

Settings belong to the deployment, not to a process: every process on the same store (API workers, ingest
workers, the command line) decides under the same values, and a change made by one of them takes effect in the
others within ``SettingsSource.MAX_AGE`` seconds, without a restart.

- ``DeploymentSettings``: one stream per hub, sealed under the hub's key like the organisation registry. Each
  event is one change of one setting: its name, the old and the new value, who changed it (``by``: a person or an
  organisation id, "system" for the first values and for settings a program states), and when. The first event
  of each setting has no old value: the values the store was started with.
- ``seed_settings``: the first values of a new store (one with no settings stream yet): the ``TSUNAGU_*``
  variables of the process that opens it first (``settings_from_env``), or the settings a program states
  (``Hub(settings=...)``: the tests and the scenario runner, which also record them as a change when the store
  already holds other values).
- ``change_settings``: record changes, checked by ``consent.model.Settings.checked``.
- ``SettingsSource``: the current settings, as ``Hub``, ``Ingest`` and ``TimelineReader`` read them.
- ``settings_report``: the current values, who set each and when, and the history (``tsunagu settings show``,
  ``GET /v1/settings``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime
from threading import Lock
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from consent.model import InvalidSetting, Settings
from events.store import NAMESPACE, HubStore, _CopiedOnWrite

SETTINGS_ID = uuid5(NAMESPACE, "deployment-settings")  # a fixed, public name, like the registry's
SYSTEM = "system"  # who set the values a program states (the first values of a store, a test's settings)
SETTING_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Settings))


class DeploymentSettings(_CopiedOnWrite, Aggregate):
    """The deployment's settings with their history: each change of one setting is one event."""

    @staticmethod
    def create_id() -> UUID:
        return SETTINGS_ID

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.changes: list[dict[str, Any]] = []

    @event("SettingChanged")
    def change(self, name: str, old: Any, new: Any, by: str, at: str, org: str | None = None) -> None:
        """Setting ``name`` changed from ``old`` (None: the store's first value) to ``new``, by ``by`` (acting for
        ``org``), at ``at`` (ISO 8601)."""
        self.values = dict(self.values, **{name: new})
        self.changes.append({"name": name, "old": old, "new": new, "by": by, "org": org, "at": at})

    @property
    def settings(self) -> Settings:
        """The current values (the policy's default for a setting the store has no value for; a stored setting
        this version of the hub no longer knows is left out)."""
        return Settings.from_dict({k: v for k, v in self.values.items() if k in SETTING_NAMES})

    def last_change(self, name: str) -> dict[str, Any] | None:
        """The change that set the current value of ``name`` (None: the policy's default, never recorded)."""
        return next((c for c in reversed(self.changes) if c["name"] == name), None)


# --- Values given as text: the environment and the command line ---------------------------------------------

SETTINGS_ENV_PREFIX = "TSUNAGU_"
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def setting_from_text(name: str, text: str) -> Any:
    """The value of setting ``name`` written as text (``1``/``0``, ``true``/``false``, ``yes``/``no``,
    ``on``/``off`` for a boolean setting; an integer), checked (``Settings.checked``). ``InvalidSetting``
    otherwise."""
    if name not in SETTING_NAMES:
        Settings.from_dict({name: text})  # refuses the unknown name, listing the known ones
    raw = text.strip().lower()
    if isinstance(getattr(Settings(), name), bool):
        if raw not in _TRUE | _FALSE:
            raise InvalidSetting(
                name,
                f"{name}={text!r}: use true or false (1/0, yes/no, on/off)",
                f"{name} は true か false（1/0、yes/no、on/off）で指定してください（指定された値: {text!r}）",
            )
        value: Any = raw in _TRUE
    else:
        try:
            value = int(raw)
        except ValueError:
            value = text  # Settings.checked says what is expected
    Settings.checked({name: value})
    return value


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings that seed a new store (``seed_settings``) from the environment: ``TSUNAGU_INTEGRATED_CENTER``,
    ``TSUNAGU_JOINT_LEDGER`` (1/0, true/false, yes/no, on/off), ``TSUNAGU_EMERGENCY_HOURS``,
    ``TSUNAGU_MONTHLY_REPORT_DUE_DAY`` (integers). Unset or empty: the policy's default. ``ValueError`` naming the
    variable for a value the hub cannot take."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name in SETTING_NAMES:
        variable = SETTINGS_ENV_PREFIX + name.upper()
        raw = (environ.get(variable) or "").strip()
        if not raw:
            continue
        try:
            values[name] = setting_from_text(name, raw)
        except InvalidSetting as error:
            raise ValueError(f"{variable}={raw!r}: {error.message} / {error.message_ja}") from None
    return Settings.from_dict(values)


# --- Recording ----------------------------------------------------------------------------------------------


def _check_by(by: str) -> str:
    by = (by or "").strip()
    if not by or len(by) > 200:
        raise InvalidSetting(
            "by",
            "who changes the settings must be named (1 to 200 characters)",
            "設定を変更する人または機関を指定してください（1〜200文字）",
        )
    return by


def seed_settings(store: HubStore, seed: Settings, *, at: datetime, stated: bool) -> None:
    """Give a new store its first settings, ``seed`` (by "system"). A store that already has settings keeps
    them, unless ``stated`` (a program stated ``seed``: tests, the scenario runner), when those that differ are
    recorded as a change by "system". Two processes opening a new store at once: one seeds it, the other one
    then finds the settings stored."""
    Settings.checked(seed.to_dict())
    for attempt in range(5):
        stored = store.get_or_none(SETTINGS_ID)
        if stored is None:
            stored = DeploymentSettings()
            for name, value in seed.to_dict().items():
                stored.change(name=name, old=None, new=value, by=SYSTEM, at=at.isoformat())
        elif stated and stored.settings != seed:
            current = stored.settings.to_dict()
            for name, value in seed.to_dict().items():
                if current[name] != value:
                    stored.change(name=name, old=current[name], new=value, by=SYSTEM, at=at.isoformat())
        else:
            return
        try:
            store.save(stored)
            return
        except IntegrityError:  # another process recorded settings first: look again
            if attempt == 4:
                raise


def change_settings(
    store: HubStore, changes: Mapping[str, Any], *, by: str, at: datetime, org: str | None = None
) -> list[dict[str, Any]]:
    """Record ``changes`` (setting name to its new value, checked by ``Settings.checked``) made by ``by`` (a person
    or an organisation id; ``org``: the organisation that person acted for). Only values that differ from the
    current ones are recorded; the recorded changes are returned. ``InvalidSetting`` for an unknown name, a bad
    value or no ``by``."""
    Settings.checked(changes)
    by = _check_by(by)
    for attempt in range(5):
        stored = store.get_or_none(SETTINGS_ID) or DeploymentSettings()
        current = stored.settings.to_dict()
        made = []
        for name, value in changes.items():
            if current[name] != value:
                stored.change(name=name, old=current[name], new=value, by=by, at=at.isoformat(), org=org)
                made.append(stored.changes[-1])
        if not made:
            return []
        try:
            store.save(stored)
            return made
        except IntegrityError:  # another process changed the settings meanwhile: apply to its version
            if attempt == 4:
                raise
    return []  # unreachable


def settings_report(store: HubStore) -> dict[str, Any]:
    """The current settings, who set each and when (``set_by``: None for a policy default never recorded), and
    the history of changes, oldest first."""
    stored = store.get_or_none(SETTINGS_ID) or DeploymentSettings()
    current = stored.settings.to_dict()
    return {
        "settings": current,
        "set_by": {
            name: (
                {k: v for k, v in change.items() if k in ("by", "org", "at")}
                if (change := stored.last_change(name))
                else None
            )
            for name in current
        },
        "history": list(stored.changes),
    }


# --- Reading ------------------------------------------------------------------------------------------------


class SettingsSource:
    """The deployment's current settings as one process decides under them: ``current()``.

    The value is kept in memory and read again from the store when it is older than ``max_age`` seconds (2 by
    default), so a change made by another process takes effect here within that time, without a restart. Each
    call costs a clock reading; a refresh costs one query for the events recorded since the last one (the store's
    cache of the ``DeploymentSettings`` stream is brought forward), none when there are none. A change made
    through this source's own store (``change``) is seen at once. Safe to share between threads."""

    MAX_AGE = 2.0

    def __init__(self, store: HubStore, *, fallback: Settings | None = None, max_age: float = MAX_AGE):
        self.store = store
        self.max_age = max_age
        self._fallback = fallback or Settings()  # until the store has settings (seed_settings)
        self._value = self._fallback
        self._read_at = float("-inf")
        self._lock = Lock()

    def current(self) -> Settings:
        """The settings in force now (at most ``max_age`` seconds old)."""
        if time.monotonic() - self._read_at < self.max_age:
            return self._value
        with self._lock:
            if time.monotonic() - self._read_at >= self.max_age:
                self._refresh()
            return self._value

    def refresh(self) -> Settings:
        """Read the settings from the store now."""
        with self._lock:
            self._refresh()
            return self._value

    def _refresh(self) -> None:
        started = time.monotonic()
        stored = self.store.peek(SETTINGS_ID)
        self._value = stored.settings if stored is not None else self._fallback
        self._read_at = started

    def change(
        self, changes: Mapping[str, Any], *, by: str, at: datetime, org: str | None = None
    ) -> list[dict[str, Any]]:
        """``change_settings`` on this source's store; the new values are in force here at once."""
        made = change_settings(self.store, changes, by=by, at=at, org=org)
        self.refresh()
        return made
