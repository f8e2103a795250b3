"""Reading the CSV files organisations send: encodings, headers, era dates, full-width digits, big files.

What Japanese offices export (school-reports.md): Shift_JIS (CP932) or UTF-8 with or without a BOM, CRLF line
ends, Japanese headers in any order, sometimes a title line above the header, era dates (令和8年4月, R8.4.1),
full-width digits, blank trailing rows (``,,,,``) left by spreadsheets. ``CsvReader`` accepts all of these and
streams the file row by row (a 50 MB file is never held in memory); anything it cannot read is refused early
with a clear Japanese message (``FileRefused``), and per-cell problems name the row and the column
("3行目「出席日数」: …").

Format modules (``adapters.school``, …) declare their ``Column``s and turn each ``CsvRow`` into envelopes with
``Cells`` and the value parsers below (``to_int``, ``to_month``, ``to_date``, ``to_choice``), which raise
``CellError``.
Nothing here decides access or looks anything up.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import re
import unicodedata
from calendar import monthrange
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

from events.dates import DAY_RANGE_JA, MONTH_RANGE_JA, day_in_range
from events.limits import CSV_MAX_FIELD_CHARS, CSV_MAX_LINE_CHARS, EARLIEST_DAY, LATEST_DAY, MAX_IMPORT_FILE_BYTES, MiB
from events.problems import Problem, Rejected

HEAD_BYTES = 64 * 1024  # how much is looked at to tell the encoding and refuse binary files
MAX_LINE = CSV_MAX_LINE_CHARS  # characters in one physical line; more is not a CSV an office system writes
MAX_FIELD = CSV_MAX_FIELD_CHARS  # characters in one cell (a runaway quote would otherwise swallow the file)
MIN_UNDECODABLE_TOLERATED = 4  # broken byte sequences a file may hold and still be read (rows with one rejected);
# more only in a larger file: one per KiB of what is looked at to tell the encoding
HEADER_SEARCH_ROWS = 10  # a title line or two above the header is common in spreadsheet exports
csv.field_size_limit(MAX_FIELD)


class FileRefused(Rejected):
    """The file as a whole cannot be read (not a CSV, unknown encoding, empty, header missing columns).
    Nothing from it is accepted; ``problems`` say what to fix."""


class CellError(ValueError):
    """One cell's value cannot be used. ``message_ja`` is what the person correcting the file reads."""

    def __init__(self, message: str, message_ja: str, code: str = "invalid_value"):
        super().__init__(message)
        self.message = message
        self.message_ja = message_ja
        self.code = code


@dataclass(frozen=True)
class Column:
    """A column a format expects: its field name, its Japanese header, and other headers seen for it."""

    key: str
    header: str
    required: bool = True
    aliases: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        return (self.header, *self.aliases)


def cell_problem(line: int, column: str | None, error: CellError) -> Problem:
    """A problem with one cell (or the whole row when ``column`` is None), worded "3行目「出席日数」: …"."""
    where = f"{line}行目「{column}」" if column else f"{line}行目"
    return Problem(
        error.code, f"line {line}, {column or 'row'}: {error.message}", f"{where}: {error.message_ja}", column
    )


def file_problem(code: str, message: str, message_ja: str, field: str | None = None) -> Problem:
    return Problem(code, message, message_ja, field)


@dataclass
class CsvRow:
    """One data row. ``line`` is the physical line it starts on (the header's line is counted);
    ``values`` maps column keys to the cell text (stripped; "" when blank or absent); ``raw`` maps the file's
    own headers to the cells as written (for keeping a rejected row for correction); ``problems`` are what the
    reader itself found (undecodable characters, too many cells)."""

    line: int
    values: dict[str, str]
    raw: dict[str, str]
    problems: list[Problem] = field(default_factory=list)

    def get(self, key: str) -> str:
        return self.values.get(key, "")


# --- Telling what the file is -----------------------------------------------------------------------------

_SIGNATURES: tuple[tuple[bytes, str, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image", "PNG 画像"),
    (b"\xff\xd8\xff", "a JPEG image", "JPEG 画像"),
    (b"GIF8", "a GIF image", "GIF 画像"),
    (b"%PDF", "a PDF document", "PDF ファイル"),
    (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook is one)", "Excel（.xlsx）または ZIP ファイル"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel/Word file (.xls/.doc)", "Excel（.xls）または Word ファイル"),
)
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_SAVE_AS = "CSV 形式（文字コード UTF-8 または Shift_JIS）で保存し直して送ってください"


def stream_size(binary: BinaryIO) -> int | None:
    """The size of an open file in bytes, or None when it cannot be told (a pipe)."""
    try:
        here = binary.tell()
        end = binary.seek(0, io.SEEK_END)
        binary.seek(here)
        return end
    except (OSError, AttributeError, ValueError):
        return None


def refuse_if_too_large(size: int | None) -> None:
    """Refuse a file larger than ``MAX_IMPORT_FILE_BYTES`` before anything of it is read."""
    if size is not None and size > MAX_IMPORT_FILE_BYTES:
        raise FileRefused(
            [
                file_problem(
                    "file_too_large",
                    f"the file is {size} bytes; at most {MAX_IMPORT_FILE_BYTES} bytes are accepted",
                    f"ファイルが大きすぎます（{size / MiB:,.0f} MB。{MAX_IMPORT_FILE_BYTES // MiB} MB まで）。"
                    "期間や学校ごとにファイルを分けて送ってください",
                )
            ]
        )


def sniff_encoding(head: bytes, *, complete: bool) -> str:
    """The encoding of a file that starts with ``head`` (``complete``: ``head`` is the whole file), or raise
    ``FileRefused``. UTF-8 (with or without BOM) when it decodes as UTF-8, else CP932; else the one of the two in
    which only a few byte sequences are no character (a broken export: those rows are rejected one by one);
    binary files and other encodings are refused."""
    if not head.strip(b" \t\r\n\x1a"):
        raise FileRefused([file_problem("empty_file", "the file is empty", "ファイルが空です（データがありません）")])
    for signature, what, what_ja in _SIGNATURES:
        if head.startswith(signature):
            raise FileRefused(
                [
                    file_problem(
                        "not_csv",
                        f"the file is {what}, not a CSV file",
                        f"このファイルは{what_ja}で、CSV ファイルではありません。{_SAVE_AS}",
                    )
                ]
            )
    if head.startswith(_UTF16_BOMS) or head.startswith(b"\x00\x00\xfe\xff"):
        raise FileRefused(
            [
                file_problem(
                    "unsupported_encoding",
                    "UTF-16/UTF-32 files are not accepted",
                    f"文字コードが UTF-16 です。{_SAVE_AS}",
                )
            ]
        )
    controls = sum(1 for b in head if b < 0x20 and b not in (0x09, 0x0A, 0x0D, 0x1A))
    if b"\x00" in head or controls > max(8, len(head) // 100):
        raise FileRefused(
            [
                file_problem(
                    "not_csv",
                    "the file is binary, not a CSV text file",
                    f"このファイルは文字のファイル（CSV）ではありません。{_SAVE_AS}",
                )
            ]
        )
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    for encoding in ("utf-8", "cp932"):
        try:
            codecs.getincrementaldecoder(encoding)().decode(head, final=complete)
            return encoding
        except UnicodeDecodeError:
            continue
    # A broken export: a few byte sequences that are no character (a stray byte, a character cut in two). The file
    # is read in the encoding that fits all but those; each row holding one is rejected by itself ("文字化け",
    # ``CsvReader.__iter__``) and the other rows are imported.
    undecodable = {encoding: _undecodable(head, encoding, complete=complete) for encoding in ("utf-8", "cp932")}
    encoding = min(undecodable, key=lambda e: undecodable[e])  # UTF-8 on a tie
    if undecodable[encoding] <= max(MIN_UNDECODABLE_TOLERATED, len(head) // 1024):
        return encoding
    raise FileRefused(
        [
            file_problem(
                "unsupported_encoding",
                "the file is neither UTF-8 nor Shift_JIS (CP932)",
                f"文字コードが UTF-8 でも Shift_JIS（CP932）でもありません。{_SAVE_AS}",
            )
        ]
    )


def _undecodable(head: bytes, encoding: str, *, complete: bool) -> int:
    """How many byte sequences of ``head`` are no character in ``encoding``."""
    return codecs.getincrementaldecoder(encoding)(errors="replace").decode(head, final=complete).count("\ufffd")


def normalise(text: str) -> str:
    """Full-width digits, letters and signs to their usual form (NFKC: "１９" → "19", "㍻" → "平成"), trimmed."""
    return unicodedata.normalize("NFKC", text).strip()


def _header_key(text: str) -> str:
    return re.sub(r"\s+", "", normalise(text.lstrip("\ufeff")))


# --- The reader -------------------------------------------------------------------------------------------


class CsvReader:
    """Streams the rows of a CSV file against a set of expected columns.

    Construct with a path (or an open binary file); the constructor reads just enough to refuse a file that is
    not a readable CSV and to find the header (raising ``FileRefused``). Iterate for ``CsvRow``s; blank rows are
    skipped. ``warnings`` lists unknown columns and skipped title lines; ``position`` (bytes read so far) and
    ``size`` serve a progress bar.
    """

    def __init__(self, source: str | Path | BinaryIO, columns: Sequence[Column]):
        self._own = isinstance(source, (str, Path))
        self._binary: BinaryIO = open(source, "rb") if isinstance(source, (str, Path)) else source
        try:
            self.size = stream_size(self._binary)
            refuse_if_too_large(self.size)
            head = self._binary.read(HEAD_BYTES)
            self.encoding = sniff_encoding(head, complete=len(head) < HEAD_BYTES)
            self._binary.seek(0)
            self._text = io.TextIOWrapper(self._binary, encoding=self.encoding, errors="replace", newline="")
            self._lines_read = 0
            self._reader = csv.reader(self._physical_lines())
            self.columns = list(columns)
            self.warnings: list[Problem] = []
            self._find_header()
        except BaseException:
            self.close()
            raise

    @property
    def position(self) -> int:
        try:
            return self._binary.tell()
        except (OSError, ValueError):
            return 0

    def _physical_lines(self) -> Iterator[str]:
        while True:
            line = self._text.readline(MAX_LINE + 1)
            if not line:
                return
            self._lines_read += 1
            if len(line) > MAX_LINE:
                raise FileRefused(
                    [
                        file_problem(
                            "line_too_long",
                            f"line {self._lines_read} is longer than {MAX_LINE} characters",
                            f"{self._lines_read}行目が長すぎます（{MAX_LINE}文字を超えています）。CSV ファイルか確認してください",
                        )
                    ]
                )
            yield line

    def _next_record(self) -> tuple[int, list[str]] | None:
        """The next non-blank record and the line it starts on, or None at the end of the file."""
        while True:
            start = self._lines_read + 1
            try:
                cells = next(self._reader)
            except StopIteration:
                return None
            except csv.Error as error:
                raise FileRefused(
                    [
                        file_problem(
                            "malformed_csv",
                            f"line {start}: {error}",
                            f'{start}行目: CSV として読めません（引用符「"」の閉じ忘れ、または長すぎる項目があります）',
                        )
                    ]
                ) from None
            if any(c.strip() for c in cells):
                return start, cells

    def _find_header(self) -> None:
        known = {_header_key(name): column for column in self.columns for name in column.names()}
        skipped: list[int] = []
        for _ in range(HEADER_SEARCH_ROWS):
            record = self._next_record()
            if record is None:
                break
            line, cells = record
            keys = [_header_key(c) for c in cells]
            if sum(1 for k in keys if k in known) >= min(2, len(self.columns)):
                self._take_header(line, cells, keys, known)
                for n in skipped:
                    self.warnings.append(
                        file_problem(
                            "title_line_skipped",
                            f"line {n} is above the header; ignored",
                            f"{n}行目は見出しより前の行のため読み飛ばしました",
                        )
                    )
                return
            skipped.append(line)
        expected = "、".join(c.header for c in self.columns if c.required)
        if not skipped and record is None:
            raise FileRefused(
                [file_problem("empty_file", "the file has no rows", "ファイルが空です（データがありません）")]
            )
        raise FileRefused(
            [
                file_problem(
                    "header_not_found",
                    f"no header row with the expected columns ({expected}) in the first lines",
                    f"先頭の行に見出し（{expected}）が見つかりません。決められた様式の CSV ファイルか確認してください",
                )
            ]
        )

    def _take_header(self, line: int, cells: list[str], keys: list[str], known: Mapping[str, Column]) -> None:
        self.header_line = line
        self.headers = [c.strip().lstrip("\ufeff") for c in cells]
        self._positions: list[tuple[int, str]] = []  # (cell index, column key)
        seen: dict[str, str] = {}
        problems: list[Problem] = []
        for i, (header, key) in enumerate(zip(self.headers, keys)):
            column = known.get(key)
            if column is None:
                if key:
                    self.warnings.append(
                        file_problem(
                            "unknown_column",
                            f"unknown column {header!r} ignored",
                            f"{line}行目（見出し）「{header}」は様式にない列のため無視しました",
                            header,
                        )
                    )
                continue
            if column.key in seen:
                problems.append(
                    file_problem(
                        "duplicate_column",
                        f"column {column.header!r} appears twice ({seen[column.key]!r}, {header!r})",
                        f"{line}行目（見出し）「{column.header}」の列が2つあります（「{seen[column.key]}」と「{header}」）",
                        column.header,
                    )
                )
                continue
            seen[column.key] = header
            self._positions.append((i, column.key))
        self.column_headers: dict[str, str] = {c.key: seen.get(c.key, c.header) for c in self.columns}
        """Each column's header as this file writes it (for messages the sender can find in the file)."""
        for column in self.columns:
            if column.required and column.key not in seen:
                problems.append(
                    file_problem(
                        "missing_column",
                        f"required column {column.header!r} is missing",
                        f"{line}行目（見出し）: 必須の列「{column.header}」がありません",
                        column.header,
                    )
                )
        if problems:
            raise FileRefused(problems)
        self.present = frozenset(seen)

    def __iter__(self) -> Iterator[CsvRow]:
        while (record := self._next_record()) is not None:
            line, cells = record
            problems: list[Problem] = []
            values: dict[str, str] = {}
            for i, key in self._positions:
                text = cells[i].strip() if i < len(cells) else ""
                if "\ufffd" in text:
                    problems.append(
                        cell_problem(
                            line,
                            self.column_headers[key],
                            CellError(
                                f"characters that are not {self.encoding}",
                                f"文字化けしています（{self._encoding_ja()}として読めない文字があります）",
                                "undecodable",
                            ),
                        )
                    )
                values[key] = text
            extra = [c for c in cells[len(self.headers) :] if c.strip()]
            if extra:
                problems.append(
                    cell_problem(
                        line,
                        None,
                        CellError(
                            f"{len(cells)} cells but {len(self.headers)} headers",
                            f"見出しより多い列に値があります（見出し {len(self.headers)} 列、この行 {len(cells)} 列）",
                            "extra_cells",
                        ),
                    )
                )
            raw = {h: (cells[i] if i < len(cells) else "") for i, h in enumerate(self.headers) if h}
            yield CsvRow(line, values, raw, problems)

    def _encoding_ja(self) -> str:
        return "Shift_JIS（CP932）" if self.encoding == "cp932" else "UTF-8"

    def close(self) -> None:
        text = getattr(self, "_text", None)
        if text is not None and not self._own:
            text.detach()  # leave the caller's file open
            del self._text  # closed: a second close finds no text layer
        elif text is not None:
            text.close()
        if self._own:
            self._binary.close()

    def __enter__(self) -> CsvReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Cells:
    """Reads one row's cells with the value parsers, collecting one problem per bad cell (worded
    "3行目「出席日数」: …" with the file's own header): ``read`` a required cell, ``optional`` one that may be
    blank, ``ident`` an identifier (NFKC, not blank), ``fail`` for a rule across cells."""

    def __init__(self, row: CsvRow, headers: Mapping[str, str]):
        self.row, self.headers = row, headers
        self.problems: list[Problem] = list(row.problems)

    def fail(self, key: str, error: CellError) -> None:
        if not any(p.field == self.headers[key] for p in self.problems):  # one problem per cell
            self.problems.append(cell_problem(self.row.line, self.headers[key], error))

    def read(self, key: str, parse: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return parse(self.row.get(key), *args, **kwargs)
        except CellError as error:
            self.fail(key, error)
            return None

    def optional(self, key: str, parse: Any, *args: Any, **kwargs: Any) -> Any:
        return self.read(key, parse, *args, **kwargs) if self.row.get(key) else None

    def ident(self, key: str) -> str:
        value = normalise(self.row.get(key))
        if not value:
            self.fail(key, CellError("empty", "空欄です", "missing_value"))
        return value


# --- Values -----------------------------------------------------------------------------------------------


def to_int(text: str, *, maximum: int | None = None) -> int:
    """A non-negative whole number: "19", "１９", "19日".

    Most cells are plain ASCII digits: ``str.isdigit`` on an ASCII text accepts exactly ``[0-9]+``, what the
    pattern below checks, so such a cell skips normalising and the pattern (``tests/adapters/test_to_int.py``
    checks this against the pattern for any text)."""
    if text.isascii() and text.isdigit():  # most cells: plain digits, nothing to normalise or match
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


@dataclass(frozen=True)
class Era:
    name: str  # 元号
    letter: str  # R / H / S
    first_year: int  # the Western year of 元年
    start: date
    end: date | None


ERAS = (
    Era("令和", "R", 2019, date(2019, 5, 1), None),
    Era("平成", "H", 1989, date(1989, 1, 8), date(2019, 4, 30)),
    Era("昭和", "S", 1926, date(1926, 12, 25), date(1989, 1, 7)),
)
_ERA_BY_NAME = {e.name: e for e in ERAS} | {e.letter: e for e in ERAS}
_ERA = r"(?P<era>令和|平成|昭和|[RHS])\s*(?P<ey>元|\d{1,2})"
_SEP = r"\s*[年./-]\s*"
_MONTH_FORMS = (
    re.compile(rf"^{_ERA}{_SEP}(?P<m>\d{{1,2}})\s*月?$", re.I),
    re.compile(r"^(?P<y>\d{4})\s*[年./-]\s*(?P<m>\d{1,2})\s*月?$"),
    re.compile(r"^(?P<y>\d{4})(?P<m>\d{2})$"),
)
_DATE_FORMS = (
    re.compile(rf"^{_ERA}{_SEP}(?P<m>\d{{1,2}})\s*[月./-]\s*(?P<d>\d{{1,2}})\s*日?$", re.I),
    re.compile(r"^(?P<y>\d{4})\s*[年./-]\s*(?P<m>\d{1,2})\s*[月./-]\s*(?P<d>\d{1,2})\s*日?$"),
    re.compile(r"^(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})$"),
)
_MONTH_EXAMPLES = "2026-04、2026/4、令和8年4月、R8.4"
_DATE_EXAMPLES = "2026-05-12、2026/5/12、令和8年5月12日、R8.5.12"


def _year(match: re.Match[str], text: str) -> tuple[int, Era | None]:
    if match.groupdict().get("era"):
        era = _ERA_BY_NAME[match["era"].upper() if len(match["era"]) == 1 else match["era"]]
        era_year = 1 if match["ey"] == "元" else int(match["ey"])
        if era_year < 1:
            raise CellError(f"{text!r}: era year 0", f"「{text}」の年が正しくありません", "invalid_date")
        return era.first_year + era_year - 1, era
    return int(match["y"]), None


def _era_range_error(text: str, era: Era) -> CellError:
    start = f"{era.start.year}年{era.start.month}月{era.start.day}日"
    span = f"{start}から" + (f"{era.end.year}年{era.end.month}月{era.end.day}日まで" if era.end else "")
    return CellError(
        f"{text!r} is outside the {era.letter} era",
        f"「{text}」は{era.name}の期間（{span}）にありません",
        "invalid_date",
    )


@functools.lru_cache(maxsize=256)  # a file names a few months (or days), on every row
def to_month(text: str) -> str:
    """A month as ``YYYY-MM`` from 2026-04, 2026/4, 2026年4月, 202604, 令和8年4月, R8.4, R8/4, 令和元年5月, and
    the first day of a month (2026/4/1: what a spreadsheet makes of a typed month)."""
    value = normalise(text)
    if not value:
        raise CellError("empty", f"空欄です。年月を入力してください（例: {_MONTH_EXAMPLES}）", "missing_value")
    for form in _MONTH_FORMS:
        match = form.match(value)
        if match:
            year, era = _year(match, text)
            month = int(match["m"])
            if not 1 <= month <= 12:
                break
            if era is not None:
                first, last = date(year, month, 1), _last_day(year, month)
                if last < era.start or (era.end is not None and first > era.end):
                    raise _era_range_error(text, era)
            found = f"{year:04d}-{month:02d}"
            if not EARLIEST_DAY[:7] <= found <= LATEST_DAY[:7]:  # the hub's range (``events.dates``)
                raise CellError(f"{found} is out of range", f"「{text}」: {MONTH_RANGE_JA}", "month_out_of_range")
            return found
    if any(form.match(value) for form in _DATE_FORMS):
        day = to_date(text)  # spreadsheets save a month typed as 2026/4 as the date 2026/4/1
        if day.day == 1:
            return f"{day.year:04d}-{day.month:02d}"
    raise CellError(
        f"{text!r} is not a month", f"「{text}」は年月として読めません（例: {_MONTH_EXAMPLES}）", "invalid_month"
    )


@functools.lru_cache(maxsize=1024)
def to_date(text: str) -> date:
    """A date from 2026-05-12, 2026/5/12, 2026年5月12日, 20260512, 令和8年5月12日, R8.5.12."""
    value = normalise(text)
    if not value:
        raise CellError("empty", f"空欄です。日付を入力してください（例: {_DATE_EXAMPLES}）", "missing_value")
    for form in _DATE_FORMS:
        match = form.match(value)
        if match:
            year, era = _year(match, text)
            try:
                day = date(year, int(match["m"]), int(match["d"]))
            except ValueError:
                raise CellError(
                    f"{text!r} is not a calendar date", f"「{text}」という日付はありません", "invalid_date"
                ) from None
            if era is not None and (day < era.start or (era.end is not None and day > era.end)):
                raise _era_range_error(text, era)
            if not day_in_range(day):  # the hub's range (``events.dates``)
                raise CellError(f"{day} is out of range", f"「{text}」: {DAY_RANGE_JA}", "date_out_of_range")
            return day
    raise CellError(
        f"{text!r} is not a date", f"「{text}」は日付として読めません（例: {_DATE_EXAMPLES}）", "invalid_date"
    )


def to_choice(text: str, choices: Mapping[str, Any]) -> Any:
    """One of the allowed words (after NFKC), as its value: ``to_choice("欠席", {"欠席": "absent", …})``."""
    value = normalise(text)
    if value in choices:
        return choices[value]
    allowed = "、".join(dict.fromkeys(k for k in choices if k))
    if not value:
        raise CellError("empty", f"空欄です（{allowed} のどれかを入力してください）", "missing_value")
    raise CellError(
        f"{text!r} is not one of {', '.join(choices)}",
        f"「{text}」は使えません（{allowed} のどれか）",
        "invalid_choice",
    )


def _last_day(year: int, month: int) -> date:
    return date(year, month, monthrange(year, month)[1])
