"""The event envelope (policy.md, "The event envelope") and its structural validation.

Structural checks (fields, kinds, times) live here; the checks that depend on the law and on what the hub
already knows (addressees, residence, cases) are the policy's, in ``consent.admission``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, cast

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from events.dates import DAY_RANGE_JA, MONTH_RANGE_JA, Moment, moment_in_range
from events.kinds import KINDS, normalise_payload
from events.limits import (
    MAX_ENVELOPE_BYTES,
    MAX_ID_CHARS,
    MAX_KIND_CHARS,
    MAX_PAYLOAD_DEPTH,
    MAX_SENSITIVE_FIELDS,
    MAX_TEXT_CHARS,
)
from events.problems import Problem, Rejected


class Basis(StrEnum):
    """The legal ground on which an event is recorded or provided (domain.md, "The legal grounds")."""

    INTERNAL = "internal"  # the source's own record
    CWA_21_10_5 = "cwa-21-10-5"  # 児童福祉法第21条の10の5: information provided to the municipality where the child is
    CWA_25 = "cwa-25"  # 児童福祉法第25条 / 児童虐待防止法第6条: 通告
    CWA_25_3 = "cwa-25-3"  # 児童福祉法第25条の3: provided at the 要対協's request (periodic reports)
    CWA_25_2 = "cwa-25-2"  # 児童福祉法第25条の2: shared by the coordinating body with a case's members
    JOINT_LEDGER = "joint-ledger"  # 共同管理台帳 (大分 model)
    COMMISSIONED = "commissioned"  # 委託: a provider reporting to the commissioning municipality


class Function(StrEnum):
    """The two functions of a こども家庭センター."""

    CHILD_WELFARE = "child_welfare"  # 児童福祉
    MATERNAL_HEALTH = "maternal_health"  # 母子保健


class Envelope(BaseModel):
    """An event as a publisher sends it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    kind: str = Field(min_length=1, max_length=MAX_KIND_CHARS)
    child: str | None = Field(default=None, min_length=1, max_length=MAX_ID_CHARS)  # the hub id of the child
    # 紐付け: the source's own number for the child (児童生徒番号, 宛名番号 …) instead of ``child``; the hub resolves
    # it through the centre's link before admission, and the record waits in the linking queue until linked.
    local_child: str | None = Field(default=None, min_length=1, max_length=MAX_ID_CHARS)
    source: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    function: Function | None = None
    basis: Basis
    to: str | None = Field(default=None, min_length=1, max_length=MAX_ID_CHARS)
    at: Moment
    payload: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            f"The kind's fields. At most {MAX_PAYLOAD_DEPTH} levels of nesting, strings of at most {MAX_TEXT_CHARS} "
            f"characters, field names of at most {MAX_ID_CHARS}; the whole envelope at most {MAX_ENVELOPE_BYTES} bytes "
            "as UTF-8 JSON."
        ),
    )
    sensitive: list[Annotated[str, Field(max_length=MAX_ID_CHARS)]] = Field(
        default_factory=list, max_length=MAX_SENSITIVE_FIELDS
    )

    # The canonical form and its encoding, made once: a publish needs them for the size check, the digest and
    # the stored event. A copy (``model_copy``) makes them again. (Read through ``__pydantic_private__``: the
    # attribute itself goes through pydantic's ``__getattr__``, a few µs each time.)
    _canonical: dict[str, Any] | None = PrivateAttr(default=None)
    _encoded: bytes | None = PrivateAttr(default=None)

    def canonical(self) -> dict[str, Any]:
        """The envelope as plain JSON values, in the form the hub stores and hashes (the same dict each time:
        do not change it)."""
        private = self._private()
        canonical: dict[str, Any] | None = private["_canonical"]
        if canonical is None:
            canonical = private["_canonical"] = self.model_dump(mode="json", exclude_none=True)
        return canonical

    def encoded(self) -> bytes:
        """The canonical form as the UTF-8 JSON that ``content_digest`` hashes (keys sorted, no spaces)."""
        private = self._private()
        encoded: bytes | None = private["_encoded"]
        if encoded is None:
            encoded = private["_encoded"] = canonical_json(self.canonical())
        return encoded

    def _private(self) -> dict[str, Any]:
        """The model's private attributes. (pydantic types them as None too, for models that declare none; this
        one declares two, so they are always a dict.)"""
        return cast("dict[str, Any]", self.__pydantic_private__)

    def digest(self) -> str:
        """A content hash: the same id with a different digest is a different event."""
        return hashlib.sha256(self.encoded()).hexdigest()

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Envelope:
        copy = super().model_copy(update=update, deep=deep)
        copy._canonical = copy._encoded = None
        return copy


def canonical_json(value: Any) -> bytes:
    """``value`` as UTF-8 JSON with sorted keys and no spaces: what ``content_digest`` hashes.

    **Fast canonical JSON.** The bytes are by definition those of the standard library's encoder
    (``_standard_canonical_json``), which every digest stored so far was made with. ``orjson`` with sorted keys
    writes the same bytes about five times faster, except in the cases below, where this function uses the
    standard encoder instead (``tests/events/test_canonical_json.py`` checks the two agree on generated JSON
    values, floats at every exponent, control characters and non-BMP text included):

    - what ``orjson`` refuses (integers past 64 bits, non-string keys, lone surrogates, types it does not know);
    - NaN or ±Infinity in ``value``: ``orjson`` writes them as ``null`` where the standard encoder writes ``NaN``
      and ``Infinity``. Only when its output holds ``null`` is this checked, by reading the output back: a value
      with neither reads back equal to ``value`` (NaN and the infinities read back as ``None``; a tuple as a list,
      which also takes the slow path);
    - a float it may spell otherwise: a negative exponent of one digit (``2.5e-7``, the standard ``2.5e-07``) and
      a small number in fixed notation (``0.00001``, the standard ``1e-05``); a string with such text takes the
      slow path too, which is only slower.

    One difference is left, on values the hub never hashes: ``orjson`` writes a ``UUID``, a non-string ``Enum``
    and a ``datetime`` (where the standard encoder raises ``TypeError``); dataclasses are passed through (and so
    go to the standard encoder, which raises)."""
    try:
        encoded = orjson.dumps(value, option=_ORJSON_CANONICAL)
    except (orjson.JSONEncodeError, TypeError):
        return _standard_canonical_json(value)
    if (
        (b"e-" in encoded and _NEGATIVE_EXPONENT.search(encoded))  # substring tests first: a regex is 4× a dump
        or b"0.0000" in encoded
        or (b"null" in encoded and orjson.loads(encoded) != value)
    ):
        return _standard_canonical_json(value)
    return encoded


def canonical_json_without_floats(value: Any) -> bytes:
    """``canonical_json`` of a value that holds **no float**: strings, integers, booleans, None, and lists and
    dicts of them with string keys (an access record as the hub makes it: ``services.reading.timeline``).

    What it leaves out of ``canonical_json``: the checks for what ``orjson`` writes otherwise than the standard
    encoder among floats, above all the read-back of the whole output (``orjson.loads`` and a comparison with
    ``value``) whenever it holds a ``null``, which tells a None from a NaN. A 35 kB access record of a
    500-event read always holds a ``null`` (a reader's ``user``, a refused event's ``rule``): the read-back was
    about 190 µs of its ~300 µs canonical JSON, the dump 40 µs. Without floats there is nothing for it to find,
    and ``orjson`` with sorted keys writes the standard encoder's bytes (``canonical_json``'s docstring).
    What ``orjson`` refuses (integers past 64 bits, non-string keys, lone surrogates) still goes to the standard
    encoder, as in ``canonical_json``. ``tests/events/test_canonical_json.py`` checks the bytes are the
    standard encoder's on generated values without floats (hypothesis).

    A float given anyway is written as ``orjson`` writes it: a NaN as ``null`` where the definition writes
    ``NaN``, so a hash made from it differs from the definition's; callers pass only values made without
    floats, and check what they store with the definition (``audit verify``), which then fails, never passes."""
    try:
        return orjson.dumps(value, option=_ORJSON_CANONICAL)
    except (orjson.JSONEncodeError, TypeError):
        return _standard_canonical_json(value)


_ORJSON_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
# A float with a negative exponent in orjson's output, which the standard encoder may spell otherwise (see
# ``canonical_json``; the other such spelling, ``0.0000…``, is a plain substring).
_NEGATIVE_EXPONENT = re.compile(rb"[0-9]e-[0-9]")


def _standard_canonical_json(value: Any) -> bytes:
    """The definition of the canonical JSON: the standard library's encoder, sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def content_digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()


# Japanese wording of pydantic's error types, for the people who correct the input.
JA_BY_ERROR_TYPE = {
    "missing": "必須項目がありません",
    "extra_forbidden": "使えない項目です",
    "string_too_short": "空欄です",
    "string_too_long": "長すぎます",
    "string_type": "文字列で指定してください",
    "int_type": "整数で指定してください",
    "int_parsing": "整数で指定してください",
    "greater_than_equal": "値が小さすぎます",
    "less_than_equal": "値が大きすぎます",
    "enum": "使える値ではありません",
    "literal_error": "使える値ではありません",
    "datetime_parsing": "日時の形式が正しくありません（例: 2026-05-12T10:00:00+09:00）",
    "datetime_type": "日時の形式が正しくありません（例: 2026-05-12T10:00:00+09:00）",
    "timezone_aware": "日時に時差（+09:00 など）がありません",
    "date_parsing": "日付の形式が正しくありません（例: 2026-05-12）",
    "date_from_datetime_parsing": "日付の形式が正しくありません（例: 2026-05-12）",
    "date_out_of_range": DAY_RANGE_JA,
    "month_out_of_range": MONTH_RANGE_JA,
    "list_type": "一覧（リスト）で指定してください",
    "too_short": "少なくとも1件必要です",
    "too_long": "件数が多すぎます",
    "bool_type": "はい／いいえで指定してください",
    "dict_type": "項目の集まり（オブジェクト）で指定してください",
    "string_pattern_mismatch": "空欄です",
    "value_error": "値が正しくありません",
}


def ja_for(error: Mapping[str, Any]) -> str:
    """The Japanese wording of one pydantic error (an item of ``ValidationError.errors()``), with the limit when
    there is one ("長すぎます（200文字まで）")."""
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    ja = JA_BY_ERROR_TYPE.get(kind, "値が正しくありません")
    if kind == "value_error":
        return f"値が正しくありません（{str(error.get('msg', '')).removeprefix('Value error, ')}）"
    if kind == "string_too_long" and "max_length" in ctx:
        return f"{ja}（{ctx['max_length']}文字まで）"
    if kind == "greater_than_equal" and "ge" in ctx:
        return f"{ja}（{ctx['ge']}以上）"
    if kind == "less_than_equal" and "le" in ctx:
        return f"{ja}（{ctx['le']}まで）"
    if kind == "too_long" and "max_length" in ctx:
        return f"{ja}（{ctx['max_length']}件まで）"
    return ja


def _problems(error: ValidationError, prefix: str = "") -> list[Problem]:
    out = []
    for e in error.errors():
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-"))
        field = f"{prefix}{loc}" if loc else (prefix.rstrip(".") or None)
        ja = ja_for(e)
        out.append(
            Problem(
                code=f"invalid_{'payload' if prefix else 'envelope'}",
                field=field,
                message=e["msg"],
                message_ja=f"{field or '入力'}: {ja}",
            )
        )
    return out


def nesting_depth(value: Any, *, stop_after: int) -> int:
    """How deeply lists and dicts nest in ``value`` (a scalar is 0, ``[]`` and ``{"a": 1}`` are 1), counted
    without recursion, so that any depth is measured safely; counting stops once ``stop_after`` is exceeded."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > stop_after:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


MAX_LISTED_PAYLOAD_PROBLEMS = 20


RESERVED_OBJECT_KEYS = frozenset({"_type_", "_data_"})
"""An object of exactly these two fields is how the store writes a value of a type JSON has not (the
``eventsourcing`` library's transcodings: a ``UUID``, a ``datetime``); read back, the store would take such an
object in a payload for one, and fail on a type it does not know, so that no read of the child could load its
stream. Refused in every payload, at any depth (``reserved_object``)."""


def _flat_and_within_bounds(payload: dict[str, Any]) -> bool:
    """Whether ``payload`` holds no list or dict, no string longer than allowed, no long field name and is not a
    reserved object (``RESERVED_OBJECT_KEYS``): most events (a report, a note) are found fine here, without the
    walk that names each value's path."""
    if payload.keys() == RESERVED_OBJECT_KEYS:
        return False
    for key, value in payload.items():
        if (
            not isinstance(key, str)
            or len(key) > MAX_ID_CHARS
            or isinstance(value, (dict, list))
            or (isinstance(value, str) and len(value) > MAX_TEXT_CHARS)
        ):
            return False
    return True


def _payload_bounds(payload: dict[str, Any]) -> list[Problem]:
    """What in ``payload`` goes past the envelope limits (``events.limits``): nesting, long strings, long field
    names, reserved objects (``RESERVED_OBJECT_KEYS``). Checked before the kind's model sees it, without recursion."""
    if _flat_and_within_bounds(payload):
        return []
    if nesting_depth(payload, stop_after=MAX_PAYLOAD_DEPTH) > MAX_PAYLOAD_DEPTH:
        return [
            Problem(
                "payload_too_deep",
                f"payload nests more than {MAX_PAYLOAD_DEPTH} levels deep",
                f"payload: 入れ子が深すぎます（{MAX_PAYLOAD_DEPTH}段まで）",
                "payload",
            )
        ]
    problems: list[Problem] = []
    stack: list[tuple[str, Any]] = [("payload", payload)]
    while stack and len(problems) < MAX_LISTED_PAYLOAD_PROBLEMS:
        path, item = stack.pop()
        if isinstance(item, str) and len(item) > MAX_TEXT_CHARS:
            problems.append(
                Problem(
                    "text_too_long",
                    f"{path}: longer than {MAX_TEXT_CHARS} characters",
                    f"{path}: 長すぎます（{MAX_TEXT_CHARS}文字まで）",
                    path,
                )
            )
        elif isinstance(item, dict):
            if item.keys() == RESERVED_OBJECT_KEYS:
                problems.append(
                    Problem(
                        "reserved_object",
                        f"{path}: an object of exactly the fields _type_ and _data_ is reserved by the store",
                        f"{path}: 「_type_」と「_data_」の2項目だけからなる項目は使えません（保存形式の予約）",
                        path,
                    )
                )
                continue
            for key, value in item.items():
                if isinstance(key, str) and len(key) > MAX_ID_CHARS:
                    problems.append(
                        Problem(
                            "field_name_too_long",
                            f"{path}: a field name is longer than {MAX_ID_CHARS} characters",
                            f"{path}: 項目名が長すぎます（{MAX_ID_CHARS}文字まで）",
                            path,
                        )
                    )
                else:
                    stack.append((f"{path}.{key}", value))
        elif isinstance(item, list):
            stack.extend((f"{path}.{i}", value) for i, value in enumerate(item))
    return sorted(problems, key=lambda p: p.field or "")


def _non_finite_numbers(raw: dict[str, Any]) -> list[Problem]:
    """Every number in ``raw`` that is infinite or NaN, by its path (``payload.attended``): JSON can spell them
    (``1e400`` overflows to infinity; Python's parser also takes ``NaN`` and ``Infinity``), but no store keeps them
    as sent and no reader can compute with them. Walked without recursion, whatever the depth.

    **Finite at a glance**: most envelopes hold no such number, which ``orjson`` tells without a walk in Python:
    it writes NaN and ±Infinity as ``null``, so ``raw`` with none of them reads back equal to itself (a finite
    float reads back exactly). Only ``raw`` that does not (one of them, or a tuple, a non-string key, a type
    that JSON does not have) is walked."""
    try:
        if orjson.loads(orjson.dumps(raw)) == raw:
            return []
    except (orjson.JSONEncodeError, orjson.JSONDecodeError, TypeError):
        pass
    return _walked_non_finite_numbers(raw)


def _walked_non_finite_numbers(raw: dict[str, Any]) -> list[Problem]:
    """``_non_finite_numbers`` by a walk of every value."""
    problems: list[Problem] = []
    stack: list[tuple[str, Any]] = [(str(key), value) for key, value in raw.items()]
    while stack and len(problems) < MAX_LISTED_PAYLOAD_PROBLEMS:
        path, item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            problems.append(
                Problem(
                    "number_out_of_range",
                    f"{path}: {item} is not a finite number",
                    f"{path}: 数値が大きすぎるか、数値ではありません（NaN・Infinity は使えません）",
                    path,
                )
            )
        elif isinstance(item, dict):
            stack.extend((f"{path}.{key}", value) for key, value in item.items())
        elif isinstance(item, list):
            stack.extend((f"{path}.{i}", value) for i, value in enumerate(item))
    return sorted(problems, key=lambda p: p.field or "")


FUTURE_TOLERANCE = timedelta(hours=1)


def parse_envelope(raw: Any, *, now: datetime) -> Envelope:
    """Validate the shape of ``raw``: envelope fields, a known kind, its payload, sane times.

    Returns the envelope with its payload normalised to plain JSON values; raises ``Rejected`` with every
    problem found. An envelope in the form publishers send it is accepted by ``accepted_at_a_glance``; any other
    input, and every input with a problem, is parsed by the models (``parse_by_models``), which name the
    problems."""
    if isinstance(raw, Envelope):
        raw = raw.model_dump()
    accepted = accepted_at_a_glance(raw, now=now)
    return accepted if accepted is not None else parse_by_models(raw, now=now)


_ENVELOPE_FIELDS = frozenset(Envelope.model_fields)
_BASES = {b.value: b for b in Basis}
_FUNCTIONS = {f.value: f for f in Function}
# ``at`` in the form the canonical envelope writes it (``datetime.isoformat``): seconds, no fraction or six
# digits of it, an offset with a colon. (A zero offset is not taken here: the canonical form writes it ``Z``.)
_CANONICAL_AT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{6})?[+-][0-9]{2}:[0-9]{2}")


def _written_as_isoformat(at_text: str) -> bool:
    """Whether ``datetime.fromisoformat(at_text).isoformat() == at_text``, for a text that ``_CANONICAL_AT``
    matches and ``fromisoformat`` reads (what ``accepted_at_a_glance`` has checked before asking).

    **The canonical time told from its text**: such a text is written as ``isoformat`` writes it except when its
    fraction is ``.000000``, which ``isoformat`` leaves out, or its offset's minutes are 60 or more, which
    ``fromisoformat`` reads as hours (``-00:60`` is written ``-01:00``); the date and the time are written with
    the same digits, and a zero offset is refused before. Two slices instead of writing the time again (about
    1.7 µs). ``tests/events/test_envelope_glance.py`` checks it against ``isoformat`` on generated texts."""
    return at_text[19:26] != ".000000" and at_text[-2] < "6"


@functools.lru_cache(maxsize=64)
def latest_accepted_moment(now: datetime) -> datetime:
    """``now + FUTURE_TOLERANCE``: the latest ``at`` a publish at ``now`` accepts.

    **Remembered per ``now``**: every event of a batch is parsed at the batch's ``now``; the sum (about 1.5 µs
    here, an aware ``datetime``'s arithmetic) is made once per batch instead of once per event. Why it is right:
    the answer depends on ``now`` alone, and two ``now`` that share a place in the cache are equal instants
    (``datetime`` equality), whose sums are equal instants too, which is all the comparison reads."""
    return now + FUTURE_TOLERANCE


def accepted_at_a_glance(raw: Any, *, now: datetime) -> Envelope | None:
    """**The envelope accept path without pydantic**: ``raw`` as ``parse_by_models`` would return it, when
    ``raw`` is an envelope in the form publishers send it and has no problem; ``None`` for anything else (then
    ``parse_by_models`` decides, and names the problems, so a rejection is always the models').

    What it takes: a dict of the envelope's fields only, each of exactly its JSON type and within the limits of
    ``events.limits`` (the same constants the model's fields declare): ``id``, ``kind``, ``source`` and one of
    ``child`` / ``local_child`` as non-empty strings, ``to`` absent, null or such a string, ``basis`` and
    ``function`` one of their values (``function`` may be absent or null), ``at`` written as its canonical form
    writes it (``_CANONICAL_AT``, read back identically by ``datetime.isoformat``, non-zero offset) within the
    hub's range and not in the future, ``payload`` a dict, ``sensitive`` a list of field names. Then, as the
    models' path does and with the same functions: a known kind, the payload within the envelope limits, no
    NaN or infinity (in a flat payload, the only place left for a number, its values are looked at directly), the kind's payload model (``normalise_payload``, pydantic: the kinds' rules have one
    definition), the size as UTF-8 JSON. The envelope is built without validating again (its fields are those
    the model would hold; ``at`` an aware ``datetime`` equal to pydantic's), and its canonical form written
    directly, as ``model_dump(mode="json", exclude_none=True)`` writes it.

    ``tests/events/test_envelope_glance.py`` checks, on generated envelopes valid and not, that
    ``parse_envelope`` gives what ``parse_by_models`` gives: the same envelope (fields, fields set, canonical
    form, encoding) or the same problems; and that the envelopes publishers send take this path. About 3× faster
    than validating and copying the model (the payload's model is the same in both)."""
    if type(raw) is not dict or not raw.keys() <= _ENVELOPE_FIELDS:
        return None
    get = raw.get
    envelope_id, kind, source, basis = get("id"), get("kind"), get("source"), get("basis")
    child, local_child, to, function = get("child"), get("local_child"), get("to"), get("function")
    sensitive, payload, at_text = get("sensitive", []), get("payload", {}), get("at")
    if not (
        type(envelope_id) is str
        and 0 < len(envelope_id) <= MAX_ID_CHARS
        and type(kind) is str
        and kind in KINDS  # a known kind's name is a non-empty string of at most MAX_KIND_CHARS
        and type(source) is str
        and 0 < len(source) <= MAX_ID_CHARS
        and (child is None) != (local_child is None)
        and (child is None or (type(child) is str and 0 < len(child) <= MAX_ID_CHARS))
        and (local_child is None or (type(local_child) is str and 0 < len(local_child) <= MAX_ID_CHARS))
        and (to is None or (type(to) is str and 0 < len(to) <= MAX_ID_CHARS))
        and (function is None or (type(function) is str and function in _FUNCTIONS))
        and type(basis) is str
        and basis in _BASES
        and type(at_text) is str
        and _CANONICAL_AT.fullmatch(at_text)
        and not at_text.endswith(("+00:00", "-00:00"))
        and type(payload) is dict
        and all(type(key) is str for key in payload)
        and type(sensitive) is list
        and len(sensitive) <= MAX_SENSITIVE_FIELDS
        and all(type(f) is str and 0 < len(f) <= MAX_ID_CHARS for f in sensitive)
    ):
        return None
    try:
        at = datetime.fromisoformat(at_text)
    except ValueError:
        return None
    if not _written_as_isoformat(at_text) or not moment_in_range(at) or at > latest_accepted_moment(now):
        return None
    if _flat_and_within_bounds(payload):
        # Finite at a glance for a flat payload: the checks above leave numbers nowhere but in the payload, and a
        # flat payload's numbers are its values (what ``_non_finite_numbers`` would find, without its JSON round
        # trip of the whole envelope).
        if any(isinstance(value, float) and not math.isfinite(value) for value in payload.values()):
            return None
    elif _non_finite_numbers(raw) or _payload_bounds(payload):
        return None
    try:
        normalised = normalise_payload(kind, payload)
    except (ValidationError, UnicodeEncodeError):  # the full path says what is wrong
        return None
    fields = {
        "id": envelope_id,
        "kind": kind,
        "child": child,
        "local_child": local_child,
        "source": source,
        "function": _FUNCTIONS[function] if function is not None else None,
        "basis": _BASES[basis],
        "to": to,
        "at": at,
        "payload": normalised,
        "sensitive": list(sensitive),
    }
    # the canonical form: the fields in their order, none that is None, the enumerations and ``at`` as text
    canonical: dict[str, Any] = {"id": envelope_id, "kind": kind}
    if child is not None:
        canonical["child"] = child
    if local_child is not None:
        canonical["local_child"] = local_child
    canonical["source"] = source
    if function is not None:
        canonical["function"] = function
    canonical["basis"] = basis
    if to is not None:
        canonical["to"] = to
    canonical["at"], canonical["payload"], canonical["sensitive"] = at_text, dict(normalised), list(sensitive)
    envelope = Envelope.__new__(Envelope)
    set_attribute = object.__setattr__  # what pydantic's own construction sets, without validating again
    set_attribute(envelope, "__dict__", fields)
    set_attribute(envelope, "__pydantic_fields_set__", set(raw) | {"payload"})
    set_attribute(envelope, "__pydantic_extra__", None)
    set_attribute(envelope, "__pydantic_private__", {"_canonical": canonical, "_encoded": None})
    try:
        size = len(envelope.encoded())
    except UnicodeEncodeError:
        return None
    return envelope if size <= MAX_ENVELOPE_BYTES else None


def parse_by_models(raw: Any, *, now: datetime) -> Envelope:
    """``parse_envelope`` by the pydantic models: the definition of what is accepted, and the path that names
    every problem of a rejected input."""
    if isinstance(raw, Envelope):
        raw = raw.model_dump()
    if not isinstance(raw, dict):
        raise Rejected(
            [
                Problem(
                    "invalid_envelope",
                    "an event must be a JSON object",
                    "イベントはオブジェクト（{...}）で送ってください",
                )
            ]
        )
    problems: list[Problem] = _non_finite_numbers(raw)
    if problems:
        raise Rejected(problems)
    if raw.get("basis") in (None, ""):
        problems.append(
            Problem(
                "missing_basis",
                "basis is missing: every event must name its legal ground",
                "basis（法的根拠）がありません。共有の根拠を指定してください",
                "basis",
            )
        )
    if (raw.get("child") is None) == (raw.get("local_child") is None):
        problems.append(
            Problem(
                "child_or_local_child",
                "give exactly one of child (the hub id) and local_child (your own number for the child)",
                "child（ハブの児童ID）と local_child（自機関の児童番号）のどちらか一方だけを指定してください",
                "child",
            )
        )
    # Each error is turned into problems inside its ``except`` and raised after it: an exception raised inside
    # an ``except`` block keeps the caught one, whose traceback keeps the frame that holds it, a reference cycle
    # that only the garbage collector frees (services/runtime.py).
    envelope: Envelope | None = None
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as error:
        problems += [p for p in _problems(error) if not (p.field == "basis" and problems)]
        for p in problems:
            if p.field == "basis" and p.code == "invalid_envelope":
                problems[problems.index(p)] = Problem(
                    "unknown_basis",
                    f"unknown basis {raw.get('basis')!r}",
                    f"basis「{raw.get('basis')}」は法的根拠として登録されていません",
                    "basis",
                )
    if problems or envelope is None:
        raise Rejected(problems)
    if envelope.kind not in KINDS:
        raise Rejected(
            [
                Problem(
                    "unknown_kind",
                    f"unknown kind {envelope.kind!r}",
                    f"kind「{envelope.kind}」は登録されていない種類です",
                    "kind",
                )
            ]
        )
    bounds = _payload_bounds(envelope.payload)
    if bounds:
        raise Rejected(bounds)
    try:
        payload = normalise_payload(envelope.kind, envelope.payload)
    except ValidationError as error:
        problems = _problems(error, "payload.")
    except UnicodeEncodeError:  # a lone surrogate in a key the model keeps as it is (an extra field's own keys)
        problems = [_INVALID_TEXT]
    if problems:
        raise Rejected(problems)
    if envelope.at > now + FUTURE_TOLERANCE:
        raise Rejected(
            [
                Problem(
                    "future_time",
                    f"at {envelope.at.isoformat()} is in the future",
                    "at（発生日時）が未来の日時です",
                    "at",
                )
            ]
        )
    unknown = [f for f in envelope.sensitive if not isinstance(f, str) or not f]
    if unknown:
        raise Rejected(
            [
                Problem(
                    "invalid_envelope",
                    "sensitive lists payload field names",
                    "sensitive には payload の項目名を並べてください",
                    "sensitive",
                )
            ]
        )
    envelope = envelope.model_copy(update={"payload": payload})
    try:  # a lone surrogate (e.g. from a "\ud800" escape) is valid JSON but not text any store can keep
        size = len(envelope.encoded())
    except UnicodeEncodeError:
        size = None
    if size is None:
        raise Rejected([_INVALID_TEXT])
    if size > MAX_ENVELOPE_BYTES:
        raise Rejected(
            [
                Problem(
                    "envelope_too_large",
                    f"the event is {size} bytes as JSON; at most {MAX_ENVELOPE_BYTES}",
                    f"イベントが大きすぎます（{size:,}バイト。"
                    f"{MAX_ENVELOPE_BYTES // 1024} KB まで）。内容を分けて送ってください",
                    "payload",
                )
            ]
        )
    return envelope


_INVALID_TEXT = Problem(  # a lone surrogate (e.g. from a "\ud800" escape): valid JSON, but no text a store can keep
    "invalid_text",
    "the event contains characters that are not valid Unicode text",
    "文字として扱えないデータ（不正な文字コード）が含まれています",
)

Outcome = Literal["accepted", "duplicate", "rejected"]
