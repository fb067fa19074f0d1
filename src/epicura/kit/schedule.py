"""Periodic tasks of the job runner: `@schedule.every(seconds, name)` on an async fn(ctx).

Each task has a row in `schedules` (created on first start, due at once). A runner claims a due
row in one short transaction — `FOR UPDATE SKIP LOCKED` on PostgreSQL, and an update whose
`WHERE` repeats the due test, so on any database only one runner gets it — moving `next_run_at`
one period ahead and holding a lease while the task runs. So however many workers (or embedded
`serve` processes) run the schedule, each due run happens once; a runner killed mid-task leaves
the lease to expire and the task to run again. Tasks must therefore be idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import ColumnElement, String, Text, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from epicura.kit import clock
from epicura.kit.db import Base, Database
from epicura.kit.jobs import JobContext

log = structlog.get_logger("epicura.schedule")

Task = Callable[[JobContext], Awaitable[None]]
DEFAULT_LEASE_S = 15 * 60
POLL_S = 5.0
RELEASE_ON_CANCEL_S = 2.0


class Schedule(Base):
    __tablename__ = "schedules"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    next_run_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    runs: Mapped[int] = mapped_column(default=0)


@dataclass(frozen=True)
class Periodic:
    name: str
    every_s: float
    lease_s: float
    fn: Task


class Registry:
    """A set of periodic tasks. Modules use the default one through `every`; tests make their
    own so their tasks never run in another test's runner."""

    def __init__(self) -> None:
        self.tasks: dict[str, Periodic] = {}

    def every(
        self, seconds: float, name: str, *, lease_s: float = DEFAULT_LEASE_S
    ) -> Callable[[Task], Task]:
        """Run the decorated coroutine every `seconds`, once across all runners. `lease_s`
        bounds how long a run may take before another runner may start it again."""
        if seconds <= 0 or lease_s <= 0:
            raise ValueError("a period and a lease are positive")

        def register(fn: Task) -> Task:
            self.tasks[name] = Periodic(name, float(seconds), float(lease_s), fn)
            return fn

        return register


registry = Registry()
every = registry.every


async def ensure_rows(db: Database, tasks: Iterable[Periodic]) -> None:
    """A row per task, due now; existing rows (and their next run) are left alone."""
    values = [{"name": t.name, "next_run_at": clock.utcnow(), "runs": 0} for t in tasks]
    if not values:
        return
    insert = sqlite_insert if db.is_sqlite else pg_insert
    async with db.transaction() as session:
        await session.execute(insert(Schedule).values(values).on_conflict_do_nothing())


def _due(now: datetime) -> ColumnElement[bool]:
    return (Schedule.next_run_at <= now) & or_(
        Schedule.locked_until.is_(None), Schedule.locked_until < now
    )


async def claim(db: Database, tasks: dict[str, Periodic]) -> tuple[Periodic, datetime] | None:
    """One due task, now leased to this runner: (task, lease end), or None when none is due."""
    now = clock.utcnow()
    async with db.transaction() as session:
        name = await session.scalar(
            select(Schedule.name)
            .where(Schedule.name.in_(list(tasks)), _due(now))
            .order_by(Schedule.next_run_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if name is None:
            return None
        task = tasks[name]
        lease_until = now + timedelta(seconds=task.lease_s)
        claimed = await session.scalar(
            update(Schedule)
            .where(Schedule.name == name, _due(now))
            .values(
                next_run_at=now + timedelta(seconds=task.every_s),
                locked_until=lease_until,
                last_started_at=now,
            )
            .returning(Schedule.name)
        )
        return (task, lease_until) if claimed is not None else None


async def _finish(db: Database, task: Periodic, lease_until: datetime, error: str | None) -> None:
    async with db.transaction() as session:
        # Only our own lease: if it ran out and another runner took the task, leave theirs be.
        await session.execute(
            update(Schedule)
            .where(Schedule.name == task.name, Schedule.locked_until == lease_until)
            .values(
                locked_until=None,
                last_finished_at=clock.utcnow(),
                last_error=error,
                runs=Schedule.runs + 1,
            )
        )


async def run_one(ctx: JobContext, task: Periodic, lease_until: datetime) -> None:
    error: str | None = None
    try:
        await task.fn(ctx)
    except asyncio.CancelledError:
        # Shutting down mid-run: hand the task back now rather than when the lease runs out.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(RELEASE_ON_CANCEL_S):
                await _finish(ctx.db, task, lease_until, "cancelled (shutdown)")
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        log.warning("scheduled_task_failed", task=task.name, error=type(exc).__name__,
                    exc_info=True)
    await _finish(ctx.db, task, lease_until, error)


async def run_due(ctx: JobContext, reg: Registry | None = None) -> list[str]:
    """Run every task that is due now, one claim at a time (so other runners can take the
    rest); returns the names this runner ran."""
    tasks = (reg or registry).tasks
    ran: list[str] = []
    while (claimed := await claim(ctx.db, tasks)) is not None:
        task, lease_until = claimed
        await run_one(ctx, task, lease_until)
        ran.append(task.name)
    return ran


async def seconds_to_next(db: Database, tasks: dict[str, Periodic]) -> float | None:
    async with db.sessions() as session:
        soonest = await session.scalar(
            select(func.min(Schedule.next_run_at)).where(Schedule.name.in_(list(tasks)))
        )
    return None if soonest is None else (soonest - clock.utcnow()).total_seconds()


async def run_forever(ctx: JobContext, reg: Registry | None = None, *,
                      poll_s: float = POLL_S) -> None:
    """The runner loop of `epicura worker` (and of the embedded `serve`)."""
    tasks = (reg or registry).tasks
    ready = False
    while True:
        wait_s = poll_s
        try:
            if not ready:
                await ensure_rows(ctx.db, tasks.values())
                ready = True
            await run_due(ctx, reg)
            next_s = await seconds_to_next(ctx.db, tasks)
            if next_s is not None:
                wait_s = min(poll_s, max(0.05, next_s))
        except Exception:
            log.exception("schedule_runner_error")
        # Another runner may move the rows, so the loop looks again at least every `poll_s`.
        await asyncio.sleep(wait_s)
