"""The job queue (kit/jobs.py) on PostgreSQL: outbox semantics, retries with backoff, dead jobs,
expired leases, sealed secrets and `SKIP LOCKED` claiming (T50, T51)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from epicura.app import job_context
from epicura.kit import clock, jobs
from tests.support import Service

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# What each test-only handler saw, by the `run` value its job carried.
seen: dict[str, list[dict[str, Any]]] = {}


class Boom(Exception):
    pass


@jobs.handler("test.jobs.record")
async def _record(_ctx: jobs.JobContext, payload: dict[str, Any]) -> None:
    seen.setdefault(payload["run"], []).append(payload)


@jobs.handler("test.jobs.fail")
async def _fail(_ctx: jobs.JobContext, payload: dict[str, Any]) -> None:
    seen.setdefault(payload["run"], []).append(payload)
    raise Boom("the handler failed on purpose")


def _run_id() -> str:
    return uuid.uuid4().hex


async def _enqueue(svc: Service, kind: str, payload: dict[str, Any], **options: Any) -> uuid.UUID:
    async with svc.runtime.db.transaction() as session:
        job = svc.runtime.jobs.enqueue(session, kind, payload, **options)
        await session.flush()
        return job.id


async def _job(svc: Service, job_id: uuid.UUID) -> jobs.Job:
    async with svc.runtime.db.sessions() as session:
        found = await session.get(jobs.Job, job_id)
        assert found is not None
        return found


async def _run_due(svc: Service) -> int:
    return await jobs.run_due(job_context(svc.runtime))


async def test_a_job_enqueued_in_a_rolled_back_transaction_never_runs(svc: Service) -> None:
    run = _run_id()
    with pytest.raises(Boom):
        async with svc.runtime.db.transaction() as session:
            svc.runtime.jobs.enqueue(session, "test.jobs.record", {"run": run})
            await session.flush()  # the row exists inside the transaction...
            raise Boom("the change that caused the job failed")
    await svc.run_jobs()
    assert run not in seen
    async with svc.runtime.db.sessions() as session:
        rows = (await session.scalars(
            select(jobs.Job).where(jobs.Job.payload["run"].astext == run))).all()
    assert rows == []  # ...and went away with the rollback

    # The same enqueue in a committed transaction does run (the test can fail the other way).
    await _enqueue(svc, "test.jobs.record", {"run": run})
    await svc.run_jobs()
    assert len(seen[run]) == 1


async def test_a_failing_job_is_retried_with_backoff_then_dead(svc: Service) -> None:
    run = _run_id()
    with clock.frozen(T0):
        job_id = await _enqueue(svc, "test.jobs.fail", {"run": run}, max_attempts=3)

        assert await _run_due(svc) == 1
        job = await _job(svc, job_id)
        assert (job.state, job.attempts) == (jobs.FAILED, 1)
        assert job.last_error is not None and "Boom" in job.last_error
        first_wait = job.run_at - clock.utcnow()
        assert timedelta(seconds=0.75) <= first_wait <= timedelta(seconds=1.25)  # 1 s ± 25 %
        assert await _run_due(svc) == 0  # not due yet: nothing runs while the clock stands

        clock.advance(first_wait)
        assert await _run_due(svc) == 1
        job = await _job(svc, job_id)
        assert (job.state, job.attempts) == (jobs.FAILED, 2)
        second_wait = job.run_at - clock.utcnow()
        assert timedelta(seconds=1.5) <= second_wait <= timedelta(seconds=2.5)  # doubled
        clock.advance(second_wait - timedelta(milliseconds=100))
        assert await _run_due(svc) == 0

        clock.advance(timedelta(milliseconds=100))
        assert await _run_due(svc) == 1
        job = await _job(svc, job_id)
        assert (job.state, job.attempts) == (jobs.DEAD, 3)
        assert job.finished_at == clock.utcnow()
        assert job.last_error is not None and "failed on purpose" in job.last_error

        clock.advance(timedelta(days=1))
        assert await _run_due(svc) == 0  # a dead job stays dead
    assert len(seen[run]) == 3

    # An operator can put it back (the admin "retry" action).
    async with svc.runtime.db.transaction() as session:
        assert await jobs.retry(session, job_id)
    job = await _job(svc, job_id)
    assert (job.state, job.attempts) == (jobs.QUEUED, 0)


async def test_a_job_whose_worker_died_is_claimed_again_after_its_lease(svc: Service) -> None:
    run = _run_id()
    with clock.frozen(T0):
        job_id = await _enqueue(svc, "test.jobs.record", {"run": run})
        # A worker claims the job and dies before finishing it.
        [claimed] = await jobs.claim(svc.runtime.db)
        assert claimed.id == job_id
        job = await _job(svc, job_id)
        assert job.state == jobs.RUNNING and job.locked_until is not None

        clock.advance(timedelta(seconds=jobs.LEASE_S - 1))
        assert await _run_due(svc) == 0  # the lease still holds
        assert run not in seen

        clock.advance(timedelta(seconds=2))
        assert await _run_due(svc) == 1
    job = await _job(svc, job_id)
    assert (job.state, job.attempts) == (jobs.SUCCEEDED, 2)
    assert len(seen[run]) == 1


async def test_sealed_secrets_are_not_stored_in_clear_and_payload_is_emptied(
    svc: Service,
) -> None:
    run = _run_id()
    secret = "reset-token-" + uuid.uuid4().hex
    job_id = await _enqueue(svc, "test.jobs.record", {"run": run, "to": "cook@example.com"},
                            secrets={"token": secret})
    async with svc.runtime.db.engine.connect() as conn:
        stored = (await conn.execute(
            text("SELECT payload::text FROM jobs WHERE id = :id"), {"id": job_id})).scalar_one()
    assert secret not in stored
    assert jobs.SEALED_KEY in stored and "cook@example.com" in stored

    await svc.run_jobs()
    [payload] = seen[run]
    assert payload["token"] == secret  # the handler gets it unsealed
    assert jobs.SEALED_KEY not in payload
    job = await _job(svc, job_id)
    assert job.state == jobs.SUCCEEDED
    assert job.payload == {}


async def test_concurrent_claims_never_get_the_same_job(svc: Service) -> None:
    run = _run_id()
    ids = {await _enqueue(svc, "test.jobs.record", {"run": run, "n": n}) for n in range(12)}

    # A worker holds row locks on some jobs; a claim skips them rather than waiting.
    locked = sorted(ids)[:4]
    async with svc.runtime.db.transaction() as holder:
        await holder.execute(
            select(jobs.Job.id).where(jobs.Job.id.in_(locked)).with_for_update())
        async with asyncio.timeout(10):
            first = await jobs.claim(svc.runtime.db, limit=4)
        assert {job.id for job in first}.isdisjoint(locked)

    # Several claims at once split the rest between them.
    async with asyncio.timeout(10):
        batches = await asyncio.gather(*(jobs.claim(svc.runtime.db, limit=3) for _ in range(4)))
    claimed = [job.id for batch in [first, *batches] for job in batch]
    assert len(claimed) == len(set(claimed))
    assert set(claimed) == ids
    assert all(job.attempts == 1 for batch in batches for job in batch)
