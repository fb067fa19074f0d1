"""`/sessions*`: cooking sessions of the caller (another user's session is a 404)."""

from __future__ import annotations

import uuid
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AwareDatetime

from epicura.appliances import service as appliances_service
from epicura.auth.access import CurrentUser, NotAuthenticated
from epicura.auth.router import json_only
from epicura.kit import clock
from epicura.kit.errors import NotFound, PreconditionFailed, ValidationFailed, responses
from epicura.kit.etag import check_if_match, make_etag, not_modified
from epicura.kit.pagination import (
    InvalidCursor,
    Page,
    decode_cursor,
    decode_time_id,
    encode_cursor,
    encode_time_id,
)
from epicura.kit.runtime import ClientIp, DbSession, RuntimeDep
from epicura.sessions import repository, service
from epicura.sessions.schemas import (
    SessionCommandAccepted,
    SessionCreate,
    SessionEventOut,
    SessionOut,
    SessionStats,
    SessionTelemetry,
    SessionUpdate,
    Status,
)
from epicura.telemetry import service as telemetry_service

router = APIRouter(prefix="/sessions", tags=["sessions"], dependencies=[Depends(json_only)])
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=500)]
From = Annotated[AwareDatetime | None, Query(alias="from")]
To = Annotated[AwareDatetime | None, Query(alias="to")]
OWNED = (NotAuthenticated, service.SessionNotFound)
COMMAND_ERRORS = (*OWNED, service.SessionFinished, appliances_service.ApplianceNotFound,
                  appliances_service.ApplianceOffline)


@router.post("", status_code=201, response_model=SessionOut, responses=responses(
    NotAuthenticated, appliances_service.ApplianceNotFound, NotFound,
    appliances_service.ApplianceOffline, ValidationFailed))
async def create_session(body: SessionCreate, user: CurrentUser, rt: RuntimeDep,
                         db: DbSession, ip: ClientIp) -> SessionOut:
    """Plan a session: the recipe version (default the current one; the caller must be able to
    read the recipe, 404 otherwise) is pinned and `session.prepare` is sent to the appliance,
    which must be the caller's (404) and online (409 `appliance_offline`). The cook starts it
    on the appliance; the session then follows the appliance's events. Accepts
    `Idempotency-Key`."""
    row = await service.create(rt, db, user, body, ip)
    return await service.Viewer(db, clock.utcnow()).view(row)


@router.get("", response_model=Page[SessionOut],
            responses=responses(NotAuthenticated, InvalidCursor))
async def list_sessions(
    user: CurrentUser, db: DbSession, appliance_id: uuid.UUID | None = None,
    status: Status | None = None, recipe_id: uuid.UUID | None = None, start: From = None,
    end: To = None, limit: Limit = 20, cursor: Cursor = None,
) -> Page[SessionOut]:
    """The caller's sessions, newest first; `from`/`to` bound their creation time."""
    filters = repository.Filters(user_id=user.id, appliance_id=appliance_id, status=status,
                                 recipe_id=recipe_id, start=start, end=end)
    rows = await service.history(db, filters, decode_time_id(cursor), limit + 1)
    viewer = service.Viewer(db, clock.utcnow())
    last = rows[limit - 1] if len(rows) > limit else None
    return Page[SessionOut](
        items=[await viewer.view(row) for row in rows[:limit]],
        next_cursor=None if last is None else encode_time_id(last.created_at, last.id))


@router.get("/stats", response_model=SessionStats, responses=responses(NotAuthenticated))
async def session_stats(user: CurrentUser, db: DbSession, start: From = None, end: To = None,
                        top: Annotated[int, Query(ge=1, le=50)] = 10) -> SessionStats:
    """Counts per status, the `top` most cooked recipes, total cooking time and sessions per
    month (UTC) of the caller's sessions created in [`from`, `to`)."""
    filters = repository.Filters(user_id=user.id, start=start, end=end)
    return await service.stats(db, filters, top)


def _tagged(view: SessionOut) -> tuple[bytes, str]:
    """The reply's body and its ETag (of the content: a live session's changes as its
    remaining time does)."""
    body = view.model_dump_json().encode()
    return body, make_etag(body)


def _reply(body: bytes, etag: str) -> Response:
    return Response(body, media_type="application/json",
                    headers={"ETag": etag, "Cache-Control": "private, no-cache"})


@router.get("/{session_id}", response_model=SessionOut, responses={
    **responses(*OWNED), 304: {"description": "Not modified (`If-None-Match`)"}})
async def get_session(session_id: uuid.UUID, user: CurrentUser, db: DbSession,
                      request: Request) -> Response:
    """The session with its pinned recipe version, state, current step, remaining time
    (computed now from the step program) and, once ended, its summary. `ETag`;
    `If-None-Match` gives 304."""
    row = await service.get_owned_or_404(db, user, session_id)
    body, etag = _tagged(await service.Viewer(db, clock.utcnow()).view(row))
    if not_modified(request, etag):
        return Response(status_code=304, headers={"ETag": etag})
    return _reply(body, etag)


@router.patch("/{session_id}", response_model=SessionOut, responses=responses(
    *OWNED, service.SessionNotFinished, ValidationFailed, PreconditionFailed))
async def update_session(session_id: uuid.UUID, body: SessionUpdate, user: CurrentUser,
                         rt: RuntimeDep, db: DbSession, request: Request) -> Response:
    """`rating` (1–5, once the session has ended; a new rating replaces the earlier one in the
    recipe's average) and `notes` (up to 2,000 characters). An optional `If-Match` with the
    ETag guards against overwriting a change you have not seen (412)."""
    row = await service.get_owned_or_404(db, user, session_id, lock=True)
    viewer = service.Viewer(db, clock.utcnow())
    check_if_match(request, _tagged(await viewer.view(row))[1], required=False)
    await service.update(rt, db, row, body)
    return _reply(*_tagged(await viewer.view(row)))


@router.get("/{session_id}/events", response_model=Page[SessionEventOut],
            responses=responses(*OWNED, InvalidCursor))
async def list_events(session_id: uuid.UUID, user: CurrentUser, db: DbSession,
                      limit: Limit = 50, cursor: Cursor = None) -> Page[SessionEventOut]:
    """The appliance's events of the session as received, in `seq` order (events that arrived
    late are listed in their place)."""
    row = await service.get_owned_or_404(db, user, session_id)
    rows = await service.events(db, row, _seq_after(cursor), limit + 1)
    more = len(rows) > limit
    return Page[SessionEventOut](
        items=[SessionEventOut.model_validate(event, from_attributes=True)
               for event in rows[:limit]],
        next_cursor=encode_cursor({"s": rows[limit - 1].seq}) if more else None)


def _seq_after(cursor: str | None) -> int:
    position = decode_cursor(cursor)
    if position is None:
        return -1
    seq = position.get("s")
    if type(seq) is not int:
        raise InvalidCursor()
    return seq


@router.post("/{session_id}/pause", status_code=202, response_model=SessionCommandAccepted,
             responses=responses(*COMMAND_ERRORS, service.SessionNotStarted))
async def pause(session_id: uuid.UUID, user: CurrentUser, rt: RuntimeDep, db: DbSession,
                ip: ClientIp) -> SessionCommandAccepted:
    """Ask the appliance to pause (`session.pause`; it may refuse, see the command's result).
    409 `session_finished` once ended, `session_not_started` while planned."""
    return await _command(session_id, service.PAUSE, user, rt, db, ip)


@router.post("/{session_id}/abort", status_code=202, response_model=SessionCommandAccepted,
             responses=responses(*COMMAND_ERRORS))
async def abort(session_id: uuid.UUID, user: CurrentUser, rt: RuntimeDep, db: DbSession,
                ip: ClientIp) -> SessionCommandAccepted:
    """Ask the appliance to abort (`session.abort`). A session still `planned` is aborted at
    once. 409 `session_finished` once ended."""
    return await _command(session_id, service.ABORT, user, rt, db, ip)


async def _command(session_id: uuid.UUID, name: str, user: CurrentUser, rt: RuntimeDep,
                   db: DbSession, ip: str) -> SessionCommandAccepted:
    return SessionCommandAccepted(
        request_id=await service.command(rt, db, user, session_id, name, ip))


@router.get("/{session_id}/telemetry", response_model=SessionTelemetry, responses=responses(
    *OWNED, appliances_service.ApplianceNotFound, telemetry_service.InvalidTelemetryQuery))
async def session_telemetry(
    session_id: uuid.UUID, user: CurrentUser, db: DbSession,
    resolution: Annotated[str | None, Query(pattern="^(raw|1m|1h)$")] = None,
    metrics: Annotated[str | None, Query(max_length=300)] = None,
) -> Response:
    """The appliance's telemetry over the session's time span (from its start, or its creation,
    to its end or now), as `GET /telemetry/{appliance_id}` serves it."""
    row = await service.get_owned_or_404(db, user, session_id)
    start, end = service.telemetry_span(row, clock.utcnow())
    found = await telemetry_service.series(db, user, row.appliance_id, start=start.isoformat(),
                                           end=end.isoformat(), resolution=resolution,
                                           metrics=metrics)
    head = orjson.dumps({
        "session_id": str(row.id), "appliance_id": str(found.appliance_id),
        "resolution": found.resolution, "bucket_s": found.bucket_s, "from": found.start_ms,
        "to": found.end_ms,
    })
    return Response(head[:-1] + b',"metrics":' + found.metrics_json + b"}",
                    media_type="application/json", headers={"Cache-Control": "private, no-cache"})
