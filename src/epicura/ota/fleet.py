"""A rollout's devices: who is in its open stages, and the retained `down/ota` notice.

Membership is computed from the fleet (the appliances module's search), so devices provisioned,
moved to the channel or tagged after the start fall in at the next evaluation; a device's stage
comes from its bucket, which never changes.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from epicura.appliances import service as appliances_service
from epicura.bridge.outbox import enqueue_down
from epicura.kit.runtime import Runtime
from epicura.notifications import service as notifications_service
from epicura.ota import eligibility, repository, versions
from epicura.ota.models import PENDING, FirmwareRelease, Rollout

if TYPE_CHECKING:
    from epicura.appliances.models import Appliance

FLEET_PAGE = 500
DONE = frozenset({"succeeded", "rolled_back"})


async def _fleet(session: AsyncSession, rollout: Rollout) -> AsyncIterator[Appliance]:
    for hw_revision in rollout.hw_revisions:
        after: tuple[datetime, uuid.UUID] | None = None
        while True:
            page = await appliances_service.provisioned_fleet(
                session, rollout.channel, hw_revision, after, FLEET_PAGE)
            for appliance in page:
                yield appliance
            if len(page) < FLEET_PAGE:
                break
            after = (page[-1].created_at, page[-1].id)


async def all_run_at_least(session: AsyncSession, rollout: Rollout, version: str) -> bool:
    """True when the filter's fleet holds appliances and none runs a version below `version`
    (appliances whose version cannot be read do not count)."""
    target = versions.parse(version)
    seen = False
    async for appliance in _fleet(session, rollout):
        if not set(rollout.tags) <= set(appliance.tags or ()):
            continue
        current = versions.parse_or_none(appliance.firmware_version)
        if current is None:
            continue
        if current < target:
            return False
        seen = True
    return seen


def facts_of(appliance: Appliance, current: str | None = None) -> eligibility.DeviceFacts:
    state = appliance.state or {}
    return eligibility.DeviceFacts(
        id=appliance.id, current=current if current is not None else appliance.firmware_version,
        hw_revision=appliance.hw_revision, channel=appliance.channel,
        tags=frozenset(appliance.tags or ()),
        busy=appliance.current_session_id is not None or bool(state.get("session_id")),
    )


def rollout_facts(rollout: Rollout, release: FirmwareRelease) -> eligibility.RolloutFacts:
    return eligibility.RolloutFacts(
        id=rollout.id, state=rollout.state, channel=rollout.channel,
        hw_revisions=tuple(rollout.hw_revisions), tags=tuple(rollout.tags),
        percents=tuple(float(s["percent"]) for s in rollout.stages),
        current_stage=rollout.current_stage,
        release=eligibility.ReleaseFacts(
            id=release.id, version=release.version, channel=release.channel,
            hw_revisions=tuple(release.hw_revisions), min_from_version=release.min_from_version,
            status=release.status))


def notice(rollout: Rollout, release: FirmwareRelease) -> dict[str, str]:
    return {"rollout_id": str(rollout.id), "version": release.version}


async def sync_members(rt: Runtime, session: AsyncSession, rollout: Rollout,
                       release: FirmwareRelease, now: datetime) -> int:
    """Add the fleet's devices that the open stages now hold and the release suits, and send
    the retained notice to those online that have not had it. Returns the devices added."""
    last = eligibility.open_stage(rollout.state, rollout.current_stage, len(rollout.stages))
    if last is None:
        return 0
    facts = rollout_facts(rollout, release)
    members = await repository.member_ids(session, rollout.id)
    new_rows, online_ids, owners = [], set(), []
    async for appliance in _fleet(session, rollout):
        device = facts_of(appliance)
        if appliances_service.is_online(appliance, now):
            online_ids.add(device.id)
        if device.id in members or not eligibility.matches_filter(device, facts):
            continue
        if not eligibility.release_allowed(device, facts.release):
            continue
        bucket = eligibility.bucket_of(rollout.id, device.id)
        stage = eligibility.stage_of(bucket, facts.percents)
        if stage is None or stage > last:
            continue
        new_rows.append({"rollout_id": rollout.id, "appliance_id": device.id, "bucket": bucket,
                         "stage": stage, "status": PENDING, "failures": 0, "notified": False,
                         "created_at": now, "updated_at": now})
        if appliance.owner_id is not None:
            owners.append((appliance.owner_id, device.id))
    await repository.add_members(session, new_rows)
    await _notify(rt, session, rollout, release, last, online_ids)
    await tell_owners(session, rollout, release, owners)
    return len(new_rows)


async def tell_owners(session: AsyncSession, rollout: Rollout, release: FirmwareRelease,
                      owners: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> None:
    """`firmware_available` to the owner of each (owner, appliance) whose stage just opened:
    once per rollout and appliance (the notification's collapse key holds the rollout)."""
    for owner_id, appliance_id in owners:
        await notifications_service.notify_firmware(session, owner_id, appliance_id, "available",
                                                    release.version, rollout.id)


async def _notify(rt: Runtime, session: AsyncSession, rollout: Rollout, release: FirmwareRelease,
                  last: int, online_ids: set[uuid.UUID]) -> None:
    told: list[uuid.UUID] = []
    for row in await repository.members_to_notify(session, rollout.id, last):
        if row.appliance_id in online_ids and row.status not in DONE:
            enqueue_down(rt, session, row.appliance_id, "ota", notice(rollout, release),
                         retain=True)
            told.append(row.appliance_id)
    await repository.mark_notified(session, rollout.id, told, True)


async def clear_notices(rt: Runtime, session: AsyncSession, rollout: Rollout) -> None:
    """The rollout stops serving: every retained notice it left is cleared."""
    rows = await repository.notified_members(session, rollout.id)
    await clear(rt, session, rollout.id, [row.appliance_id for row in rows])


async def clear(rt: Runtime, session: AsyncSession, rollout_id: uuid.UUID,
                appliance_ids: Sequence[uuid.UUID]) -> None:
    for appliance_id in appliance_ids:
        enqueue_down(rt, session, appliance_id, "ota", None, retain=True)
    await repository.mark_notified(session, rollout_id, appliance_ids, False)
