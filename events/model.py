"""The hub's plain values below every rule: an organisation of the registry (``Org``) and an event as the hub
recorded it about a child (``Recorded``). No I/O; the store builds them, the policy (``consent``) reasons about
them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Org:
    """An organisation registered in the hub (domain.md, "Organisations")."""

    id: str
    type: str
    name: str | None = None
    municipality: str | None = None  # 全国地方公共団体コード, 6 digits
    prefecture: str | None = None
    covers: tuple[str, ...] = ()  # a 児童相談所's municipalities
    regime: str | None = None  # public | private (個人情報保護法 第69条 / 第27条)
    code: str | None = None  # a school's 学校コード

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Org:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["covers"] = tuple(str(c) for c in values.get("covers") or ())
        for key in ("municipality", "prefecture", "code"):
            if values.get(key) is not None:
                values[key] = str(values[key])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value not in (None, ()):
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


CENTER = "municipal_center"  # 市町村こども家庭センター: the 要対協's coordinating body
JISO = "child_guidance_center"  # 児童相談所
ORG_TYPES = frozenset(
    {
        CENTER,
        "municipal_department",
        JISO,
        "prefecture_office",
        "school",
        "nursery",
        "health_center",
        "medical",
        "service_provider",
        "auditor",
    }
)


@dataclass(frozen=True)
class Recorded:
    """An event about a child as the hub recorded it: the envelope, its place in the child's stream, and the
    direct audience fixed when it was published."""

    position: int  # 1-based position in the child's stream
    id: str
    kind: str
    child: str
    source: str
    basis: str
    at: datetime
    payload: Mapping[str, Any]
    audience: frozenset[str]
    function: str | None = None
    to: str | None = None
    sensitive: tuple[str, ...] = ()

    def placed(self, position: int, audience: frozenset[str] | None = None) -> Recorded:
        """This event at ``position`` in the child's stream (and with ``audience``): a copy of its fields, without
        the constructor that ``dataclasses.replace`` runs again (a publish places every event once or twice)."""
        copy = object.__new__(Recorded)
        copy.__dict__.update(self.__dict__, position=position)
        if audience is not None:
            copy.__dict__["audience"] = audience
        return copy

    @property
    def case(self) -> str | None:
        value = self.payload.get("case")
        return str(value) if value is not None else None

    @property
    def center_function(self) -> str:
        return self.function or "child_welfare"
