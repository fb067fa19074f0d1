"""API shapes of cooking sessions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

Status = Literal["planned", "running", "paused", "awaiting_user", "completed", "aborted",
                 "failed"]
ShownStatus = Literal["planned", "running", "paused", "awaiting_user", "stale", "completed",
                      "aborted", "failed"]
NOTES_MAX = 2000


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    appliance_id: uuid.UUID
    recipe_id: uuid.UUID
    recipe_version: Annotated[int, Field(ge=1, lt=2**31)] | None = Field(
        default=None, description="The version to cook; default the recipe's current one")
    servings: Annotated[int, Field(ge=1, le=100)] | None = Field(
        default=None, description="Default the version's servings")


class SessionUpdate(BaseModel):
    """Only the fields given change; `null` removes a rating or the notes."""

    model_config = ConfigDict(extra="forbid")

    rating: Annotated[int, Field(ge=1, le=5, strict=True)] | None = Field(
        default=None, description="1 to 5, once the session has ended (409 `session_not_finished`"
                                  " before)")
    notes: Annotated[str, StringConstraints(max_length=NOTES_MAX)] | None = None

    @field_validator("notes")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("text must not contain NUL characters")
        return value


class RecipeRef(BaseModel):
    id: uuid.UUID
    version: int
    title: str | None = Field(description="The pinned version's title")
    step_count: int | None


class SessionOut(BaseModel):
    id: uuid.UUID
    appliance_id: uuid.UUID
    recipe: RecipeRef
    servings: float | None
    origin: Literal["app", "device"]
    status: ShownStatus = Field(
        description="`stale` while a live session's appliance has been silent for 90 s")
    step_index: int | None
    step_title: str | None
    step_remaining_s: int | None = Field(description="Programmed seconds left in the current step")
    remaining_s: int | None = Field(description="Programmed seconds left in the whole program")
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: int | None
    last_event_at: datetime | None
    summary: dict[str, Any] | None = Field(
        description="Once ended: `duration_s`, `samples`, `peak_temp_c`, `mean_temp_c`, "
                    "`energy_wh` (heater energy) and `source` (`telemetry`, or `appliance` "
                    "when no telemetry arrived and the appliance's own figures are shown)")
    rating: int | None
    notes: str | None
    created_at: datetime
    updated_at: datetime


class SessionCommandAccepted(BaseModel):
    request_id: uuid.UUID


class SessionEventOut(BaseModel):
    seq: int
    type: str
    step_index: int | None
    data: dict[str, Any] | None
    device_ts: datetime | None
    received_at: datetime


class RecipeCount(BaseModel):
    recipe_id: uuid.UUID
    title: str | None
    sessions: int
    completed: int


class MonthCount(BaseModel):
    month: str = Field(description="`YYYY-MM` (UTC) of the sessions' start")
    sessions: int
    cooking_s: int


class SessionStats(BaseModel):
    by_status: dict[str, int]
    top_recipes: list[RecipeCount]
    total_cooking_s: int = Field(description="Sum of the ended sessions' durations")
    by_month: list[MonthCount]


class SessionTelemetry(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    session_id: uuid.UUID
    appliance_id: uuid.UUID
    resolution: Literal["raw", "1m", "1h"]
    bucket_s: int
    from_: int = Field(alias="from", description="Epoch milliseconds")
    to: int = Field(description="Epoch milliseconds (exclusive)")
    metrics: dict[str, list[list[float | int | str | None]]] = Field(
        description="As `GET /telemetry/{appliance_id}`")
