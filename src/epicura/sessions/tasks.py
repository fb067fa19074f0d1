"""The stale sweep: a live session whose appliance has been silent for 90 s is announced
`stale` once (`session.updated` with that status), and announced again with its real status
when the appliance speaks (its next session event does that at once; telemetry alone is
noticed by the next sweep). Reads compute `stale` themselves; the sweep only tells watchers."""

from __future__ import annotations

from datetime import datetime

import structlog

from epicura.appliances import service as appliances_service
from epicura.kit import clock, schedule
from epicura.kit.jobs import JobContext
from epicura.kit.runtime import Runtime
from epicura.sessions import live, program, repository
from epicura.sessions.models import STALE
from epicura.sessions.service import STALE_AFTER, shown_status

log = structlog.get_logger("epicura.sessions.tasks")

SWEEP_S = 15
BATCH = 500


@schedule.every(SWEEP_S, "sessions.stale_sweep", lease_s=120)
async def stale_sweep(ctx: JobContext) -> None:
    rt: Runtime = ctx.extras["runtime"]
    went_stale, came_back = await sweep_once(rt, clock.utcnow())
    if went_stale or came_back:
        log.info("session_stale_sweep", went_stale=went_stale, came_back=came_back)


async def sweep_once(rt: Runtime, now: datetime) -> tuple[int, int]:
    """(sessions announced stale, sessions announced back)."""
    went_stale = came_back = 0
    cutoff = now - STALE_AFTER
    async with rt.db.transaction() as db:
        announcer = live.Announcer(db)
        for row in await repository.live_quiet_since(db, cutoff, BATCH):
            if shown_status(row, await appliances_service.activity(db, row.appliance_id),
                            now) != STALE:
                continue  # telemetry or other messages of its appliance still arrive
            row.stale_announced_at = now
            plan = await program.load(db, row.recipe_id, row.recipe_version)
            live.updated(announcer, row, plan, now, status=STALE)
            went_stale += 1
        for row in await repository.announced_stale(db, BATCH):
            if shown_status(row, await appliances_service.activity(db, row.appliance_id),
                            now) == STALE:
                continue
            row.stale_announced_at = None
            plan = await program.load(db, row.recipe_id, row.recipe_version)
            live.updated(announcer, row, plan, now)
            came_back += 1
    await announcer.publish(rt)
    return went_stale, came_back
