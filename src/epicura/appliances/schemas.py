"""Request and response bodies of the appliances module: user side, Device API and admin."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from epicura.kit.timezones import TimeZone

# Text that is stored has no control characters (PostgreSQL refuses NUL outright).
PLAIN_TEXT = r"^[^\x00-\x1f\x7f]*$"
NAME_TEXT = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
# Serials are stored upper-case; model and hardware revision form the capability profile key
# `model/hw_revision`, so they follow its pattern.
SERIAL_PATTERN = r"^[A-Z0-9][A-Z0-9._-]{2,63}$"
PROFILE_PART_PATTERN = r"^[a-z0-9][a-z0-9-]{0,39}$"
FIRMWARE_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,39}$"
MIN_FACTORY_SECRET, MAX_FACTORY_SECRET = 16, 256
Channel = Literal["stable", "beta", "dev"]

Serial = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=PLAIN_TEXT)]
FactorySecret = Annotated[str, StringConstraints(min_length=MIN_FACTORY_SECRET,
                                                 max_length=MAX_FACTORY_SECRET)]
ProfilePart = Annotated[str, StringConstraints(max_length=40, pattern=PROFILE_PART_PATTERN)]
FirmwareVersion = Annotated[str, StringConstraints(max_length=40, pattern=FIRMWARE_PATTERN)]
ApplianceName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                 max_length=80, pattern=NAME_TEXT)]


class Strict(BaseModel):
    """Request bodies refuse unknown fields: nobody sets `owner_id` by adding it."""

    model_config = ConfigDict(extra="forbid")


# --- admin import ----------------------------------------------------------------------------

class ImportRow(Strict):
    """One factory row (the CSV header names the same columns)."""

    serial: str = Field(examples=["EPC1-000123"])
    model: str = Field(examples=["epicura-1"])
    hw_revision: str = Field(examples=["rev-a"])
    factory_secret: str = Field(min_length=MIN_FACTORY_SECRET, max_length=MAX_FACTORY_SECRET)


class ImportRowResult(BaseModel):
    row: int = Field(description="1-based position in the upload (the CSV header not counted)")
    serial: str | None
    result: Literal["created", "skipped", "invalid"]
    reason: str | None = None
    id: uuid.UUID | None = Field(default=None, description="The appliance's id when created")


class ImportResult(BaseModel):
    created: int
    skipped: int
    invalid: int
    rows: list[ImportRowResult]


# --- device API ------------------------------------------------------------------------------

class ProvisionRequest(Strict):
    serial: Serial
    factory_secret: Annotated[str, StringConstraints(min_length=1, max_length=MAX_FACTORY_SECRET)]
    model: Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=PLAIN_TEXT)]
    hw_revision: Annotated[str, StringConstraints(min_length=1, max_length=40,
                                                  pattern=PLAIN_TEXT)]
    firmware_version: FirmwareVersion


class MqttAccess(BaseModel):
    host: str
    port: int
    username: str
    client_id: str


class Provisioned(BaseModel):
    device_id: uuid.UUID
    device_secret: str = Field(description="256 random bits; shown once, stored hashed")
    mqtt: MqttAccess | None = Field(
        description="Where to connect; null when the service runs without a broker (HTTPS only)")


class DeviceTokenRequest(Strict):
    device_id: Annotated[str, StringConstraints(max_length=64)]
    device_secret: Annotated[str, StringConstraints(max_length=128)]


class DeviceToken(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int


class ClaimCodeOut(BaseModel):
    code: str = Field(description="8 characters (Crockford base32, 40 bits), single use")
    qr_payload: str = Field(examples=["epicura://claim/7K3QX9MZ"])
    expires_at: datetime


# --- user side -------------------------------------------------------------------------------

Locale = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$")]
ClockTime = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class OtaWindow(Strict):
    """Local hours in which the appliance may install updates (may wrap past midnight)."""

    start: ClockTime = Field(examples=["02:00"])
    end: ClockTime = Field(examples=["05:00"])


class ApplianceSettings(Strict):
    """Desired config; each field given replaces the stored one, `null` removes it."""

    units: Literal["metric", "imperial"] | None = None
    locale: Locale | None = None
    timezone: TimeZone | None = None
    sounds: bool | None = None
    allow_remote_pause: bool | None = None
    ota_window: OtaWindow | None = None


class ApplianceUpdate(Strict):
    name: ApplianceName | None = None
    channel: Channel | None = None
    settings: ApplianceSettings | None = None


class ClaimRequest(Strict):
    claim_code: Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=PLAIN_TEXT)]
    name: ApplianceName | None = None


class ApplianceOut(BaseModel):
    id: uuid.UUID
    serial: str
    name: str | None
    model: str
    hw_revision: str
    firmware_version: str | None
    channel: Channel
    online: bool
    last_seen_at: datetime | None
    state: dict[str, Any] | None = Field(description="The last state the appliance reported")
    current_session_id: uuid.UUID | None
    paired_at: datetime | None
    settings: dict[str, Any] = Field(description="Desired config sent to the appliance")
    config_version: int


class AdminApplianceOut(BaseModel):
    id: uuid.UUID
    serial: str
    model: str
    hw_revision: str
    lifecycle: Literal["imported", "provisioned", "decommissioned"]
    firmware_version: str | None
    channel: Channel
    online: bool
    last_seen_at: datetime | None
    owner_id: uuid.UUID | None
    name: str | None
    paired_at: datetime | None
    provisioned_at: datetime | None
    decommissioned_at: datetime | None
    created_at: datetime


class AdminApplianceDetail(AdminApplianceOut):
    state: dict[str, Any] | None
    settings: dict[str, Any]
    config_version: int
    current_session_id: uuid.UUID | None


class DesiredConfig(BaseModel):
    version: int
    settings: dict[str, Any]
    paired: bool = Field(description="Whether a user owns the appliance (false: wipe user data)")


# --- commands and alerts ---------------------------------------------------------------------

class CommandRequest(Strict):
    name: Annotated[str, StringConstraints(max_length=40)] = Field(
        description="session.prepare, session.pause, session.abort, identify, sync.now, "
        "ota.check, config.reload or unpair; nothing else (nothing that heats or turns the "
        "blades)")
    args: dict[str, Any] | None = None


class CommandAccepted(BaseModel):
    request_id: uuid.UUID
    status: Literal["sent"]
    expires_at: datetime


class CommandOut(BaseModel):
    request_id: uuid.UUID
    name: str
    args: dict[str, Any]
    status: Literal["sent", "accepted", "rejected", "done", "failed", "expired"]
    reason: str | None
    created_at: datetime
    expires_at: datetime
    updated_at: datetime


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    alert_id: str
    code: str
    severity: str
    state: Literal["raised", "cleared"]
    session_id: uuid.UUID | None
    data: dict[str, Any] | None
    raised_at: datetime
    cleared_at: datetime | None


def normalise_serial(value: str) -> str:
    return value.strip().upper()


def valid_serial(value: str) -> bool:
    return re.fullmatch(SERIAL_PATTERN, value) is not None
