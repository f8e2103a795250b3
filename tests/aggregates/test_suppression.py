"""Small-cell suppression (issue 17 §2): on crafted and random tables, every row and column subtraction, tried
again and again until nothing more comes out, recovers no hidden count; every other municipality's count of 1-4
is hidden, 0 stays 0, and the reader's own rows are shown whole."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.aggregates.suppression import PRIMARY, SECONDARY, Entry, suppress, with_margins

pytestmark = pytest.mark.unit


def attack(grid: list[list[Entry]]) -> dict[tuple[int, int], int]:
    """Every subtraction along a row or a column of the published grid (its last entry is the sum of the
    others), repeated with what each recovers, until nothing more comes out: the hidden entries recovered."""
    known = {(i, j): e.value for i, row in enumerate(grid) for j, e in enumerate(row) if e.value is not None}
    rows, width = len(grid), len(grid[0])
    lines = [[(i, j) for j in range(width)] for i in range(rows)] + [
        [(i, j) for i in range(rows)] for j in range(width)
    ]
    recovered: dict[tuple[int, int], int] = {}
    progress = True
    while progress:
        progress = False
        for line in lines:
            unknown = [p for p in line if p not in known]
            if len(unknown) != 1:
                continue
            place = unknown[0]
            *parts, total = line
            if place == total:
                value = sum(known[p] for p in parts)
            else:
                value = known[total] - sum(known[p] for p in parts if p != place)
            known[place] = recovered[place] = value
            progress = True
    return recovered


def check(cells: list[list[int]], own: set[int]) -> list[list[Entry]]:
    grid = suppress(cells, own)
    truth = with_margins(cells)
    assert attack(grid) == {}, "a hidden count came back by subtraction"
    for i, row in enumerate(grid):
        for j, entry in enumerate(row):
            if entry.value is not None:
                assert entry.value == truth[i][j]
            if i < len(cells) and i not in own and 0 < truth[i][j] < 5:
                assert entry.status == PRIMARY, (i, j)
            if truth[i][j] == 0 and entry.status != SECONDARY:
                assert entry.value == 0 and entry.label == "0"
            if i in own:
                assert entry.value == truth[i][j]
    return grid


def test_a_lone_small_cell_takes_the_next_smallest_of_its_row_and_column_with_it():
    grid = check([[3, 10, 20], [12, 15, 30], [40, 9, 7]], set())
    assert grid[0][0].label == "<5"
    assert grid[0][1].status == SECONDARY  # the next smallest of the row
    assert grid[2][0].status == SECONDARY or grid[1][0].status == SECONDARY  # and of the column


def test_the_readers_own_row_is_shown_and_the_neighbours_small_cells_are_not():
    grid = check([[1, 2, 0], [3, 8, 6]], {0})
    assert [e.label for e in grid[0]] == ["1", "2", "0", "3"]
    assert grid[1][0].label == "<5"
    assert grid[1][0].value is None


def test_zero_stays_zero_and_a_table_without_small_cells_is_shown_whole():
    grid = check([[0, 10], [12, 0]], set())
    assert all(e.status not in (PRIMARY, SECONDARY) for row in grid for e in row)


def test_a_small_column_total_is_hidden_too():
    grid = check([[0, 2], [0, 0], [9, 0]], set())
    assert grid[3][1].value is None


@settings(max_examples=400, deadline=None)
@given(
    cells=st.integers(1, 5).flatmap(
        lambda width: st.lists(
            st.lists(st.one_of(st.integers(0, 6), st.integers(0, 60)), min_size=width, max_size=width),
            min_size=1,
            max_size=6,
        )
    ),
    data=st.data(),
)
def test_no_hidden_count_of_a_random_table_comes_back_by_subtraction(cells, data):
    own = data.draw(st.sets(st.integers(0, len(cells) - 1), max_size=1), label="own rows")
    check(cells, own)
