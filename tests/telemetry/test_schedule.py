"""kit/schedule: a due task runs once however many runners look at the same time; a running
task is not started again while its lease holds, and is once the lease has run out (its runner
died); failures are recorded and the schedule goes on; `run_forever` keeps running tasks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from epicura.app import job_context
from epicura.kit import clock, jobs, schedule
from epicura.kit.db import Database
from tests.support import Service
from tests.telemetry.conftest import T0

pytestmark = pytest.mark.anyio


@pytest.fixture
async def second_runner(service: Service) -> AsyncIterator[jobs.JobContext]:
    """Another runner: its own engine and connections, as another worker process has."""
    db = Database(service.runtime.settings.sqlalchemy_url, pool_size=2)
    try:
        yield jobs.JobContext(db=db, sealer=service.runtime.sealer)
    finally:
        await db.dispose()


async def row(db: Database, name: str) -> schedule.Schedule:
    async with db.sessions() as session:
        found = await session.scalar(
            select(schedule.Schedule).where(schedule.Schedule.name == name))
        assert found is not None
        return found


async def test_a_due_task_runs_once_across_concurrent_runners(
    service: Service, second_runner: jobs.JobContext
) -> None:
    first = job_context(service.runtime)
    registry = schedule.Registry()
    runs: list[int] = []

    @registry.every(60, "test.schedule.once")
    async def task(_ctx: jobs.JobContext) -> None:
        runs.append(1)
        await asyncio.sleep(0)  # let the other runner in while this one is inside the task

    with clock.frozen(T0):
        await schedule.ensure_rows(first.db, registry.tasks.values())
        await schedule.ensure_rows(second_runner.db, registry.tasks.values())  # no duplicate
        for round_ in range(1, 6):
            ran = await asyncio.gather(schedule.run_due(first, registry),
                                       schedule.run_due(second_runner, registry))
            assert sorted(len(names) for names in ran) == [0, 1]
            assert len(runs) == round_
            assert await schedule.run_due(first, registry) == []  # not due again yet
            clock.advance(timedelta(seconds=60))
    found = await row(first.db, "test.schedule.once")
    assert (found.runs, found.locked_until, found.last_error) == (5, None, None)


async def test_a_running_task_is_not_started_again_until_its_lease_ends(
    service: Service, second_runner: jobs.JobContext
) -> None:
    first = job_context(service.runtime)
    registry = schedule.Registry()
    started: list[str] = []
    release = asyncio.Event()
    inside = asyncio.Event()

    @registry.every(10, "test.schedule.lease", lease_s=300)
    async def slow(ctx: jobs.JobContext) -> None:
        started.append("first" if ctx is first else "second")
        inside.set()
        if ctx is first:
            await release.wait()

    with clock.frozen(T0):
        await schedule.ensure_rows(first.db, registry.tasks.values())
        running = asyncio.create_task(schedule.run_due(first, registry))
        async with asyncio.timeout(10):
            await inside.wait()
        clock.advance(timedelta(seconds=60))  # past the next run time, inside the lease
        assert await schedule.run_due(second_runner, registry) == []
        clock.advance(timedelta(seconds=300))  # the lease is over: its runner is taken for dead
        assert await schedule.run_due(second_runner, registry) == ["test.schedule.lease"]
        release.set()
        assert await running == ["test.schedule.lease"]
    assert started == ["first", "second"]
    found = await row(first.db, "test.schedule.lease")
    assert found.runs == 1  # the late finish of the first run left the second's record alone


async def test_a_failing_task_is_recorded_and_runs_again_next_period(service: Service) -> None:
    ctx = job_context(service.runtime)
    registry = schedule.Registry()
    calls: list[int] = []

    @registry.every(30, "test.schedule.fails")
    async def broken(_ctx: jobs.JobContext) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the first run fails")

    with clock.frozen(T0):
        await schedule.ensure_rows(ctx.db, registry.tasks.values())
        assert await schedule.run_due(ctx, registry) == ["test.schedule.fails"]
        failed = await row(ctx.db, "test.schedule.fails")
        assert "RuntimeError: the first run fails" in (failed.last_error or "")
        assert failed.next_run_at == T0 + timedelta(seconds=30)
        clock.advance(timedelta(seconds=30))
        assert await schedule.run_due(ctx, registry) == ["test.schedule.fails"]
    assert (await row(ctx.db, "test.schedule.fails")).last_error is None


async def test_run_forever_keeps_running_due_tasks(service: Service) -> None:
    ctx = job_context(service.runtime)
    registry = schedule.Registry()
    runs: list[int] = []
    enough = asyncio.Event()

    @registry.every(0.05, "test.schedule.forever")
    async def tick(_ctx: jobs.JobContext) -> None:
        runs.append(1)
        if len(runs) >= 3:
            enough.set()

    loop = asyncio.create_task(schedule.run_forever(ctx, registry, poll_s=0.05))
    try:
        async with asyncio.timeout(20):
            await enough.wait()
    finally:
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop
    assert len(runs) >= 3


def test_periods_and_leases_must_be_positive() -> None:
    registry = schedule.Registry()
    with pytest.raises(ValueError, match="positive"):
        registry.every(0, "test.schedule.never")
    with pytest.raises(ValueError, match="positive"):
        registry.every(10, "test.schedule.never", lease_s=0)


def test_the_telemetry_tasks_are_registered() -> None:
    from epicura.telemetry import tasks

    assert {name: (t.every_s, t.fn) for name, t in schedule.registry.tasks.items()
            if name.startswith("telemetry.")} == {
        "telemetry.rollup": (30, tasks.roll_up),
        "telemetry.partitions": (3600, tasks.maintain_partitions),
        "telemetry.prune": (600, tasks.prune),
    }


async def test_a_task_cancelled_by_shutdown_is_handed_back_at_once(service: Service) -> None:
    ctx = job_context(service.runtime)
    registry = schedule.Registry()
    inside = asyncio.Event()

    @registry.every(60, "test.schedule.cancelled")
    async def endless(_ctx: jobs.JobContext) -> None:
        inside.set()
        await asyncio.Event().wait()

    with clock.frozen(T0):
        await schedule.ensure_rows(ctx.db, registry.tasks.values())
        running = asyncio.create_task(schedule.run_due(ctx, registry))
        async with asyncio.timeout(10):
            await inside.wait()
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    found = await row(ctx.db, "test.schedule.cancelled")
    assert (found.locked_until, found.last_error) == (None, "cancelled (shutdown)")
    assert found.next_run_at == T0 + timedelta(seconds=60)
