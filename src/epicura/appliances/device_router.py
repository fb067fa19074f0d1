"""`/device/*` of the appliances module: provisioning, device tokens, claim codes, desired
config. Device routes take a device token only (a user token is refused, 401)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from epicura.appliances import pairing, provisioning, service
from epicura.appliances.access import CurrentDevice, DeviceNotAuthenticated
from epicura.appliances.schemas import (
    ClaimCodeOut,
    DesiredConfig,
    DeviceToken,
    DeviceTokenRequest,
    Provisioned,
    ProvisionRequest,
)
from epicura.auth.router import json_only
from epicura.kit.errors import RateLimited, responses
from epicura.kit.etag import make_etag, not_modified
from epicura.kit.runtime import ClientIp, DbSession, RuntimeDep

router = APIRouter(prefix="/device", tags=["device"], dependencies=[Depends(json_only)])
NO_STORE = {"Cache-Control": "no-store"}


@router.post("/provision", status_code=201, response_model=Provisioned,
             responses=responses(provisioning.ProvisionRefused, RateLimited))
async def provision(body: ProvisionRequest, rt: RuntimeDep, session: DbSession,
                    ip: ClientIp, response: Response) -> Provisioned:
    """First boot (or after a factory reset): an imported, not decommissioned serial with its
    factory secret gets its `device_id`, a new `device_secret` (its HTTPS and MQTT password;
    any earlier secret and token stop working) and where to connect. Any failure is the same
    403 `provision_refused`."""
    appliance, secret = await provisioning.provision(rt, session, body, ip)
    response.headers.update(NO_STORE)
    return Provisioned(device_id=appliance.id, device_secret=secret,
                       mqtt=provisioning.mqtt_access(rt, appliance))


@router.post("/token", response_model=DeviceToken,
             responses=responses(provisioning.DeviceCredentialsInvalid, RateLimited))
async def device_token(body: DeviceTokenRequest, rt: RuntimeDep, session: DbSession,
                       ip: ClientIp, response: Response) -> DeviceToken:
    """A device access token (1 h) for the appliance's id and current secret; 401
    `invalid_credentials` otherwise, whatever was wrong."""
    token, expires_in = await provisioning.device_token(rt, session, body, ip)
    response.headers.update(NO_STORE)
    return DeviceToken(access_token=token, expires_in=expires_in)


@router.post("/claim-codes", status_code=201, response_model=ClaimCodeOut,
             responses=responses(DeviceNotAuthenticated, pairing.AlreadyPaired, RateLimited))
async def claim_code(appliance: CurrentDevice, rt: RuntimeDep, session: DbSession,
                     response: Response) -> ClaimCodeOut:
    """A pairing code to show (8 characters and a QR payload), valid 10 minutes, single use;
    it replaces the appliance's earlier unused codes. 409 `appliance_already_paired` while a
    user owns the appliance (the owner must unpair it first)."""
    code, expires_at = await pairing.issue_code(rt, session, appliance)
    response.headers.update(NO_STORE)
    return ClaimCodeOut(code=code, qr_payload=pairing.qr_payload(code), expires_at=expires_at)


@router.get("/config", response_model=DesiredConfig, responses={
    **responses(DeviceNotAuthenticated), 304: {"description": "Not modified (`If-None-Match`)"}})
async def desired_config(appliance: CurrentDevice, request: Request) -> Response:
    """The desired config `{version, settings}` (as on `down/config`), and whether a user owns
    the appliance (`paired`: false means wipe user data, e.g. after an unpair it missed)."""
    config = service.desired_config(appliance)
    etag = make_etag(appliance.id, config.version, config.paired,
                     sorted(config.settings.items()))
    if not_modified(request, etag):
        return Response(status_code=304, headers={"ETag": etag})
    return JSONResponse(config.model_dump(mode="json"), headers={"ETag": etag})
