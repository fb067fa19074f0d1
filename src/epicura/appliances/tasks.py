"""Periodic work of the appliances module (run by the worker, once across all runners)."""

from __future__ import annotations

from datetime import timedelta

import structlog

from epicura.appliances import commands, repository
from epicura.kit import clock, schedule
from epicura.kit.jobs import JobContext

log = structlog.get_logger("epicura.appliances.tasks")

COMMAND_SWEEP_S = 30
# Used and expired claim codes are kept a day (for the audit trail of who redeemed what), then
# deleted so the table stays small.
CLAIM_CODE_RETENTION = timedelta(days=1)


@schedule.every(COMMAND_SWEEP_S, "appliances.expire_commands", lease_s=120)
async def expire_commands(ctx: JobContext) -> None:
    now = clock.utcnow()
    async with ctx.db.transaction() as session:
        expired = await commands.expire_commands(session, now)
        pruned = await repository.prune_codes(session, now - CLAIM_CODE_RETENTION)
    if expired or pruned:
        log.info("appliance_sweep", commands_expired=expired, claim_codes_pruned=pruned)
