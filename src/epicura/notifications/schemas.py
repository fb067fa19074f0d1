"""Request and response bodies of push tokens, preferences and the inbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
)

from epicura.kit.timezones import TimeZone
from epicura.notifications import rules

# FCM registration tokens are ~160 characters of base64url with a colon; APNs device tokens are
# hex (64 characters today; Apple says the length may grow, so up to 200). The document states
# both patterns, so a client sees what is accepted per platform.
FCM_TOKEN = r"^[A-Za-z0-9_:\-.]{20,1024}$"
APNS_TOKEN = r"^[0-9a-fA-F]{64,200}$"

Locale = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$")]
AppVersion = Annotated[str, StringConstraints(min_length=1, max_length=32,
                                              pattern=r"^[0-9A-Za-z.+\-_ ()]+$")]
QuietTime = Annotated[str, StringConstraints(pattern=rules.QUIET_TIME_PATTERN)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _TokenIn(Strict):
    app_version: AppVersion | None = None
    locale: Locale | None = None


class FcmTokenIn(_TokenIn):
    platform: Literal["fcm"]
    token: Annotated[str, StringConstraints(min_length=20, max_length=1024, pattern=FCM_TOKEN)]


class ApnsTokenIn(_TokenIn):
    platform: Literal["apns"]
    token: Annotated[str, StringConstraints(min_length=64, max_length=200, pattern=APNS_TOKEN)]

    @field_validator("token")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()  # one spelling per device


PushTokenIn = Annotated[FcmTokenIn | ApnsTokenIn, Field(discriminator="platform")]


class PushTokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    platform: str
    app_version: str | None
    locale: str | None
    created_at: datetime
    last_seen_at: datetime


class QuietHoursIn(Strict):
    """Start and end the same is an empty window: no quiet hours."""

    start: QuietTime = Field(examples=["22:00"])
    end: QuietTime = Field(examples=["07:00"])
    timezone: TimeZone | None = Field(default=None, description="Default: the user's time zone")


class QuietHoursOut(BaseModel):
    start: str
    end: str
    timezone: str


class Categories(Strict):
    """On/off per category; `security` is always on (it cannot be turned off)."""

    cooking: StrictBool = True
    alerts: StrictBool = True
    appliance: StrictBool = True
    firmware: StrictBool = True
    security: Literal[True] = True


class PreferencesIn(Strict):
    categories: Categories = Field(default_factory=Categories)
    quiet_hours: QuietHoursIn | None = None


class PreferencesOut(BaseModel):
    categories: Categories
    quiet_hours: QuietHoursOut | None
    note: str = ("Safety alerts (overheating, lid open while running, motor stalled, any critical "
                 "alert) and security events ignore quiet hours and opt-outs.")


class NotificationOut(BaseModel):
    """An inbox item; also the data of the `notification` WebSocket event."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    category: str
    urgent: bool
    title: str
    body: str
    data: dict[str, Any] = Field(validation_alias="params")
    created_at: datetime
    read_at: datetime | None
