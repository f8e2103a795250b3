"""What the feeds of organisations other than schools share: one row (or line) as envelopes or problems, and
deterministic event ids.

A feed names the child by the sender's own number (``local_child``: 対象者番号, 宛名番号, 利用者番号 …); the hub
resolves it through the centre's link or keeps the record in the linking queue (``services.publishing.linking``).
Event ids derive from the organisation, the number and the row's normalised content, so that re-sending a file
(in CP932 or UTF-8, with full-width or half-width digits) changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from adapters.csvfile import CellError
from adapters.school import _Cells as Cells  # one problem per bad cell, worded "3行目「健診日」: …"
from events.envelope import content_digest
from events.kinds import as_datetime
from events.problems import Problem

__all__ = ["Cells", "FeedRow", "feed_id", "start_of", "not_future"]


@dataclass
class FeedRow:
    """One row or line of a feed: the envelopes it became, or the problems that keep it out (then ``raw`` is
    what the sender wrote, kept in quarantine for correction)."""

    line: int
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    raw: Any = None


def feed_id(prefix: str, org: str, *content: Any) -> str:
    """A deterministic event id: the same organisation, number and content give the same id."""
    return f"{prefix}:{org}:{content_digest([org, *content])[:24]}"


def start_of(day: date) -> str:
    """The start of ``day`` in Japan, as an envelope's ``at``."""
    return as_datetime(day).isoformat()


def not_future(cells: Cells, key: str, day: date | None, today: date) -> date | None:
    """``day``, or ``None`` with a problem on ``key`` when it is after ``today``."""
    if day is not None and day > today:
        cells.fail(key, CellError(f"{day} is in the future", f"{day.isoformat()} は未来の日付です", "future_date"))
        return None
    return day
