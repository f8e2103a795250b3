"""How the store writes an event's state as JSON before sealing it: the library's ``JSONTranscoder``, encoding with
``orjson`` instead of the standard library (a quarter of the time for an event's state, a twentieth for a flat
payload; every stored event is encoded once or twice). The store selects it with the library's
``TRANSCODER_TOPIC`` (``events.store.HubStore.env``).

The output is the same JSON (compact, UTF-8): reading uses the library's decoder unchanged, so events written by
either encoder read alike. Values the library transcodes (datetime, Decimal) still go through its transcodings
(``{"_type_": …, "_data_": …}``). One difference the hub avoids rather than handles: orjson writes a ``UUID`` as a
plain string, where the library writes a transcoded one that reads back as a ``UUID``. No event state holds a
``UUID`` (stream ids are outside the state; ids inside it are strings); ``tests/events/test_transcoding.py`` checks every
state the demo stores reads back the same through both encoders.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from eventsourcing.persistence import JSONTranscoder

# Like the standard library: str and int subclasses as plain values, non-string keys as strings; datetimes and
# dataclasses to the library's transcodings (a dataclass without one is an error, as there).
# 19 digits in a row: perhaps an integer past 64 bits, which orjson would read as a float.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")
# **Long digits at a glance**: every digit byte as "0", every other byte as ".", so that 19 digits in a row are
# 19 zeros in a row, found by a plain substring search: the same answer as ``_LONG_DIGITS.search`` in a tenth of
# the time (two passes in C instead of the regex engine over every byte; 0.7 instead of 7.5 µs for a 500-byte
# state, more than ``orjson`` takes to read it). ``tests/events/test_transcoding.py`` checks the two agree.
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x2E for b in range(256))
_NINETEEN_ZEROS = b"0" * 19


def has_long_digits(data: bytes) -> bool:
    """Whether ``data`` holds 19 ASCII digits in a row (``_LONG_DIGITS``), by the translation above."""
    return _NINETEEN_ZEROS in data.translate(_DIGITS_AS_ZEROS)


_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS


class OrjsonTranscoder(JSONTranscoder):
    def encode(self, obj: Any) -> bytes:
        try:
            return orjson.dumps(obj, default=self._encode_obj, option=_OPTIONS)
        except orjson.JSONEncodeError:  # what orjson does not take (an integer past 64 bits, an unknown type):
            return super().encode(obj)  # the library's encoder, which writes it or says why not

    def decode(self, data: bytes) -> Any:
        """**Fast decoding**: what the library's decoder returns, read by ``orjson`` (about twice as fast: the
        library's decoder calls a Python hook for every object in the state, 500 of them in an access record).

        The library's hook changes only objects of the form ``{"_type_": …, "_data_": …}`` (its transcodings: an
        event's ``timestamp``, a ``Decimal``). Every such object's key is the text ``"_type_"`` in ``data``
        (neither encoder escapes it, and ``data`` without any ``\\u`` escape cannot spell it otherwise), so the
        ``orjson`` result is kept when the occurrences of ``"_type_"`` are exactly the top-level values it
        decodes here with the library's own hook; otherwise (nested transcodings, ``"_type_"`` in a text, an
        escape, what ``orjson`` refuses (``NaN``) or reads otherwise (an integer past 64 bits, which it reads as a float:
        any 19 digits in a row) the library's decoder reads ``data``.
        ``tests/events/test_transcoding.py`` checks both read alike."""
        if b"\\u" not in data and not has_long_digits(data):
            try:
                value = orjson.loads(data)
            except orjson.JSONDecodeError:
                return super().decode(data)
            expected = data.count(b'"_type_"')
            if not expected:
                return value
            if type(value) is dict and "_type_" not in value:
                found = 0
                for key, item in value.items():
                    if type(item) is dict and "_type_" in item:
                        try:
                            value[key] = self._decode_obj(item)
                        except Exception:  # noqa: BLE001 (a transcoding it cannot read: the library says why)
                            return super().decode(data)
                        found += 1
                if found == expected:
                    return value
        return super().decode(data)
