"""``tally``'s early answer for kinds never counted (``services.projections.municipal_counts.tally``, "Kinds never
counted are not looked at") against what it replaces, ``_counts`` on every event: for every kind outside
``COUNTED_KINDS``, on a hub where a case, a plan and an inquiry exist under the ids the events name,
``_counts`` gives no count and records nothing on any tally, whatever the event's basis, addressee and payload."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.clock import JST
from events.kinds import KINDS
from events.model import Recorded
from events.store import recorded_from
from services.hub import Hub
from services.projections.municipal_counts import COUNTED_KINDS, _counts, tally
from services.publishing.batch import Batch

pytestmark = pytest.mark.store

ORGS = [
    {"id": "cA", "type": "municipal_center", "municipality": "100001", "prefecture": "10"},
    {"id": "cB", "type": "municipal_center", "municipality": "100002", "prefecture": "10"},
    {"id": "s1", "type": "school", "regime": "public", "municipality": "100001"},
    {"id": "p1", "type": "service_provider", "regime": "private"},
]
T0 = datetime(2026, 4, 1, 9, 0, tzinfo=JST)
UNCOUNTED = sorted(set(KINDS) - COUNTED_KINDS)


@pytest.fixture
def hub_with_a_case() -> Any:
    hub = Hub("sqlite:///:memory:", clock=lambda: T0 + timedelta(days=30))
    hub.load_orgs(ORGS)
    sent = [
        {"kind": "child.registered", "payload": {"residence": "100001"}},
        {"kind": "case.registered", "payload": {"case": "K1", "category": "youshien", "case_type": "neglect"}},
        {
            "kind": "plan.created",
            "payload": {"plan": "P1", "version": 1, "wishes": "w", "issues": "i", "supports": "s"},
        },
        {"kind": "case.member_assigned", "payload": {"case": "K1", "member": "s1"}},
        {
            "kind": "inquiry.sent",
            "to": "s1",
            "basis": "cwa-25-3",
            "payload": {"case": "K1", "inquiry": "Q1", "meeting_date": "2026-04-20", "due": "2026-04-15"},
        },
    ]
    results = hub.publish(
        [
            {
                "id": f"e{i}",
                "child": "c1",
                "source": "cA",
                "basis": "internal",
                "at": (T0 + timedelta(hours=i)).isoformat(),
                **e,
            }
            for i, e in enumerate(sent)
        ]
    )
    assert [r.outcome for r in results] == ["accepted"] * len(sent), results
    yield hub
    hub.close()


def pending(batch: Batch) -> dict[Any, int]:
    """How many events each aggregate the batch holds has recorded and not saved."""
    return {key: len(getattr(a, "_pending_events", ())) for key, a in batch.aggregates.items() if a is not None}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(UNCOUNTED),
    source=st.sampled_from(["cA", "cB", "s1", "p1"]),
    to=st.sampled_from([None, "cA", "cB", "s1", "p1"]),
    basis=st.sampled_from(
        ["internal", "cwa-21-10-5", "cwa-25", "cwa-25-3", "cwa-25-2", "commissioned", "joint-ledger"]
    ),
    payload=st.fixed_dictionaries(
        {},
        optional={
            "case": st.sampled_from(["K1", "K2"]),
            "plan": st.just("P1"),
            "inquiry": st.just("Q1"),
            "school": st.just("s1"),
            "month": st.just("2026-04"),
            "to": st.sampled_from(["cA", "cB"]),
            "from": st.sampled_from(["cA", "cB"]),
            "service": st.just("ショートステイ"),
            "reason": st.just("consecutive_absence"),
            "student_no": st.just("0412"),
        },
    ),
)
def test_counts_give_nothing_and_change_no_tally_for_a_kind_never_counted(
    hub_with_a_case: Hub, kind: str, source: str, to: str | None, basis: str, payload: dict[str, Any]
) -> None:
    envelope = {
        "id": "x",
        "kind": kind,
        "child": "c1",
        "source": source,
        "basis": basis,
        "at": (T0 + timedelta(days=3)).isoformat(),
        "payload": payload,
    }
    if to is not None:
        envelope["to"] = to
    e: Recorded = recorded_from(envelope, [], 5)
    batch = Batch(hub_with_a_case.store, hub_with_a_case.store.registry())
    before = pending(batch)
    assert _counts(e, batch) == {}
    assert tally(e, batch) == {}
    assert {k: v for k, v in pending(batch).items() if v} == {k: v for k, v in before.items() if v}


def test_the_same_hub_counts_a_counted_kind(hub_with_a_case: Hub) -> None:
    """The control: the events above name a case, a plan and an inquiry that count when a counted kind names
    them (so the nothing above is the kinds', not the hub's)."""
    envelope = {
        "id": "x",
        "kind": "case.reviewed",
        "child": "c1",
        "source": "cA",
        "basis": "internal",
        "at": (T0 + timedelta(days=3)).isoformat(),
        "payload": {"case": "K1", "decision": "継続"},
    }
    assert tally(recorded_from(envelope, [], 5), Batch(hub_with_a_case.store, hub_with_a_case.store.registry())) != {}
