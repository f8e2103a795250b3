"""The plain values the policy reasons about. No I/O: the services build these from the store."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Mapping


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


ORG_TYPES = frozenset({
    "municipal_center", "municipal_department", "child_guidance_center", "prefecture_office", "school",
    "nursery", "health_center", "medical", "service_provider", "auditor",
})


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

    def placed(self, position: int, audience: frozenset[str] | None = None) -> "Recorded":
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


class InvalidSetting(ValueError):
    """A setting the hub cannot take: an unknown name, or a value of the wrong type or out of range. ``name`` is
    the setting at fault; ``message`` is English, ``message_ja`` what the person changing it reads."""

    def __init__(self, name: str, message: str, message_ja: str):
        super().__init__(message)
        self.name = name
        self.message = message
        self.message_ja = message_ja


SETTING_RANGES: dict[str, tuple[int, int]] = {"emergency_hours": (1, 168), "monthly_report_due_day": (1, 28)}
"""The values an integer setting may take (both ends included): an emergency window of at most a week; a due day
that every month has."""


@dataclass(frozen=True)
class Settings:
    """Per-deployment settings (policy.md, "Settings"), overridable per scenario."""

    integrated_center: bool = True
    joint_ledger: bool = False
    emergency_hours: int = 24
    monthly_report_due_day: int = 10

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Settings:
        """The settings named in ``data``, the policy's defaults for the others; ``InvalidSetting`` for an unknown
        name. Values are taken as they are (an access record keeps those it was decided under): ``checked``
        also checks them."""
        data = dict(data or {})
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise InvalidSetting(unknown[0], f"unknown settings: {', '.join(unknown)}; one of {', '.join(names)}",
                                 f"「{'」「'.join(unknown)}」という設定はありません（{'、'.join(names)} のいずれかです）")
        return cls(**data)

    @classmethod
    def checked(cls, data: Mapping[str, Any] | None) -> Settings:
        """``from_dict``, with every value checked: a boolean setting takes true or false, an integer setting an
        integer in its range (``SETTING_RANGES``). ``InvalidSetting`` names the first setting at fault."""
        settings = cls.from_dict(data)
        for name, value in dict(data or {}).items():
            if isinstance(getattr(cls(), name), bool):
                if not isinstance(value, bool):
                    raise InvalidSetting(name, f"{name}: true or false is expected, not {value!r}",
                                         f"{name} は true か false で指定してください（指定された値: {value!r}）")
                continue
            low, high = SETTING_RANGES.get(name, (1, 2**31 - 1))
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidSetting(name, f"{name}: an integer from {low} to {high} is expected, not {value!r}",
                                     f"{name} は {low} から {high} までの整数で指定してください（指定された値: {value!r}）")
        return settings

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Reader:
    """Who reads, in which role, for what purpose, at what time."""

    org: str
    role: str | None  # None: the organisation as a whole (rule TRANSFER)
    purpose: str
    t: datetime
    user: str | None = None


@dataclass(frozen=True)
class EventDecision:
    """The decision on one event: allowed or not, by which rule, with which fields redacted."""

    event: str
    allowed: bool
    rule: str | None = None
    redacted: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.event, "allowed": self.allowed, "rule": self.rule, "redacted": list(self.redacted)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EventDecision:
        return cls(data["event"], data["allowed"], data.get("rule"), tuple(data.get("redacted") or ()))


@dataclass(frozen=True)
class ReadDecision:
    """The decision on a whole timeline read."""

    allowed: bool  # False: refused as a whole
    reason: str  # why: the purpose gate's reason, or "evaluated" / "erased"
    events: tuple[EventDecision, ...] = field(default=())
    policy_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "reason": self.reason, "policy_version": self.policy_version,
                "events": [d.to_dict() for d in self.events]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReadDecision:
        return cls(data["allowed"], data["reason"], tuple(EventDecision.from_dict(d) for d in data["events"]),
                   data.get("policy_version", ""))
