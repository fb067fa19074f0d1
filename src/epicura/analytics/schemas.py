"""Fleet analytics' replies."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

SessionGroupBy = Literal["day", "recipe", "firmware", "status"]
TelemetryGroupBy = Literal["firmware", "model"]
Metric = Literal["bowl_temp_c", "target_temp_c", "speed", "weight_g", "heater_w", "motor_rpm"]


class Overview(BaseModel):
    at: datetime
    users: int
    appliances: int
    online_now: int
    sessions_today: int
    sessions_7d: int
    ingest_rate_per_s: float = Field(description="telemetry samples received per second, "
                                                 "over the last minute")
    failed_jobs: int
    open_alerts: int


class SessionGroup(BaseModel):
    key: str | None = Field(description="the day (YYYY-MM-DD), recipe id, firmware version or "
                                        "status; null for sessions without one")
    label: str | None = Field(description="what to show for the key (a recipe's title)")
    sessions: int
    completed: int
    mean_duration_s: float | None


class SessionAnalytics(BaseModel):
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    group_by: SessionGroupBy
    items: list[SessionGroup]


class TelemetryGroup(BaseModel):
    key: str | None
    min: float | None
    max: float | None
    mean: float | None
    samples: int
    appliances: int


class TelemetryAnalytics(BaseModel):
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    metric: Metric
    group_by: TelemetryGroupBy
    items: list[TelemetryGroup]
