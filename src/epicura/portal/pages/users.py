"""Users: search, view, change role, enable or disable, end their sessions (auth.service)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from epicura.auth import service as auth_service
from epicura.kit.pagination import decode_time_id, encode_time_id
from epicura.kit.runtime import ClientIp, DbSession, RuntimeDep
from epicura.portal.access import CurrentPortal
from epicura.portal.pages.common import PAGE_SIZE, PLAIN_TEXT, back, kept, notice
from epicura.portal.web import render

router = APIRouter(prefix="/users")


@router.get("", include_in_schema=False)
async def users(
    request: Request, portal: CurrentPortal, session: DbSession,
    q: Annotated[str | None, Query(max_length=100, pattern=PLAIN_TEXT)] = None,
    role: Literal["user", "admin", ""] = "",
    active: Literal["true", "false", ""] = "",
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> HTMLResponse:
    rows = await auth_service.search_users(
        session, q=q or None, role=role or None,
        active=None if not active else active == "true", after=decode_time_id(cursor),
        limit=PAGE_SIZE + 1)
    last = rows[PAGE_SIZE - 1] if len(rows) > PAGE_SIZE else None
    return render(request, "users.html", {
        "users": rows[:PAGE_SIZE], "q": q or "", "role": role, "active": active,
        "query": kept(q=q, role=role, active=active),
        "next_cursor": encode_time_id(last.created_at, last.id) if last else None})


@router.get("/{user_id}", include_in_schema=False)
async def user(request: Request, user_id: uuid.UUID, portal: CurrentPortal,
               session: DbSession, done: str | None = None) -> HTMLResponse:
    found = await auth_service.get_user(session, user_id)
    login_sessions = await auth_service.list_sessions(session, user_id)
    return render(request, "user.html", {"user": found, "login_sessions": login_sessions,
                                         "notice": notice(done)})


@router.post("/{user_id}/role", include_in_schema=False)
async def change_role(user_id: uuid.UUID, portal: CurrentPortal, rt: RuntimeDep,
                      session: DbSession, ip: ClientIp,
                      role: Annotated[Literal["user", "admin"], Form()]) -> RedirectResponse:
    await auth_service.admin_update_user(rt, session, portal.admin, user_id, role, None, ip)
    return back(f"/users/{user_id}", "role")


@router.post("/{user_id}/active", include_in_schema=False)
async def set_active(user_id: uuid.UUID, portal: CurrentPortal, rt: RuntimeDep,
                     session: DbSession, ip: ClientIp,
                     active: Annotated[bool, Form()]) -> RedirectResponse:
    await auth_service.admin_update_user(rt, session, portal.admin, user_id, None, active, ip)
    return back(f"/users/{user_id}", "enabled" if active else "disabled")


@router.post("/{user_id}/revoke-sessions", include_in_schema=False)
async def revoke_sessions(user_id: uuid.UUID, portal: CurrentPortal, rt: RuntimeDep,
                          session: DbSession, ip: ClientIp) -> RedirectResponse:
    await auth_service.get_user(session, user_id)
    await auth_service.end_all_sessions(rt, session, user_id, "revoked_by_admin",
                                        actor_id=portal.admin.id, ip=ip)
    return back(f"/users/{user_id}", "revoked")
