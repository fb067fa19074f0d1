"""The job system under the push work (PostgreSQL): keyed jobs are queued once, a run is bounded
by its timeout, `RetryLater` waits for the provider's `Retry-After`, `Permanent` goes straight to
dead, and a real `epicura worker` killed with SIGKILL in the middle of a push leaves the job to be
run again by another worker once its lease ends."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from epicura.app import job_context
from epicura.config import Settings
from epicura.kit import clock, jobs
from tests.conftest import REDIS_URL
from tests.e2e import process_env, started
from tests.notifications.conftest import (
    FCM_TOKEN,
    Fakes,
    add_token,
    cook,
    push_jobs,
    record_events,
    relay,
)
from tests.notifications.test_triggers import alert
from tests.support import Service

pytestmark = pytest.mark.anyio

hung: list[str] = []


@jobs.handler("test.notifications.hang", timeout_s=0.2)
async def _hang(_ctx: jobs.JobContext, payload: dict[str, Any]) -> None:
    hung.append(payload["run"])
    await asyncio.Event().wait()  # never set: only the timeout ends this run


@jobs.handler("test.notifications.later")
async def _later(_ctx: jobs.JobContext, payload: dict[str, Any]) -> None:
    if payload["mode"] == "later":
        raise jobs.RetryLater(90, "429 QUOTA_EXCEEDED")
    raise jobs.Permanent("400 INVALID_ARGUMENT")


async def _job(svc: Service, job_id: uuid.UUID) -> jobs.Job:
    async with svc.runtime.db.sessions() as session:
        found = await session.get(jobs.Job, job_id)
        assert found is not None
        return found


async def test_a_keyed_job_is_queued_once(svc: Service) -> None:
    key = f"test:{uuid.uuid4()}"

    async def add() -> bool:
        async with svc.runtime.db.transaction() as session:
            return await jobs.add_once(session, "test.notifications.later", {"mode": "later"},
                                       key=key)

    results = await asyncio.gather(*(add() for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    async with svc.runtime.db.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(jobs.Job)
                                     .where(jobs.Job.key == key))
    assert count == 1


async def test_a_run_is_bounded_by_its_timeout(svc: Service) -> None:
    run = uuid.uuid4().hex
    async with svc.runtime.db.transaction() as session:
        job = svc.runtime.jobs.enqueue(session, "test.notifications.hang", {"run": run})
        await session.flush()
        job_id = job.id
    async with asyncio.timeout(30):
        assert await jobs.run_due(job_context(svc.runtime)) == 1
    found = await _job(svc, job_id)
    assert hung == [run]
    assert found.state == jobs.FAILED and found.last_error == "timed out after 0.2 s"
    with pytest.raises(ValueError, match="job timeout"):
        jobs.handler("test.notifications.too_long", timeout_s=jobs.LEASE_S)


async def test_retry_later_waits_for_retry_after_and_permanent_is_dead_at_once(
        svc: Service) -> None:
    async with svc.runtime.db.transaction() as session:
        later = svc.runtime.jobs.enqueue(session, "test.notifications.later", {"mode": "later"})
        dead = svc.runtime.jobs.enqueue(session, "test.notifications.later", {"mode": "dead"})
        await session.flush()
        later_id, dead_id = later.id, dead.id
    started = clock.utcnow()
    await jobs.run_due(job_context(svc.runtime))
    waiting, gone = await _job(svc, later_id), await _job(svc, dead_id)
    assert waiting.state == jobs.FAILED
    assert waiting.run_at - started >= timedelta(seconds=90)  # not the 1 s backoff
    assert (gone.state, gone.attempts, gone.last_error) == (
        jobs.DEAD, 1, "Permanent: 400 INVALID_ARGUMENT")


async def test_a_worker_killed_mid_push_leaves_the_job_to_another_worker(
        svc: Service, fakes: Fakes, pg_settings: Settings, tmp_path: Path) -> None:
    ann = await cook(svc, "ann@example.com")
    await add_token(svc, ann, "fcm", FCM_TOKEN)
    fakes.fcm.release = asyncio.Event()  # the provider holds the request: the job is mid-send
    await record_events(svc, *alert(ann.id, "overtemp", "critical"))
    await relay(svc)
    assert pg_settings.fcm_service_account is not None
    env = process_env(
        DATABASE_URL=str(pg_settings.database_url), REDIS_URL=REDIS_URL,
        REDIS_PREFIX=pg_settings.redis_prefix, EPICURA_ENV="test", LOG_LEVEL="INFO",
        DATA_DIR=str(tmp_path), JWT_SECRET=pg_settings.jwt_secret.get_secret_value(),
        JWT_REFRESH_SECRET=pg_settings.jwt_refresh_secret.get_secret_value(),
        FCM_SERVICE_ACCOUNT=pg_settings.fcm_service_account.get_secret_value(),
        FCM_BASE_URL=pg_settings.fcm_base_url,
    )
    async with started("worker", cwd=tmp_path, env=env) as worker:
        async with asyncio.timeout(60):
            await fakes.fcm.arrived.wait()
        [job] = await push_jobs(svc)
        assert job.state == jobs.RUNNING and job.attempts == 1
        worker.process.kill()  # SIGKILL in the middle of the send
        assert await worker.exit_code() == -9
    fakes.fcm.release.set()  # the provider answers the dead worker's request into the void
    fakes.fcm.release = None

    [job] = await push_jobs(svc)
    assert job.state == jobs.RUNNING  # nobody finished it
    assert job.locked_until is not None
    with clock.frozen(job.locked_until - timedelta(seconds=1)):
        assert await jobs.run_due(job_context(svc.runtime)) == 0  # the lease still holds
    with clock.frozen(job.locked_until + timedelta(seconds=1)):
        assert await jobs.run_due(job_context(svc.runtime)) == 1  # another worker takes it
    [job] = await push_jobs(svc)
    assert (job.state, job.attempts) == (jobs.SUCCEEDED, 2)
    # At least once: the killed run's request may have reached the provider too (it was in
    # flight); the job itself ran to success exactly once.
    assert 1 <= len(fakes.fcm.sent_to(FCM_TOKEN)) <= 2

