"""An erasure that reaches a publisher's process while one of its batches is under way: what the batch loaded
before the erasure (a centre's ``CenterCases`` holding the erased child's case, opened with the child's key) must
not go back into the aggregate cache when the batch saves, even when the batch looked something up after the
erasure's clear (``services.publishing.batch.Batch``: the cache's generation noted when the batch is made). A kept
index is never evicted, so such an aggregate would show the erased child's case to that process's readers until
the next erasure.

Two hubs on one PostgreSQL store, as two processes (each its own aggregate cache, keys, stream turns and erasure
watch): hub A loads a batch, hub B erases a child of the same centre, A's erasure watch clears A's cache, A's
batch looks up a child first named late (a lazy ``Batch.get``, as a 紐付け or a released event does), then saves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

import services.publishing.batch as batch_module
from bench.prefecture import Prefecture, make_prefecture
from services.hub import Hub
from services.projections.cases import CenterCases
from tests.publishing.test_publishers_in_turn import a_held_before_its_save, envelopes, hub_on, publish_all


def prefecture() -> Prefecture:
    return make_prefecture(municipalities=1, schools_per=2, nurseries_per=1)


@dataclass
class ErasureAtACentre:
    """Children published at a centre (``first``), one of them to be erased (``erased_child``, at ``centre``), and
    publisher A's batch of a new case at the same centre (``batch_a``, child ``z``: A loads the centre's
    ``CenterCases``, which holds the erased child's case)."""

    first: list[dict[str, Any]]
    erased_child: str
    centre: str
    z: str
    batch_a: list[dict[str, Any]]

    def erasure(self) -> dict[str, Any]:
        """The erased child's ``child.erased``, by its centre."""
        return {
            "id": "erase-1", "kind": "child.erased", "child": self.erased_child, "source": self.centre,
            "basis": "internal", "at": "2026-06-30T09:00:00+09:00", "payload": {"reason": "保存期間の満了"},
        }  # fmt: skip


def an_erasure_at_a_centre(pref: Prefecture) -> ErasureAtACentre:
    first = envelopes(pref, "a", 2, 5)
    erased_child = first[0]["child"]
    centre = next(e["source"] for e in first if e["child"] == erased_child and e["kind"] == "case.registered")
    others = envelopes(pref, "z", 40, 9)
    z = next(e["child"] for e in others if e["kind"] == "case.registered" and e["source"] == centre)
    return ErasureAtACentre(first, erased_child, centre, z, [e for e in others if e["child"] == z])


def cached_holding(hub: Hub, child: str) -> list[str]:
    """The aggregates in the hub's cache (kept indexes and the rest) whose state names ``child``."""
    cache = hub.store.repository.cache
    held = [value for value, _ in (*cache.indexes.values(), *cache.entries.values())]
    return [type(value).__name__ for value in held if child in repr(vars(value))]


@pytest.mark.postgres
def test_an_erasure_during_a_publish_leaves_nothing_of_the_child_in_the_publishers_cache(postgres_url, monkeypatch):
    pref = prefecture()
    scene = an_erasure_at_a_centre(pref)
    hub_a, hub_b = hub_on(postgres_url, pref), hub_on(postgres_url, pref, own_turns=True)

    def loaded_before_the_erasure(batch: batch_module.Batch) -> None:
        assert scene.erased_child in repr(vars(batch.get(CenterCases, scene.centre)))

    def a_child_first_needed_late(batch: batch_module.Batch) -> None:
        batch.facts("q0000001")  # a cache look-up after the erasure's clear

    try:
        publish_all(hub_a, [scene.first])
        with a_held_before_its_save(
            hub_a,
            scene.batch_a,
            monkeypatch,
            when_held=loaded_before_the_erasure,
            when_let_go=a_child_first_needed_late,
        ) as saves:
            publish_all(hub_b, [[scene.erasure()]])
            assert hub_a.store.erasures.check_now() > 0  # A's process sees the erasure (any look does, within ~2 s)
        assert len(saves) == 1  # saved on its first attempt: what it saved is what it loaded before the erasure
        held = cached_holding(hub_a, scene.erased_child)
        cases = hub_a.store.peek(CenterCases.create_id(scene.centre)).cases  # what this hub's readers of the centre get
        assert scene.z in [entry["child"] for entry in cases.values()]  # A's batch was stored
        assert [case for case, entry in cases.items() if entry["child"] == scene.erased_child] == []
        assert held == []
    finally:
        hub_a.close()
        hub_b.close()
