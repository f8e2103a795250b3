"""The hub's application service: the store, the settings and the clock, with publish, read and verify."""

from __future__ import annotations

import os
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping, Sequence

from consent.model import Org, Settings
from events.limits import SETTING_MAXIMA
from events.sealing import Keyring
from events.store import HubStore, open_store
from services.audit import VerifyReport, verify
from services.ingest import Ingest, PublishResult
from services.reading import Timeline, TimelineReader
from services.registry import OrgLoadResult, load_orgs

JST = timezone(timedelta(hours=9))


def now_jst() -> datetime:
    return datetime.now(JST)


SETTINGS_ENV_PREFIX = "TSUNAGU_"
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """The deployment's settings (policy.md, "Settings") from the environment: ``TSUNAGU_INTEGRATED_CENTER``,
    ``TSUNAGU_JOINT_LEDGER`` (1/0, true/false, yes/no, on/off), ``TSUNAGU_EMERGENCY_HOURS``,
    ``TSUNAGU_MONTHLY_REPORT_DUE_DAY`` (integers from 1 to ``events.limits.SETTING_MAXIMA``). Unset or empty: the
    policy's default."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        name = SETTINGS_ENV_PREFIX + f.name.upper()
        raw = (environ.get(name) or "").strip().lower()
        if not raw:
            continue
        if isinstance(getattr(Settings(), f.name), bool):
            if raw not in _TRUE | _FALSE:
                raise ValueError(f"{name}={raw!r}: use 1 or 0 (true/false, yes/no, on/off)")
            values[f.name] = raw in _TRUE
        else:
            try:
                values[f.name] = int(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r}: an integer is expected") from None
            maximum = SETTING_MAXIMA.get(f.name)
            if values[f.name] < 1 or (maximum is not None and values[f.name] > maximum):
                raise ValueError(f"{name}={raw!r}: from 1 to {maximum or 'any size'} is expected")
    return Settings.from_dict(values)


class SettableClock:
    """The scenario runner's clock: it reads whatever time the current step sets."""

    def __init__(self, at: datetime | None = None):
        self.at = at or now_jst()

    def __call__(self) -> datetime:
        return self.at


class Hub:
    def __init__(self, database: str | None = None, *, settings: Settings | None = None,
                 clock: Callable[[], datetime] = now_jst, store: HubStore | None = None,
                 keyring: Keyring | None = None):
        self.settings = settings if settings is not None else settings_from_env()  # before opening the store
        self.store = store or open_store(database, keyring=keyring)
        self.clock = clock
        self.ingest = Ingest(self.store, self.settings, clock)
        self.reader = TimelineReader(self.store, self.settings, clock)

    def load_orgs(self, items: Sequence[Any]) -> OrgLoadResult:
        return load_orgs(self.store, items)

    def orgs(self) -> dict[str, Org]:
        return dict(self.store.registry().orgs)

    def publish(self, items: Sequence[Any], *, publisher: str | None = None) -> list[PublishResult]:
        return self.ingest.publish(items, publisher=publisher)

    def timeline(self, *, org: str, role: str, child: str, purpose: str, user: str | None = None) -> Timeline:
        return self.reader.read(org=org, role=role, child=child, purpose=purpose, user=user)

    def verify(self) -> VerifyReport:
        return verify(self.store)

    def close(self) -> None:
        self.store.close()
