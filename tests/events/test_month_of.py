"""``events.dates.month_of`` (the month of a moment in Japan time, formatted from the date's fields) against
``strftime``, which it replaces, for any moment the hub accepts in any time zone, asked once (computed) and again
(remembered), and for the same instant in other zones (which the cache holds as one key)."""

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


@given(moments, st.lists(zones, min_size=1, max_size=4))
def test_a_remembered_month_is_strftime_s_for_the_same_instant_in_any_zone(moment, others):
    month_of.cache_clear()
    expected = moment.astimezone(JST).strftime("%Y-%m")
    assert month_of(moment) == expected  # computed
    for zone in others:
        same_instant = moment.astimezone(zone)
        assert same_instant == moment
        assert month_of(same_instant) == expected  # remembered under the equal key of the first zone
    assert month_of.cache_info().hits == len(others)
    assert month_of.__wrapped__(moment) == expected  # what is remembered is what the computation gives


@given(st.lists(moments, min_size=2, max_size=30))
def test_months_remembered_among_many_moments_are_each_moment_s(many):
    month_of.cache_clear()
    for moment in many + many[::-1]:
        assert month_of(moment) == moment.astimezone(JST).strftime("%Y-%m")


def test_a_moment_just_before_midnight_in_japan_is_in_japan_s_month():
    assert month_of(datetime.fromisoformat("2026-04-30T15:00:00+00:00")) == "2026-05"  # 00:00 on 1 May in Japan
    assert month_of(datetime.fromisoformat("2026-04-30T14:59:59+00:00")) == "2026-04"
