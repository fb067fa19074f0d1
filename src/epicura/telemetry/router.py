"""HTTP layer of `/telemetry/*`."""

from __future__ import annotations

import uuid
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Response

from epicura.auth.access import CurrentUser, NotAuthenticated
from epicura.kit.errors import RateLimited, responses
from epicura.kit.runtime import DbSession
from epicura.telemetry import service
from epicura.telemetry.repository import epoch_ms
from epicura.telemetry.schemas import LatestSample, Resolution, TelemetrySeries

router = APIRouter(prefix="/telemetry", tags=["telemetry"])
JSON = "application/json"

SERIES_DESCRIPTION = """
A time series of one appliance's telemetry (its owner or an admin; anyone else gets 404).

`from` and `to` are RFC 3339 times with an offset or epoch milliseconds; they default to the
last hour. The span is at most 731 days. `t` in every point is **epoch milliseconds**.

`resolution` defaults by span: up to 1 hour `raw`, up to 7 days `1m`, beyond `1h`. A
resolution too fine for the span (raw beyond 10,000 s, 1m beyond 7 days) is replaced by the
next coarser one. At most 10,000 points per metric: rollup buckets are merged (`bucket_s`
says the width of each point) and raw samples beyond 10,000 are thinned to every k-th.
Rollups lag raw by about a minute.

`metrics` is a comma list (default: all) of `bowl_temp_c`, `target_temp_c`, `speed`,
`weight_g`, `heater_w`, `motor_rpm`, `direction`, `lid`.
"""


@router.get(
    "/{appliance_id}",
    response_model=TelemetrySeries,
    description=SERIES_DESCRIPTION,
    responses=responses(NotAuthenticated, service.ApplianceNotFound,
                        service.InvalidTelemetryQuery, RateLimited),
)
async def get_series(
    appliance_id: uuid.UUID,
    user: CurrentUser,
    session: DbSession,
    start: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=40)] = None,
    resolution: Resolution | None = None,
    metrics: Annotated[str | None, Query(max_length=300)] = None,
) -> Response:
    """Telemetry of an appliance over a time range."""
    found = await service.series(session, user, appliance_id, start=start, end=end,
                                 resolution=resolution, metrics=metrics)
    head = orjson.dumps({
        "appliance_id": str(found.appliance_id), "resolution": found.resolution,
        "bucket_s": found.bucket_s, "from": found.start_ms, "to": found.end_ms,
    })
    body = head[:-1] + b',"metrics":' + found.metrics_json + b"}"
    return Response(body, media_type=JSON, headers={"Cache-Control": "private, no-cache"})


@router.get(
    "/{appliance_id}/latest",
    response_model=LatestSample,
    responses=responses(NotAuthenticated, service.ApplianceNotFound, service.NoTelemetry,
                        RateLimited),
)
async def get_latest(appliance_id: uuid.UUID, user: CurrentUser, session: DbSession
                     ) -> LatestSample:
    """The newest sample the appliance sent (404 `no_telemetry` before the first)."""
    found = await service.latest(session, user, appliance_id)
    return LatestSample(appliance_id=found.appliance_id, t=epoch_ms(found.t),
                        session_id=found.session_id, sample=found.sample)
