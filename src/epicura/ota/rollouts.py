"""Rollouts: a release offered to a filtered fleet in growing stages.

State changes (start, pause, resume, advance, abort by an admin; advance, complete and halt by
the evaluator) are each one locked update of the rollout row plus an audit entry. When a stage
opens, the devices it adds are written to `rollout_devices` (their bucket and stage) and those
online get the retained `down/ota` notice; when the rollout stops serving a device (paused,
halted, aborted, or the device is done) the notice is cleared.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.auth.models import User
from epicura.kit import audit, clock
from epicura.kit.errors import Conflict, NotFound, ProblemError
from epicura.kit.runtime import Runtime
from epicura.ota import fleet, repository, versions
from epicura.ota.models import (
    OPEN_STATES,
    R_ABORTED,
    R_ACTIVE,
    R_COMPLETED,
    R_DRAFT,
    R_HALTED,
    R_PAUSED,
    READY,
    FirmwareRelease,
    Rollout,
)
from epicura.ota.schemas import RolloutCreate

log = structlog.get_logger("epicura.ota.rollouts")

FAILING = ("failed", "rolled_back")


class RolloutNotFound(NotFound):
    title = "No such rollout"


class ReleaseNotReady(ProblemError):
    status = 422
    code = "release_not_ready"
    title = "Only a ready release can be rolled out"


class FilterOutsideRelease(ProblemError):
    status = 422
    code = "filter_outside_release"
    title = "The filter names a channel or hardware revision the release is not for"


class VersionBelowFleet(ProblemError):
    status = 422
    code = "version_below_fleet"
    title = "A rollout cannot take the fleet back to an older version"


class RolloutExists(Conflict):
    code = "rollout_exists"
    title = "This release already has a rollout that is not over"


class InvalidTransition(Conflict):
    code = "invalid_transition"
    title = "The rollout cannot do that in its current state"


# --- creating and reading  -----------------------------------------------------------------------

async def create(session: AsyncSession, admin: User, body: RolloutCreate,
                 ip: str | None) -> Rollout:
    release = await repository.release(session, body.release_id)
    if release is None or release.status != READY:
        raise ReleaseNotReady()
    wanted = body.filter
    if wanted.channel != release.channel or not set(wanted.hw_revisions) <= set(
            release.hw_revisions):
        raise FilterOutsideRelease(
            f"The release is for channel {release.channel}, revisions {release.hw_revisions}")
    now = clock.utcnow()
    rollout = Rollout(
        release_id=release.id, state=R_DRAFT, channel=wanted.channel,
        hw_revisions=list(wanted.hw_revisions), tags=list(wanted.tags),
        stages=[stage.model_dump(exclude_none=True) for stage in body.stages],
        current_stage=-1, revision=1, created_by=admin.id, created_at=now, updated_at=now,
    )
    await refuse_downgrade(session, rollout, release)
    session.add(rollout)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise RolloutExists() from None
    audit.record(session, "rollout.created", actor_id=admin.id, actor_type="admin",
                 target_type="rollout", target_id=rollout.id, ip=ip,
                 release_id=str(release.id), version=release.version, stages=rollout.stages,
                 filter={"channel": rollout.channel, "hw_revisions": rollout.hw_revisions,
                         "tags": rollout.tags})
    return rollout


async def get_or_404(session: AsyncSession, rollout_id: uuid.UUID, *,
                     lock: bool = False) -> Rollout:
    rollout = await repository.rollout(session, rollout_id, lock=lock)
    if rollout is None:
        raise RolloutNotFound()
    return rollout


async def list_rollouts(session: AsyncSession, after: tuple[datetime, uuid.UUID] | None,
                        limit: int, state: str | None) -> Sequence[Rollout]:
    return await repository.rollouts(session, after, limit, state)


async def release_of(session: AsyncSession, rollout: Rollout) -> FirmwareRelease:
    release = await repository.release(session, rollout.release_id)
    assert release is not None  # a foreign key with ON DELETE RESTRICT
    return release


async def refuse_downgrade(session: AsyncSession, rollout: Rollout,
                           release: FirmwareRelease) -> None:
    """T42, no downgrade by configuration: 422 when the release is below a version already
    rolled out to the same channel and hardware (a rollback ships as a new, higher release), or
    when every appliance of the filter already runs it or newer."""
    target = versions.parse(release.version)
    wanted = set(rollout.hw_revisions)
    for version, revisions in await repository.rolled_out_versions(
            session, rollout.channel, release.id):
        done = versions.parse_or_none(version)
        if done is not None and target < done and wanted & set(revisions):
            raise VersionBelowFleet(
                f"{release.version} is below {version}, already rolled out to this channel and "
                "hardware: ship a rollback as a new release with a higher version")
    if await fleet.all_run_at_least(session, rollout, release.version):
        raise VersionBelowFleet(
            f"Every appliance of the filter already runs {release.version} or newer")


# --- state changes  ------------------------------------------------------------------------------

ADMIN_ACTIONS: dict[str, tuple[str, ...]] = {
    "start": (R_DRAFT,),
    "pause": (R_ACTIVE,),
    "resume": (R_PAUSED, R_HALTED),
    "advance": (R_ACTIVE, R_PAUSED),
    "abort": (R_DRAFT, R_ACTIVE, R_PAUSED, R_HALTED),
}


async def act(rt: Runtime, session: AsyncSession, admin: User, rollout_id: uuid.UUID,
              action: str, ip: str | None) -> Rollout:
    """An admin's start / pause / resume / advance / abort."""
    rollout = await get_or_404(session, rollout_id, lock=True)
    if rollout.state not in ADMIN_ACTIONS[action]:
        raise InvalidTransition(f"A {rollout.state} rollout cannot {action}")
    release = await release_of(session, rollout)
    if action in ("start", "resume", "advance") and release.status != READY:
        raise ReleaseNotReady("The release was yanked")
    now = clock.utcnow()
    if action == "start":
        await refuse_downgrade(session, rollout, release)
        await _move(rt, session, rollout, release, R_ACTIVE, 0, now)
        rollout.started_at = now
    elif action == "pause":
        await _move(rt, session, rollout, release, R_PAUSED, rollout.current_stage, now)
    elif action == "resume":
        await _move(rt, session, rollout, release, R_ACTIVE, rollout.current_stage, now)
    elif action == "advance":
        await _advance(rt, session, rollout, release, now)
    else:
        await _move(rt, session, rollout, release, R_ABORTED, rollout.current_stage, now)
    _audit(session, rollout, f"rollout.{action}", admin.id, ip)
    return rollout


async def end_for_release(rt: Runtime, session: AsyncSession, admin: User,
                          release: FirmwareRelease, ip: str | None) -> None:
    """The release was yanked: its rollouts that are not over are aborted."""
    for rollout_id in await repository.open_rollout_ids(session, release.id):
        locked = await get_or_404(session, rollout_id, lock=True)
        if locked.state in OPEN_STATES:
            await _move(rt, session, locked, release, R_ABORTED, locked.current_stage,
                        clock.utcnow())
            _audit(session, locked, "rollout.abort", admin.id, ip, reason="release yanked")


async def _advance(rt: Runtime, session: AsyncSession, rollout: Rollout,
                   release: FirmwareRelease, now: datetime) -> None:
    last = len(rollout.stages) - 1
    if rollout.current_stage >= last:
        await _move(rt, session, rollout, release, R_COMPLETED, last, now)
    else:
        await _move(rt, session, rollout, release, R_ACTIVE, rollout.current_stage + 1, now)


async def _move(rt: Runtime, session: AsyncSession, rollout: Rollout, release: FirmwareRelease,
                state: str, stage: int, now: datetime) -> None:
    opening = state == R_ACTIVE and (rollout.state != R_ACTIVE or stage != rollout.current_stage)
    rollout.state, rollout.updated_at = state, now
    rollout.revision += 1
    if opening:
        rollout.current_stage, rollout.stage_started_at = stage, now
        rollout.halt_reason = None
    if state in (R_COMPLETED, R_ABORTED):
        rollout.ended_at = now
    await session.flush()
    if state in (R_ACTIVE, R_COMPLETED):
        await fleet.sync_members(rt, session, rollout, release, now)
    if state in (R_PAUSED, R_HALTED, R_ABORTED):
        await fleet.clear_notices(rt, session, rollout)


def _audit(session: AsyncSession, rollout: Rollout, action: str, actor_id: uuid.UUID | None,
           ip: str | None = None, **details: object) -> None:
    audit.record(session, action, actor_id=actor_id,
                 actor_type="admin" if actor_id else "system", target_type="rollout",
                 target_id=rollout.id, ip=ip, state=rollout.state,
                 stage=rollout.current_stage, **details)


# --- evaluation  ---------------------------------------------------------------------------------

def stage_rates(rollout: Rollout, counts: dict[tuple[int, str], int]) -> tuple[int, int, int]:
    """(devices, succeeded, failing) over the open stages."""
    devices = succeeded = failing = 0
    for (stage, status), n in counts.items():
        if stage <= rollout.current_stage:
            devices += n
            succeeded += n if status == "succeeded" else 0
            failing += n if status in FAILING else 0
    return devices, succeeded, failing


def failure_crossed(rollout: Rollout, counts: dict[tuple[int, str], int]) -> str | None:
    devices, _succeeded, failing = stage_rates(rollout, counts)
    stage = rollout.stages[rollout.current_stage]
    threshold = float(stage["failure_threshold"])
    where = (f"{failing} of {devices} devices failed or rolled back in stages up to "
             f"{rollout.current_stage + 1}")
    if devices and failing / devices > threshold:
        return f"{where}: above the failure threshold {threshold:g}"
    most = stage.get("failure_max_devices")
    if most is not None and failing > int(most):
        return f"{where}: more than the {int(most)} failures allowed"
    return None


def success_holds(rollout: Rollout, counts: dict[tuple[int, str], int], now: datetime) -> bool:
    stage = rollout.stages[rollout.current_stage]
    assert rollout.stage_started_at is not None
    if now < rollout.stage_started_at + timedelta(seconds=int(stage["soak_s"])):
        return False
    devices, succeeded, _failing = stage_rates(rollout, counts)
    # No device in the stage yet (a small share of a small fleet): nothing argues against it.
    return devices == 0 or succeeded / devices >= float(stage["success_threshold"])


async def check_failures(rt: Runtime, session: AsyncSession, rollout_id: uuid.UUID) -> bool:
    """At once after a failure report: halt the rollout if its failure threshold is crossed."""
    rollout = await get_or_404(session, rollout_id, lock=True)
    if rollout.state != R_ACTIVE:
        return False
    reason = failure_crossed(rollout, await repository.counts(session, rollout.id))
    if reason is None:
        return False
    await _halt(rt, session, rollout, reason)
    return True


async def _halt(rt: Runtime, session: AsyncSession, rollout: Rollout, reason: str) -> None:
    release = await release_of(session, rollout)
    await _move(rt, session, rollout, release, R_HALTED, rollout.current_stage, clock.utcnow())
    rollout.halt_reason = reason
    _audit(session, rollout, "rollout.halted", None, reason=reason)
    log.warning("rollout_halted", rollout_id=str(rollout.id), reason=reason)


async def evaluate(rt: Runtime, session: AsyncSession, rollout_id: uuid.UUID) -> str | None:
    """The periodic look at an active rollout: new devices in its open stages, then halt,
    advance or complete. Returns what it did (None: nothing)."""
    rollout = await get_or_404(session, rollout_id, lock=True)
    if rollout.state != R_ACTIVE:
        return None
    now = clock.utcnow()
    release = await release_of(session, rollout)
    await fleet.sync_members(rt, session, rollout, release, now)
    counts = await repository.counts(session, rollout.id)
    reason = failure_crossed(rollout, counts)
    if reason is not None:
        await _halt(rt, session, rollout, reason)
        return "halted"
    if not success_holds(rollout, counts, now):
        return None
    await _advance(rt, session, rollout, release, now)
    done = rollout.state == R_COMPLETED
    _audit(session, rollout, "rollout.completed" if done else "rollout.advanced", None)
    return "completed" if done else "advanced"
