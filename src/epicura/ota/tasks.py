"""Periodic work of the OTA module: every active rollout is evaluated (new devices in its open
stages, automatic halt, advance and completion) every `OTA_EVALUATE_EVERY_S` (30 s by default),
once across all runners, so a crossed failure threshold halts a rollout within a minute even
without a new report. The period is read from the settings when this module is first imported
(the process's start), as the schedule's periods are fixed at registration."""

from __future__ import annotations

import structlog

from epicura.kit import schedule
from epicura.kit.jobs import JobContext
from epicura.kit.runtime import Runtime
from epicura.ota import repository, rollouts
from epicura.ota.models import R_ACTIVE

log = structlog.get_logger("epicura.ota.tasks")


def _evaluate_every_s() -> float:
    from epicura.config import Settings

    return Settings().ota_evaluate_every_s


EVALUATE_S = _evaluate_every_s()


async def evaluate_active(rt: Runtime) -> dict[str, str]:
    """Each active rollout in its own transaction (one failing does not hold the others)."""
    async with rt.db.sessions() as session:
        ids = await repository.rollout_ids_in_state(session, R_ACTIVE)
    done: dict[str, str] = {}
    for rollout_id in ids:
        async with rt.db.transaction() as session:
            outcome = await rollouts.evaluate(rt, session, rollout_id)
        if outcome is not None:
            done[str(rollout_id)] = outcome
    if done:
        log.info("rollouts_evaluated", changes=done)
    return done


@schedule.every(EVALUATE_S, "ota.evaluate_rollouts", lease_s=300)
async def evaluate_rollouts(ctx: JobContext) -> None:
    runtime: Runtime = ctx.extras["runtime"]
    await evaluate_active(runtime)
