"""The hub's application service: the store, the settings and the clock, with publish, read and verify."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Sequence

from consent.model import Org, Settings
from events.sealing import Keyring
from events.store import HubStore, open_store
from services.audit import VerifyReport, verify
from services.ingest import Ingest, PublishResult
from services.reading import Timeline, TimelineReader
from services.registry import OrgLoadResult, load_orgs
from services.settings import SETTINGS_ID, SettingsSource, seed_settings, settings_from_env

JST = timezone(timedelta(hours=9))


def now_jst() -> datetime:
    return datetime.now(JST)


class SettableClock:
    """The scenario runner's clock: it reads whatever time the current step sets."""

    def __init__(self, at: datetime | None = None):
        self.at = at or now_jst()

    def __call__(self) -> datetime:
        return self.at


class Hub:
    """The hub on one store. Its decisions are taken under the store's settings (``services.settings``):
    ``settings`` given here (tests, the scenario runner) are recorded in the store, as its first values or as a
    change by "system"; otherwise a new store is seeded from the ``TSUNAGU_*`` variables (``settings_from_env``)
    and a store that has settings keeps them, whatever this process's environment says."""

    def __init__(self, database: str | None = None, *, settings: Settings | None = None,
                 clock: Callable[[], datetime] = now_jst, store: HubStore | None = None,
                 keyring: Keyring | None = None):
        self.store = store or open_store(database, keyring=keyring)
        self.clock = clock
        try:
            if settings is not None or self.store.peek(SETTINGS_ID) is None:
                seed_settings(self.store, settings if settings is not None else settings_from_env(), at=clock(),
                              stated=settings is not None)
        except ValueError:  # a setting variable the hub cannot take: refused before anything is decided
            if store is None:
                self.store.close()
            raise
        self.settings_source = SettingsSource(self.store)
        self.ingest = Ingest(self.store, self.settings_source, clock)
        self.reader = TimelineReader(self.store, self.settings_source, clock)

    @property
    def settings(self) -> Settings:
        """The settings in force now (``SettingsSource.current``: at most a couple of seconds old)."""
        return self.settings_source.current()

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
