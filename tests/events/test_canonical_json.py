"""Fast canonical JSON (``events.envelope.canonical_json``) writes exactly the bytes of its definition, the standard
library's encoder (``_standard_canonical_json``), which every stored digest was made with; the envelope's check
for NaN and infinities finds at a glance what its walk finds."""

from __future__ import annotations

import math
import struct
from enum import IntEnum, StrEnum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.envelope import (
    _non_finite_numbers,
    _standard_canonical_json,
    _walked_non_finite_numbers,
    canonical_json,
    canonical_json_without_floats,
)

pytestmark = pytest.mark.unit

# Floats of every kind, NaN and the infinities included (the standard encoder writes them as NaN and Infinity).
floats = st.floats(allow_nan=True, allow_infinity=True) | st.floats(min_value=-1e-3, max_value=1e-3)
scalars = (
    st.none() | st.booleans() | st.integers() | floats | st.text() | st.text(alphabet=st.characters(max_codepoint=0x7F))
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=40,
)


def same(value: Any) -> None:
    try:
        expected = _standard_canonical_json(value)
    except (TypeError, ValueError) as error:  # the definition refuses it (a lone surrogate): so must the fast one
        with pytest.raises(type(error)):
            canonical_json(value)
        return
    assert canonical_json(value) == expected


@settings(max_examples=1000, deadline=None)
@given(json_values)
def test_same_bytes_as_the_standard_encoder(value: Any) -> None:
    same(value)


@settings(max_examples=1000, deadline=None)
@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_every_float_bit_pattern(bits: int) -> None:
    same({"x": struct.unpack("<d", bits.to_bytes(8, "little"))[0]})


def test_floats_at_every_exponent() -> None:
    for exponent in range(-330, 310):
        for mantissa in (1.0, 1.5, 2.5, 9.999999, 123456789.123, 7.0):
            for sign in (1, -1):
                try:
                    x = sign * mantissa * 10.0**exponent
                except OverflowError:
                    continue
                same([x, {"v": x}])
    same([math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1.7976931348623157e308])


class Colour(StrEnum):
    RED = "赤"


class Size(IntEnum):
    BIG = 3


def test_the_cases_that_take_the_standard_encoder() -> None:
    for value in [
        {"big": 2**64, "small": -(2**63) - 1},  # past 64 bits
        {1: "a", 2: "b"},  # non-string keys
        {"a": None, "b": [None]},  # a real null
        {"text": "case-1e-5 0.00001"},  # text that looks like a float orjson spells otherwise
        {"control": '\x00\x1f\x7f\u2028\u2029"\\\n\t\b\f\r', "emoji": "🙂", "kana": "つなぐ"},
        {"enum": Colour.RED, "int": Size.BIG, "tuple": (1, "2")},
        {"b": 1, "a": {"ｂ": 2, "B": 3, "あ": 4, "": 5, "🙂": 6, "\uffff": 7}},  # key order by code point
    ]:
        same(value)
    with pytest.raises(UnicodeEncodeError):  # a lone surrogate: refused, as the standard encoder refuses it
        canonical_json({"x": "\ud800"})
    with pytest.raises(TypeError):
        canonical_json({"x": {1, 2}})


raw_envelopes = st.dictionaries(
    st.text(max_size=5) | st.integers(),
    st.recursive(
        scalars | st.tuples(floats),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4),
        max_leaves=20,
    ),
    max_size=5,
)


@settings(max_examples=1000, deadline=None)
@given(raw_envelopes)
def test_finite_at_a_glance_finds_what_the_walk_finds(raw: dict[str, Any]) -> None:
    assert _non_finite_numbers(raw) == _walked_non_finite_numbers(raw)


# Values without floats, as an access record is made (``canonical_json_without_floats``): every other scalar,
# integers past 64 bits and lone surrogates among them (both go to the standard encoder, or are refused by it).
floatless_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.sampled_from(["null", "NaN", "1e-07", "0.00001", "\ud800", "a\udfffb"]),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=40,
)


@settings(max_examples=1000, deadline=None)
@given(floatless_json_values)
def test_without_floats_the_same_bytes_as_the_standard_encoder(value: Any) -> None:
    try:
        expected = _standard_canonical_json(value)
    except (TypeError, ValueError) as error:
        with pytest.raises(type(error)):
            canonical_json_without_floats(value)
        return
    assert canonical_json_without_floats(value) == expected == canonical_json(value)
