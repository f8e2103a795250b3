"""The dates and times the hub accepts: days from ``EARLIEST_DAY`` to ``LATEST_DAY`` (``events.limits``).

Every date, month or date-time that comes in (an envelope's ``at``, a payload's dates and months, the dates of an
HTTP query or body, the periods of the auditors' queries and commands) is checked against this one range, so that
a date at the edge of what Python can hold (``9999-12-31``, ``0001-01-01``, or a date-time whose Japan time falls
outside it) is refused naming its field instead of breaking the arithmetic done with it later.

- ``Day``, ``Moment`` and ``MonthText`` are pydantic types (models, FastAPI query parameters); their error types
  ``date_out_of_range`` and ``month_out_of_range`` have Japanese wording in ``events.envelope.JA_BY_ERROR_TYPE``.
- ``day_in_range`` and ``moment_in_range`` answer the same question for code that parses dates itself, and
  ``out_of_range`` is the ``Problem`` to report.
- ``month_of``: the month (``YYYY-MM``) of a moment in Japan time, as the projections key their months.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, time, timedelta
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime
from pydantic_core import PydanticCustomError

from events.clock import JST
from events.limits import EARLIEST_DAY, LATEST_DAY
from events.problems import Problem

_JST = JST
FIRST_DAY, LAST_DAY = date.fromisoformat(EARLIEST_DAY), date.fromisoformat(LATEST_DAY)
_FIRST_MOMENT = datetime.combine(FIRST_DAY, time(0, 0), tzinfo=_JST)
_AFTER_LAST_MOMENT = datetime.combine(LAST_DAY + timedelta(days=1), time(0, 0), tzinfo=_JST)

DAY_RANGE_JA = f"{EARLIEST_DAY} から {LATEST_DAY} までの日付で指定してください"
MONTH_RANGE_JA = f"{EARLIEST_DAY[:7]} から {LATEST_DAY[:7]} までの月で指定してください"


def day_in_range(day: date) -> bool:
    """Whether ``day`` lies between ``EARLIEST_DAY`` and ``LATEST_DAY`` (both included)."""
    return FIRST_DAY <= day <= LAST_DAY


def moment_in_range(moment: datetime) -> bool:
    """Whether the aware ``moment`` falls on a day from ``EARLIEST_DAY`` to ``LATEST_DAY`` in Japan time
    (compared as instants: no conversion that could itself overflow)."""
    return _FIRST_MOMENT <= moment < _AFTER_LAST_MOMENT


MONTHS_REMEMBERED = 4_096  # the moments of a few publish batches; about half a megabyte


@functools.lru_cache(maxsize=MONTHS_REMEMBERED)
def month_of(moment: datetime) -> str:
    """The month of the aware ``moment`` in Japan time, ``YYYY-MM``: what ``moment.astimezone(JST).strftime("%Y-%m")``
    gives (for the years the hub accepts, four digits), formatted from the date's fields, which costs a third of
    ``strftime``.

    **A moment's month, remembered**: the projections ask it two to four times for every event they count, always
    of the event's own ``at`` (its list of places, its counts, the month its counts are kept in, and the
    aggregates a publish needs), and the conversion to Japan time is most of the cost (0.87 µs a call; 0.08 from
    memory). The last ``MONTHS_REMEMBERED`` moments' months are kept (``functools.lru_cache``, thread-safe). Why
    it is right: the answer depends on the moment alone, and two aware ``datetime`` that are equal (and so share a
    place in the cache) are the same instant, whatever their time zones, which has one month in Japan time; a
    naive ``datetime`` is never equal to an aware one. Replaces the computation on every call
    (``tests/events/test_month_of.py``: remembered or not, on the same instant in other zones, it is ``strftime``'s
    month)."""
    local = moment.astimezone(_JST)
    return f"{local.year:04d}-{local.month:02d}"


def out_of_range(field: str) -> Problem:
    """The problem of a date or date-time outside the range, naming ``field``."""
    return Problem(
        "date_out_of_range",
        f"{field}: use a date from {EARLIEST_DAY} to {LATEST_DAY}",
        f"{field}: {DAY_RANGE_JA}",
        field,
    )


def _range_error(what: str) -> PydanticCustomError:
    return PydanticCustomError(
        f"{what}_out_of_range",
        f"Use a {what} from {{earliest}} to {{latest}}",
        {
            "earliest": EARLIEST_DAY if what == "date" else EARLIEST_DAY[:7],
            "latest": LATEST_DAY if what == "date" else LATEST_DAY[:7],
        },
    )


def _checked_day(day: date) -> date:
    if not day_in_range(day):
        raise _range_error("date")
    return day


def _checked_moment(moment: datetime) -> datetime:
    if not moment_in_range(moment):
        raise _range_error("date")
    return moment


def checked_month(month: str) -> str:
    """``month`` (already ``YYYY-MM``) when its year is in the range; ``month_out_of_range`` otherwise."""
    if not EARLIEST_DAY[:7] <= month <= LATEST_DAY[:7]:
        raise _range_error("month")
    return month


Day = Annotated[date, AfterValidator(_checked_day)]
"""A calendar day (``YYYY-MM-DD``) in the hub's range."""

Moment = Annotated[AwareDatetime, AfterValidator(_checked_moment)]
"""A date-time with its offset, falling on a day in the hub's range in Japan time."""

MonthText = Annotated[str, AfterValidator(checked_month)]
"""A month written ``YYYY-MM`` (the pattern is checked by whoever uses it), in the hub's range."""
