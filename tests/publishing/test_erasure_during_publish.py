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

import threading
from typing import Any

import pytest

import services.publishing.batch as batch_module
from bench.core import NOW, SETTINGS
from bench.prefecture import Prefecture, event_stream, make_prefecture
from events.store import _StreamTurns
from services.hub import Hub
from services.projections.cases import CenterCases


def prefecture() -> Prefecture:
    return make_prefecture(municipalities=1, schools_per=2, nurseries_per=1)


def envelopes(pref: Prefecture, prefix: str, children: int, seed: int) -> list[dict[str, Any]]:
    """About 60 events per child of ``children`` children named ``prefix…`` (the bench's stream)."""
    return list(event_stream(pref, children, 60, prefix=prefix, seed=seed))


def hub_on(database: str, pref: Prefecture, *, own_turns: bool = False) -> Hub:
    """A hub with the prefecture's organisations; ``own_turns``: as another process's (its own stream turns)."""
    hub = Hub(database, settings=SETTINGS, clock=lambda: NOW)
    if own_turns:
        hub.store.turns = _StreamTurns()
    if not hub.store.registry().orgs:
        hub.load_orgs(pref.orgs)
    return hub


def publish_all(hub: Hub, batches: list[list[dict[str, Any]]]) -> None:
    for batch in batches:
        results = hub.publish(batch)
        assert all(r.outcome == "accepted" for r in results), [r for r in results if r.outcome != "accepted"][:1]


def cached_holding(hub: Hub, child: str) -> list[str]:
    """The aggregates in the hub's cache (kept indexes and the rest) whose state names ``child``."""
    cache = hub.store.repository.cache
    held = [value for value, _ in (*cache.indexes.values(), *cache.entries.values())]
    return [type(value).__name__ for value in held if child in repr(vars(value))]


@pytest.mark.postgres
def test_an_erasure_during_a_publish_leaves_nothing_of_the_child_in_the_publishers_cache(postgres_url, monkeypatch):
    pref = prefecture()
    first = envelopes(pref, "a", 2, 5)
    erased_child = first[0]["child"]
    centre = next(e["source"] for e in first if e["child"] == erased_child and e["kind"] == "case.registered")
    hub_a, hub_b = hub_on(postgres_url, pref), hub_on(postgres_url, pref, own_turns=True)
    others = envelopes(pref, "z", 40, 9)
    z = next(e["child"] for e in others if e["kind"] == "case.registered" and e["source"] == centre)
    batch_a = [e for e in others if e["child"] == z]  # a new case at the same centre: A loads its CenterCases
    loaded, go = threading.Event(), threading.Event()
    original_save = batch_module.Batch.save
    saves: list[int] = []

    def save_later(self: Any) -> None:
        if threading.current_thread().name == "A" and not loaded.is_set():
            assert erased_child in repr(vars(self.get(CenterCases, centre)))  # loaded before the erasure
            loaded.set()
            go.wait(60)
            self.facts("q0000001")  # a child first needed late: a cache look-up after the erasure's clear
        if threading.current_thread().name == "A":
            saves.append(1)
        original_save(self)

    failures: list[BaseException] = []

    def publish_a() -> None:
        try:
            publish_all(hub_a, [batch_a])
        except BaseException as error:  # noqa: BLE001
            failures.append(error)

    try:
        publish_all(hub_a, [first])
        monkeypatch.setattr(batch_module.Batch, "save", save_later)
        a = threading.Thread(target=publish_a, name="A")
        a.start()
        assert loaded.wait(60)
        erasure = {
            "id": "erase-1", "kind": "child.erased", "child": erased_child, "source": centre, "basis": "internal",
            "at": "2026-06-30T09:00:00+09:00", "payload": {"reason": "保存期間の満了"},
        }  # fmt: skip
        publish_all(hub_b, [[erasure]])
        assert hub_a.store.erasures.check_now() > 0  # A's process sees the erasure (any look does, within ~2 s)
        go.set()
        a.join(120)
        assert not failures, failures
        assert len(saves) == 1  # saved on its first attempt: what it saved is what it loaded before the erasure
        held = cached_holding(hub_a, erased_child)
        cases = hub_a.store.peek(CenterCases.create_id(centre)).cases  # what this hub's readers of the centre get
        assert z in [entry["child"] for entry in cases.values()]  # A's batch was stored
        assert [case for case, entry in cases.items() if entry["child"] == erased_child] == []
        assert held == []
    finally:
        go.set()
        hub_a.close()
        hub_b.close()
