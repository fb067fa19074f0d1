"""Device credentials: the device access token and the dependency every device route declares.

A device token is a JWT like a user's but with its own `typ` header (`device+jwt`), `typ` claim
(`device`) and audience, so a user token is refused on device routes and a device token on user
routes. It is bound to the appliance's current provisioning (`pv`): re-provisioning (which
rotates the device secret) or decommissioning ends every token issued before.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from epicura.appliances.models import PROVISIONED, Appliance
from epicura.kit import clock, metrics
from epicura.kit.errors import ProblemError
from epicura.kit.runtime import DbSession, Runtime, RuntimeDep
from epicura.kit.security import timestamp

DEVICE_TOKEN_MEDIA_TYPE = "device+jwt"
DEVICE_TOKEN_TTL_S = 3600
DEVICE_CLAIMS = ("sub", "pv", "jti", "iat", "exp", "iss", "aud", "typ")

device_bearer = HTTPBearer(auto_error=False, scheme_name="DeviceToken",
                           description="A device access token from POST /device/token")


class DeviceNotAuthenticated(ProblemError):
    status = 401
    code = "unauthorized"
    title = "Device authentication required"

    def __init__(self) -> None:
        super().__init__(headers={"WWW-Authenticate": "Bearer"})


def device_audience(rt: Runtime) -> str:
    return f"{rt.settings.jwt_audience}-device"


def provisioning_mark(appliance: Appliance) -> int:
    """Changes on every provisioning; a token carries it so a re-provision ends older tokens."""
    assert appliance.provisioned_at is not None
    return int(appliance.provisioned_at.timestamp() * 1000)


def issue_device_token(rt: Runtime, appliance: Appliance) -> tuple[str, int]:
    now = clock.utcnow()
    claims: dict[str, Any] = {
        "sub": str(appliance.id),
        "pv": provisioning_mark(appliance),
        "jti": uuid.uuid4().hex,
        "iat": timestamp(now),
        "exp": timestamp(now) + DEVICE_TOKEN_TTL_S,
        "iss": rt.settings.jwt_issuer,
        "aud": device_audience(rt),
        "typ": "device",
    }
    return rt.jwt.sign(claims, media_type=DEVICE_TOKEN_MEDIA_TYPE), DEVICE_TOKEN_TTL_S


def _verify(rt: Runtime, token: str) -> dict[str, Any]:
    claims = rt.jwt.verify(
        token,
        issuer=rt.settings.jwt_issuer,
        audience=device_audience(rt),
        leeway_s=rt.settings.jwt_leeway_s,
        now=clock.utcnow(),
        required=DEVICE_CLAIMS,
        media_type=DEVICE_TOKEN_MEDIA_TYPE,
    )
    if claims.get("typ") != "device":
        raise jwt.InvalidTokenError("not a device token")
    return claims


async def current_device(
    request: Request,
    rt: RuntimeDep,
    session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(device_bearer)],
) -> Appliance:
    """The calling appliance, read fresh: a decommissioned or re-provisioned one is refused."""
    if credentials is None:
        raise DeviceNotAuthenticated()
    try:
        claims = _verify(rt, credentials.credentials)
        device_id = uuid.UUID(str(claims["sub"]))
    except (jwt.InvalidTokenError, ValueError, KeyError, TypeError) as exc:
        metrics.auth_events.labels("bad_device_token").inc()
        raise DeviceNotAuthenticated() from exc
    appliance = await session.get(Appliance, device_id)
    if (appliance is None or appliance.lifecycle != PROVISIONED
            or claims["pv"] != provisioning_mark(appliance)):
        raise DeviceNotAuthenticated()
    request.state.device_id = device_id
    return appliance


CurrentDevice = Annotated[Appliance, Depends(current_device)]
