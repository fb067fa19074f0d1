"""The job queue (kit/jobs.py) on PostgreSQL: outbox semantics, retries with backoff, dead jobs,
expired leases, sealed secrets and `SKIP LOCKED` claiming (T50, T51); its metrics, and
`epicura worker --metrics-port` serving them."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, text

from epicura.app import job_context
from epicura.config import Settings
from epicura.kit import clock, jobs, metrics
from tests.bridge.ingest_support import wait_until
from tests.conftest import REDIS_URL, free_port
from tests.e2e import process_env, started
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


def _finished(kind: str, outcome: str) -> float:
    return metrics.registry.get_sample_value(
        "epicura_jobs_finished_total", {"kind": kind, "outcome": outcome}) or 0.0


def _depth(state: str) -> float | None:
    return metrics.registry.get_sample_value("epicura_job_queue_depth", {"state": state})


async def test_finished_jobs_are_counted_by_kind_and_outcome(svc: Service) -> None:
    outcomes = [("test.jobs.record", jobs.SUCCEEDED), ("test.jobs.fail", jobs.FAILED),
                ("test.jobs.fail", jobs.DEAD)]
    before = {pair: _finished(*pair) for pair in outcomes}
    run = _run_id()
    await _enqueue(svc, "test.jobs.record", {"run": run})
    await _enqueue(svc, "test.jobs.fail", {"run": run}, max_attempts=3)  # retried later
    await _enqueue(svc, "test.jobs.fail", {"run": run}, max_attempts=1)  # dies at once
    assert await _run_due(svc) == 3
    assert {pair: _finished(*pair) - before[pair] for pair in outcomes} == dict.fromkeys(
        outcomes, 1.0)


async def test_the_queue_depth_gauge_reflects_the_queue(svc: Service) -> None:
    db = svc.runtime.db
    before = await jobs.queue_depth(db)
    run = _run_id()
    for _ in range(3):
        await _enqueue(svc, "test.jobs.record", {"run": run}, delay_s=3600)  # not due yet
    await _enqueue(svc, "test.jobs.fail", {"run": run}, max_attempts=1)
    assert await _run_due(svc) == 1
    after = await jobs.queue_depth(db)
    assert {state: after[state] - before[state] for state in jobs.WAITING} == {
        jobs.QUEUED: 3, jobs.RUNNING: 0, jobs.FAILED: 0, jobs.DEAD: 1}
    assert {state: _depth(state) for state in jobs.WAITING} == after

    # The runner refreshes the gauge by itself, every `depth_every_s`.
    metrics.queue_depth.labels(state=jobs.QUEUED).set(-1)
    runner = asyncio.create_task(jobs.run_forever(job_context(svc.runtime), asyncio.Event(),
                                                  depth_every_s=0.05))

    async def refreshed() -> bool:
        return _depth(jobs.QUEUED) == after[jobs.QUEUED]

    try:
        await wait_until(refreshed, timeout_s=10, message="the runner to refresh the gauge")
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


def _samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(exposition)
            for sample in family.samples}


async def test_the_worker_serves_probes_and_job_metrics(
        svc: Service, pg_settings: Settings, tmp_path: Path) -> None:
    # The worker process has no handler for this test kind: its run fails and is retried later.
    await _enqueue(svc, "test.jobs.record", {"run": _run_id()})
    for _ in range(2):
        await _enqueue(svc, "test.jobs.record", {"run": _run_id()}, delay_s=3600)
    assert pg_settings.database_url is not None
    port = free_port()
    env = process_env(DATABASE_URL=pg_settings.database_url, REDIS_URL=REDIS_URL,
                      REDIS_PREFIX=pg_settings.redis_prefix, WORKER_METRICS_PORT=str(port))
    failed = ("epicura_jobs_finished_total",
              frozenset({("kind", "test.jobs.record"), ("outcome", "failed")}))

    def depth(state: str) -> tuple[str, frozenset[tuple[str, str]]]:
        return "epicura_job_queue_depth", frozenset({("state", state)})

    async with (started("worker", "--metrics-host", "127.0.0.1", cwd=tmp_path, env=env)
                as worker, httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                              timeout=10) as client):
        async def scraped() -> bool:
            assert not worker.output.closed, worker.output.text
            try:
                reply = await client.get("/metrics")
            except httpx2.ConnectError:
                return False  # not listening yet
            found = _samples(reply.text)
            # Three waiting jobs whichever side of a depth refresh the failed run fell.
            return found.get(failed) == 1 and \
                found.get(depth("queued"), 0) + found.get(depth("failed"), 0) == 3

        await wait_until(scraped, timeout_s=60, message="the worker's metrics")
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.json()["checks"]) == (200, {"database": "ok"})
        assert (await client.get("/nope")).status_code == 404
