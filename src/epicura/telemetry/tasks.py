"""The telemetry module's periodic tasks (registered on import; run by `epicura worker` and by
the embedded `serve`)."""

from __future__ import annotations

from epicura.kit import schedule
from epicura.kit.jobs import JobContext
from epicura.telemetry import retention, rollup

ROLLUP_EVERY_S = 30
PARTITIONS_EVERY_S = 3600
PRUNE_EVERY_S = 600


class PartitionMaintenanceFailed(Exception):
    pass


# A short lease: should a worker die mid-run, another takes over within minutes. (Two runs
# at once are harmless anyway: the watermark row is locked.)
@schedule.every(ROLLUP_EVERY_S, "telemetry.rollup", lease_s=300)
async def roll_up(ctx: JobContext) -> None:
    """1-minute and 1-hour rollups of what raw received since the last run."""
    await rollup.roll_up(ctx.db)


@schedule.every(PARTITIONS_EVERY_S, "telemetry.partitions")
async def maintain_partitions(ctx: JobContext) -> None:
    """Partitions a week ahead; partitions past retention dropped (PostgreSQL)."""
    report = await retention.maintain_partitions(ctx.db)
    if report.failed:  # the others were done; the run is marked failed and tried next hour
        raise PartitionMaintenanceFailed(", ".join(report.failed))


@schedule.every(PRUNE_EVERY_S, "telemetry.prune")
async def prune(ctx: JobContext) -> None:
    """Old device message ids; on SQLite also raw samples and rollups past retention."""
    await retention.prune_rows(ctx.db)
