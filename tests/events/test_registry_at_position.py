"""The registry and the log position in one statement (``events.store.HubStore.registry_at_position``): checked
against what it replaces, the registry read through the repository (``registry``: its fast-forward) and then the
log position (``log_position``), for registry changes and other events made in any order by this hub and by
another one on the same store (as another process would), on SQLite and PostgreSQL; that a registry that is
cached and unchanged is answered without the repository's fast-forward (the cached registry's value, one
statement); and that what is handed back is one fixed value (``events.store.RegistryAt``) that another thread's
fast-forward of the cached registry cannot change: the registry a read decides on is one stored at or before
its log position, and ``audit verify`` replays every read decided while another hub changes the registry
(review s7-read, MEDIUM 1 and HIGH 1)."""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.store import REGISTRY_ID
from services.audit.replay import access_records
from services.hub import Hub
from tests.helpers import ev

CENTRE = {"id": "beppu-center", "type": "municipal_center", "municipality": "442020", "prefecture": "44"}

# each step: who acts (0: the reading hub, 1: the other hub) and what: a registry change (an org loaded, the
# registry's version moves), an event published (the log moves, the registry does not), or a read of the pair
STEPS = st.lists(st.tuples(st.integers(0, 1), st.sampled_from(["org", "event", "read"])), min_size=1, max_size=10)


def org(n: int) -> dict:
    return {"id": f"school-{n}", "type": "school", "regime": "public", "municipality": "442020"}


def check_against_the_two(reading: Hub, other: Hub, steps: list[tuple[int, str]]) -> None:
    hubs = (reading, other)
    reading.load_orgs([CENTRE])
    made = 0
    for who, what in steps:
        made += 1
        if what == "org":
            hubs[who].load_orgs([org(made)])
        elif what == "event":
            hubs[who].publish([ev(f"e-{made}", child=f"c-{made}")], publisher="beppu-center")
        registry, position = reading.store.registry_at_position()
        version, orgs = registry.version, dict(registry.orgs)  # before the repository's read moves a cached one
        expected = reading.store.registry()
        assert (version, orgs) == (expected.version, dict(expected.orgs))
        assert position == reading.store.log_position()
        # an unchanged registry, cached: the cached registry's value itself, as the repository's fast-forward has it
        again, position_again = reading.store.registry_at_position()
        assert again is reading.store.repository.cache.get(REGISTRY_ID).current
        assert (again.version, position_again) == (expected.version, position)


@pytest.mark.store
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_the_registry_and_the_position_are_those_of_the_two_reads_on_sqlite(steps):
    with tempfile.TemporaryDirectory() as directory:
        database = f"sqlite:///{Path(directory) / 'hub.db'}"
        reading, other = Hub(database), Hub(database)
        try:
            check_against_the_two(reading, other, steps)
        finally:
            reading.close()
            other.close()


@pytest.mark.store
@pytest.mark.postgres
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_the_registry_and_the_position_are_those_of_the_two_reads_on_postgres(postgres_url, steps):
    reading, other = Hub(postgres_url), Hub(postgres_url)
    try:
        check_against_the_two(reading, other, steps)
    finally:
        reading.close()
        other.close()


@pytest.mark.store
def test_a_registry_not_yet_cached_is_read_through_the_repository(make_hub):
    hub = make_hub()
    empty, position = hub.store.registry_at_position()
    assert not empty.orgs and position == hub.store.log_position()
    hub.load_orgs([CENTRE])
    hub.store.repository.cache.clear()  # a new process: nothing cached
    registry, position = hub.store.registry_at_position()
    assert "beppu-center" in registry.orgs and position == hub.store.log_position() > 0
    assert hub.store.repository.cache.get(REGISTRY_ID).current is registry  # cached by the repository's read


AUDITOR = {"id": "beppu-center", "type": "auditor", "prefecture": "44"}


@pytest.mark.store
def test_another_threads_fast_forward_after_the_statement_does_not_change_the_registry_handed_back():
    """Review s7-read, MEDIUM 1, made to happen every time: another process changes the registry just after the
    statement, and another thread of this process then reads it (the repository fast-forwards the cached registry
    in place). What was handed back is still the registry the statement checked, stored at or before the position
    (before: the cached object, then at version 3, stored after the position)."""
    with tempfile.TemporaryDirectory() as directory:
        database = f"sqlite:///{Path(directory) / 'hub.db'}"
        reading, other = Hub(database), Hub(database)
        try:
            reading.load_orgs([CENTRE])
            reading.store.registry()  # cached
            statement = reading.store.recorder.position_and_later

            def then_another_thread_reads(originator_id, version):
                answer = statement(originator_id, version)
                other.load_orgs([AUDITOR])  # another process changes the registry (committed after the statement)
                reading.store.registry()  # another thread of this process reads: fast-forwards the cached registry
                return answer

            reading.store.recorder.position_and_later = then_another_thread_reads
            registry, position = reading.store.registry_at_position()
            assert reading.store.repository.cache.get(REGISTRY_ID).version == 3  # the fast-forward did happen
            version, org_type = registry.version, registry.orgs["beppu-center"].type  # as TimelineReader.read does
            assert (version, org_type) == (2, "municipal_center"), (
                f"decided under registry version {version} ({org_type}), recorded log position {position}, "
                f"but version {version} was stored after it (log position now {reading.store.log_position()})"
            )
        finally:
            reading.close()
            other.close()


@pytest.mark.store
def test_a_registry_taken_is_not_changed_by_later_changes(make_hub):
    """``RegistryAt`` is replaced whole on each change: a value taken before a change keeps its version and its
    organisations (before: the cached registry's dict was changed in place), and it cannot be changed."""
    hub = make_hub()
    hub.load_orgs([CENTRE])
    taken = hub.store.registry()
    hub.load_orgs([AUDITOR, org(1)])
    assert (taken.version, taken.orgs["beppu-center"].type, "school-1" in taken.orgs) == (2, "municipal_center", False)
    now = hub.store.registry()
    assert (now.version, now.orgs["beppu-center"].type, "school-1" in now.orgs) == (4, "auditor", True)
    with pytest.raises(TypeError):
        now.orgs["x"] = now.orgs["school-1"]  # type: ignore[index]


@pytest.mark.store
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["school", "auditor"])), max_size=12))
def test_each_registry_value_is_the_registry_at_its_version(make_hub, changes):
    """What ``RegistryAt`` replaces, the organisations built change by change, is what the history gives at each
    version (``OrgRegistry.orgs_at``, what ``audit verify`` replays with): for any registrations and updates."""
    hub = make_hub()
    taken = [hub.store.registry()]
    for n, kind in changes:
        item = org(n) if kind == "school" else {"id": f"school-{n}", "type": "auditor", "prefecture": "44"}
        hub.load_orgs([item])
        taken.append(hub.store.registry())
    history = hub.store.get_or_none(REGISTRY_ID)
    for value in taken:
        expected = history.orgs_at(value.version) if history is not None else {}
        assert dict(value.orgs) == expected


def reads_while_another_hub_changes_the_registry(database: str, seconds: float, threads: int) -> Hub:
    """Hub B changes the registry (beppu-center: municipal centre <-> auditor, which changes what a supervisor
    and a caseworker may read) while hub A reads in ``threads`` threads for ``seconds``; A is returned open."""
    changing = Hub(database)
    changing.load_orgs([CENTRE, {"id": "oita-audit", "type": "auditor", "prefecture": "44"}])
    children = [f"c{i}" for i in range(3)]
    for child in children:
        changing.publish([ev(f"{child}-{i}", child=child) for i in range(20)], publisher="beppu-center")
    reading = Hub(database)
    stop = time.monotonic() + seconds
    errors: list[str] = []

    def change() -> None:
        n = 0
        while time.monotonic() < stop:
            changing.load_orgs([AUDITOR if n % 2 == 0 else CENTRE])
            n += 1
            time.sleep(0.01)

    def read(k: int) -> None:
        i = 0
        while time.monotonic() < stop:
            try:
                reading.timeline(
                    org="beppu-center", role=("caseworker", "supervisor")[i % 2], child=children[(i + k) % 3],
                    purpose="support",
                )  # fmt: skip
            except Exception as error:  # noqa: BLE001 - any error of a read fails the test below
                errors.append(repr(error))
            i += 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)  # threads switch often: the interleavings come sooner
    try:
        workers = [threading.Thread(target=change)] + [threading.Thread(target=read, args=(k,)) for k in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(interval)
        changing.close()
    assert errors == []
    return reading


@pytest.mark.store
@pytest.mark.postgres
def test_reads_decided_while_another_hub_changes_the_registry_replay_on_postgres(postgres_url):
    """Review s7-read, HIGH 1 and MEDIUM 1, with real threads on real PostgreSQL: every read is decided and
    recorded under one registry version, stored at or before its log position, and ``audit verify`` replays
    every one (before: mismatches, the organisations changing under the decision, and records whose registry
    version was stored after their position)."""
    reading = reads_while_another_hub_changes_the_registry(postgres_url, seconds=4, threads=4)
    try:
        stored_at = {
            n.originator_version: n.id
            for n in reading.store.recorder.select_notifications(start=1, limit=1_000_000)
            if n.originator_id == REGISTRY_ID
        }
        records = list(access_records(reading.store))
        assert len(records) > 10 and len({r["registry_version"] for r in records}) > 2  # the registry did move
        late = [r for r in records if stored_at[r["registry_version"]] > r["log_position"]]
        assert late == []
        report = reading.verify()
        assert report.records == len(records)
        assert [m.to_dict() for m in report.replay_mismatches] == []
    finally:
        reading.close()
