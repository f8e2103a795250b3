"""Time in Japan: every ``at`` the hub writes is Japan Standard Time (+09:00, no daylight saving)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

JST = timezone(timedelta(hours=9))


def now_jst() -> datetime:
    """The current time in Japan."""
    return datetime.now(JST)
