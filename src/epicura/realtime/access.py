"""What a socket may do, decided by the modules that own the rules: who the token names, which
channels that user may subscribe to, and commands sent over the socket (the same rules and
errors as `POST /appliances/{id}/commands`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import jwt
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.appliances import service as appliances_service
from epicura.auth import service as auth_service
from epicura.auth.tokens import verify_access_token
from epicura.kit import metrics as kit_metrics
from epicura.kit.errors import ErrorItem, NotFound, ProblemError, ValidationFailed
from epicura.kit.runtime import Runtime
from epicura.realtime.protocol import Channel
from epicura.sessions import service as sessions_service


class TokenRefused(Exception):
    """The token is invalid or expired, its login session revoked, or its user disabled."""


@dataclass(frozen=True)
class Identity:
    user_id: uuid.UUID
    session_id: uuid.UUID
    exp: int


async def authenticate(rt: Runtime, token: object) -> Identity:
    """The user a token names. Raises TokenRefused, or DependencyUnavailable when the
    revocation check cannot be made."""
    if not isinstance(token, str) or not token or len(token) > 4096:
        raise TokenRefused()
    try:
        claims = verify_access_token(rt, token)
        identity = Identity(uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"]), int(claims["exp"]))
    except (jwt.InvalidTokenError, ValueError, KeyError, TypeError) as exc:
        kit_metrics.auth_events.labels("bad_access_token").inc()
        raise TokenRefused() from exc
    if await auth_service.revocations(rt).is_revoked(identity.session_id):
        raise TokenRefused()
    async with rt.db.sessions() as session:
        try:
            user = await auth_service.get_user(session, identity.user_id)
        except NotFound:
            raise TokenRefused() from None
        if not user.is_active:
            raise TokenRefused()
    return identity


async def may_subscribe(rt: Runtime, user_id: uuid.UUID, channel: Channel) -> bool:
    """Only the owner may: `user` is always the caller's own; an appliance or cooking session
    must be theirs (someone else's answers as one that does not exist). An admin may also
    follow any appliance (the admin portal's live telemetry chart)."""
    if channel.kind == "user":
        return True
    assert channel.object_id is not None
    async with rt.db.sessions() as session:
        if channel.kind == "session":
            return await sessions_service.is_owner(session, user_id, channel.object_id)
        try:
            user = await auth_service.get_user(session, user_id)
            if auth_service.is_admin(user):
                await appliances_service.admin_get(session, channel.object_id)
            else:
                await appliances_service.get_owned_or_404(session, user, channel.object_id)
        except NotFound:
            return False
        return True


class CommandFrame(BaseModel):
    model_config = ConfigDict(extra="forbid")

    appliance_id: uuid.UUID
    name: Annotated[str, Field(max_length=40)]
    args: dict[str, Any] | None = None


def command_frame(data: dict[str, Any]) -> CommandFrame:
    try:
        return CommandFrame.model_validate(data)
    except ValidationError as exc:
        errors = [ErrorItem(loc=["data", *(str(p) for p in err["loc"])], msg=err["msg"],
                            type=err["type"]) for err in exc.errors()]
        raise ValidationFailed("invalid command frame", errors=errors) from exc


async def send_command(rt: Runtime, user_id: uuid.UUID, data: dict[str, Any],
                       ip: str) -> dict[str, Any]:
    """Send a command as `POST /appliances/{id}/commands` would, in one transaction; returns
    `{request_id, status: "sent", expires_at}`. Raises the same ProblemErrors."""
    body = command_frame(data)
    await rt.limiter.hit(f"{rt.settings.user_requests_per_minute}/minute", "user", str(user_id))
    async with rt.db.sessions() as session:
        try:
            user = await auth_service.get_user(session, user_id)
            appliance = await appliances_service.get_owned_or_404(session, user,
                                                                  body.appliance_id, lock=True)
            command = await appliances_service.send_command(rt, session, user, appliance,
                                                            body.name, body.args, ip)
            reply = accepted(command.request_id, command.expires_at)
        except ProblemError as exc:
            await _end(session, commit=exc.keeps_changes)
            raise
        except BaseException:
            await session.rollback()
            raise
        await _end(session, commit=True)
    return reply


def accepted(request_id: uuid.UUID, expires_at: datetime) -> dict[str, Any]:
    return {"request_id": str(request_id), "status": "sent", "expires_at": expires_at.isoformat()}


async def _end(session: AsyncSession, *, commit: bool) -> None:
    """Commit (then run the after-commit callbacks, as a request does) or roll back."""
    if not commit:
        await session.rollback()
        return
    await session.commit()
    for callback in session.info.pop("after_commit", ()):
        await callback()
