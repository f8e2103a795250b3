"""Events triggered and applied directly (``events.direct_events``): the same events, the same states and the same
errors as the library's ``@event`` machinery, for every decorated projection class, triggering and replaying."""

from __future__ import annotations

import copy
import importlib
import itertools
import pkgutil
from collections import Counter
from typing import Any

import pytest
from eventsourcing.domain import Aggregate, BoundCommandMethodDecorator, DecoratedFuncCaller, decorated_funcs, event

from bench.prefecture import event_stream, make_prefecture
from consent.model import Settings
from events.direct_events import ORIGINALS, direct_events
from services import projections
from services.hub import Hub

pytestmark = pytest.mark.store


@direct_events
class Direct(Aggregate):
    def __init__(self) -> None:
        self.notes: list[tuple[Any, ...]] = []

    @event("Noted")
    def note(self, a: int, b: int = 2, *, c: str | None = None) -> None:
        self.notes = [*self.notes, (a, b, c)]


class Library(Aggregate):
    def __init__(self) -> None:
        self.notes: list[tuple[Any, ...]] = []

    @event("Noted")
    def note(self, a: int, b: int = 2, *, c: str | None = None) -> None:
        self.notes = [*self.notes, (a, b, c)]


def fields(e: Any) -> dict[str, Any]:
    """An event's fields but its time."""
    return {k: v for k, v in vars(e).items() if k not in ("timestamp", "originator_id")}


def outcome(aggregate: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """What calling ``note`` does: the notes, the version and the event's fields, or the error's message."""
    try:
        aggregate.note(*args, **kwargs)
    except TypeError as error:
        return str(error).split("()", 1)[-1]  # the message names the class
    return (
        aggregate.notes,
        aggregate.version,
        type(aggregate.pending_events[-1]).__name__,
        fields(aggregate.pending_events[-1]),
    )


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((1,), {}),
        ((1, 3), {}),
        ((1,), {"c": "x"}),
        ((), {"a": 1, "b": 5, "c": None}),
        ((1, 2), {"c": "y"}),
        ((), {}),
        ((1, 2, 3), {}),
        ((1,), {"d": 1, "c": "x"}),
        ((1,), {"a": 2, "c": "x"}),
    ],
)
def test_arguments_are_taken_and_refused_as_the_library_does(args, kwargs):
    assert outcome(Direct(), args, kwargs) == outcome(Library(), args, kwargs)


def decorated_classes() -> list[type]:
    """Every projection class made direct, with its methods."""
    found: list[type] = []
    for module in pkgutil.iter_modules(projections.__path__):
        loaded = importlib.import_module(f"{projections.__name__}.{module.name}")
        for value in vars(loaded).values():
            if isinstance(value, type) and ORIGINALS in vars(value) and value not in found:
                found.append(value)
    return found


def test_every_event_method_of_a_direct_class_is_replaced():
    classes = decorated_classes()
    assert len(classes) >= 15
    for cls in classes:
        for name, original in vars(cls)[ORIGINALS].items():
            assert callable(vars(cls)[name]) and vars(cls)[name] is not original
            assert getattr(cls, name).__doc__ == original.decorated_func.__doc__


def test_a_prefecture_s_projection_events_trigger_and_replay_as_the_library_s(tmp_path):
    """Publish a prefecture's events; then, for every stored event of a direct class: replaying it directly gives
    the library's state, and triggering it again (the method called with its fields) gives the library's event
    (class, fields) and state, stored under the same topic with the same state but the time."""
    pref = make_prefecture(municipalities=3, schools_per=3, nurseries_per=1)
    hub = Hub(f"sqlite:///{tmp_path / 'direct.db'}", settings=Settings(joint_ledger=True))
    try:
        hub.load_orgs(pref.orgs)
        envelopes = list(itertools.islice(event_stream(pref, 60, 120, seed=3), 6000))
        for i in range(0, len(envelopes), 1000):
            results = hub.publish(envelopes[i : i + 1000])
            assert all(r.outcome == "accepted" for r in results), [r for r in results if r.outcome != "accepted"][:1]
        methods = {
            original.decorated_func: (cls, name)
            for cls in decorated_classes()
            for name, original in vars(cls)[ORIGINALS].items()
        }
        mapper = hub.store.mapper
        states: dict[Any, Any] = {}
        seen: Counter[str] = Counter()
        for notification in hub.store.recorder.select_notifications(1, 10_000_000):
            domain_event = mapper.to_domain_event(notification)
            aggregate = states.get(domain_event.originator_id)
            if not isinstance(domain_event, DecoratedFuncCaller):
                states[domain_event.originator_id] = domain_event.mutate(aggregate)
                continue
            func = decorated_funcs[type(domain_event)]
            if func not in methods:
                states[domain_event.originator_id] = domain_event.mutate(aggregate)
                continue
            cls, name = methods[func]
            original = vars(cls)[ORIGINALS][name]
            seen[f"{cls.__name__}.{name}"] += 1
            # Replaying: the direct apply and the library's give the same state.
            library_replayed = copy.deepcopy(aggregate)
            DecoratedFuncCaller.apply(domain_event, library_replayed)
            replayed = domain_event.mutate(copy.deepcopy(aggregate))
            assert vars(replayed) | {"_pending_events": []} == vars(library_replayed) | {
                "_pending_events": [],
                "_version": replayed.version,
                "_modified_on": replayed.modified_on,
            }
            # Triggering: the method called with the event's fields makes the library's event and state.
            args = {k: v for k, v in vars(domain_event).items() if k in func.__code__.co_varnames}
            direct, library = copy.deepcopy(aggregate), copy.deepcopy(aggregate)
            direct._pending_events, library._pending_events = [], []
            getattr(direct, name)(**args)
            BoundCommandMethodDecorator(original, library)(**args)
            (made,), (expected,) = direct.pending_events, library.pending_events
            assert type(made) is type(expected) and fields(made) == fields(expected)
            mine = ("_modified_on", "_pending_events")
            assert {k: v for k, v in vars(direct).items() if k not in mine} == {
                k: v for k, v in vars(library).items() if k not in mine
            }
            stored, stored_expected = mapper.to_stored_event(made), mapper.to_stored_event(expected)
            assert stored.topic == stored_expected.topic == notification.topic
            assert fields(mapper.to_domain_event(stored)) == fields(mapper.to_domain_event(stored_expected))
            states[domain_event.originator_id] = replayed
    finally:
        hub.close()
    for hot in ("DailyAttendance.record_days", "ChildFacts.record", "ServiceDesk", "MunicipalMonth", "CaseTally"):
        assert any(key.startswith(hot) for key in seen), (hot, seen)


def test_an_inherited_event_method_triggers_the_library_s_event(tmp_path):
    """``Tally.set_state_to`` (``Corrected``) called on a ``CaseTally``: the same event class and topic as the
    library's (the base class's), the same state."""
    from eventsourcing.utils import get_topic

    from services.projections.municipal_counts import CaseTally, Tally

    hub = Hub(f"sqlite:///{tmp_path / 'tally.db'}")  # the stream secret, for the tallies' ids
    try:
        direct, library = CaseTally("c", "m", "r", "cat", "g"), CaseTally("c", "m", "r", "cat", "g")
        state = direct.tallied() | {"state": "closed", "due": ""}
        direct.set_state_to(state=state)
        BoundCommandMethodDecorator(vars(Tally)[ORIGINALS]["set_state_to"], library)(state=state)
        made, expected = direct.pending_events[-1], library.pending_events[-1]
        assert type(made) is type(expected) and get_topic(type(made)) == get_topic(type(expected))
        assert fields(made) == fields(expected) and direct.tallied() == library.tallied()
    finally:
        hub.close()
