"""`/device/firmware/*`: update checks and progress reports (device token only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from epicura.appliances.access import CurrentDevice, DeviceNotAuthenticated
from epicura.auth.router import json_only
from epicura.bridge.reported_handlers import appliance_channel
from epicura.kit import clock
from epicura.kit.errors import ValidationFailed, responses
from epicura.kit.etag import not_modified
from epicura.kit.runtime import DbSession, RuntimeDep, after_commit
from epicura.ota import updates
from epicura.ota.manifest import HW_REVISION
from epicura.ota.schemas import Channel, FirmwareOffer, FirmwareStatus
from epicura.realtime import channels

router = APIRouter(prefix="/device/firmware", tags=["device"])
VERSION_QUERY = r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,39}$"


@router.get("/check", response_model=FirmwareOffer, responses={
    **responses(DeviceNotAuthenticated),
    204: {"description": "No update for this appliance now"},
    304: {"description": "Not modified (`If-None-Match`)"}})
async def check(
    appliance: CurrentDevice, rt: RuntimeDep, session: DbSession, request: Request,
    current: Annotated[str | None, Query(max_length=40, pattern=VERSION_QUERY,
                                         description="The running version")] = None,
    hw_revision: Annotated[str | None, Query(max_length=40, pattern=HW_REVISION)] = None,
    channel: Channel | None = None,
) -> Response:
    """The update this appliance may install now: never a downgrade or the same version, never
    below the release's `min_from_version`, never for another hardware revision or channel,
    never a yanked release, nothing while it runs a cooking session, and only once its bucket is
    in an open stage of an active rollout. `url` is GET-only and expires within the hour;
    `manifest` is the base64 of the signed manifest bytes. 204 when there is none."""
    found = await updates.offer(rt, session, appliance, current, hw_revision, channel)
    if found is None:
        return Response(status_code=204)
    offer, etag = found
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return JSONResponse(offer.model_dump(mode="json"), headers=headers)


@router.post("/status", status_code=204, dependencies=[Depends(json_only)],
             responses=responses(DeviceNotAuthenticated, updates.NotInRollout,
                                 updates.StatusOutOfOrder, ValidationFailed))
async def status(body: FirmwareStatus, appliance: CurrentDevice, rt: RuntimeDep,
                 session: DbSession) -> Response:
    """Progress of an update: `offered`, `downloading`, `downloaded`, `verified`,
    `installing`, `succeeded`, `failed` (with `error_code`), `rolled_back`, `deferred` (with
    `reason`). A repeat changes nothing; 409 for a status that cannot follow the previous one,
    404 for a rollout this appliance is not part of."""
    recorded = await updates.record_status(rt, session, appliance.id, body, clock.utcnow(),
                                           strict=True)
    if recorded is not None:
        event = (appliance_channel(appliance.id),
                 {"type": "ota.progress", "data": recorded.event})

        async def publish() -> None:
            await channels.publish_quietly(rt, [event])

        after_commit(session, publish)
    return Response(status_code=204)
