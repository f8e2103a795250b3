"""Organisations registered in the hub (機関登録), kept as events so the registry has a history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from events.model import ORG_TYPES, Org
from events.problems import Problem, Rejected
from events.retry import retry_conflicts
from events.store import REGISTRY_ID, HubStore, OrgRegistry


class OrgSpec(BaseModel):
    """An organisation as written in an orgs file or a scenario (scenarios.md, ``orgs`` entries)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    id: str = Field(min_length=1, max_length=200)
    type: str
    name: str | None = None
    municipality: str | None = Field(default=None, pattern=r"^\d{6}$")
    prefecture: str | None = Field(default=None, pattern=r"^\d{2}$")
    covers: list[str] = Field(default_factory=list)
    regime: Literal["public", "private"] | None = None
    code: str | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in ORG_TYPES:
            raise ValueError(f"unknown organisation type; one of {', '.join(sorted(ORG_TYPES))}")
        return value


@dataclass
class OrgLoadResult:
    registered: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def parse_orgs(items: Sequence[Any]) -> list[Org]:
    orgs, problems = [], []
    for i, item in enumerate(items):
        try:
            orgs.append(Org.from_dict(OrgSpec.model_validate(item).model_dump(exclude_none=True)))
        except ValidationError as error:
            for e in error.errors():
                where = ".".join(str(p) for p in e["loc"])
                problems.append(
                    Problem(
                        "invalid_org",
                        f"orgs[{i}].{where}: {e['msg']}",
                        f"機関 {i + 1} 件目の「{where}」が正しくありません",
                        f"orgs[{i}].{where}",
                    )
                )
    if problems:
        raise Rejected(problems)
    return orgs


def load_orgs(store: HubStore, items: Sequence[Any]) -> OrgLoadResult:
    """Register new organisations and record changes to known ones; the same file twice changes nothing."""
    orgs = parse_orgs(items)

    def load_once() -> OrgLoadResult:  # tried again (events.retry) when another load changed the registry first
        registry = store.get_or_none(REGISTRY_ID) or OrgRegistry()
        result = OrgLoadResult()
        for org in orgs:
            known = registry.orgs.get(org.id)
            if known is None:
                registry.register(org=org.to_dict())
                result.registered.append(org.id)
            elif known != org:
                registry.update(org=org.to_dict())
                result.updated.append(org.id)
            else:
                result.unchanged.append(org.id)
        store.save(registry)
        return result

    return retry_conflicts(load_once)
