"""An erasure seen by a publisher's process between its batch's load and its save, while another publisher moved one of
the batch's staged indexes (so that the save reloads it in its turn: a cache look-up), must not put what the batch
loaded before the erasure back in the aggregate cache (``services.publishing.batch.cache_generation``; review of
session 7, s7-publish HIGH-1: fails on 478e747, which had no such check)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import services.publishing.batch as batch_module
from services.projections.cases import CenterCases
from tests.publishing.test_publishers_in_turn import envelopes, hub_on, prefecture, publish_all


@pytest.mark.postgres
def test_an_erasure_during_a_publish_overtaken_on_its_indexes_leaves_nothing_of_the_child_cached(
    postgres_url, monkeypatch
):
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

    def save_later(self: Any) -> None:
        if threading.current_thread().name == "A" and not loaded.is_set():
            loaded.set()
            go.wait(60)
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
        registered = next(e for e in first if e["child"] == erased_child and e["kind"] == "child.registered")
        publish_all(hub_b, [[{**registered, "id": "w-1", "child": "w0000001"}]])  # moves PublishedChildren(centre)
        hub_a.store.erasures.check_now()  # A's process sees the erasure (any thread's look, within ~2 s anyway)
        go.set()
        a.join()
        assert not failures, failures
        cases = hub_a.store.peek(CenterCases.create_id(centre)).cases
        assert [case for case, entry in cases.items() if entry["child"] == erased_child] == []
    finally:
        go.set()
        hub_a.close()
        hub_b.close()
