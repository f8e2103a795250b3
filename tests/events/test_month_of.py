"""``events.dates.month_of`` (the month of a moment in Japan time, formatted from the date's fields) against
``strftime``, which it replaces, for any moment the hub accepts in any time zone."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.clock import JST
from events.dates import month_of

pytestmark = pytest.mark.unit

zones = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
moments = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2999, 12, 30), timezones=zones)


@given(moments)
def test_the_month_is_strftime_s(moment):
    assert month_of(moment) == moment.astimezone(JST).strftime("%Y-%m")


def test_a_moment_just_before_midnight_in_japan_is_in_japan_s_month():
    assert month_of(datetime.fromisoformat("2026-04-30T15:00:00+00:00")) == "2026-05"  # 00:00 on 1 May in Japan
    assert month_of(datetime.fromisoformat("2026-04-30T14:59:59+00:00")) == "2026-04"
