"""The rules of the appliances module that other modules and the routers call.

Ownership is checked in one place (`get_owned_or_404`): another user's appliance, an unpaired or
a decommissioned one is a 404, as one that does not exist. An owner sees nothing of an appliance
from before they paired it (commands, alerts).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from epicura.appliances import commands, library, repository
from epicura.appliances.models import (
    DECOMMISSIONED,
    PROVISIONED,
    Appliance,
    ApplianceAlert,
    ApplianceCommand,
)
from epicura.appliances.reported import INACTIVITY_TIMEOUT
from epicura.appliances.repository import FleetFilter as FleetFilter  # for the admin portal
from epicura.appliances.schemas import (
    AdminApplianceDetail,
    AdminApplianceOut,
    ApplianceOut,
    ApplianceUpdate,
    DesiredConfig,
)
from epicura.appliances.sync_models import SENT
from epicura.auth.models import User
from epicura.bridge import broker_tasks
from epicura.bridge.outbox import enqueue_down
from epicura.kit import audit, clock
from epicura.kit.errors import Conflict, NotFound
from epicura.kit.etag import make_etag
from epicura.kit.runtime import Runtime
from epicura.recipes import service as recipes_service

# Re-exported for other modules (the bridge calls these).
record_command_result = commands.record_command_result
expire_commands = commands.expire_commands


class ApplianceNotFound(NotFound):
    title = "No such appliance"


class ApplianceOffline(Conflict):
    code = "appliance_offline"
    title = "The appliance is offline"


class CommandNotFound(NotFound):
    title = "No such command"


# --- reading ---------------------------------------------------------------------------------

def is_online(appliance: Appliance, now: datetime) -> bool:
    """Online by its presence and heard from within the inactivity timeout (the sweep that
    marks silent appliances offline may not have run yet)."""
    return (appliance.online and appliance.lifecycle == PROVISIONED
            and appliance.last_seen_at is not None
            and appliance.last_seen_at >= now - INACTIVITY_TIMEOUT)


def etag_of(appliance: Appliance) -> str:
    return make_etag(appliance.id, appliance.updated_at.isoformat(), appliance.config_version,
                     appliance.owner_id)


def view(appliance: Appliance, now: datetime | None = None) -> ApplianceOut:
    now = now or clock.utcnow()
    return ApplianceOut(
        id=appliance.id, serial=appliance.serial, name=appliance.name, model=appliance.model,
        hw_revision=appliance.hw_revision, firmware_version=appliance.firmware_version,
        channel=appliance.channel,
        online=is_online(appliance, now), last_seen_at=appliance.last_seen_at,
        state=appliance.state, current_session_id=appliance.current_session_id,
        paired_at=appliance.paired_at, settings=appliance.settings,
        config_version=appliance.config_version,
    )


async def get_owned_or_404(session: AsyncSession, user: User, appliance_id: uuid.UUID, *,
                           lock: bool = False) -> Appliance:
    appliance = await repository.by_id(session, appliance_id, lock=lock)
    if (appliance is None or appliance.owner_id != user.id
            or appliance.lifecycle != PROVISIONED):
        raise ApplianceNotFound()
    return appliance


async def list_owned(session: AsyncSession, user: User,
                     after: tuple[datetime, uuid.UUID] | None, limit: int) -> Sequence[Appliance]:
    return await repository.owned(session, user.id, after, limit)


async def appliance_profile(session: AsyncSession, user: Any,
                            appliance_id: uuid.UUID) -> tuple[str, str | None]:
    """The recipes module's hook: (capability profile key, firmware) of the caller's appliance."""
    if user is None:
        raise ApplianceNotFound()
    appliance = await get_owned_or_404(session, user, appliance_id)
    return f"{appliance.model}/{appliance.hw_revision}", appliance.firmware_version


def install(rt: Runtime) -> None:
    """At startup: let recipe listing and scaling look up the caller's appliance."""
    rt.extras["appliance_profile"] = appliance_profile


# --- changing --------------------------------------------------------------------------------

def merged_settings(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Each given setting replaces the stored one; `null` removes it."""
    merged = {**current, **update}
    return {key: value for key, value in merged.items() if value is not None}


async def update(rt: Runtime, session: AsyncSession, appliance: Appliance,
                 body: ApplianceUpdate) -> Appliance:
    """Name and channel are the cloud's; new settings become the next desired config, sent
    retained on `down/config` so the appliance gets the latest whenever it connects."""
    given = body.model_dump(exclude_unset=True, mode="json")
    now = clock.utcnow()
    if given.get("name") is not None:
        appliance.name = given["name"]
    if given.get("channel") is not None:
        appliance.channel = given["channel"]
    if given.get("settings") is not None:
        settings = merged_settings(appliance.settings, given["settings"])
        if settings != appliance.settings:
            appliance.settings = settings
            appliance.config_version += 1
            enqueue_down(rt, session, appliance.id, "config",
                         desired_config(appliance).model_dump(exclude={"paired"}), retain=True)
    appliance.updated_at = now
    await session.flush()
    return appliance


def desired_config(appliance: Appliance) -> DesiredConfig:
    return DesiredConfig(version=appliance.config_version, settings=appliance.settings,
                         paired=appliance.owner_id is not None)


def _release(rt: Runtime, session: AsyncSession, appliance: Appliance, now: datetime) -> None:
    """Forget the owner and what was theirs on the appliance's record: name, settings (the
    retained desired config is cleared too; its version moves on, so whatever the appliance
    fetches next is newer than the old owner's)."""
    appliance.owner_id = None
    appliance.paired_at = None
    appliance.name = None
    appliance.settings = {}
    appliance.config_version += 1
    appliance.updated_at = now
    enqueue_down(rt, session, appliance.id, "config", None, retain=True)


async def unpair(rt: Runtime, session: AsyncSession, user: User, appliance: Appliance,
                 ip: str | None) -> ApplianceCommand:
    """The owner lets the appliance go: it is told (`unpair`, so it wipes user data) and nothing
    else of the user's is revoked. Returns the `unpair` command sent."""
    now = clock.utcnow()
    command = commands.dispatch(rt, session, appliance, user.id, "unpair", {},
                                ttl=commands.UNPAIR_TTL)
    _release(rt, session, appliance, now)
    await repository.drop_open_codes(session, appliance.id)
    audit.record(session, "appliance.unpair", actor_id=user.id, target_type="appliance",
                 target_id=appliance.id, ip=ip, serial=appliance.serial)
    await session.flush()
    await library.owner_changed(session, appliance.id)  # tombstones for the old owner's recipes
    return command


async def send_command(rt: Runtime, session: AsyncSession, user: User, appliance: Appliance,
                       name: str, args: dict[str, Any] | None,
                       ip: str | None) -> ApplianceCommand:
    """An owner's command to their appliance (allowed names only; 409 while it is offline).
    `unpair` unpairs (as DELETE does); `session.prepare` names a recipe version the owner may
    read, pinned to a version number."""
    wire_args = commands.checked_args(name, args)
    if name == "unpair":
        return await unpair(rt, session, user, appliance, ip)
    if name == "session.prepare":
        wire_args = await _pinned_recipe(session, user, wire_args)
    if not is_online(appliance, clock.utcnow()):
        raise ApplianceOffline()
    command = commands.dispatch(rt, session, appliance, user.id, name, wire_args)
    audit.record(session, "appliance.command", actor_id=user.id, target_type="appliance",
                 target_id=appliance.id, ip=ip, command=name,
                 request_id=str(command.request_id))
    await session.flush()
    return command


async def _pinned_recipe(session: AsyncSession, user: User,
                         args: dict[str, Any]) -> dict[str, Any]:
    recipe = await recipes_service.readable(session, uuid.UUID(args["recipe_id"]), user)
    version = args.get("recipe_version") or recipe.current_version
    await recipes_service.version_of(session, recipe, version)
    return {**args, "recipe_version": version}


async def owned_command(session: AsyncSession, appliance: Appliance,
                        request_id: uuid.UUID) -> ApplianceCommand:
    command = await repository.command(session, appliance.id, request_id)
    if command is None or appliance.paired_at is None or command.created_at < appliance.paired_at:
        raise CommandNotFound()
    return command


async def alerts(session: AsyncSession, appliance: Appliance, state: str | None,
                 after: tuple[datetime, uuid.UUID] | None, limit: int) -> Sequence[ApplianceAlert]:
    return await repository.alerts(session, appliance.id, state=state, since=appliance.paired_at,
                                   after=after, limit=limit)


# --- what the cooking-sessions module calls ---------------------------------------------------

async def owner_of(session: AsyncSession, appliance_id: uuid.UUID) -> uuid.UUID | None:
    """The owner of a provisioned appliance (None: unowned, unknown or decommissioned)."""
    appliance = await repository.by_id(session, appliance_id)
    if appliance is None or appliance.lifecycle != PROVISIONED:
        return None
    return appliance.owner_id


async def activity(session: AsyncSession,
                   appliance_id: uuid.UUID) -> tuple[datetime | None, uuid.UUID | None]:
    """When the appliance last sent anything (any message, telemetry included), and the
    session it is running (as the session mirror and its reported state say)."""
    appliance = await repository.by_id(session, appliance_id)
    if appliance is None:
        return None, None
    return appliance.last_seen_at, appliance.current_session_id


async def set_current_session(session: AsyncSession, appliance_id: uuid.UUID,
                              session_id: uuid.UUID, running: bool) -> None:
    """A session runs on the appliance (`running`) or has ended: `current_session_id` follows
    (an ended session clears it only if it is still the current one)."""
    appliance = await repository.by_id(session, appliance_id)
    if appliance is None:
        return
    if running and appliance.current_session_id != session_id:
        appliance.current_session_id = session_id
    elif not running and appliance.current_session_id == session_id:
        appliance.current_session_id = None
    else:
        return
    appliance.updated_at = clock.utcnow()
    await session.flush()


async def send_to_library(session: AsyncSession, appliance_id: uuid.UUID,
                          recipe_id: uuid.UUID) -> None:
    """A recipe sent to the appliance for a session joins its library (`sent`); the caller
    has checked that the owner may read it."""
    await library.add_to_library(session, appliance_id, recipe_id, SENT)


# --- what the OTA module calls -------------------------------------------------------------------

async def provisioned_fleet(session: AsyncSession, channel: str, hw_revision: str,
                            after: tuple[datetime, uuid.UUID] | None,
                            limit: int) -> Sequence[Appliance]:
    """Provisioned appliances of a channel and hardware revision, newest import first (paged by
    `(created_at, id)` like `search_fleet`)."""
    where = repository.FleetFilter(channel=channel, hw_revision=hw_revision,
                                   lifecycle=PROVISIONED)
    return await repository.fleet(session, where, after, limit)


async def record_firmware_version(session: AsyncSession, appliance_id: uuid.UUID,
                                  version: str) -> None:
    """An update was installed: the appliance runs `version` now (its next reported state
    says the same)."""
    appliance = await repository.by_id(session, appliance_id)
    if appliance is None or appliance.firmware_version == version:
        return
    appliance.firmware_version = version
    appliance.updated_at = clock.utcnow()
    await session.flush()


# --- admin -----------------------------------------------------------------------------------

def admin_view(appliance: Appliance, now: datetime | None = None) -> AdminApplianceOut:
    return AdminApplianceOut.model_validate(_admin_fields(appliance, now or clock.utcnow()))


def admin_detail(appliance: Appliance, now: datetime | None = None) -> AdminApplianceDetail:
    fields = _admin_fields(appliance, now or clock.utcnow())
    fields.update(state=appliance.state, settings=appliance.settings,
                  config_version=appliance.config_version,
                  current_session_id=appliance.current_session_id)
    return AdminApplianceDetail.model_validate(fields)


def _admin_fields(appliance: Appliance, now: datetime) -> dict[str, Any]:
    names = ("id", "serial", "model", "hw_revision", "lifecycle", "firmware_version", "channel",
             "last_seen_at", "owner_id", "name", "paired_at", "provisioned_at",
             "decommissioned_at", "created_at")
    fields = {name: getattr(appliance, name) for name in names}
    fields["online"] = is_online(appliance, now)
    return fields


async def search_fleet(session: AsyncSession, where: repository.FleetFilter,
                       after: tuple[datetime, uuid.UUID] | None,
                       limit: int) -> Sequence[Appliance]:
    where = replace(where, online_since=clock.utcnow() - INACTIVITY_TIMEOUT)
    return await repository.fleet(session, where, after, limit)


async def admin_get(session: AsyncSession, appliance_id: uuid.UUID, *,
                    lock: bool = False) -> Appliance:
    appliance = await repository.by_id(session, appliance_id, lock=lock)
    if appliance is None:
        raise ApplianceNotFound()
    return appliance


async def decommission(rt: Runtime, session: AsyncSession, admin: User, appliance_id: uuid.UUID,
                       ip: str | None) -> Appliance:
    """Retire an appliance for good: unpaired, its secret and every token ended, its broker
    credentials removed; it can neither provision again nor be claimed. The appliance is not
    told anything (it may be stolen or broken). Repeating it changes nothing."""
    appliance = await admin_get(session, appliance_id, lock=True)
    if appliance.lifecycle == DECOMMISSIONED:
        return appliance
    now = clock.utcnow()
    was_owned_by = appliance.owner_id
    if was_owned_by is not None:
        _release(rt, session, appliance, now)
    appliance.lifecycle = DECOMMISSIONED
    appliance.decommissioned_at = now
    appliance.device_secret_hash = None
    appliance.online = False
    appliance.updated_at = now
    await repository.drop_open_codes(session, appliance.id)
    broker_tasks.enqueue_remove(rt, session, appliance.id)
    audit.record(session, "appliance.decommission", actor_id=admin.id, actor_type="admin",
                 target_type="appliance", target_id=appliance.id, ip=ip, serial=appliance.serial,
                 owner_id=None if was_owned_by is None else str(was_owned_by))
    await session.flush()
    if was_owned_by is not None:
        await library.owner_changed(session, appliance.id)
    return appliance
