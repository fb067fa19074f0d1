"""`/push/*` (tokens, preferences) and `/notifications*` (the inbox) of the caller."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from epicura.auth.access import CurrentUser, NotAuthenticated
from epicura.auth.router import json_only
from epicura.kit.errors import NotFound, ValidationFailed, responses
from epicura.kit.pagination import InvalidCursor, Page, decode_time_id, encode_time_id
from epicura.kit.runtime import DbSession
from epicura.notifications import service
from epicura.notifications.schemas import (
    NotificationOut,
    PreferencesIn,
    PreferencesOut,
    PushTokenIn,
    PushTokenOut,
)

push_router = APIRouter(prefix="/push", tags=["notifications"],
                        dependencies=[Depends(json_only)])
inbox_router = APIRouter(prefix="/notifications", tags=["notifications"],
                         dependencies=[Depends(json_only)])
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=500)]


@push_router.post("/tokens", status_code=201, response_model=PushTokenOut,
                  responses={200: {"model": PushTokenOut, "description": "Known token, seen again"},
                             **responses(NotAuthenticated, ValidationFailed)})
async def register_token(body: PushTokenIn, user: CurrentUser, db: DbSession,
                         response: Response) -> PushTokenOut:
    """Register this app install's token: 201 when it is new to the caller, 200 when it was
    already theirs (its last-seen time, app version and locale are updated). A token another
    user registered before moves to the caller. `token` is an FCM registration token (`fcm`,
    20–1,024 characters of `[A-Za-z0-9_:.-]`) or an APNs device token in hex (`apns`, 64–200
    digits); anything else is 422."""
    row, created = await service.register_token(db, user, body)
    if not created:
        response.status_code = 200
    return PushTokenOut.model_validate(row)


@push_router.get("/tokens", response_model=list[PushTokenOut],
                 responses=responses(NotAuthenticated))
async def list_tokens(user: CurrentUser, db: DbSession) -> list[PushTokenOut]:
    """The caller's tokens (the token strings themselves are not shown)."""
    return [PushTokenOut.model_validate(row) for row in await service.tokens_of(db, user)]


@push_router.delete("/tokens/{token_id}", status_code=204,
                    responses=responses(NotAuthenticated, NotFound))
async def delete_token(token_id: uuid.UUID, user: CurrentUser, db: DbSession) -> Response:
    await service.delete_token(db, user, token_id)
    return Response(status_code=204)


@push_router.get("/preferences", response_model=PreferencesOut,
                 responses=responses(NotAuthenticated))
async def get_preferences(user: CurrentUser, db: DbSession) -> PreferencesOut:
    return await service.get_preferences(db, user)


@push_router.put("/preferences", response_model=PreferencesOut,
                 responses=responses(NotAuthenticated, ValidationFailed))
async def put_preferences(body: PreferencesIn, user: CurrentUser,
                          db: DbSession) -> PreferencesOut:
    """Per category on/off and quiet hours (`{start: "22:00", end: "07:00", timezone?}`, in the
    user's time zone unless one is given). During quiet hours a push is held back until they
    end, and dropped if it is stale by then; the inbox entry and the live event are immediate.
    Safety alerts and security events ignore quiet hours and opt-outs; `security` cannot be
    turned off."""
    return await service.put_preferences(db, user, body)


@inbox_router.get("", response_model=Page[NotificationOut],
                  responses=responses(NotAuthenticated, InvalidCursor))
async def list_notifications(user: CurrentUser, db: DbSession, unread: bool | None = None,
                             limit: Limit = 20, cursor: Cursor = None) -> Page[NotificationOut]:
    """The inbox, newest first; `unread=true` for the unread ones only."""
    rows = await service.inbox(db, user, unread=unread, after=decode_time_id(cursor),
                               limit=limit + 1)
    last = rows[limit - 1] if len(rows) > limit else None
    return Page[NotificationOut](
        items=[NotificationOut.model_validate(row) for row in rows[:limit]],
        next_cursor=None if last is None else encode_time_id(last.created_at, last.id))


@inbox_router.post("/read-all", status_code=204, responses=responses(NotAuthenticated))
async def read_all(user: CurrentUser, db: DbSession) -> Response:
    await service.mark_all_read(db, user)
    return Response(status_code=204)


@inbox_router.post("/{notification_id}/read", status_code=204,
                   responses=responses(NotAuthenticated, NotFound))
async def read_one(notification_id: uuid.UUID, user: CurrentUser, db: DbSession) -> Response:
    await service.mark_read(db, user, notification_id)
    return Response(status_code=204)
