"""Every CSV file the hub writes goes through ``csv_bytes``: a file Excel opens as written, and never as formulas.

- UTF-8 with a BOM (Excel in Japan otherwise reads it as Shift_JIS) and CRLF line ends;
- no cell a spreadsheet would evaluate (CSV/formula injection, OWASP "CSV Injection"): a cell whose first
  character is ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, also after leading spaces (half- or
  full-width) and in the full-width forms ``＝ ＋ － ＠`` (Japanese input methods type them, and some spreadsheet
  software folds them to ASCII), is prefixed with a single quote ``'``, which spreadsheets show and do not
  evaluate. The cell's text is otherwise unchanged.

Decision: a plain number (``-3``, ``-0.5``, ``+1``) is left as it is. It cannot be a formula, and a prefixed
``'-3`` would show as text with a quote in Excel, which is what the people reading these files would notice first
(an overdue count, a difference of days). Only digits with an optional sign and decimal point count as a plain
number: ``-1+2``, ``-3e2`` or ``-2,5`` are neutralised like any other text.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")
PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def safe_cell(value: Any) -> str:
    """A cell as text that a spreadsheet shows as written: ``None`` is empty, a cell that could start a formula
    gets a leading ``'``."""
    text = "" if value is None else str(value)
    if text.startswith(("\t", "\r")) or text.lstrip().startswith(FORMULA_STARTS):
        if not PLAIN_NUMBER.fullmatch(text):
            return "'" + text
    return text


def csv_bytes(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> bytes:
    """A CSV file for Excel: ``header`` then ``rows``, every cell through ``safe_cell``, UTF-8 with BOM, CRLF."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([safe_cell(v) for v in header])
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return buffer.getvalue().encode("utf-8-sig")
