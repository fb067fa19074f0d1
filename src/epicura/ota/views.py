"""Response bodies built from rows (releases, rollouts with their per-stage counts)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from epicura.kit.etag import make_etag
from epicura.ota import repository, rollouts
from epicura.ota.models import OUTCOMES, PENDING, R_COMPLETED, FirmwareRelease, Rollout
from epicura.ota.schemas import ReleaseOut, RolloutFilter, RolloutOut, StageOut

COUNTED = (PENDING, *OUTCOMES)


def release_view(release: FirmwareRelease) -> ReleaseOut:
    return ReleaseOut.model_validate(release, from_attributes=True)


def release_etag(release: FirmwareRelease) -> str:
    return make_etag(release.id, release.status, release.notes, release.updated_at.isoformat())


def _stage_status(rollout: Rollout, index: int) -> str:
    if rollout.state == R_COMPLETED or index < rollout.current_stage:
        return "passed"
    if index == rollout.current_stage:
        return "open"
    return "waiting"


async def rollout_view(session: AsyncSession, rollout: Rollout) -> RolloutOut:
    release = await rollouts.release_of(session, rollout)
    counts = await repository.counts(session, rollout.id)
    stages = []
    for index, stage in enumerate(rollout.stages):
        mine = {status: counts.get((index, status), 0) for status in COUNTED}
        stages.append(StageOut(**stage, index=index, status=_stage_status(rollout, index),
                               devices=sum(mine.values()), counts=mine))
    return RolloutOut(
        id=rollout.id, release_id=rollout.release_id, version=release.version,
        state=rollout.state,
        filter=RolloutFilter(channel=rollout.channel,
                             hw_revisions=rollout.hw_revisions, tags=rollout.tags),
        stages=stages, current_stage=None if rollout.current_stage < 0 else rollout.current_stage,
        stage_started_at=rollout.stage_started_at, halt_reason=rollout.halt_reason,
        created_by=rollout.created_by, created_at=rollout.created_at,
        updated_at=rollout.updated_at, started_at=rollout.started_at, ended_at=rollout.ended_at)


def rollout_etag(view: RolloutOut) -> str:
    return make_etag(view.model_dump_json())
