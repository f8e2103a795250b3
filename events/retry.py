"""Writes that lost a race, tried again: jittered exponential backoff within a time budget.

Every writer of the hub appends with optimistic concurrency: it reads how far a stream has got and inserts its
events at the next versions. When another writer got there first, the insert fails on the stream's
(id, version) key, the library raises ``IntegrityError``, nothing of the attempt is stored, and the writer reads
again and tries again. Under contention (a dozen readers of one child all appending to its access log, publishers
and the ingest worker appending to its stream) writers that try again at once collide again, and a fixed number of
tries runs out in milliseconds. ``retry_conflicts`` waits between tries for a random time between zero and a bound
that doubles each time (from ``FIRST_WAIT_SECONDS`` up to ``MAX_WAIT_SECONDS``: "full jitter", which spreads the
writers apart), and keeps trying until the request's time budget (``CONFLICT_BUDGET_SECONDS``) would be spent,
but at least ``MIN_ATTEMPTS`` times (a large batch may take longer than the budget once). Only then does it give
up, with ``events.problems.Busy``: the HTTP API answers 503 with ``Retry-After`` (never 500) and the command line
says so in Japanese.

The retrying and the jittered wait are tenacity's (``Retrying``, ``wait_random_exponential``).

An attempt must be safe to run again: it reads what it needs afresh each time, and whatever it appends either
commits whole or not at all (one transaction). A writer that cannot tell whether an earlier attempt committed (a
connection lost during the commit) checks for its own record first (``services.reading.TimelineReader._append``).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import TypeVar

from eventsourcing.persistence import IntegrityError
from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception_type, wait_random_exponential

from events.problems import Busy

T = TypeVar("T")

CONFLICT_BUDGET_SECONDS = 10.0  # how long one request may keep trying (an HTTP request, a worker's batch)
FIRST_WAIT_SECONDS = 0.005  # the bound of the first wait; it doubles after each conflict ...
MAX_WAIT_SECONDS = 0.5  # ... up to this
MIN_ATTEMPTS = 4  # tried at least this often, however long each attempt takes
RETRY_AFTER_SECONDS = 2  # what a client that got Busy is told to wait
# How long a writer waits for its turn on a stream (``events.store.HubStore.append_in_turn``) before it gives up
# with ``Busy``: this process's lock of the stream, then the database's advisory lock (TSUNAGU_TURN_LOCK_TIMEOUT).
# A turn is held for one append (milliseconds); 5 s is far above that, and below a client's patience.
TURN_WAIT_SECONDS = 5.0
TURN_WAIT_SETTING = "TSUNAGU_TURN_LOCK_TIMEOUT"


def turn_wait_seconds(value: str | None) -> float:
    """The turn's wait (``TURN_WAIT_SECONDS``) from its setting: a positive number of seconds (default when not
    set). ``ValueError`` naming the setting otherwise: a wait of 0 or less would be no bound at all (PostgreSQL's
    ``lock_timeout = 0`` waits for ever)."""
    if value is None or not value.strip():
        return TURN_WAIT_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(
            f"{TURN_WAIT_SETTING}={value!r}: give a positive number of seconds (default {TURN_WAIT_SECONDS:g}) / "
            f"{TURN_WAIT_SETTING} は正の秒数で指定してください"
        )
    return seconds


def _budget_spent(state: RetryCallState) -> bool:
    """Stop when at least ``MIN_ATTEMPTS`` tries were made and the next wait would end past the budget (as
    tenacity's ``stop_before_delay``, reading the module's values when asked, so that a test can shorten them)."""
    if state.attempt_number < MIN_ATTEMPTS:
        return False
    elapsed = state.seconds_since_start
    if elapsed is None:  # as in tenacity's own stop conditions: it asks only once an attempt has an outcome
        raise RuntimeError("asked whether to stop before an attempt finished")
    return elapsed + (state.upcoming_sleep or 0) >= CONFLICT_BUDGET_SECONDS


def _forget_frames(state: RetryCallState) -> None:
    """Before the wait: clear the locals of the failed try's finished frames. The library raises its
    ``IntegrityError`` while handling the database's, so those frames and the exceptions refer to each other,
    and what the try loaded (a publish's whole batch) would wait for the garbage collector
    (``services/runtime.py``)."""
    error = state.outcome.exception() if state.outcome is not None else None
    while error is not None:
        traceback.clear_frames(error.__traceback__)
        error = error.__cause__ or error.__context__


# One instance for the process: tenacity keeps each call's state per thread, and a new instance per call would
# leave about twenty objects in reference cycles for the garbage collector every time (tests/cli/test_runtime.py).
_RETRYING = Retrying(
    retry=retry_if_exception_type(IntegrityError),
    wait=wait_random_exponential(multiplier=FIRST_WAIT_SECONDS, max=MAX_WAIT_SECONDS),
    stop=_budget_spent,
    before_sleep=_forget_frames,
)


def retry_conflicts(attempt: Callable[[], T]) -> T:
    """``attempt()``, run again after each ``IntegrityError`` (another writer got to the same stream version or
    envelope id first) with a jittered, growing wait, until it succeeds or ``CONFLICT_BUDGET_SECONDS`` would be
    spent and at least ``MIN_ATTEMPTS`` tries were made; then ``Busy``. Any other exception goes through at
    once."""
    try:
        return _RETRYING(attempt)
    except RetryError as gave_up:
        raise Busy.contended(RETRY_AFTER_SECONDS) from gave_up.last_attempt.exception()
