"""The registry and the log position in one statement (``events.store.HubStore.registry_at_position``): checked
against what it replaces, the registry read through the repository (``registry``: its fast-forward) and then the
log position (``log_position``), for registry changes and other events made in any order by this hub and by
another one on the same store (as another process would), on SQLite and PostgreSQL; and that a registry that is
cached and unchanged is answered without the repository's fast-forward (the cached object, one statement)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.store import REGISTRY_ID
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
        # an unchanged registry, cached: the cached object itself, as the repository's fast-forward returns it
        again, position_again = reading.store.registry_at_position()
        assert again is reading.store.repository.cache.get(REGISTRY_ID)
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
    assert hub.store.repository.cache.get(REGISTRY_ID) is registry  # cached by the repository's read
