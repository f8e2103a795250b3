"""Small-cell suppression (秘匿, ``aggregates.md``, "Who reads what"), pure: no I/O.

A table is rows (municipalities) × columns (months, categories …) of counts; it is published with its margins:
each row's total, each column's total and the grand total. Seen as one grid of (rows + 1) × (columns + 1)
entries, every row and every column of the grid (the margins' row and column included) is one equation: its
entries add up to its last one. An entry is recovered by subtraction exactly when it is the only hidden entry of
one such line (or becomes so once other entries were recovered). So:

1. **Primary**: an entry of another municipality's row (its cells and its row total) that is 1–4 is hidden
   (shown ``<5``); a column's total or the grand total of 1–4 too when the column holds another municipality.
   0 is shown as 0. The reader's own rows are never hidden (``own``).
2. **Secondary**: while a line has exactly one hidden entry, the smallest other entry of that line that may be
   hidden (not in an own row; a count before a zero) is hidden too (shown ``秘匿``). Every line then has none or
   at least two hidden entries, and no chain of subtractions can start.
"""

from __future__ import annotations

from dataclasses import dataclass

SHOWN, PRIMARY, SECONDARY = "shown", "primary", "secondary"
PRIMARY_LABEL, SECONDARY_LABEL = "<5", "秘匿"
THRESHOLD = 5  # counts 1 .. THRESHOLD - 1 are small


NONE_LABEL = "－"  # a median of no interval


@dataclass(frozen=True)
class Entry:
    """One entry of a published table: its count (a median may be a half: ``float``; ``None`` when hidden, or a
    median of nothing) and why it is hidden, if it is."""

    value: int | float | None
    status: str = SHOWN

    @property
    def label(self) -> str:
        if self.status == PRIMARY:
            return PRIMARY_LABEL
        if self.status == SECONDARY:
            return SECONDARY_LABEL
        if self.value is None:
            return NONE_LABEL
        return f"{self.value:g}" if isinstance(self.value, float) else str(self.value)


def small(n: int) -> bool:
    return 0 < n < THRESHOLD


def with_margins(cells: list[list[int]]) -> list[list[int]]:
    """The grid: each row with its total, then the row of column totals and the grand total."""
    width = len(cells[0]) if cells else 0
    grid = [[*row, sum(row)] for row in cells]
    grid.append([sum(row[j] for row in grid) for j in range(width + 1)])
    return grid


def suppress(
    cells: list[list[int]],
    own: frozenset[int] | set[int] = frozenset(),
    force: frozenset[tuple[int, int]] | set[tuple[int, int]] = frozenset(),
) -> list[list[Entry]]:
    """The table ``cells`` (rows × columns of counts, rows of one width) published with margins, as a grid of
    ``Entry`` (rows + 1) × (columns + 1): the last column the row totals, the last row the column totals. Rows
    whose index is in ``own`` are the reader's own municipality: never hidden. Entries (row, column) of the grid in
    ``force`` are hidden (as secondary, unless small) whatever their count (a sum that holds an entry hidden in another table)."""
    grid = with_margins(cells)
    rows, width = len(grid), len(grid[0])
    last = rows - 1
    only_own = all(i in own for i in range(last))

    def may_hide(i: int, j: int) -> bool:
        return i not in own and not (i == last and only_own)

    hidden: dict[tuple[int, int], str] = {}
    for i in range(rows):
        for j in range(width):
            if may_hide(i, j) and small(grid[i][j]):
                hidden[(i, j)] = PRIMARY
            elif may_hide(i, j) and (i, j) in force:
                hidden[(i, j)] = SECONDARY
    lines = [[(i, j) for j in range(width)] for i in range(rows)] + [
        [(i, j) for i in range(rows)] for j in range(width)
    ]
    changed = True
    while changed:
        changed = False
        for line in lines:
            if sum(1 for place in line if place in hidden) != 1:
                continue
            candidates = [place for place in line if place not in hidden and may_hide(*place)]
            if not candidates:  # only the reader's own entries left: it knows them, and the hidden one is its own
                continue
            # the smallest count first, a zero last (hiding a zero protects nothing the reader cannot tell apart)
            pick = min(candidates, key=lambda p: (grid[p[0]][p[1]] == 0, grid[p[0]][p[1]], p))
            hidden[pick] = SECONDARY
            changed = True
    return [
        [Entry(None, hidden[(i, j)]) if (i, j) in hidden else Entry(grid[i][j]) for j in range(width)]
        for i in range(rows)
    ]
