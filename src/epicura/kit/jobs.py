"""Background jobs kept in the database: the queue is the transactional outbox.

A job is written in the same transaction as the change that causes it, so a crash between commit
and send loses nothing and a rollback sends nothing. Workers claim due jobs with
`FOR UPDATE SKIP LOCKED` (any number of workers), hold a lease while running (a worker killed
mid-job leaves it to be claimed again when the lease ends), retry failures with exponential
backoff and jitter, and park a job as `dead` after its last attempt. Secrets a job needs (an
e-mailed link) are stored sealed, never in clear.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Index, String, Text, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from epicura.kit import clock
from epicura.kit.db import Base, Database, uuid_pk
from epicura.kit.security import Sealer

log = structlog.get_logger("epicura.jobs")

QUEUED, RUNNING, SUCCEEDED, FAILED, DEAD = "queued", "running", "succeeded", "failed", "dead"
DEFAULT_MAX_ATTEMPTS = 8
BACKOFF_FIRST_S = 1.0
BACKOFF_CAP_S = 300.0
LEASE_S = 120
SEALED_KEY = "_sealed"


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_run_at", "state", "run_at"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16), default=QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=DEFAULT_MAX_ATTEMPTS)
    run_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


Handler = Callable[["JobContext", dict[str, Any]], Awaitable[None]]
_handlers: dict[str, Handler] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the coroutine that runs jobs of `kind`."""

    def register(fn: Handler) -> Handler:
        _handlers[kind] = fn
        return fn

    return register


@dataclass
class JobContext:
    """What a running job may use; modules put their services in `extras`."""

    db: Database
    sealer: Sealer
    extras: dict[str, Any] = field(default_factory=dict)


class Enqueuer:
    def __init__(self, sealer: Sealer) -> None:
        self.sealer = sealer
        self.wakeup = asyncio.Event()

    def enqueue(
        self,
        session: AsyncSession,
        kind: str,
        payload: dict[str, Any],
        *,
        secrets: dict[str, Any] | None = None,
        delay_s: float = 0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> Job:
        now = clock.utcnow()
        body = dict(payload)
        if secrets:
            body[SEALED_KEY] = self.sealer.seal(secrets)
        job = Job(
            kind=kind,
            payload=body,
            state=QUEUED,
            attempts=0,
            max_attempts=max_attempts,
            run_at=now + timedelta(seconds=delay_s),
            created_at=now,
        )
        session.add(job)
        self.wakeup.set()
        return job


def backoff_s(attempts: int) -> float:
    """1 s, 2 s, 4 s … capped at 5 min, with ±25 % jitter so retries do not stampede."""
    base = min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2.0 ** max(0, attempts - 1))
    jitter: float = random.uniform(0.75, 1.25)  # noqa: S311 - jitter, not security
    return base * jitter


async def claim(db: Database, *, limit: int = 10) -> list[Job]:
    now = clock.utcnow()
    async with db.transaction() as session:
        due = (
            select(Job.id)
            .where(
                or_(
                    Job.state.in_((QUEUED, FAILED)) & (Job.run_at <= now),
                    (Job.state == RUNNING) & (Job.locked_until < now),
                )
            )
            .order_by(Job.run_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = list((await session.scalars(due)).all())
        if not ids:
            return []
        await session.execute(
            update(Job)
            .where(Job.id.in_(ids))
            .values(
                state=RUNNING,
                attempts=Job.attempts + 1,
                locked_until=now + timedelta(seconds=LEASE_S),
            )
        )
        jobs = (await session.scalars(select(Job).where(Job.id.in_(ids)))).all()
        return list(jobs)


async def _finish(db: Database, job: Job, error: str | None) -> None:
    now = clock.utcnow()
    values: dict[str, Any]
    if error is None:
        # The payload may hold sealed secrets: nothing of it is kept once the job is done.
        values = {"state": SUCCEEDED, "finished_at": now, "locked_until": None, "payload": {}}
    elif job.attempts >= job.max_attempts:
        values = {"state": DEAD, "finished_at": now, "locked_until": None, "last_error": error}
    else:
        retry_at = now + timedelta(seconds=backoff_s(job.attempts))
        values = {"state": FAILED, "run_at": retry_at, "locked_until": None, "last_error": error}
    async with db.transaction() as session:
        await session.execute(update(Job).where(Job.id == job.id).values(**values))


async def run_one(ctx: JobContext, job: Job) -> None:
    fn = _handlers.get(job.kind)
    error: str | None = None
    if fn is None:
        error = f"no handler for job kind {job.kind!r}"
    else:
        payload = dict(job.payload)
        sealed = payload.pop(SEALED_KEY, None)
        if isinstance(sealed, str):
            payload.update(ctx.sealer.unseal(sealed))
        try:
            await fn(ctx, payload)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:2000]
            log.warning(
                "job_failed",
                job_id=str(job.id),
                kind=job.kind,
                attempt=job.attempts,
                error=type(exc).__name__,
            )
    await _finish(ctx.db, job, error)


async def run_due(ctx: JobContext, *, limit: int = 10) -> int:
    """Claim and run the jobs that are due now; returns how many ran."""
    jobs = await claim(ctx.db, limit=limit)
    for job in jobs:
        await run_one(ctx, job)
    return len(jobs)


async def run_forever(ctx: JobContext, wakeup: asyncio.Event, *, idle_s: float = 1.0) -> None:
    """The worker loop: run what is due, then sleep until woken or `idle_s` passes."""
    while True:
        try:
            ran = await run_due(ctx)
        except Exception:
            log.exception("job_runner_error")
            ran = 0
        if ran:
            continue
        wakeup.clear()
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
        # that arrives as the wait ends, and the loop would then never stop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(idle_s):
                await wakeup.wait()


async def retry(session: AsyncSession, job_id: uuid.UUID) -> bool:
    """Put a failed or dead job back in the queue with a fresh set of attempts."""
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state.in_((FAILED, DEAD)))
        .values(state=QUEUED, attempts=0, run_at=clock.utcnow(), finished_at=None)
    )
    return bool(getattr(result, "rowcount", 0))
