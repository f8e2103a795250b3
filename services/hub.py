"""The hub's application service: the store, the settings and the clock, with publish, read and verify."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Sequence

from consent.model import Org, Settings
from events.store import HubStore, open_store
from services.audit import VerifyReport, verify
from services.ingest import Ingest, PublishResult
from services.reading import Timeline, TimelineReader
from services.registry import OrgLoadResult, load_orgs

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
    def __init__(self, database: str | None = None, *, settings: Settings | None = None,
                 clock: Callable[[], datetime] = now_jst, store: HubStore | None = None):
        self.store = store or open_store(database)
        self.settings = settings or Settings()
        self.clock = clock
        self.ingest = Ingest(self.store, self.settings, clock)
        self.reader = TimelineReader(self.store, self.settings, clock)

    def load_orgs(self, items: Sequence[Any]) -> OrgLoadResult:
        return load_orgs(self.store, items)

    def orgs(self) -> dict[str, Org]:
        return dict(self.store.registry().orgs)

    def publish(self, items: Sequence[Any]) -> list[PublishResult]:
        return self.ingest.publish(items)

    def timeline(self, *, org: str, role: str, child: str, purpose: str, user: str | None = None) -> Timeline:
        return self.reader.read(org=org, role=role, child=child, purpose=purpose, user=user)

    def verify(self) -> VerifyReport:
        return verify(self.store)

    def close(self) -> None:
        self.store.close()
