"""Regions of the registry (圏域, ``aggregates.md``): a prefecture's name, its 圏域 and the names of its
municipalities, kept as events so that the regions have a history (one ``PrefectureRecorded`` per change).

A regions file (UTF-8 YAML or JSON) lists prefectures::

    prefectures:
      - code: "44"
        name: 大分県
        regions:
          - name: 東部圏域
            municipalities: {"442020": 別府市, "442062": 杵築市}

``load_regions`` records each prefecture whose entry differs from the one kept (the same file twice changes
nothing); ``tsunagu regions load FILE`` uses it. A municipality belongs to one 圏域 of its prefecture; its code
starts with the prefecture's. Aggregates sum per 圏域 and per prefecture from here
(``services.aggregates.service``, ``by=region``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import yaml
from eventsourcing.domain import Aggregate, event
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from events.problems import Problem, Rejected
from events.retry import retry_conflicts
from events.sealing import stream_id
from events.store import HubStore, _CopiedOnWrite


class RegionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    name: str = Field(min_length=1, max_length=100)
    municipalities: dict[str, str] = Field(description="municipality code (6 digits) -> name")


class PrefectureSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    code: str = Field(pattern=r"^\d{2}$")
    name: str = Field(min_length=1, max_length=100)
    regions: list[RegionSpec]


class RegionRegistry(_CopiedOnWrite, Aggregate):
    """The hub's one registry of prefectures, their 圏域 and municipalities' names."""

    @staticmethod
    def create_id() -> UUID:
        return stream_id("region-registry")

    def __init__(self) -> None:
        self.prefectures: dict[str, dict[str, Any]] = {}

    @event("PrefectureRecorded")
    def record(self, prefecture: dict[str, Any]) -> None:
        self.prefectures[prefecture["code"]] = prefecture


@dataclass(frozen=True)
class Regions:
    """What the registry says: the names of prefectures and municipalities, and each municipality's 圏域."""

    prefecture_names: Mapping[str, str] = field(default_factory=dict)
    municipality_names: Mapping[str, str] = field(default_factory=dict)
    region_of: Mapping[str, str] = field(default_factory=dict)  # municipality -> 圏域 name
    regions: Mapping[str, list[str]] = field(default_factory=dict)  # prefecture -> its 圏域, in file order

    def name(self, municipality: str) -> str:
        """The municipality's name, or its code when the registry has none."""
        return self.municipality_names.get(municipality, municipality)


def _problem(message: str, message_ja: str, where: str = "file") -> Rejected:
    return Rejected([Problem("invalid_regions_file", message, message_ja, where)])


def read_regions_file(data: bytes) -> list[dict[str, Any]]:
    """The prefectures of a regions file, checked (``Rejected`` naming the entry at fault)."""
    try:
        loaded = yaml.safe_load(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise _problem(f"not UTF-8 YAML or JSON: {error}", "圏域ファイルを読めません（UTF-8 の YAML・JSON）") from None
    items = loaded.get("prefectures") if isinstance(loaded, dict) else None
    if not isinstance(items, list):
        raise _problem(
            "expected a mapping with a 'prefectures' list", "prefectures の下の都道府県の一覧が見つかりません"
        )
    out = []
    for i, item in enumerate(items):
        try:
            spec = PrefectureSpec.model_validate(item)
        except ValidationError as error:
            e = error.errors()[0]
            where = f"prefectures[{i}]." + ".".join(str(p) for p in e["loc"])
            raise _problem(
                f"{where}: {e['msg']}", f"都道府県 {i + 1} 件目の書き方が正しくありません（{where}）", where
            ) from None
        seen: dict[str, str] = {}
        for region in spec.regions:
            for code in region.municipalities:
                where = f"prefectures[{i}].regions.{region.name}.{code}"
                if len(code) != 6 or not code.isdigit() or not code.startswith(spec.code):
                    raise _problem(
                        f"{where}: a municipality code is 6 digits starting with the prefecture's",
                        f"市町村コード「{code}」は{spec.code}で始まる6桁の数字で書いてください",
                        where,
                    )
                if code in seen:
                    raise _problem(
                        f"{where}: in two regions",
                        f"市町村コード「{code}」が2つの圏域（{seen[code]}）にあります",
                        where,
                    )
                seen[code] = region.name
        out.append(spec.model_dump())
    return out


@dataclass
class RegionLoadResult:
    recorded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def load_regions(store: HubStore, prefectures: list[dict[str, Any]]) -> RegionLoadResult:
    """Record each prefecture of the file whose entry differs from the kept one."""

    def once() -> RegionLoadResult:
        registry = store.get_or_none(RegionRegistry.create_id()) or RegionRegistry()
        result = RegionLoadResult()
        for prefecture in prefectures:
            if registry.prefectures.get(prefecture["code"]) == prefecture:
                result.unchanged.append(prefecture["code"])
            else:
                registry.record(prefecture=prefecture)
                result.recorded.append(prefecture["code"])
        if result.recorded:
            store.save(registry)
        return result

    return retry_conflicts(once)


def regions(store: HubStore) -> Regions:
    """The regions as kept now (empty when none were loaded)."""
    registry = store.get_or_none(RegionRegistry.create_id())
    if registry is None:
        return Regions()
    names, municipalities, region_of, per_prefecture = {}, {}, {}, {}
    for code, prefecture in registry.prefectures.items():
        names[code] = prefecture["name"]
        per_prefecture[code] = [r["name"] for r in prefecture["regions"]]
        for region in prefecture["regions"]:
            for municipality, name in region["municipalities"].items():
                municipalities[municipality] = name
                region_of[municipality] = region["name"]
    return Regions(names, municipalities, region_of, per_prefecture)
