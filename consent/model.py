"""The plain values the policy reasons about besides the events and organisations (``events.model``): settings,
readers and decisions. No I/O: the services build these from the store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any


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
            raise InvalidSetting(
                unknown[0],
                f"unknown settings: {', '.join(unknown)}; one of {', '.join(names)}",
                f"「{'」「'.join(unknown)}」という設定はありません（{'、'.join(names)} のいずれかです）",
            )
        return cls(**data)

    @classmethod
    def checked(cls, data: Mapping[str, Any] | None) -> Settings:
        """``from_dict``, with every value checked: a boolean setting takes true or false, an integer setting an
        integer in its range (``SETTING_RANGES``). ``InvalidSetting`` names the first setting at fault."""
        settings = cls.from_dict(data)
        for name, value in dict(data or {}).items():
            if isinstance(getattr(cls(), name), bool):
                if not isinstance(value, bool):
                    raise InvalidSetting(
                        name,
                        f"{name}: true or false is expected, not {value!r}",
                        f"{name} は true か false で指定してください（指定された値: {value!r}）",
                    )
                continue
            low, high = SETTING_RANGES.get(name, (1, 2**31 - 1))
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidSetting(
                    name,
                    f"{name}: an integer from {low} to {high} is expected, not {value!r}",
                    f"{name} は {low} から {high} までの整数で指定してください（指定された値: {value!r}）",
                )
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
        return {
            "allowed": self.allowed,
            "reason": self.reason,
            "policy_version": self.policy_version,
            "events": [d.to_dict() for d in self.events],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReadDecision:
        return cls(
            data["allowed"],
            data["reason"],
            tuple(EventDecision.from_dict(d) for d in data["events"]),
            data.get("policy_version", ""),
        )
