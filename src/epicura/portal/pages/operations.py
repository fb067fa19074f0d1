"""The audit log (filtered by actor, action and time) and background jobs (failed and dead ones,
and putting one back in the queue)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from epicura.admin import audit_router, jobs_router
from epicura.kit import jobs
from epicura.kit.pagination import decode_time_id, encode_time_id
from epicura.kit.runtime import ClientIp, DbSession, RuntimeDep
from epicura.portal.access import CurrentPortal
from epicura.portal.pages.common import PAGE_SIZE, back, kept, notice
from epicura.portal.web import render

router = APIRouter()
ACTION = r"^[a-z0-9_.]*$"
UUID_OR_EMPTY = r"^([0-9a-fA-F]{8}(-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12})?$"


@router.get("/audit", include_in_schema=False)
async def audit_log(
    request: Request, portal: CurrentPortal, session: DbSession,
    actor: Annotated[str, Query(max_length=36, pattern=UUID_OR_EMPTY)] = "",
    action: Annotated[str, Query(max_length=64, pattern=ACTION)] = "",
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> HTMLResponse:
    actor_id = uuid.UUID(actor) if actor else None
    page = await audit_router.audit_page(session, actor=actor_id, action=action or None,
                                         start=from_, end=to, cursor=cursor, limit=PAGE_SIZE)
    return render(request, "audit.html", {
        "events": page.items, "next_cursor": page.next_cursor,
        "f": {"actor": actor, "action": action,
              "from": from_.strftime("%Y-%m-%dT%H:%M") if from_ else "",
              "to": to.strftime("%Y-%m-%dT%H:%M") if to else ""},
        "query": kept(actor=actor, action=action, **{"from": from_.isoformat() if from_
                                                     else None},
                      to=to.isoformat() if to else None)})


@router.get("/jobs", include_in_schema=False)
async def job_list(
    request: Request, portal: CurrentPortal, session: DbSession,
    state: Literal["failed", "dead", "queued", "running", "succeeded"] = "dead",
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    done: str | None = None,
) -> HTMLResponse:
    rows = await jobs.listing(session, state=state, after=decode_time_id(cursor),
                              limit=PAGE_SIZE + 1)
    last = rows[PAGE_SIZE - 1] if len(rows) > PAGE_SIZE else None
    return render(request, "jobs.html", {
        "jobs": rows[:PAGE_SIZE], "state": state, "query": kept(state=state),
        "notice": notice(done),
        "next_cursor": encode_time_id(last.created_at, last.id) if last else None})


@router.post("/jobs/{job_id}/retry", include_in_schema=False)
async def retry(job_id: uuid.UUID, portal: CurrentPortal, rt: RuntimeDep, session: DbSession,
                ip: ClientIp) -> RedirectResponse:
    """As `POST /admin/jobs/{id}/retry` (same checks, audit record and wake-up)."""
    await jobs_router.retry_job(job_id, portal.admin, rt, session, ip)
    return back("/jobs", "retried")
