"""Publishing: every adapter, the HTTP API, the CLI and the scenario runner publish through ``Ingest.publish``.

A batch goes through five steps, each a module of this package, read top to bottom in ``Ingest._publish_once``:

1. **parse** the envelopes (``parsing``);
2. **resolve local numbers** to hub children (紐付け, ``linking``);
3. **admit** each event under the policy's publish rules (``admitting``; the decision is ``consent.admission``'s);
4. **append** it to the child's stream and register its envelope id (``appending``);
5. **project** it: the lookup streams kept in step with the log (``projecting``).

A publish never loads a child's stream, and loads what the steps read in two queries for the whole batch: how far
each child's stream has got (``events.streams.stream_versions``), then every aggregate that admission
(``consent.admission.reads``: the child's facts, the case and plan ids in use), the projections (each one's
``needs``) and the release of events waiting for a residence declare they will read, from the events alone. Everything of one batch is held in its unit of work
(``batch.Batch``) and saved in one transaction (``attempt`` takes the events through the steps); a stream that
moved meanwhile, or an id stored meanwhile, makes the insert fail on its key, and ``publish`` tries again. The
shared indexes that publishers of different children all write (a centre's desk and cases, a municipality's months,
…: ``services.projections.indexes.RECORDED_IN_TURN`` and ``CHANGES_REAPPLIED``) are saved in their turn on their
newest state instead (``Batch.save``; everything else sealed before the turn), so that another publisher's save to
them does not make the batch try again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from consent.model import Settings
from events.envelope import Envelope
from events.model import Org, Recorded
from events.problems import Problem, PublishResult, Rejected
from events.retry import retry_conflicts
from events.store import STORE_FORMAT, HubStore, recorded_from
from events.streams import stream_versions
from services.administration.settings import SettingsSource
from services.projections.admission_facts import facts_from_log, report_facts_from_log
from services.projections.cases import plan_entries_from_log
from services.projections.published import published_children_from_log
from services.publishing.admitting import admission_needs
from services.publishing.attempt import Attempt, Work
from services.publishing.batch import Batch
from services.publishing.parsing import parse_batch
from services.publishing.projecting import projection_needs
from services.publishing.waiting_for_residence import release_needs

__all__ = ["MAX_BATCH", "Ingest", "PublishResult"]

MAX_BATCH = 5000


class Ingest:
    """The publish path of a store: ``publish`` a batch under the settings in force."""

    def __init__(
        self,
        store: HubStore,
        settings: SettingsSource,
        clock: Callable[[], datetime],
        upgrades: Sequence[Callable[[HubStore, int], None]] = (),
    ):
        """``upgrades``: what layers above the publish path keep in step with it (the planners' counts) and make
        from the log for a store of an older format: each is given the store and its format before this
        upgrade, and runs before the store is marked ``STORE_FORMAT`` (``services.hub`` hands them in)."""
        self.store = store
        self.settings_source = settings
        self.clock = clock
        if store.format < STORE_FORMAT:
            with store.one_upgrade_at_a_time() as was:  # another process may have brought it up meanwhile
                if was < STORE_FORMAT:
                    self._upgrade(was, upgrades)

    def _upgrade(self, was: int, upgrades: Sequence[Callable[[HubStore, int], None]]) -> None:
        """Bring a store of format ``was`` to ``STORE_FORMAT`` (see ``__init__``), in this process's turn."""
        store = self.store
        # Written before the children's facts of policy version 2 and the plan index were kept (or under
        # version 1): make them from the log, the facts with authority only.
        # Format 4 adds the children per publishing organisation (what we shared, and who read it); format 5
        # the providers' reports among the facts.
        orgs = store.registry().orgs
        rebuilt: list[Any] = []
        if was < 3:
            rebuilt += facts_from_log(store.recorder, store.mapper, orgs, self.settings)
            rebuilt += plan_entries_from_log(store.recorder, store.mapper)
        if was < 4:
            rebuilt += published_children_from_log(store.recorder, store.mapper)
        for aggregate in rebuilt:
            try:
                store.save(aggregate)
            except IntegrityError:
                pass  # another process opening the store made it first
        if 3 <= was < 5:  # format 5: the reports among the facts (below 3 the rebuild made them)
            retry_conflicts(lambda: store.save(*report_facts_from_log(store)))
        for upgrade in upgrades:
            upgrade(store, was)
        store.mark_format(STORE_FORMAT)

    @property
    def settings(self) -> Settings:
        """The deployment's settings in force now (``services.settings.SettingsSource``)."""
        return self.settings_source.current()

    def publish(self, items: Sequence[Any], *, publisher: str | None = None) -> list[PublishResult]:
        """Publish a batch. Each item is accepted, recognised as a duplicate of a stored event, or rejected with
        its problems (and kept in quarantine). Accepted events of one batch are stored in one transaction.

        ``publisher``: the authenticated organisation sending the batch (the HTTP API). An organisation
        publishes only as itself: an event whose ``source`` is another organisation is rejected
        (``source_mismatch``), and whatever it rejects is held in the publisher's quarantine."""
        if len(items) > MAX_BATCH:
            raise Rejected(
                [
                    Problem(
                        "batch_too_large",
                        f"at most {MAX_BATCH} events per batch",
                        f"一度に送れるのは{MAX_BATCH}件までです",
                    )
                ]
            )
        now = self.clock()
        parsed = parse_batch(items, now, publisher)
        # First try without looking up each id (new events are the common case); a stored id makes the
        # transaction fail on the register of envelope ids, and the next passes look every id up. A stream that
        # moved meanwhile fails the same way: tried again with backoff within the budget, then Busy (503).
        passes = 0

        def publish_once() -> list[PublishResult]:
            nonlocal passes
            passes += 1
            return self._publish_once(items, parsed, now, look_up=passes > 1, publisher=publisher)

        results = retry_conflicts(publish_once)
        self.finish_erasures_sent_again(parsed, results)
        return results

    def finish_erasures_sent_again(self, parsed: list[Envelope | Rejected], results: list[PublishResult]) -> None:
        """A ``child.erased`` answered ``duplicate`` finishes its erasure: the child's keys still live are
        destroyed (``HubStore.destroy_keys_of_erasure``). They live only when the first destruction did not
        happen (its answer was lost after the COMMIT, or the process died before destroying): then this is the
        first destruction. An erasure finished before finds no live key, since an erased scope never gets one
        again (``events.sealing.DataKeys.ensure``: a key destroyed from the start): it destroys nothing, adds no
        row to the register of erasures and empties no other process's cache (review of session 8, MEDIUM 2; the
        sending process forgets its own, since its refused first pass sealed for the erased child). Either
        way the note its batch's first pass wrote (``HubStore.save`` notes the destruction owed before the insert
        that was refused as a duplicate) is removed once no live key is left, so the sweep finds nothing owed.
        An error here is raised (503, the publisher sends it again, and the note is still owed)."""
        for result in results:
            item = parsed[result.index]
            if result.outcome != "duplicate" or not isinstance(item, Envelope) or item.kind != "child.erased":
                continue
            stored = self.store.stored_envelope(item.id)
            if stored is not None:
                self.store.destroy_keys_of_erasure(stored.stream)

    def _publish_once(
        self,
        items: Sequence[Any],
        parsed: list[Envelope | Rejected],
        now: datetime,
        *,
        look_up: bool,
        publisher: str | None = None,
    ) -> list[PublishResult]:
        """One attempt at the batch, in one transaction: what the steps will read is loaded first, then each
        event goes through the steps (``attempt``), then everything is saved."""
        batch = Batch(self.store, self.store.registry())
        envelopes = {i: item for i, item in enumerate(parsed) if isinstance(item, Envelope) and item.child}
        # Append: how far each child's stream has got, in one query.
        asked = batch.streams_to_ask(envelope.child for envelope in envelopes.values() if envelope.child)
        batch.know_versions(asked, stream_versions(self.store, asked))
        # Admit and project: what the rules and the projections declare they will read, in one query.
        prepared = {i: recorded_from(envelope.canonical(), [], 1) for i, envelope in envelopes.items()}
        batch.load(needs(prepared.values(), batch.orgs))
        stored = self.store.stored_envelopes(item.id for item in envelopes_of(parsed)) if look_up else {}
        attempt = Attempt(batch, self.settings, now, look_up=look_up, stored=stored, publisher=publisher)
        results = attempt.run(Work(i, item, items[i], prepared.get(i)) for i, item in enumerate(parsed))
        batch.save()
        return results


def needs(events: Iterable[Recorded], orgs: Mapping[str, Org]) -> list[UUID]:
    """The aggregates that admitting, projecting and (for a residence) releasing ``events`` will read, as they
    declare it."""
    return [i for e in events for i in (*admission_needs(e), *projection_needs(e, orgs), *release_needs(e))]


def envelopes_of(parsed: Iterable[Envelope | Rejected]) -> Iterable[Envelope]:
    """The envelopes among ``parsed`` (not the rejections)."""
    return (item for item in parsed if isinstance(item, Envelope))
