"""API shapes of telemetry replies (for the OpenAPI document; series bodies are built as JSON
text by the database and never pass through these models)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Resolution = Literal["raw", "1m", "1h"]
Point = list[float | int | str | None]


class TelemetrySeries(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    appliance_id: uuid.UUID
    resolution: Resolution = Field(description="The resolution served (coarser than asked when "
                                               "the span is too long for it)")
    bucket_s: int = Field(description="Width of each point's bucket in seconds: 0 for raw, else "
                                      "60 or 3600, or a multiple when buckets were merged to "
                                      "stay under 10,000 points")
    from_: int = Field(alias="from", description="Start of the range, epoch milliseconds")
    to: int = Field(description="End of the range (exclusive), epoch milliseconds")
    metrics: dict[str, list[Point]] = Field(
        description="Per metric, points in time order. Raw: `[t, value]`. Rollups: numeric "
                    "metrics `[t, min, mean, max]`, `direction` and `lid` `[t, last]`. `t` is "
                    "epoch milliseconds (a bucket's start for rollups). Times with no value "
                    "for a metric have no point."
    )


class LatestSample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    appliance_id: uuid.UUID
    t: int = Field(description="Time of the sample, epoch milliseconds")
    session_id: uuid.UUID | None
    sample: dict[str, Any] = Field(description="The sample as the appliance sent it")
