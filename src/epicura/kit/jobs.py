"""Background jobs kept in the database: the queue is the transactional outbox.

A job is written in the same transaction as the change that causes it, so a crash between commit
and send loses nothing and a rollback sends nothing. Workers claim due jobs with
`FOR UPDATE SKIP LOCKED` (any number of workers), hold a lease while running (a worker killed
mid-job leaves it to be claimed again when the lease ends), retry failures with exponential
backoff and jitter, and park a job as `dead` after its last attempt. Secrets a job needs (an
e-mailed link) are stored sealed, never in clear.

A job may carry a `key`: enqueueing the same key again adds nothing, so a producer that runs
twice (an outbox relay retried after a crash) queues one job. Each run is bounded by a timeout
(per job, else per kind, else `DEFAULT_TIMEOUT_S`), always shorter than the lease, so a hung
handler fails and is retried instead of being run twice at once. A handler raises `RetryLater`
to be retried no earlier than a provider asked (`Retry-After`), and `Permanent` to go straight
to `dead` (retrying cannot help).

Metrics: `epicura_jobs_finished_total{kind, outcome}` counts each run as it ends (`succeeded`,
`failed` and to be retried, or `dead`); `epicura_job_queue_depth{state}` is refreshed by every
runner every `DEPTH_EVERY_S` with one `GROUP BY state` over the unfinished (and dead) jobs, so
each process reports the whole queue (aggregate across workers with `max`, not `sum`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Index, String, Text, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from epicura.kit import clock, metrics
from epicura.kit.db import Base, Database, uuid_pk
from epicura.kit.ids import uuid7
from epicura.kit.security import Sealer

log = structlog.get_logger("epicura.jobs")

QUEUED, RUNNING, SUCCEEDED, FAILED, DEAD = "queued", "running", "succeeded", "failed", "dead"
WAITING = (QUEUED, RUNNING, FAILED, DEAD)  # the states the queue-depth gauge reports
DEPTH_EVERY_S = 15.0
DEFAULT_MAX_ATTEMPTS = 8
BACKOFF_FIRST_S = 1.0
BACKOFF_CAP_S = 300.0
LEASE_S = 120
DEFAULT_TIMEOUT_S = 60.0
MAX_TIMEOUT_S = LEASE_S - 15.0  # a timed-out run has finished before its lease can expire
SEALED_KEY = "_sealed"


class RetryLater(Exception):
    """Raised by a handler: retry, but not before `after_s` (a provider's `Retry-After`)."""

    def __init__(self, after_s: float, reason: str) -> None:
        super().__init__(reason)
        self.after_s = after_s


class Permanent(Exception):
    """Raised by a handler: this job can never succeed; park it as `dead` at once."""


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_run_at", "state", "run_at"),
                      Index("ix_jobs_state_created", "state", "created_at"),
                      Index("uq_jobs_key", "key", unique=True))

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
    key: Mapped[str | None] = mapped_column(String(200))
    timeout_s: Mapped[float | None]


Handler = Callable[["JobContext", dict[str, Any]], Awaitable[None]]
_handlers: dict[str, Handler] = {}
_timeouts: dict[str, float] = {}


def _checked_timeout(timeout_s: float) -> float:
    if not 0 < timeout_s <= MAX_TIMEOUT_S:
        raise ValueError(f"a job timeout is between 0 and {MAX_TIMEOUT_S} s")
    return float(timeout_s)


def handler(kind: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Callable[[Handler], Handler]:
    """Register the coroutine that runs jobs of `kind`, each run bounded by `timeout_s`."""
    _timeouts[kind] = _checked_timeout(timeout_s)

    def register(fn: Handler) -> Handler:
        _handlers[kind] = fn
        return fn

    return register


def new_job(kind: str, payload: dict[str, Any], *, delay_s: float = 0,
            max_attempts: int = DEFAULT_MAX_ATTEMPTS, key: str | None = None,
            timeout_s: float | None = None) -> dict[str, Any]:
    """The column values of a queued job (for `add_once`, which inserts without an Enqueuer)."""
    now = clock.utcnow()
    return {
        "id": uuid7(), "kind": kind, "payload": payload, "state": QUEUED, "attempts": 0,
        "max_attempts": max_attempts, "run_at": now + timedelta(seconds=delay_s),
        "created_at": now, "key": key,
        "timeout_s": None if timeout_s is None else _checked_timeout(timeout_s),
    }


async def add_once(session: AsyncSession, kind: str, payload: dict[str, Any], *, key: str,
                   delay_s: float = 0, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                   timeout_s: float | None = None) -> bool:
    """Queue a job in the caller's transaction unless a job with `key` exists (in any state);
    True when this call queued it. No secrets here: use `Enqueuer.enqueue` for those."""
    values = new_job(kind, payload, delay_s=delay_s, max_attempts=max_attempts, key=key,
                     timeout_s=timeout_s)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    result = await session.execute(
        insert(Job).values(**values).on_conflict_do_nothing(index_elements=["key"])
        .returning(Job.id))
    return result.scalar() is not None


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
        timeout_s: float | None = None,
    ) -> Job:
        body = dict(payload)
        if secrets:
            body[SEALED_KEY] = self.sealer.seal(secrets)
        job = Job(**new_job(kind, body, delay_s=delay_s, max_attempts=max_attempts,
                            timeout_s=timeout_s))
        session.add(job)
        self.wakeup.set()
        return job

    async def enqueue_once(self, session: AsyncSession, kind: str, payload: dict[str, Any], *,
                           key: str, delay_s: float = 0,
                           max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> bool:
        """`add_once`, and wake this process's runner."""
        added = await add_once(session, kind, payload, key=key, delay_s=delay_s,
                               max_attempts=max_attempts)
        self.wakeup.set()
        return added


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


@dataclass(frozen=True)
class Outcome:
    error: str | None = None
    not_before_s: float = 0.0  # a provider's Retry-After
    permanent: bool = False


async def _finish(db: Database, job: Job, outcome: Outcome) -> None:
    now = clock.utcnow()
    values: dict[str, Any]
    error = outcome.error
    if error is None:
        # The payload may hold sealed secrets: nothing of it is kept once the job is done.
        values = {"state": SUCCEEDED, "finished_at": now, "locked_until": None, "payload": {}}
    elif outcome.permanent or job.attempts >= job.max_attempts:
        values = {"state": DEAD, "finished_at": now, "locked_until": None, "last_error": error}
    else:
        wait_s = max(backoff_s(job.attempts), outcome.not_before_s)
        retry_at = now + timedelta(seconds=wait_s)
        values = {"state": FAILED, "run_at": retry_at, "locked_until": None, "last_error": error}
    async with db.transaction() as session:
        # Only while this runner still holds it (a run is shorter than its lease).
        result = await session.execute(update(Job).where(Job.id == job.id, Job.state == RUNNING)
                                       .values(**values))
    if getattr(result, "rowcount", 0):
        metrics.jobs_finished.labels(kind=job.kind, outcome=values["state"]).inc()


def timeout_of(job: Job) -> float:
    return job.timeout_s or _timeouts.get(job.kind, DEFAULT_TIMEOUT_S)


async def run_one(ctx: JobContext, job: Job) -> None:
    fn = _handlers.get(job.kind)
    outcome = Outcome()
    if fn is None:
        outcome = Outcome(error=f"no handler for job kind {job.kind!r}")
    else:
        payload = dict(job.payload)
        sealed = payload.pop(SEALED_KEY, None)
        if isinstance(sealed, str):
            payload.update(ctx.sealer.unseal(sealed))
        try:
            async with asyncio.timeout(timeout_of(job)):
                await fn(ctx, payload)
        except Exception as exc:
            text = f"{type(exc).__name__}: {exc}"[:2000]
            if isinstance(exc, TimeoutError):
                text = f"timed out after {timeout_of(job):g} s"
            outcome = Outcome(
                error=text,
                not_before_s=exc.after_s if isinstance(exc, RetryLater) else 0.0,
                permanent=isinstance(exc, Permanent),
            )
            log.warning(
                "job_failed",
                job_id=str(job.id),
                kind=job.kind,
                attempt=job.attempts,
                error=type(exc).__name__,
            )
    await _finish(ctx.db, job, outcome)


async def run_due(ctx: JobContext, *, limit: int = 10) -> int:
    """Claim and run the jobs that are due now; returns how many ran."""
    jobs = await claim(ctx.db, limit=limit)
    for job in jobs:
        await run_one(ctx, job)
    return len(jobs)


async def queue_depth(db: Database) -> dict[str, int]:
    """How many jobs are in each of the `WAITING` states (one indexed `GROUP BY`), also set on
    the `epicura_job_queue_depth` gauge (a state with none is 0, not left at its last value)."""
    async with db.sessions() as session:
        rows = await session.execute(select(Job.state, func.count())
                                     .where(Job.state.in_(WAITING)).group_by(Job.state))
        counts = dict.fromkeys(WAITING, 0) | {str(state): int(n) for state, n in rows.all()}
    for state, count in counts.items():
        metrics.queue_depth.labels(state=state).set(count)
    return counts


async def run_forever(ctx: JobContext, wakeup: asyncio.Event, *, idle_s: float = 1.0,
                      depth_every_s: float = DEPTH_EVERY_S) -> None:
    """The worker loop: run what is due, then sleep until woken or `idle_s` passes; every
    `depth_every_s`, refresh the queue-depth gauge."""
    depth_due = 0.0
    while True:
        try:
            if time.monotonic() >= depth_due:
                depth_due = time.monotonic() + depth_every_s
                await queue_depth(ctx.db)
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


async def listing(session: AsyncSession, *, state: str | None,
                  after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[Job]:
    """Jobs newest first, optionally of one state, after a (created_at, id) position."""
    query = select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    if state is not None:
        query = query.where(Job.state == state)
    if after is not None:
        query = query.where(or_(Job.created_at < after[0],
                                (Job.created_at == after[0]) & (Job.id < after[1])))
    return list((await session.scalars(query)).all())


async def prune_succeeded(session: AsyncSession, finished_before: datetime,
                          limit: int = 5000) -> int:
    """Delete up to `limit` succeeded jobs finished before the cut (dead ones stay for the
    admin); how many went. Keys of pruned jobs may be used again, so the cut is kept far behind
    any producer's retry window."""
    ids = select(Job.id).where(Job.state == SUCCEEDED, Job.finished_at < finished_before) \
        .limit(limit)
    result = await session.execute(delete(Job).where(Job.id.in_(ids)))
    return int(getattr(result, "rowcount", 0) or 0)


async def get(session: AsyncSession, job_id: uuid.UUID) -> Job | None:
    return await session.get(Job, job_id)


async def retry(session: AsyncSession, job_id: uuid.UUID) -> bool:
    """Put a failed or dead job back in the queue with a fresh set of attempts."""
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state.in_((FAILED, DEAD)))
        .values(state=QUEUED, attempts=0, run_at=clock.utcnow(), finished_at=None)
    )
    return bool(getattr(result, "rowcount", 0))
