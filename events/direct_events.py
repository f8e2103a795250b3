"""**Events triggered and applied directly**: the library's ``@event`` methods of an aggregate class, without the
machinery the library runs around every call (``direct_events``).

Calling an ``@event`` method makes the library build a bound decorator object, turn the arguments into keywords
(``_coerce_args_to_kwargs``), filter them by the event class's signature, copy them into ``trigger_event``, which
builds the event and mutates the aggregate with it; the event's ``apply`` then makes a dict of the event's fields,
filters it again by the method's signature and calls the method through a bound method made for the call. The
publish path triggers about one such event per published event (a child's daily attendance, a provider report, a
child's facts, the municipal tallies …) and replays them when it loads the aggregates: 8.7 µs a call of
``DailyAttendance.record_day`` (best of five runs; 13.5 on a loaded machine), of which the method's body is 0.5;
6.1 µs directly.

``direct_events`` replaces, on one aggregate class, each method decorated with ``@event("Name")`` by a function
that does the same in one step: the arguments are turned into keywords by the library's own
``_coerce_args_to_kwargs`` (the same defaults, the same ``TypeError`` for a wrong argument), the event is the
library's event class built with the same fields (``originator_id``, the next ``originator_version``, the event
class's ``create_timestamp()``), it mutates the aggregate through the library's ``mutate`` (the same checks of the
stream and the version), and it joins the pending events. The event class's ``apply`` calls the method's body with
the event's fields named by the method's parameters, as the library's does. What is stored is the same event: the
same class, topic and fields (``tests/events/test_direct_events.py`` checks every decorated class against the
library's path, triggering and replaying).

Only events declared by name are changed: an event class given to ``@event`` (``ChildRecord.Published``,
``AccessLog.ReadRecorded``) keeps its own ``mutate``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from eventsourcing.domain import (
    CommandMethodDecorator,
    DecoratedFuncCaller,
    _coerce_args_to_kwargs,
    decorated_func_callers,
)

T = TypeVar("T", bound=type)

ORIGINALS = "__library_event_methods__"  # on a changed class: method name -> the library's decorator (for tests)


def direct_events(cls: T) -> T:
    """Make the ``@event("Name")`` methods of the aggregate class ``cls`` trigger and apply their events directly
    (see the module); returns ``cls``."""
    originals: dict[str, CommandMethodDecorator] = {}
    for name, attribute in list(vars(cls).items()):
        if not isinstance(attribute, CommandMethodDecorator) or attribute.given_event_cls is not None:
            continue
        if attribute.decorated_property is not None:
            continue
        event_cls = decorated_func_callers[attribute]
        assert issubclass(event_cls, DecoratedFuncCaller), event_cls
        func = attribute.decorated_func
        setattr(cls, name, _trigger(func, event_cls))
        event_cls.apply = _apply(func)  # type: ignore[method-assign,assignment]
        originals[name] = attribute
    setattr(cls, ORIGINALS, originals)
    return cls


def _trigger(func: Callable[..., None], event_cls: type[Any]) -> Callable[..., None]:
    """The method that triggers ``event_cls`` for a call of ``func``'s signature."""

    def trigger(self: Any, *args: Any, **kwargs: Any) -> None:
        fields = _coerce_args_to_kwargs(func, args, kwargs)
        event = event_cls(
            originator_id=self.id,
            originator_version=self.version + 1,
            timestamp=event_cls.create_timestamp(),
            **fields,
        )
        event.mutate(self)
        self._pending_events.append(event)

    trigger.__name__, trigger.__qualname__, trigger.__doc__ = func.__name__, func.__qualname__, func.__doc__
    trigger.__module__ = func.__module__
    return trigger


def _apply(func: Callable[..., None]) -> Callable[[Any, Any], None]:
    """The event class's ``apply``: ``func``'s body with the event's fields that ``func`` names."""
    names = tuple(n for n in inspect.signature(func).parameters if n != "self")

    def apply(self: Any, aggregate: Any) -> None:
        fields = self.__dict__
        func(aggregate, **{n: fields[n] for n in names if n in fields})

    return apply
