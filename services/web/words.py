"""The Japanese words the pages use, from the hub's one vocabulary (``events.labels``), and how a payload value is
written for people: codes by their Japanese names, organisations by name, never a code or an id where a name
exists (ui.md, "Japanese first")."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from events.clock import JST
from events.labels import (
    ALERT_JA,
    BASIS_JA,
    CASE_TYPE_JA,
    CATEGORY_JA,
    FIELD_JA,
    KIND_JA,
    ORG_TYPE_JA,
    RELATION_JA,
    ROLE_JA,
    RULE_BADGE_JA,
    RULE_JA,
    label,
)
from services.templates import wareki

__all__ = [
    "BASIS_JA",
    "CASE_TYPE_JA",
    "CATEGORY_JA",
    "FIELD_JA",
    "ORG_TYPE_JA",
    "RELATION_JA",
    "RULE_BADGE_JA",
    "kind_ja",
    "role_ja",
    "rule_explained",
    "time_of_day",
    "value_text",
    "wareki",
]

CODES_JA: dict[str, dict[str, str]] = {
    "category": CATEGORY_JA,
    "case_type": CASE_TYPE_JA,
    "reason": ALERT_JA,
    "relation": RELATION_JA,  # 世帯での続柄
}
ORG_FIELDS = frozenset({"member", "to", "org", "school", "recipients"})


def kind_ja(kind: str) -> str:
    return label(KIND_JA, kind)


def role_ja(role: str) -> str:
    return label(ROLE_JA, role)


def rule_explained(rule: str) -> str:
    return RULE_JA.get(rule, (rule, ""))[1]


def value_text(name: str, value: Any, org_name: Callable[[str], str]) -> str:
    """A payload value as text for people: codes by their Japanese names, organisations by name, lists joined."""
    if isinstance(value, list):
        return "、".join(value_text(name, v, org_name) for v in value)
    if isinstance(value, dict):
        return "、".join(f"{FIELD_JA.get(k, k)}: {value_text(k, v, org_name)}" for k, v in value.items())
    if name in CODES_JA:
        return CODES_JA[name].get(str(value), str(value))
    if name in ORG_FIELDS:
        return str(org_name(str(value)))
    if isinstance(value, bool):
        return "はい" if value else "いいえ"
    return str(value)


def time_of_day(moment: str) -> str:
    """The time of an ISO time in Japan, HH:MM."""
    return datetime.fromisoformat(moment).astimezone(JST).strftime("%H:%M")
