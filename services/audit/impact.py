"""Policy impact: the settings a report may change, validated, and how one read's decision differs when replayed
under them (``Auditing.policy_impact`` replays the period; ``services.audit.replay`` replays one record)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from consent.model import SETTING_RANGES, ReadDecision, Settings
from events.envelope import ja_for
from events.model import Org
from events.problems import Problem, Rejected
from events.store import ChildRecord
from services.audit.models import ChangedRead, DecisionSummary, EventChange
from services.audit.queries import counts, reader_ref


def _settings_model() -> type[BaseModel]:
    """The settings an impact report may change: every field of ``consent.model.Settings``, all optional; numbers
    within their range in ``consent.model.SETTING_RANGES`` (the same as ``tsunagu settings set``)."""
    defaults = Settings()
    spec: dict[str, Any] = {}
    for f in fields(Settings):
        kind = type(getattr(defaults, f.name))
        spec[f.name] = (
            (bool | None, None)
            if kind is bool
            else (int | None, Field(default=None, ge=SETTING_RANGES[f.name][0], le=SETTING_RANGES[f.name][1]))
            if kind is int
            else (kind | None, None)
        )
    return create_model("SettingsChanges", __config__=ConfigDict(extra="forbid", strict=True), **spec)


SettingsChanges = _settings_model()
"""Settings to change for a policy impact report (``consent.model.Settings``; unknown names are refused)."""


def settings_changes(
    raw: Mapping[str, Any] | None, field: str = "settings", *, required: bool = True
) -> dict[str, Any]:
    """Validated changes (``Rejected`` naming ``settings.NAME``); at least one is required unless ``required`` is
    false (an impact report that changes the policy version instead)."""
    try:
        model = SettingsChanges.model_validate(dict(raw or {}))
    except ValidationError as error:
        problems = []
        for e in error.errors():
            name = ".".join([field, *(str(p) for p in e["loc"])])
            ja = "この設定はありません" if e["type"] == "extra_forbidden" else ja_for(e)
            problems.append(Problem("invalid_settings", f"{name}: {e['msg']}", f"{name}: {ja}", name))
        raise Rejected(problems) from None
    changes = model.model_dump(exclude_none=True)
    if not changes and required:
        raise Rejected(
            [
                Problem(
                    "no_settings",
                    "name at least one setting to change",
                    f"変更する設定を1つ以上指定してください（{', '.join(f.name for f in fields(Settings))}）",
                    field,
                )
            ]
        )
    return changes


def changed_read(
    record: Mapping[str, Any],
    child: ChildRecord | None,
    before: ReadDecision,
    after: ReadDecision,
    orgs: Mapping[str, Org],
) -> ChangedRead:
    """The read of ``record`` as it was decided (``before``) and as it would be (``after``): every event shown
    otherwise, the counts of both, and a one-line summary."""
    kinds = {e.id: e.kind for e in (child.entries if child is not None else [])}
    was = {d.event: d for d in before.events}
    now = {d.event: d for d in after.events}
    events = []
    for event_id in list(was) + [e for e in now if e not in was]:
        a, b = was.get(event_id), now.get(event_id)
        pair = [(d.rule if d.allowed else None, list(d.redacted)) if d else (None, []) for d in (a, b)]
        if pair[0] != pair[1]:
            events.append(
                EventChange(
                    event=event_id,
                    kind=kinds.get(event_id),
                    before=pair[0][0],
                    after=pair[1][0],
                    redacted_before=pair[0][1],
                    redacted_after=pair[1][1],
                )
            )
    summaries = []
    for d in (before, after):
        rules, shown, _, _ = counts(ReadDecision.to_dict(d))
        summaries.append(DecisionSummary(allowed=d.allowed, reason=d.reason, shown=shown, rules=rules))
    gained = sum(1 for e in events if e.before is None and e.after is not None)
    lost = sum(1 for e in events if e.before is not None and e.after is None)
    other = len(events) - gained - lost
    parts = [
        f"{gained} more shown" if gained else "",
        f"{lost} no longer shown" if lost else "",
        f"{other} shown under another rule or redaction" if other else "",
    ]
    if before.allowed != after.allowed or before.reason != after.reason:
        parts.insert(0, f"{before.reason} -> {after.reason}")
    return ChangedRead(
        record=record["id"],
        child=record["child"],
        t=record["t"],
        reader=reader_ref(record, orgs),
        purpose=record["purpose"],
        before=summaries[0],
        after=summaries[1],
        events=events,
        summary=", ".join(p for p in parts if p),
    )
