"""`/appliances*`: the user side (owner only; another user's appliance is a 404)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from epicura.appliances import commands, paging, pairing, service
from epicura.appliances.models import Appliance
from epicura.appliances.schemas import (
    AlertOut,
    ApplianceOut,
    ApplianceUpdate,
    ClaimRequest,
    CommandAccepted,
    CommandOut,
    CommandRequest,
)
from epicura.auth.access import CurrentUser, NotAuthenticated
from epicura.auth.router import json_only
from epicura.kit import clock
from epicura.kit.errors import PreconditionFailed, RateLimited, responses
from epicura.kit.etag import check_if_match, not_modified
from epicura.kit.pagination import InvalidCursor, Page
from epicura.kit.runtime import ClientIp, DbSession, RuntimeDep

router = APIRouter(prefix="/appliances", tags=["appliances"], dependencies=[Depends(json_only)])
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=500)]
OWNED = (NotAuthenticated, service.ApplianceNotFound)


def _with_etag(appliance: Appliance, status_code: int = 200) -> JSONResponse:
    body = service.view(appliance).model_dump(mode="json")
    return JSONResponse(body, status_code=status_code,
                        headers={"ETag": service.etag_of(appliance),
                                 "Cache-Control": "private, no-cache"})


@router.post("/claim", status_code=201, response_model=ApplianceOut,
             responses=responses(NotAuthenticated, pairing.ClaimCodeInvalid, RateLimited))
async def claim(body: ClaimRequest, user: CurrentUser, rt: RuntimeDep, session: DbSession,
                ip: ClientIp) -> Response:
    """Redeem the code an appliance shows (`claim_code`: its 8 characters or the QR payload):
    the caller becomes its owner. Wrong, used and expired codes get the same 404
    `claim_code_invalid`; attempts are throttled per user and per address (429)."""
    appliance = await pairing.claim(rt, session, user, body.claim_code, body.name, ip)
    return _with_etag(appliance, 201)


@router.get("", response_model=Page[ApplianceOut],
            responses=responses(NotAuthenticated, InvalidCursor))
async def list_appliances(user: CurrentUser, session: DbSession, limit: Limit = 20,
                          cursor: Cursor = None) -> Page[ApplianceOut]:
    """The caller's appliances with their status, in the order they were paired."""
    rows = await service.list_owned(session, user, paging.after(cursor), limit + 1)
    now = clock.utcnow()
    return Page[ApplianceOut](
        items=[service.view(row, now) for row in rows[:limit]],
        next_cursor=paging.next_cursor(rows, limit, lambda a: (a.paired_at, a.id)))


@router.get("/{appliance_id}", response_model=ApplianceOut, responses={
    **responses(*OWNED), 304: {"description": "Not modified (`If-None-Match`)"}})
async def get_appliance(appliance_id: uuid.UUID, user: CurrentUser, session: DbSession,
                        request: Request) -> Response:
    appliance = await service.get_owned_or_404(session, user, appliance_id)
    etag = service.etag_of(appliance)
    if not_modified(request, etag):
        return Response(status_code=304, headers={"ETag": etag})
    return _with_etag(appliance)


@router.patch("/{appliance_id}", response_model=ApplianceOut,
              responses=responses(*OWNED, PreconditionFailed))
async def update_appliance(appliance_id: uuid.UUID, body: ApplianceUpdate, user: CurrentUser,
                           rt: RuntimeDep, session: DbSession, request: Request) -> Response:
    """`name`, `channel`, and `settings` (merged into the desired config: a given field replaces
    the stored one, `null` removes it; a change is sent to the appliance, retained, on
    `down/config` with the next `version`). `If-Match` with the ETag guards against
    overwriting a change you have not seen (412)."""
    appliance = await service.get_owned_or_404(session, user, appliance_id, lock=True)
    check_if_match(request, service.etag_of(appliance), required=False)
    await service.update(rt, session, appliance, body)
    return _with_etag(appliance)


@router.delete("/{appliance_id}", status_code=204, responses=responses(*OWNED))
async def unpair(appliance_id: uuid.UUID, user: CurrentUser, rt: RuntimeDep,
                 session: DbSession, ip: ClientIp) -> Response:
    """Unpair: the appliance is told (`unpair`) and wipes user data; nothing else of the
    caller's is revoked."""
    appliance = await service.get_owned_or_404(session, user, appliance_id, lock=True)
    await service.unpair(rt, session, user, appliance, ip)
    return Response(status_code=204)


@router.post("/{appliance_id}/commands", status_code=202, response_model=CommandAccepted,
             responses=responses(*OWNED, commands.CommandNotAllowed, service.ApplianceOffline))
async def send_command(appliance_id: uuid.UUID, body: CommandRequest, user: CurrentUser,
                       rt: RuntimeDep, session: DbSession, ip: ClientIp) -> CommandAccepted:
    """Send one of `session.prepare` (`{recipe_id, recipe_version?, servings?}`: loads a recipe
    version, the cook starts it on the appliance), `session.pause`, `session.abort`,
    `identify`, `sync.now`, `ota.check`, `config.reload`, `unpair`. Anything else is 422
    `command_not_allowed`: nothing starts heating or the blades remotely. 409
    `appliance_offline` when the appliance is not online. The command expires after 60 s."""
    appliance = await service.get_owned_or_404(session, user, appliance_id, lock=True)
    command = await service.send_command(rt, session, user, appliance, body.name, body.args, ip)
    return CommandAccepted(request_id=command.request_id, status="sent",
                           expires_at=command.expires_at)


@router.get("/{appliance_id}/commands/{request_id}", response_model=CommandOut,
            responses=responses(*OWNED, service.CommandNotFound))
async def get_command(appliance_id: uuid.UUID, request_id: uuid.UUID, user: CurrentUser,
                      session: DbSession) -> CommandOut:
    """The command and its result: `sent`, `accepted`, `rejected`, `done`, `failed`, or
    `expired` when its expiry passed without an answer."""
    appliance = await service.get_owned_or_404(session, user, appliance_id)
    command = await service.owned_command(session, appliance, request_id)
    return commands.view(command, clock.utcnow())


@router.get("/{appliance_id}/alerts", response_model=Page[AlertOut],
            responses=responses(*OWNED, InvalidCursor))
async def list_alerts(appliance_id: uuid.UUID, user: CurrentUser, session: DbSession,
                      state: Literal["raised", "cleared"] | None = None, limit: Limit = 20,
                      cursor: Cursor = None) -> Page[AlertOut]:
    """The appliance's alerts, newest first."""
    appliance = await service.get_owned_or_404(session, user, appliance_id)
    rows = await service.alerts(session, appliance, state, paging.after(cursor), limit + 1)
    return Page[AlertOut](
        items=[AlertOut.model_validate(row) for row in rows[:limit]],
        next_cursor=paging.next_cursor(rows, limit, lambda a: (a.raised_at, a.id)))
