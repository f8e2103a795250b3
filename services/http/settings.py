"""HTTP routes for the deployment's policy settings (設定), kept in the store with their history
(``services.administration.settings``). Both need a token with the ``admin`` scope (403 ``insufficient_scope`` otherwise).

- ``GET /v1/settings``: the settings in force, who set each and when, and the history of changes.
- ``PUT /v1/settings/{name}`` with ``{"value": ...}``: change one setting, recorded as made by the token's person
  (``sub``) acting for its organisation; in force in every process of the hub within seconds. An unknown name or
  a bad value is 422 naming ``name`` or ``value``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from consent.model import InvalidSetting, Settings
from services.administration.settings import SETTING_NAMES, settings_report
from services.http.deps import AdminDep, ApiError, HubDep, error_responses

router = APIRouter(prefix="/v1/settings", tags=["settings"])


class SettingsValues(BaseModel):
    """The policy's settings (policy.md, "Settings")."""

    integrated_center: bool = Field(
        description="The centre's 児童福祉 and 母子保健 functions read each other's records (一体的支援)."
    )
    joint_ledger: bool = Field(description="The 共同管理台帳 with the 児童相談所 (rule LEDGER).")
    emergency_hours: int = Field(description="Length of an emergency window, in hours (1-168).")
    monthly_report_due_day: int = Field(description="Day of the next month by which a monthly report is due (1-28).")


class SetBy(BaseModel):
    by: str = Field(
        description="Who set the value: a person or organisation id; 'system' for the store's first "
        "values and for settings a program stated."
    )
    org: str | None = Field(default=None, description="The organisation the person acted for, when known.")
    at: str = Field(description="When (ISO 8601).")


class SettingChange(BaseModel):
    name: str
    old: bool | int | None = Field(description="The value before; null for a store's first value.")
    new: bool | int
    by: str
    org: str | None = None
    at: str


class SettingsOut(BaseModel):
    settings: SettingsValues
    set_by: dict[str, SetBy | None] = Field(
        description="Per setting, the change that set its current value (null: the policy's default, never recorded)."
    )
    history: list[SettingChange] = Field(description="Every change, oldest first.")


class SettingValueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Annotated[
        Any,
        Field(
            description="true or false for integrated_center and joint_ledger; an integer "
            "for emergency_hours (1-168) and monthly_report_due_day (1-28).",
            json_schema_extra={"anyOf": [{"type": "boolean"}, {"type": "integer"}]},
        ),
    ]


class SettingChanged(BaseModel):
    changed: bool = Field(description="False when the setting already had this value (nothing was recorded).")
    settings: SettingsOut


SettingName = Annotated[str, Path(min_length=1, max_length=100, description=f"One of {', '.join(SETTING_NAMES)}.")]


@router.get(
    "",
    response_model=SettingsOut,
    responses=error_responses(401, 403),
    summary="The settings in force, with their history (設定)",
)
def read_settings(admin: AdminDep, hub: HubDep) -> SettingsOut:
    """The policy settings every process of the hub decides under, who set each and when, and every change."""
    return SettingsOut(**settings_report(hub.store))


@router.put(
    "/{name}",
    response_model=SettingChanged,
    responses=error_responses(401, 403, 422),
    summary="Change one setting (設定の変更)",
)
async def change_setting(name: SettingName, body: SettingValueIn, admin: AdminDep, hub: HubDep) -> SettingChanged:
    """Change one setting for the whole deployment, recorded with who (the token's person and organisation) and
    when. Every process of the hub decides under the new value within seconds; each access record keeps the
    settings its read was decided under."""
    if name not in SETTING_NAMES:
        raise ApiError(
            422,
            "unknown_setting",
            f"unknown setting {name!r}; one of {', '.join(SETTING_NAMES)}",
            f"「{name}」という設定はありません（{'、'.join(SETTING_NAMES)} のいずれかです）",
            field="name",
        )
    try:
        Settings.checked({name: body.value})
        made = await run_in_threadpool(
            lambda: hub.settings_source.change({name: body.value}, by=admin.user, org=admin.org, at=hub.clock())
        )
    except InvalidSetting as error:
        raise ApiError(
            422, "invalid_setting", error.message, error.message_ja, field="value" if error.name == name else error.name
        ) from None
    report = await run_in_threadpool(settings_report, hub.store)  # a read of the store: not on the event loop
    return SettingChanged(changed=bool(made), settings=SettingsOut(**report))
