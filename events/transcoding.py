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

from typing import Any

import orjson
from eventsourcing.persistence import JSONTranscoder

# Like the standard library: str and int subclasses as plain values, non-string keys as strings; datetimes and
# dataclasses to the library's transcodings (a dataclass without one is an error, as there).
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS


class OrjsonTranscoder(JSONTranscoder):
    def encode(self, obj: Any) -> bytes:
        try:
            return orjson.dumps(obj, default=self._encode_obj, option=_OPTIONS)
        except orjson.JSONEncodeError:  # what orjson does not take (an integer past 64 bits, an unknown type):
            return super().encode(obj)  # the library's encoder, which writes it or says why not
