"""Organisations registered in the hub (機関登録), kept as events so the registry has a history.

An organisations file (YAML or JSON: a list of organisations, or a mapping with an ``orgs`` list; ``OrgSpec``) is
read by ``read_orgs_file``, compared with the registry by ``diff_orgs`` (what loading it would add and change,
field by field, against the registry's version), and loaded by ``load_orgs``, which, given the version the diff
was made against, refuses when the registry has changed since (``registry_moved``): what is applied is exactly
what was shown. Loading never removes an organisation (events and settings name them); the diff lists those the
file leaves out as kept. ``tsunagu orgs load`` and the administrator's page (``/ui/admin/orgs``) both use these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from events.labels import ORG_FIELD_JA, ORG_TYPE_JA
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


def _field_problem_ja(error: Any, item: Any) -> str:
    """What is wrong with one field of an organisation, in Japanese, naming the field by its Japanese name."""
    loc = [str(p) for p in error["loc"]]
    name = loc[0] if loc else ""
    field_ja = ORG_FIELD_JA.get(name, name)
    kind = error["type"]
    if not loc or kind == "model_type":
        return "項目と値の組（機関ID・種類・名称など）になっていません"
    if kind == "missing":
        return f"「{field_ja}」がありません"
    if kind == "extra_forbidden":
        return f"「{name}」という項目はありません（使える項目：{'、'.join(ORG_FIELD_JA.values())}）"
    if name == "type":
        value = item.get("type") if isinstance(item, dict) else None
        return f"種類「{value}」はありません（{'、'.join(f'{k}（{v}）' for k, v in ORG_TYPE_JA.items())}）"
    if name == "municipality":
        return "「市町村コード」は6桁の数字（全国地方公共団体コード）で書いてください"
    if name == "prefecture":
        return "「都道府県コード」は2桁の数字で書いてください"
    if name == "regime":
        return "「公立・私立」は public（公立）か private（私立）で書いてください"
    if kind == "string_too_short":
        return f"「{field_ja}」が空です"
    return f"「{field_ja}」の書き方が正しくありません"


def parse_orgs(items: Sequence[Any]) -> list[Org]:
    """The organisations of a file's list, checked; refused (``Rejected``) with every problem, each naming the row
    (機関 N 件目, with its id when it has one) and the field in Japanese. An id given twice is refused too."""
    orgs, problems = [], []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        given = item.get("id") if isinstance(item, dict) else None
        row = f"機関 {i + 1} 件目" + (f"（{given}）" if isinstance(given, str | int) and str(given) else "")
        try:
            org = Org.from_dict(OrgSpec.model_validate(item).model_dump(exclude_none=True))
        except ValidationError as error:
            for e in error.errors():
                where = ".".join(str(p) for p in e["loc"])
                problems.append(
                    Problem("invalid_org", f"orgs[{i}].{where}: {e['msg']}", f"{row}：{_field_problem_ja(e, item)}",
                            f"orgs[{i}].{where}")
                )  # fmt: skip
            continue
        if org.id in seen:
            problems.append(
                Problem(
                    "duplicate_org",
                    f"orgs[{i}].id: {org.id!r} is given twice (first in orgs[{seen[org.id]}])",
                    f"{row}：機関ID「{org.id}」は {seen[org.id] + 1} 件目と重複しています",
                    f"orgs[{i}].id",
                )
            )
            continue
        seen[org.id] = i
        orgs.append(org)
    if problems:
        raise Rejected(problems)
    return orgs


def read_orgs_file(data: bytes) -> list[Any]:
    """The list of organisations in an organisations file (UTF-8 YAML or JSON: a list, or a mapping with an
    ``orgs`` list); refused (``Rejected``, field ``file``) when it is not one."""

    def refused(message: str, message_ja: str) -> Rejected:
        return Rejected([Problem("invalid_orgs_file", message, message_ja, "file")])

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise refused("the file is not UTF-8 text", "ファイルが UTF-8 の文字データではありません") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f"{mark.line + 1} 行目付近で" if mark is not None else ""
        raise refused(f"not YAML or JSON: {error}", f"ファイルを読めません（{line}YAML・JSON の形式の誤り）") from None
    items = loaded.get("orgs") if isinstance(loaded, dict) else loaded
    if not isinstance(items, list):
        raise refused(
            "expected a list of organisations or a mapping with an 'orgs' list",
            "機関の一覧（リスト、または orgs の下のリスト）が見つかりません",
        )
    return items


@dataclass(frozen=True)
class FieldChange:
    """One field of an organisation whose value the file changes (``None``: not given)."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class OrgChange:
    """A registered organisation whose entry the file changes, field by field."""

    old: Org
    new: Org
    fields: list[FieldChange]


@dataclass(frozen=True)
class OrgDiff:
    """What loading a file would do to the registry at ``version``: the organisations it adds, those it changes,
    those it leaves as they are, and the registered ones it does not mention (kept: loading removes nothing)."""

    version: int
    added: list[Org]
    changed: list[OrgChange]
    unchanged: list[Org]
    not_in_file: list[Org]

    @property
    def changes_anything(self) -> bool:
        return bool(self.added or self.changed)


def _field_changes(old: Org, new: Org) -> list[FieldChange]:
    before, after = old.to_dict(), new.to_dict()
    return [
        FieldChange(name, before.get(name), after.get(name))
        for name in ORG_FIELD_JA
        if before.get(name) != after.get(name)
    ]


def diff_orgs(store: HubStore, items: Sequence[Any]) -> OrgDiff:
    """What ``load_orgs(store, items)`` would do now, against the registry's current version (refused, as
    ``load_orgs`` refuses, when the file has problems)."""
    orgs = parse_orgs(items)
    registry = store.registry()
    added, changed, unchanged = [], [], []
    for org in orgs:
        known = registry.orgs.get(org.id)
        if known is None:
            added.append(org)
        elif known != org:
            changed.append(OrgChange(known, org, _field_changes(known, org)))
        else:
            unchanged.append(org)
    named = {o.id for o in orgs}
    not_in_file = [o for o in registry.orgs.values() if o.id not in named]
    return OrgDiff(registry.version, added, changed, unchanged, not_in_file)


REGISTRY_MOVED_JA = "確認した後に機関の登録が変更されたため、読み込みませんでした。もう一度ファイルを読み込み、新しい差分を確認してください"


def load_orgs(store: HubStore, items: Sequence[Any], *, by: str, expected_version: int | None = None) -> OrgLoadResult:
    """Register new organisations and record changes to known ones, each change with who made it (``by``: the
    administrator signed in, the login name of whoever ran the command, ``system`` for the demo and scenarios);
    the same file twice changes nothing.

    With ``expected_version`` (the ``OrgDiff.version`` that was shown), refused (``registry_moved``, nothing
    applied) when the registry is no longer at that version: what is applied is exactly the diff shown."""
    orgs = parse_orgs(items)

    def load_once() -> OrgLoadResult:  # tried again (events.retry) when another load changed the registry first
        registry = store.get_or_none(REGISTRY_ID) or OrgRegistry()
        if expected_version is not None and registry.version != expected_version:
            raise Rejected(
                [
                    Problem(
                        "registry_moved",
                        f"the registry is at version {registry.version}, not {expected_version}: "
                        "compare the file again",
                        REGISTRY_MOVED_JA,
                        "version",
                    )
                ]
            )
        result = OrgLoadResult()
        for org in orgs:
            known = registry.current.orgs.get(org.id)
            if known is None:
                registry.register(org=org.to_dict(), by=by)
                result.registered.append(org.id)
            elif known != org:
                registry.update(org=org.to_dict(), by=by)
                result.updated.append(org.id)
            else:
                result.unchanged.append(org.id)
        store.save(registry)
        return result

    return retry_conflicts(load_once)
