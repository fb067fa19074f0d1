"""The inactivity sweep: appliances silent for 90 s go offline.

Runs in every bridge (`run_sweeper`) and as a periodic task of the job runner (the worker, or
the embedded `serve` where appliances speak HTTPS only). Each round takes a PostgreSQL
transaction-level advisory lock with `pg_try_advisory_xact_lock`, so concurrent rounds do the
work once; rounds are idempotent anyway. The presence events go out on the bus after the
commit.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import structlog
from sqlalchemy import text

from epicura.appliances import reported
from epicura.bridge import metrics
from epicura.bridge.reported_handlers import appliance_channel
from epicura.kit import clock, schedule
from epicura.kit.jobs import JobContext
from epicura.kit.runtime import Runtime
from epicura.notifications import service as notifications_service

log = structlog.get_logger("epicura.bridge.presence")

SWEEP_EVERY_S = 15.0
# Any constant shared by every process of the service (it names the lock, nothing else).
SWEEP_LOCK_KEY = 0x45504943_50524553  # "EPICPRES"


async def sweep_once(rt: Runtime, now: datetime | None = None) -> list[str]:
    """One round; returns the ids marked offline (empty when another process holds the lock)."""
    now = now or clock.utcnow()
    async with rt.db.transaction() as session:
        if not rt.db.is_sqlite:
            locked = await session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"),
                                          {"key": SWEEP_LOCK_KEY})
            if not locked:
                return []
        ids = await reported.mark_inactive(session, now)
        await notifications_service.appliances_went_offline(session, ids, now)
    if ids:
        metrics.presence_sweeps.inc(len(ids))
        await rt.bus.publish_many([
            (appliance_channel(appliance_id), {"type": "appliance.presence", "data": {
                "appliance_id": str(appliance_id), "online": False, "reason": "inactive",
                "at": now.isoformat()}})
            for appliance_id in ids
        ])
    return [str(i) for i in ids]


async def run_sweeper(rt: Runtime, every_s: float = SWEEP_EVERY_S) -> None:
    """Sweep every `every_s` until cancelled; a failed round is logged and tried again."""
    while True:
        try:
            marked = await sweep_once(rt)
            if marked:
                log.info("appliances_marked_inactive", count=len(marked))
        except Exception as exc:
            log.warning("presence_sweep_failed", error=type(exc).__name__)
        await asyncio.sleep(every_s)


@schedule.every(SWEEP_EVERY_S, "appliances.presence_sweep", lease_s=60)
async def sweep_task(ctx: JobContext) -> None:
    await sweep_once(ctx.extras["runtime"])
