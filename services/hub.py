"""The composition root: the hub's application service, which opens the store and builds the application (the
settings, the clock, publishing, reading, replay) for the edges (``services.cli``, ``services.http``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import register_topic

from consent.model import Settings
from events.clock import now_jst
from events.model import Org
from events.sealing import Keyring
from events.store import HubStore, open_store
from services.administration import settings as administration_settings
from services.administration.organisations import OrgLoadResult, load_orgs
from services.administration.settings import SETTINGS_ID, SYSTEM, SettingsSource, seed_settings, settings_from_env
from services.aggregates.figures import correct as correct_counts
from services.aggregates.report_lines import upgrade_report_lines
from services.audit import trail as audit_trail
from services.audit.replay import VerifyReport, verify
from services.auth import clients as auth_clients
from services.casework.rows import LedgerRowCache
from services.projections import admission_facts as projections_admission_facts
from services.projections import cases as projections_cases
from services.projections import identity_links as projections_identity_links
from services.projections import rosters as projections_rosters
from services.projections.indexes import SHARED_INDEXES
from services.publishing.ingest import Ingest, PublishResult
from services.reading.kept import KeptReads
from services.reading.timeline import Timeline, TimelineReader
from services.schools.overdue import OverdueLines

# Stored events name their class by topic, ``module:Class.Event``. These modules were moved when ``services/`` was
# arranged by capability; their old paths stay readable through the library's topic register, so a store written
# before the move loads as before. Never remove an entry while such a store may exist.
MOVED_MODULES = {
    "services.settings": administration_settings,
    "services.auditing": audit_trail,  # AuditTrail, EmergencyReview
    "services.audit.auditors": audit_trail,  # the same, as written before services/audit/ was split
    "services.clients": auth_clients,
    "services.facts": projections_admission_facts,
    "services.caseindex": projections_cases,
    "services.rosters": projections_rosters,
    "services.identity": projections_identity_links,
}
for _old_path, _module in MOVED_MODULES.items():
    register_topic(_old_path, _module)


COUNTS_FORMAT = 5  # the store format from which the planners' counts and their tallies are kept (events.store)


def upgrade_counts(store: HubStore, was: int) -> None:
    """The publish path's upgrade for the planners' counts (``Ingest(upgrades=…)``): a store of a format before
    ``COUNTS_FORMAT`` was written before the counts were kept (or while their tallies lacked what is counted now),
    so its counts and tallies are made from the log (``services.aggregates.figures.correct``: the differences
    only, nothing for a store that already has them). Two processes opening the store at once: the second's
    write conflicts and is left, the first made it."""
    if was >= COUNTS_FORMAT:
        return
    try:
        correct_counts(store)
    except IntegrityError:
        pass


class SettableClock:
    """The scenario runner's clock: it reads whatever time the current step sets."""

    def __init__(self, at: datetime | None = None):
        self.at = at or now_jst()

    def __call__(self) -> datetime:
        return self.at


class Hub:
    """The hub on one store. Its decisions are taken under the store's settings (``services.administration.settings``):
    ``settings`` given here (tests, the scenario runner) are recorded in the store, as its first values or as a
    change by "system"; otherwise a new store is seeded from the ``TSUNAGU_*`` variables (``settings_from_env``)
    and a store that has settings keeps them, whatever this process's environment says."""

    def __init__(
        self,
        database: str | None = None,
        *,
        settings: Settings | None = None,
        clock: Callable[[], datetime] = now_jst,
        store: HubStore | None = None,
        keyring: Keyring | None = None,
    ):
        self.store = store or open_store(database, keyring=keyring)
        self.store.keep_shared_indexes(SHARED_INDEXES)
        self.clock = clock
        try:
            if settings is not None or self.store.peek(SETTINGS_ID) is None:
                seed_settings(
                    self.store,
                    settings if settings is not None else settings_from_env(),
                    at=clock(),
                    stated=settings is not None,
                )
        except ValueError:  # a setting variable the hub cannot take: refused before anything is decided
            if store is None:
                self.store.close()
            raise
        self.settings_source = SettingsSource(self.store)
        self.ingest = Ingest(self.store, self.settings_source, clock, upgrades=[upgrade_report_lines, upgrade_counts])
        self.reader = TimelineReader(self.store, self.settings_source, clock, KeptReads(self.store))  # reads kept
        self.ledger_rows = LedgerRowCache(self.store, self.reader)  # the ledgers' and agenda's rows decided ahead
        self.overdue_lines = OverdueLines(self.store, self.ledger_rows.versions)  # the overdue lines kept per school

    @property
    def settings(self) -> Settings:
        """The settings in force now (``SettingsSource.current``: at most a couple of seconds old)."""
        return self.settings_source.current()

    def load_orgs(self, items: Sequence[Any], *, by: str = SYSTEM) -> OrgLoadResult:
        """``load_orgs``; ``by``: who loads them (``SYSTEM``: a program, such as the demo, a scenario, a test)."""
        return load_orgs(self.store, items, by=by)

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
