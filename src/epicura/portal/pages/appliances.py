"""Appliances: the fleet searched and filtered on the server; an appliance's detail with its
recent sessions, alerts and commands, decommissioning, and a live telemetry chart fed by the
WebSocket gateway with an access token of the admin's own portal session."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal, get_args

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from epicura.analytics.schemas import Metric
from epicura.appliances import service as appliances_service
from epicura.auth import service as auth_service
from epicura.kit.pagination import decode_time_id, encode_time_id
from epicura.kit.runtime import ClientIp, DbSession, RuntimeDep
from epicura.portal import repository
from epicura.portal.access import CurrentPortal, Portal
from epicura.portal.pages.common import PAGE_SIZE, PLAIN_TEXT, back, kept, notice
from epicura.portal.web import render

router = APIRouter()
FIRMWARE = r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,39}$|^$"
HW_REVISION = r"^[a-z0-9][a-z0-9-]{0,39}$|^$"
LIVE_METRICS = get_args(Metric)


@router.get("/appliances", include_in_schema=False)
async def appliances(
    request: Request, portal: CurrentPortal, session: DbSession,
    q: Annotated[str | None, Query(max_length=100, pattern=PLAIN_TEXT)] = None,
    online: Literal["true", "false", ""] = "",
    firmware: Annotated[str, Query(max_length=40, pattern=FIRMWARE)] = "",
    channel: Literal["stable", "beta", "dev", ""] = "",
    hw_revision: Annotated[str, Query(max_length=40, pattern=HW_REVISION)] = "",
    lifecycle: Literal["imported", "provisioned", "decommissioned", ""] = "",
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> HTMLResponse:
    where = appliances_service.FleetFilter(
        q=q or None, online=None if not online else online == "true",
        firmware=firmware or None, channel=channel or None, hw_revision=hw_revision or None,
        lifecycle=lifecycle or None)
    rows = await appliances_service.search_fleet(session, where, decode_time_id(cursor),
                                                 PAGE_SIZE + 1)
    last = rows[PAGE_SIZE - 1] if len(rows) > PAGE_SIZE else None
    return render(request, "appliances.html", {
        "appliances": [appliances_service.admin_view(row) for row in rows[:PAGE_SIZE]],
        "f": {"q": q or "", "online": online, "firmware": firmware, "channel": channel,
              "hw_revision": hw_revision, "lifecycle": lifecycle},
        "query": kept(q=q, online=online, firmware=firmware, channel=channel,
                      hw_revision=hw_revision, lifecycle=lifecycle),
        "next_cursor": encode_time_id(last.created_at, last.id) if last else None})


def live_token(rt: RuntimeDep, portal: Portal) -> dict[str, object]:
    """A short-lived access token of the admin's portal login session, for the page's socket:
    it ends with the portal session (sign-out or revocation)."""
    return {"token": auth_service.access_token_for(rt, portal.admin,
                                                   portal.session.login_session_id),
            "expires_in": rt.settings.access_token_ttl_s}


@router.get("/appliances/{appliance_id}", include_in_schema=False)
async def appliance(request: Request, appliance_id: uuid.UUID, portal: CurrentPortal,
                    rt: RuntimeDep, session: DbSession, done: str | None = None,
                    metric: Metric = "bowl_temp_c") -> HTMLResponse:
    found = await appliances_service.admin_get(session, appliance_id)
    alerts = await appliances_service.alerts(session, found, None, None, 10)
    live = {**live_token(rt, portal), "appliance_id": str(found.id), "metric": metric,
            "ws_path": "/api/v1/ws", "status_id": "live-status",
            "token_path": f"/admin/appliances/{found.id}/live-token"}
    return render(request, "appliance.html", {
        "a": appliances_service.admin_detail(found), "alerts": alerts,
        "sessions": await repository.recent_sessions(session, found.id),
        "commands": await repository.recent_commands(session, found.id),
        "live": live, "metrics": LIVE_METRICS, "notice": notice(done)})


@router.get("/appliances/{appliance_id}/live-token", include_in_schema=False)
async def refreshed_live_token(appliance_id: uuid.UUID, portal: CurrentPortal,
                               rt: RuntimeDep) -> JSONResponse:
    """A fresh token before the page's expires (read by the page's script: same origin only)."""
    return JSONResponse(live_token(rt, portal), headers={"Cache-Control": "no-store"})


@router.post("/appliances/{appliance_id}/decommission", include_in_schema=False)
async def decommission(appliance_id: uuid.UUID, portal: CurrentPortal, rt: RuntimeDep,
                       session: DbSession, ip: ClientIp) -> RedirectResponse:
    await appliances_service.decommission(rt, session, portal.admin, appliance_id, ip)
    return back(f"/appliances/{appliance_id}", "decommissioned")
