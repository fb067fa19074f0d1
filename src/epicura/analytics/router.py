"""`/admin/analytics/*` (admin only): fleet aggregates computed in SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from epicura.analytics import service
from epicura.analytics.schemas import (
    Metric,
    Overview,
    SessionAnalytics,
    SessionGroupBy,
    TelemetryAnalytics,
    TelemetryGroupBy,
)
from epicura.auth.access import NotAuthenticated, current_admin
from epicura.auth.router import json_only
from epicura.kit.errors import Forbidden, ValidationFailed, responses
from epicura.kit.runtime import DbSession

router = APIRouter(prefix="/admin/analytics", tags=["admin"],
                   dependencies=[Depends(current_admin), Depends(json_only)])
ADMIN_ERRORS = (NotAuthenticated, Forbidden)
From = Annotated[datetime | None, Query(alias="from")]


@router.get("/overview", response_model=Overview, responses=responses(*ADMIN_ERRORS))
async def overview(session: DbSession) -> Overview:
    """Users, appliances, online now, sessions today and over 7 days, telemetry ingest rate,
    failed and dead jobs, open alerts."""
    return await service.overview(session)


@router.get("/sessions", response_model=SessionAnalytics, response_model_by_alias=True,
            responses=responses(*ADMIN_ERRORS, ValidationFailed))
async def sessions(session: DbSession, from_: From = None, to: datetime | None = None,
                   group_by: SessionGroupBy = "day") -> SessionAnalytics:
    """Cooking sessions created in [from, to) (default the last 30 days, at most 400), per
    day (every day listed, zeros included), recipe, firmware (the appliance's current one) or
    status; at most 100 groups, largest first."""
    return await service.sessions(session, group_by, from_, to)


@router.get("/telemetry", response_model=TelemetryAnalytics, response_model_by_alias=True,
            responses=responses(*ADMIN_ERRORS, ValidationFailed))
async def telemetry(session: DbSession, metric: Metric, from_: From = None,
                    to: datetime | None = None,
                    group_by: TelemetryGroupBy = "firmware") -> TelemetryAnalytics:
    """One metric from the hourly rollups over [from, to): min, max, sample-weighted mean,
    samples and appliances per firmware version or model."""
    return await service.telemetry(session, metric, group_by, from_, to)
