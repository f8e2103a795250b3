"""Timeline order (``consent.policy.timeline_order``): sorted by ``at`` alone when the events come in position
order, it is the order of the (``at``, position) key it replaces, ties and offsets included; in any other order,
that key's."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.policy import timeline_order
from events.model import Recorded

pytestmark = [pytest.mark.unit]

START = datetime(2026, 4, 1, 9, 0, tzinfo=timezone(timedelta(hours=9)))
# few distinct instants, so that many events share one (ties), written in several offsets (equal instants,
# distinct tzinfo objects, as fromisoformat makes them)
ats = st.builds(
    lambda hours, offset: (START + timedelta(hours=hours)).astimezone(timezone(timedelta(hours=offset))),
    st.integers(0, 5),
    st.sampled_from([9, 9, 0, -5]),
)


def recorded(position: int, at: datetime) -> Recorded:
    return Recorded(
        position=position,
        id=f"e{position}",
        kind="note.recorded",
        child="c1",
        source="center-1",
        basis="internal",
        at=at,
        payload={},
        audience=frozenset(),
    )


def by_the_pair(events: list[Recorded]) -> list[Recorded]:
    """What ``timeline_order`` did before (main at 66ee35b)."""
    return sorted(events, key=lambda e: (e.at, e.position))


@settings(max_examples=500, deadline=None)
@given(st.lists(ats, max_size=40), st.randoms(use_true_random=False), st.booleans())
def test_the_order_of_the_at_and_position_key(instants: list[datetime], random, shuffled: bool) -> None:
    events = [recorded(n, at) for n, at in enumerate(instants, start=1)]
    if shuffled:  # not in position order: sorted by the pair
        random.shuffle(events)
    ordered = timeline_order(events)
    assert [e.id for e in ordered] == [e.id for e in by_the_pair(events)]
    assert [e.id for e in events] == [e.id for e in sorted(events, key=lambda e: e.position)] or shuffled


def test_equal_instants_in_position_order_even_when_they_come_otherwise() -> None:
    """Events of one instant that do not come in position order are still shown in position order (a sort by
    ``at`` alone would keep the order they came in)."""
    events = [recorded(3, START), recorded(1, START), recorded(2, START - timedelta(hours=1))]
    assert [e.position for e in timeline_order(events)] == [2, 1, 3]
