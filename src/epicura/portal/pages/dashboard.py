"""The dashboard: the fleet at a glance and sessions per day over 30 days."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from epicura.analytics import service as analytics
from epicura.kit.runtime import DbSession
from epicura.portal.access import CurrentPortal
from epicura.portal.web import render

router = APIRouter()


@router.get("/", include_in_schema=False)
async def dashboard(request: Request, portal: CurrentPortal, session: DbSession) -> HTMLResponse:
    overview = await analytics.overview(session)
    today = overview.at.replace(hour=0, minute=0, second=0, microsecond=0)
    per_day = await analytics.sessions(session, "day", today - timedelta(days=29), None)
    chart = {"title": "Sessions per day (30 days, today included)", "kind": "bars",
             "x": [item.key for item in per_day.items],
             "series": [{"label": "sessions", "values": [i.sessions for i in per_day.items]},
                        {"label": "completed", "values": [i.completed for i in per_day.items]}]}
    return render(request, "dashboard.html", {"overview": overview, "chart": chart})
