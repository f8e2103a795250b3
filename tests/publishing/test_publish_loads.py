"""A publish loads what its steps declare they read in one query (``services.publishing.ingest``), whatever its
mix of events: admission's facts and ids in use, every projection's aggregates, the residence queues, for every
child of the batch at once; never a child's stream, never one aggregate at a time."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import pytest

import events.streams as streams
from consent.model import Settings
from events.store import REGISTRY_ID
from services.hub import Hub

pytestmark = pytest.mark.store

ORGS = [
    {"id": "beppu-center", "type": "municipal_center", "municipality": "442020"},
    {"id": "oita-center", "type": "municipal_center", "municipality": "442011"},
    {"id": "beppu-es-1", "type": "school", "regime": "public", "municipality": "442020", "code": "B144220000001"},
    {"id": "chuo-jiso", "type": "child_guidance_center", "prefecture": "44", "covers": ["442011", "442020"]},
]


def ev(id: str, kind: str, child: str, payload: dict, *, source: str = "beppu-center", **more) -> dict:
    envelope = {"id": id, "kind": kind, "child": child, "source": source, "basis": "internal", "payload": payload}
    return {**envelope, "at": "2026-04-10T09:00:00+09:00", **more}


def registered(child: str) -> dict:
    return ev(f"reg-{child}", "child.registered", child, {"residence": "442020"}, at="2026-04-01T09:00:00+09:00")


def school(id: str, kind: str, child: str, payload: dict, basis: str = "cwa-25-3", **more) -> dict:
    return ev(id, kind, child, payload, source="beppu-es-1", basis=basis, **more)


def listed(id: str, kind: str, child: str) -> dict:
    payload = {"school": "beppu-es-1", "student_no": f"no-{child}", "from_month": "2026-04"}
    return ev(id, kind, child, payload, basis="cwa-25-3", to="beppu-es-1")


FIRST = [
    registered("c1"),
    registered("c2"),
    ev("k1", "case.registered", "c1", {"case": "k1", "category": "youhogo", "case_type": "abuse.neglect"}),
    ev(
        "p1",
        "plan.created",
        "c2",
        {"plan": "p1", "version": 1, "wishes": "家族の意向", "issues": "課題", "supports": "支援"},
    ),
    listed("l1", "target_list.assigned", "c1"),
    listed("l2", "target_list.assigned", "c2"),
]
MIXED = [
    ev("n1", "note.recorded", "c1", {"text": "記録"}),
    school("e1", "concern.reported", "c1", {"summary": "欠席が続いている"}, basis="cwa-21-10-5"),
    school("e2", "concern.reported", "c2", {"summary": "欠席が続いている"}, basis="cwa-21-10-5"),
    school(
        "d1",
        "attendance.daily",
        "c1",
        {"date": "2026-04-13", "status": "absent", "contacted": False},
        to="beppu-center",
    ),
    school(
        "a1",
        "absence.alert",
        "c1",
        {"reason": "consecutive_absence", "since": "2026-04-13", "days": 3},
        to="beppu-center",
    ),
    school(
        "m1",
        "attendance.monthly",
        "c2",
        {"month": "2026-04", "school_days": 19, "attended": 17, "absent": 2, "absent_without_contact": 1},
    ),
    ev("k1-closed", "case.closed", "c1", {"case": "k1", "reason": "改善"}),
    ev(
        "p1-v2",
        "plan.revised",
        "c2",
        {"plan": "p1", "version": 2, "wishes": "家族の意向", "issues": "課題", "supports": "支援"},
    ),
    listed("l2-off", "target_list.removed", "c2"),
    registered("c3"),
    ev("k2", "case.registered", "c3", {"case": "k2", "category": "youhogo", "case_type": "abuse.neglect"}),
    ev(
        "p2",
        "plan.created",
        "c3",
        {"plan": "p2", "version": 1, "wishes": "家族の意向", "issues": "課題", "supports": "支援"},
    ),
    ev("ln", "identity.linked", "c3", {"org": "beppu-es-1", "local_number": "0412"}),
]


def test_a_mixed_batch_loads_what_its_steps_read_in_one_query(tmp_path, clock, monkeypatch):
    clock.at = datetime.fromisoformat("2026-05-01T09:00:00+09:00")
    hub = Hub(f"sqlite:///{tmp_path / 'hub.db'}", settings=Settings(joint_ledger=True), clock=clock)
    try:
        hub.load_orgs(ORGS)
        assert [r.outcome for r in hub.publish(FIRST)] == ["accepted"] * len(FIRST)
        hub.store.repository.cache.clear()  # as in a process that has not seen these children
        queries: list[list[UUID]] = []  # the streams of each query that loads stored events
        one_by_one: list[UUID] = []
        real_get, real_after = hub.store.events.get, streams.events_after
        real_stored_after = hub.store.index_snapshots.stored_after

        def get(originator_id, **kwargs):
            one_by_one.append(originator_id)
            return real_get(originator_id, **kwargs)

        def events_after(store, after):
            queries.append(list(after))
            return real_after(store, after)

        def stored_after(after):  # ``load_many``'s query: the streams' events, and an index's snapshot
            queries.append(list(after))
            return real_stored_after(after)

        monkeypatch.setattr(hub.store.events, "get", get)
        monkeypatch.setattr(streams, "events_after", events_after)
        monkeypatch.setattr(hub.store.index_snapshots, "stored_after", stored_after)
        results = hub.publish(MIXED)
        assert [(r.id, r.outcome) for r in results] == [(e["id"], "accepted") for e in MIXED]
        assert len(queries) == 1  # what admission, the projections and the release declared, for every child at once
        assert set(one_by_one) <= {REGISTRY_ID}  # the registry, read once per batch; nothing else one at a time
    finally:
        hub.close()
