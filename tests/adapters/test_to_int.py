"""``adapters.csvfile.to_int`` reads a plain ASCII number without normalising it or matching the pattern: for any
text and maximum, the same number or the same error (code and both messages) as the reading it replaces, which
normalised every other cell and matched ``\\d+`` on every cell (kept here as the reference)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.csvfile import CellError, normalise, to_int

pytestmark = pytest.mark.unit


def to_int_before(text: str, *, maximum: int | None = None) -> int:
    """``to_int`` as it was (main at cf48f22)."""
    if text.isascii() and text.isdigit():
        value = text
    else:
        value = normalise(text).removesuffix("日").replace(",", "").strip()
    if not value:
        raise CellError("empty", "空欄です。数字を入力してください", "missing_value")
    if not re.fullmatch(r"\d+", value):
        raise CellError(
            f"{text!r} is not a whole number",
            f"「{text}」は数ではありません。0 以上の整数を入力してください",
            "not_a_number",
        )
    number = int(value)
    if maximum is not None and number > maximum:
        raise CellError(f"{number} exceeds {maximum}", f"{number} は大きすぎます（{maximum} 以下）", "out_of_range")
    return number


def outcome(read, text: str, maximum: int | None) -> object:
    try:
        return read(text, maximum=maximum)
    except CellError as error:
        return ("error", error.code, str(error), error.message_ja)


cells = st.one_of(
    st.text(),
    st.text(alphabet="0123456789０１２３４５６７８９²٣日, 　-+.a"),
    st.integers(min_value=0, max_value=10**6).map(str),
)


@given(text=cells, maximum=st.one_of(st.none(), st.integers(min_value=0, max_value=40)))
def test_to_int_reads_every_cell_as_before(text, maximum):
    assert outcome(to_int, text, maximum) == outcome(to_int_before, text, maximum)
