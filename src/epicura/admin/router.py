"""`/admin/*` HTTP layer (admin role only; 403 for others)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response

from epicura.auth import service as auth_service
from epicura.auth.access import CurrentAdmin, NotAuthenticated, current_admin
from epicura.auth.router import json_only
from epicura.auth.schemas import PLAIN_TEXT, AdminUserUpdate, UserOut
from epicura.kit.errors import Forbidden, NotFound, responses
from epicura.kit.pagination import InvalidCursor, Page, decode_cursor, encode_cursor
from epicura.kit.runtime import ClientIp, DbSession, RuntimeDep

router = APIRouter(
    prefix="/admin", tags=["admin"], dependencies=[Depends(current_admin), Depends(json_only)]
)
ADMIN_ERRORS = (NotAuthenticated, Forbidden)


@router.get("/users", response_model=Page[UserOut],
            responses=responses(*ADMIN_ERRORS, InvalidCursor))
async def list_users(
    session: DbSession,
    q: Annotated[str | None, Query(max_length=100, pattern=PLAIN_TEXT)] = None,
    role: Literal["user", "admin"] | None = None,
    active: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[UserOut]:
    """Users, newest first; `q` matches e-mail or display name."""
    position = decode_cursor(cursor)
    after = None
    if position is not None:
        try:
            after = (datetime.fromisoformat(position["c"]), uuid.UUID(position["i"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidCursor() from exc
    rows = await auth_service.search_users(session, q=q, role=role, active=active,
                                           after=after, limit=limit + 1)
    items = [UserOut.model_validate(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor({"c": last.created_at.isoformat(), "i": str(last.id)})
    return Page[UserOut](items=items, next_cursor=next_cursor)


@router.get("/users/{user_id}", response_model=UserOut,
            responses=responses(*ADMIN_ERRORS, NotFound))
async def get_user(user_id: uuid.UUID, session: DbSession) -> UserOut:
    return UserOut.model_validate(await auth_service.get_user(session, user_id))


@router.patch("/users/{user_id}", response_model=UserOut,
              responses=responses(*ADMIN_ERRORS, NotFound, auth_service.CannotChangeOwnAccount))
async def update_user(user_id: uuid.UUID, body: AdminUserUpdate, admin: CurrentAdmin,
                      rt: RuntimeDep, session: DbSession, ip: ClientIp) -> UserOut:
    """Change `role` or `is_active`. Disabling or a role change ends the user's sessions."""
    user = await auth_service.admin_update_user(rt, session, admin, user_id, body.role,
                                                body.is_active, ip)
    return UserOut.model_validate(user)


@router.post("/users/{user_id}/revoke-sessions", status_code=204,
             responses=responses(*ADMIN_ERRORS, NotFound))
async def revoke_sessions(user_id: uuid.UUID, admin: CurrentAdmin, rt: RuntimeDep,
                          session: DbSession, ip: ClientIp) -> Response:
    await auth_service.get_user(session, user_id)
    await auth_service.end_all_sessions(rt, session, user_id, "revoked_by_admin",
                                        actor_id=admin.id, ip=ip)
    return Response(status_code=204)
