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

The waiting and stopping are tenacity's (``wait_random_exponential``, ``stop_before_delay``).

An attempt must be safe to run again: it reads what it needs afresh each time, and whatever it appends either
commits whole or not at all (one transaction). A writer that cannot tell whether an earlier attempt committed (a
connection lost during the commit) checks for its own record first (``services.reading.TimelineReader._append``).
"""

from __future__ import annotations

from typing import Callable, TypeVar

from eventsourcing.persistence import IntegrityError
from tenacity import (RetryCallState, RetryError, Retrying, retry_if_exception_type, stop_after_attempt,
                      stop_before_delay, wait_random_exponential)

from events.problems import Busy

T = TypeVar("T")

CONFLICT_BUDGET_SECONDS = 10.0  # how long one request may keep trying (an HTTP request, a worker's batch)
FIRST_WAIT_SECONDS = 0.005  # the bound of the first wait; it doubles after each conflict ...
MAX_WAIT_SECONDS = 0.5  # ... up to this
MIN_ATTEMPTS = 4  # tried at least this often, however long each attempt takes
RETRY_AFTER_SECONDS = 2  # what a client that got Busy is told to wait


def retry_conflicts(attempt: Callable[[], T], *, budget_seconds: float | None = None,
                    on_conflict: Callable[[BaseException], None] | None = None) -> T:
    """``attempt()``, run again after each ``IntegrityError`` (another writer got to the same stream version or
    envelope id first) with a jittered, growing wait, until it succeeds or ``budget_seconds`` (default
    ``CONFLICT_BUDGET_SECONDS``) would be spent and at least ``MIN_ATTEMPTS`` tries were made; then ``Busy``.
    ``on_conflict`` sees each conflict before the wait (e.g. to free what its traceback holds). Any other
    exception goes through at once."""
    if budget_seconds is None:
        budget_seconds = CONFLICT_BUDGET_SECONDS

    def conflicted(state: RetryCallState) -> None:
        if on_conflict is not None and state.outcome is not None:
            error = state.outcome.exception()
            if error is not None:
                on_conflict(error)

    retrying = Retrying(
        retry=retry_if_exception_type(IntegrityError),
        wait=wait_random_exponential(multiplier=FIRST_WAIT_SECONDS, max=MAX_WAIT_SECONDS),
        stop=stop_after_attempt(MIN_ATTEMPTS) & stop_before_delay(budget_seconds),
        before_sleep=conflicted)
    try:
        return retrying(attempt)
    except RetryError as gave_up:
        raise Busy.contended(RETRY_AFTER_SECONDS) from gave_up.last_attempt.exception()
