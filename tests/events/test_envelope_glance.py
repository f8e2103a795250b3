"""The envelope accept path without pydantic (``events.envelope.accepted_at_a_glance``) against what it stands in
for, the models' path (``parse_by_models``): on generated envelopes, valid and not, ``parse_envelope`` accepts
the same envelope (fields, fields set, canonical form, encoding, digest) or rejects with the same problems (codes,
fields, English and Japanese messages); and the envelopes publishers send (the synthetic prefecture's, every
kind it makes) take the fast path."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from bench.prefecture import event_stream, make_prefecture
from events.clock import JST
from events.envelope import (
    _CANONICAL_AT,
    FUTURE_TOLERANCE,
    Envelope,
    _written_as_isoformat,
    accepted_at_a_glance,
    latest_accepted_moment,
    parse_by_models,
    parse_envelope,
)
from events.limits import MAX_ID_CHARS, MAX_KIND_CHARS, MAX_SENSITIVE_FIELDS
from events.problems import Rejected

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=JST)
SAMPLES = list(itertools.islice(event_stream(make_prefecture(), 40, 60, seed=3), 2_000))
FIELDS = ["id", "kind", "child", "local_child", "source", "function", "basis", "to", "at", "payload", "sensitive"]


def outcome(parse: Any, raw: Any) -> tuple:
    """What a parse gives, as comparable values: the envelope (fields, fields set, canonical form, encoding, the
    time as written and its offset) or the problems."""
    try:
        envelope = parse(copy.deepcopy(raw), now=NOW)
    except Rejected as rejected:
        return ("rejected", rejected.problems)
    assert isinstance(envelope, Envelope)
    return (
        "accepted",
        envelope.model_dump(),
        envelope.model_fields_set,
        envelope.canonical(),
        envelope.encoded(),
        envelope.digest(),
        envelope.at.isoformat(),
        envelope.at.utcoffset(),
        envelope.model_dump_json(),
    )


def test_every_envelope_the_prefecture_sends_takes_the_fast_path_and_equals_the_models():
    kinds = set()
    for raw in SAMPLES:
        assert accepted_at_a_glance(copy.deepcopy(raw), now=NOW) is not None, raw
        assert outcome(parse_envelope, raw) == outcome(parse_by_models, raw)
        kinds.add(raw["kind"])
    assert len(kinds) >= 10


texts = st.text(max_size=8) | st.sampled_from(["", "x" * MAX_ID_CHARS, "x" * (MAX_ID_CHARS + 1), "x" * MAX_KIND_CHARS])
times = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([JST, UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]),
)
at_values = (
    times.map(lambda t: t.isoformat())
    | times.map(lambda t: t.isoformat().replace("T", " "))
    | times.map(lambda t: t.isoformat(timespec="milliseconds"))
    | times.map(lambda t: t.isoformat().replace("+00:00", "Z"))
    | times.map(lambda t: t.replace(tzinfo=None).isoformat())
    | times.map(lambda t: t.date().isoformat())
    | st.sampled_from(
        [
            "2026-04-01T09:00:00+09:00",
            "2026-13-01T09:00:00+09:00",
            "2026-04-01T25:00:00+09:00",
            "2026-04-01T09:00:00+24:00",
            "2027-01-01T09:00:00+09:00",  # the future
            "2026-11-23T10:00:00+09:00",
            "2026-11-23T10:00:00.000001+09:00",
            "2026-04-01T09:00:00.000000+09:00",
            "1899-12-31T23:00:00-05:00",
        ]
    )
    | st.integers()
    | st.none()
)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
field_values: dict[str, Any] = {
    "id": texts | st.integers(),
    "kind": st.sampled_from(sorted({raw["kind"] for raw in SAMPLES}) + ["no.such.kind", ""]) | texts,
    "child": texts | st.none() | st.integers(),
    "local_child": texts | st.none(),
    "source": texts | st.integers(),
    "function": st.sampled_from(["child_welfare", "maternal_health", "CHILD_WELFARE", "", None]) | texts,
    "basis": st.sampled_from(["internal", "cwa-21-10-5", "cwa-25", "joint-ledger", "", None, "INTERNAL"]),
    "to": texts | st.none(),
    "at": at_values,
    "payload": st.dictionaries(st.text(max_size=12), json_values, max_size=4) | json_values,
    "sensitive": st.lists(texts, max_size=3)
    | st.just(["f"] * (MAX_SENSITIVE_FIELDS + 1))
    | st.tuples(st.text(max_size=3))
    | json_values,
}


@st.composite
def envelopes(draw: Any) -> Any:
    """One of the prefecture's envelopes with some fields changed (to valid or invalid values), removed or
    added, its payload's fields too; now and then not an envelope at all."""
    if draw(st.integers(0, 30)) == 0:
        return draw(json_values)
    raw = copy.deepcopy(draw(st.sampled_from(SAMPLES)))
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        action = draw(st.integers(0, 5))
        if action == 0:
            raw.pop(name, None)
        else:
            raw[name] = draw(field_values[name])
    if draw(st.integers(0, 4)) == 0:
        raw[draw(st.text(max_size=6))] = draw(json_values)
    payload = raw.get("payload")
    if isinstance(payload, dict) and payload and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(payload)))
        payload[key] = draw(json_values | st.just(float("nan")) | st.just("x" * 20_001))
    return raw


@settings(max_examples=1_500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(envelopes())
def test_the_fast_path_accepts_and_rejects_as_the_models(raw):
    assert outcome(parse_envelope, raw) == outcome(parse_by_models, raw)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SAMPLES), at_values)
def test_times_the_fast_path_takes_read_as_the_models_read_them(raw, at):
    raw = dict(raw, at=at)
    glance = accepted_at_a_glance(copy.deepcopy(raw), now=NOW)
    assume(glance is not None)
    assert outcome(parse_envelope, raw) == outcome(parse_by_models, raw)


def test_every_kind_name_is_within_the_envelope_limit():
    """The fast path checks ``kind`` by membership in ``KINDS`` alone, which holds only while no kind's name is
    longer than the model's limit."""
    from events.kinds import KINDS

    assert all(0 < len(kind) <= MAX_KIND_CHARS for kind in KINDS)


@settings(max_examples=3_000, deadline=None)
@given(
    st.one_of(
        st.from_regex(_CANONICAL_AT, fullmatch=True),
        st.builds(
            lambda moment, fraction, offset: (
                moment.replace(microsecond=fraction, tzinfo=None).isoformat()
                + (".000000" if fraction == 0 and offset % 2 else "")
                + f"{'+' if offset >= 0 else '-'}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
            ),
            st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
            st.sampled_from([0, 0, 1, 500_000, 999_999]),
            st.integers(min_value=-24 * 60 + 1, max_value=24 * 60 - 1),
        ),
    )
)
@example("2026-04-01T09:00:00.000000+09:00")
@example("2026-04-01T09:00:00-00:60")
@example("2026-04-01T09:00:00+05:59")
@example("2026-04-01T09:00:00.000001+09:00")
def test_the_time_written_as_isoformat_writes_it_is_told_from_its_text(text: str) -> None:
    """``_written_as_isoformat`` against what it replaces, writing the time again, on every text the fast path
    asks it about (``_CANONICAL_AT``'s, with a non-zero offset, read by ``fromisoformat``)."""
    assume(_CANONICAL_AT.fullmatch(text) and not text.endswith(("+00:00", "-00:00")))
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return
    assert _written_as_isoformat(text) == (at.isoformat() == text)


@given(st.datetimes(timezones=st.sampled_from([UTC, JST, timezone(timedelta(hours=-5))])))
def test_the_latest_moment_accepted_is_now_plus_the_tolerance_whichever_now_came_first(now: datetime) -> None:
    """``latest_accepted_moment`` remembered: asked first for the same instant in another zone, it answers an
    equal instant."""
    assume(
        datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
        < now
        < datetime.max.replace(tzinfo=UTC) - timedelta(days=1)
    )
    other = now.astimezone(JST)
    assert latest_accepted_moment(other) == other + FUTURE_TOLERANCE
    assert latest_accepted_moment(now) == now + FUTURE_TOLERANCE
