"""An erasure seen by a publisher's process between its batch's load and its save, while another publisher moved one of
the batch's staged indexes (so that the save reloads it in its turn: a cache look-up), must not put what the batch
loaded before the erasure back in the aggregate cache (``services.publishing.batch.cache_generation``; review of
session 7, s7-publish HIGH-1: fails on 478e747, which had no such check)."""

from __future__ import annotations

import pytest

from services.projections.cases import CenterCases
from tests.publishing.test_erasure_during_publish import a_held_before_its_save, an_erasure_at_a_centre
from tests.publishing.test_publishers_in_turn import hub_on, prefecture, publish_all


@pytest.mark.postgres
def test_an_erasure_during_a_publish_overtaken_on_its_indexes_leaves_nothing_of_the_child_cached(
    postgres_url, monkeypatch
):
    pref = prefecture()
    scene = an_erasure_at_a_centre(pref)
    hub_a, hub_b = hub_on(postgres_url, pref), hub_on(postgres_url, pref, own_turns=True)
    try:
        publish_all(hub_a, [scene.first])
        with a_held_before_its_save(hub_a, scene.batch_a, monkeypatch):
            publish_all(hub_b, [[scene.erasure()]])
            registered = next(
                e for e in scene.first if e["child"] == scene.erased_child and e["kind"] == "child.registered"
            )
            publish_all(hub_b, [[{**registered, "id": "w-1", "child": "w0000001"}]])  # moves PublishedChildren(centre)
            hub_a.store.erasures.check_now()  # A's process sees the erasure (any thread's look, within ~2 s anyway)
        cases = hub_a.store.peek(CenterCases.create_id(scene.centre)).cases
        assert [case for case, entry in cases.items() if entry["child"] == scene.erased_child] == []
    finally:
        hub_a.close()
        hub_b.close()
