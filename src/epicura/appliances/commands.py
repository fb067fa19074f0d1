"""Commands to appliances: the allowed names and their arguments, sending one (`down/cmd`), its
result from the appliance (`up/cmd/result`, through the bridge) and its expiry.

No command starts heating or turns the blades: `session.prepare` only loads a recipe version, the
cook starts it on the appliance. Anything not named here is refused (422 `command_not_allowed`).

A command is `sent` until the appliance answers `accepted`, `rejected`, `done` or `failed`, or
its expiry passes first (`expired`: shown as such on read at once, and written by the sweep
`expire_commands`). The appliance must ignore a command past its `expires_at`, so a late answer
to a `sent` command is not recorded; an `accepted` one may still finish (`done`/`failed`).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.appliances import repository
from epicura.appliances.models import (
    CMD_ACCEPTED,
    CMD_DONE,
    CMD_EXPIRED,
    CMD_FAILED,
    CMD_REJECTED,
    CMD_SENT,
    Appliance,
    ApplianceCommand,
)
from epicura.appliances.schemas import CommandOut
from epicura.bridge.outbox import enqueue_down
from epicura.kit import clock
from epicura.kit.errors import ErrorItem, ProblemError, ValidationFailed
from epicura.kit.runtime import Runtime

DEFAULT_TTL = timedelta(seconds=60)
# The appliance may be offline when its owner unpairs it; it must still learn of it soon after.
UNPAIR_TTL = timedelta(hours=24)
RESULTS = frozenset({CMD_ACCEPTED, CMD_REJECTED, CMD_DONE, CMD_FAILED})
MAX_REASON = 500


class CommandNotAllowed(ProblemError):
    status = 422
    code = "command_not_allowed"
    title = "This command cannot be sent to an appliance"


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PrepareArgs(_Args):
    recipe_id: uuid.UUID
    recipe_version: Annotated[int, Field(ge=1, lt=2**31)] | None = None
    servings: Annotated[int, Field(ge=1, le=100)] | None = None
    session_id: uuid.UUID | None = None


class SessionArgs(_Args):
    session_id: uuid.UUID | None = None


class IdentifyArgs(_Args):
    duration_s: Annotated[int, Field(ge=1, le=120)] | None = None


class NoArgs(_Args):
    pass


ARGUMENTS: dict[str, type[_Args]] = {
    "session.prepare": PrepareArgs,
    "session.pause": SessionArgs,
    "session.abort": SessionArgs,
    "identify": IdentifyArgs,
    "sync.now": NoArgs,
    "ota.check": NoArgs,
    "config.reload": NoArgs,
    "unpair": NoArgs,
}
ALLOWED = frozenset(ARGUMENTS)


def checked_args(name: str, args: dict[str, Any] | None) -> dict[str, Any]:
    """The command's arguments in their wire form; 422 for a name not allowed or bad args."""
    model = ARGUMENTS.get(name)
    if model is None:
        raise CommandNotAllowed(f"{name!r} is not a command an appliance accepts from the cloud")
    try:
        parsed = model.model_validate(args or {})
    except ValidationError as exc:
        errors = [ErrorItem(loc=["body", "args", *(str(p) for p in err["loc"])],
                            msg=err["msg"], type=err["type"]) for err in exc.errors()]
        raise ValidationFailed(f"invalid arguments for {name}", errors=errors) from exc
    dumped: dict[str, Any] = parsed.model_dump(mode="json", exclude_none=True)
    return dumped


def dispatch(rt: Runtime, session: AsyncSession, appliance: Appliance, user_id: uuid.UUID | None,
             name: str, args: dict[str, Any], ttl: timedelta = DEFAULT_TTL) -> ApplianceCommand:
    """Record the command and queue `down/cmd` (published after commit, with an MQTT message
    expiry matching its own, so a broker never delivers it late)."""
    now = clock.utcnow()
    command = ApplianceCommand(request_id=uuid.uuid4(), appliance_id=appliance.id,
                               user_id=user_id, name=name, args=args, status=CMD_SENT,
                               created_at=now, expires_at=now + ttl, updated_at=now)
    session.add(command)
    enqueue_down(rt, session, appliance.id, "cmd", {
        "request_id": str(command.request_id), "name": name, "args": args,
        "expires_at": command.expires_at.isoformat(),
    }, expiry_s=int(ttl.total_seconds()))
    return command


def effective_status(command: ApplianceCommand, now: datetime) -> str:
    if command.status == CMD_SENT and command.expires_at <= now:
        return CMD_EXPIRED
    return command.status


def view(command: ApplianceCommand, now: datetime) -> CommandOut:
    return CommandOut(request_id=command.request_id, name=command.name, args=command.args,
                      status=effective_status(command, now),
                      reason=command.reason, created_at=command.created_at,
                      expires_at=command.expires_at, updated_at=command.updated_at)


async def record_command_result(session: AsyncSession, device_id: uuid.UUID,
                                request_id: uuid.UUID | str, status: str,
                                reason: str | None) -> bool:
    """What the bridge calls for `up/cmd/result`: record the appliance's answer to one of its
    own commands. True when it changed the command; an unknown request id, another appliance's
    command, an unknown status, a final command or a late answer to an expired one change
    nothing (so a redelivered message is harmless)."""
    if status not in RESULTS:
        return False
    try:
        request = request_id if isinstance(request_id, uuid.UUID) else uuid.UUID(str(request_id))
    except ValueError:
        return False
    text = None if reason is None else str(reason)[:MAX_REASON]
    return await repository.record_result(session, device_id, request, status, text,
                                          clock.utcnow())


async def expire_commands(session: AsyncSession, now: datetime | None = None) -> int:
    """Mark `sent` commands past their expiry `expired`; returns how many (the worker's sweep)."""
    return await repository.expire_sent(session, now or clock.utcnow())
