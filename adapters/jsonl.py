"""A JSON-lines feed any organisation can send, for any kind: one event envelope per line (policy.md, "The
event envelope"), naming the child by the organisation's own number in ``local_child`` or by the hub id in
``child``.

The file is streamed line by line; UTF-8 (with or without BOM) or CP932, refused early when it is not text
(``adapters.csvfile.sniff_encoding``). A line that is not a JSON object is kept out with a Japanese message
naming the line (and the character where reading stopped); every other line goes to the hub as written, whose
validation names the field. This module reads and words; it decides nothing about access.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from adapters.csvfile import HEAD_BYTES, FileRefused, file_problem, refuse_if_too_large, sniff_encoding, stream_size
from adapters.feed import FeedRow
from events.envelope import nesting_depth
from events.limits import JSONL_MAX_LINE_CHARS, MAX_JSON_DEPTH
from events.problems import Problem

MAX_LINE = JSONL_MAX_LINE_CHARS  # characters in one line: an envelope with long notes fits, a runaway file does not


def _line_problem(line: int, code: str, message: str, message_ja: str, column: int | None = None) -> Problem:
    where = f"{line}行目" + (f"（{column}文字目）" if column else "")
    return Problem(code, f"line {line}{f', column {column}' if column else ''}: {message}", f"{where}: {message_ja}")


class JsonlReader:
    """Streams a JSON-lines file as ``FeedRow``s (blank lines skipped). Raises ``FileRefused`` for a file that is
    larger than ``MAX_IMPORT_FILE_BYTES``, empty, binary or in another encoding, or has a line longer than
    ``MAX_LINE``."""

    def __init__(self, source: str | Path | BinaryIO):
        self._own = isinstance(source, (str, Path))
        self._binary: BinaryIO = open(source, "rb") if isinstance(source, (str, Path)) else source
        try:
            refuse_if_too_large(stream_size(self._binary))
            head = self._binary.read(HEAD_BYTES)
            self.encoding = sniff_encoding(head, complete=len(head) < HEAD_BYTES)
            self._binary.seek(0)
            self._text = io.TextIOWrapper(self._binary, encoding=self.encoding, errors="replace", newline=None)
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> Iterator[FeedRow]:
        number = 0
        while True:
            text = self._text.readline(MAX_LINE + 1)
            if not text:
                return
            number += 1
            if len(text) > MAX_LINE:
                raise FileRefused(
                    [
                        file_problem(
                            "line_too_long",
                            f"line {number} is longer than {MAX_LINE} characters",
                            f"{number}行目が長すぎます（{MAX_LINE}文字を超えています）",
                        )
                    ]
                )
            text = text.strip()
            if text:
                yield parse_line(number, text)

    def close(self) -> None:
        text = getattr(self, "_text", None)
        if text is not None and not self._own:
            text.detach()  # leave the caller's file open
        elif text is not None:
            text.close()
        if self._own:
            self._binary.close()

    def __enter__(self) -> JsonlReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_line(number: int, text: str) -> FeedRow:
    """One line: an envelope (a JSON object), or the problem that keeps it out."""
    if "\ufffd" in text:
        return FeedRow(
            number,
            problems=[
                _line_problem(
                    number,
                    "undecodable",
                    "characters that cannot be decoded",
                    "文字化けしています（読めない文字があります）",
                )
            ],
            raw=text,
        )
    try:
        value: Any = json.loads(text)
        too_deep = nesting_depth(value, stop_after=MAX_JSON_DEPTH) > MAX_JSON_DEPTH
    except json.JSONDecodeError as error:
        return FeedRow(
            number,
            problems=[
                _line_problem(number, "invalid_json", f"not JSON: {error.msg}", "JSON として読めません", error.colno)
            ],
            raw=text,
        )
    except ValueError as error:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        return FeedRow(
            number,
            problems=[
                _line_problem(
                    number,
                    "invalid_json",
                    f"not JSON: {error}",
                    "JSON として読めません（桁数の多すぎる数値があります）",
                )
            ],
            raw=text,
        )
    except RecursionError:  # nested deeper than the parser goes
        too_deep = True
    if too_deep:
        return FeedRow(
            number,
            problems=[
                _line_problem(
                    number,
                    "nested_too_deeply",
                    f"nests more than {MAX_JSON_DEPTH} levels deep",
                    f"入れ子が深すぎます（{MAX_JSON_DEPTH}段まで）",
                )
            ],
            raw=text,
        )
    if not isinstance(value, dict):
        return FeedRow(
            number,
            problems=[
                _line_problem(
                    number,
                    "invalid_envelope",
                    "a line must be one JSON object",
                    "1行に1つのイベント（{ ... }）を書いてください",
                )
            ],
            raw=text,
        )
    return FeedRow(number, [value], raw=text)
