"""The broker credential jobs (bridge/broker_tasks.py) on PostgreSQL and on the embedded SQLite
file, against a private Mosquitto: enqueued in the caller's transaction, the secret sealed,
no-ops without a broker, and retries that cannot undo a later decision."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiomqtt
import asyncpg
import pytest
from sqlalchemy import select

from epicura.app import job_context
from epicura.bridge import broker_tasks
from epicura.bridge.broker_admin import BrokerAdmin, BrokerEndpoint, role_name
from epicura.config import Settings
from epicura.kit import clock, jobs
from epicura.kit.runtime import Runtime
from epicura.migrate import upgrade_to_head
from tests.brokers import PrivateBroker
from tests.conftest import free_port, truncate_tables

pytestmark = pytest.mark.anyio

MAX_ROUNDS = 20


@dataclass
class Setup:
    rt: Runtime
    broker: PrivateBroker
    settings: Settings

    def runtime_with(self, mqtt_broker_url: str | None) -> Runtime:
        return Runtime.build(self.settings.model_copy(update={"mqtt_broker_url": mqtt_broker_url}))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None for the embedded SQLite file, else this run's PostgreSQL database."""
    return request.getfixturevalue("pg_database") if request.param == "postgresql" else None


@pytest.fixture
async def setup(database_url: str | None, tmp_path: Path,
                dynsec_broker: PrivateBroker) -> AsyncIterator[Setup]:
    values: dict[str, object] = {"epicura_env": "test", "data_dir": tmp_path,
                                 "mqtt_broker_url": dynsec_broker.url,
                                 "database_url": database_url}
    settings = Settings(_env_file=None, **values)  # type: ignore[arg-type]
    if settings.is_sqlite:
        await upgrade_to_head(settings)
    rt = Runtime.build(settings)
    try:
        yield Setup(rt, dynsec_broker, settings)
    finally:
        await rt.close()
        if not settings.is_sqlite:
            await truncate_tables(await asyncpg.connect(settings.database_url))


async def run_all(rt: Runtime) -> None:
    """Run jobs as a worker would until none is pending, jumping the clock over backoffs."""
    ctx = job_context(rt)
    with clock.frozen(clock.utcnow()):
        for _ in range(MAX_ROUNDS):
            await jobs.run_due(ctx)
            if not await _pending(rt):
                return
            clock.advance(timedelta(minutes=10))
    raise AssertionError("broker jobs still pending")


async def _pending(rt: Runtime) -> list[jobs.Job]:
    async with rt.db.sessions() as session:
        found = await session.scalars(select(jobs.Job).where(
            jobs.Job.kind.in_(broker_tasks.KINDS),
            jobs.Job.state.in_((jobs.QUEUED, jobs.FAILED, jobs.RUNNING))))
        return list(found.all())


async def can_connect(broker: PrivateBroker, device: str, password: str) -> bool:
    try:
        async with aiomqtt.Client(broker.host, broker.port, username=device, password=password,
                                  identifier=device):
            return True
    except aiomqtt.MqttError:
        return False


async def role_exists(broker: PrivateBroker, device: str) -> bool:
    async with BrokerAdmin(BrokerEndpoint.from_url(broker.url)) as admin:
        found = await admin.command("getRole", frozenset({"Role not found"}),
                                    rolename=role_name(device))
    return found is not None


async def test_upsert_then_remove(setup: Setup) -> None:
    device, secret = str(uuid.uuid4()), "device-secret-" + uuid.uuid4().hex
    async with setup.rt.db.transaction() as session:
        broker_tasks.enqueue_upsert(setup.rt, session, device, secret)
    waiting = await _pending(setup.rt)
    assert len(waiting) == 1 and secret not in str(waiting[0].payload)  # sealed at rest
    await run_all(setup.rt)
    assert await can_connect(setup.broker, device, secret)

    async with setup.rt.db.transaction() as session:
        broker_tasks.enqueue_remove(setup.rt, session, uuid.UUID(device))
    await run_all(setup.rt)
    assert not await can_connect(setup.broker, device, secret)
    assert not await role_exists(setup.broker, device)
    async with setup.rt.db.sessions() as session:
        done = (await session.scalars(select(jobs.Job).where(
            jobs.Job.kind.in_(broker_tasks.KINDS)))).all()
    assert [job.state for job in done] == [jobs.SUCCEEDED] * 2
    assert all(job.payload == {} for job in done)  # nothing of the secret is kept


async def test_a_rolled_back_provisioning_changes_nothing(setup: Setup) -> None:
    device, secret = str(uuid.uuid4()), uuid.uuid4().hex

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with setup.rt.db.transaction() as session:
            broker_tasks.enqueue_upsert(setup.rt, session, device, secret)
            raise Abort
    await run_all(setup.rt)
    assert not await can_connect(setup.broker, device, secret)


async def test_without_a_broker_the_jobs_do_nothing(setup: Setup) -> None:
    device, secret = str(uuid.uuid4()), uuid.uuid4().hex
    plain = setup.runtime_with(None)
    try:
        async with plain.db.transaction() as session:
            broker_tasks.enqueue_upsert(plain, session, device, secret)
        await run_all(plain)
        async with plain.db.sessions() as session:
            states = (await session.scalars(select(jobs.Job.state).where(
                jobs.Job.kind == broker_tasks.UPSERT_JOB))).all()
    finally:
        await plain.close()
    assert list(states) == [jobs.SUCCEEDED]
    assert not await role_exists(setup.broker, device)


async def _fail_once(setup: Setup, enqueue: object) -> None:
    """Enqueue a job and run it while the broker is unreachable: it fails and waits to retry."""
    away = setup.runtime_with(f"mqtt://u:p@127.0.0.1:{free_port()}")
    try:
        async with away.db.transaction() as session:
            enqueue(away, session)  # type: ignore[operator]
        assert await jobs.run_due(job_context(away)) == 1
    finally:
        await away.close()
    [failed] = await _pending(setup.rt)
    assert failed.state == jobs.FAILED and "cannot connect" in (failed.last_error or "")


async def test_a_retried_provisioning_cannot_undo_a_decommission(setup: Setup) -> None:
    device, secret = str(uuid.uuid4()), uuid.uuid4().hex
    await _fail_once(setup, lambda rt, s: broker_tasks.enqueue_upsert(rt, s, device, secret))
    async with setup.rt.db.transaction() as session:
        broker_tasks.enqueue_remove(setup.rt, session, device)
    await run_all(setup.rt)
    assert not await can_connect(setup.broker, device, secret)
    assert not await role_exists(setup.broker, device)


async def test_a_retried_rotation_cannot_bring_back_an_older_secret(setup: Setup) -> None:
    device = str(uuid.uuid4())
    first, second, third = (uuid.uuid4().hex for _ in range(3))
    async with setup.rt.db.transaction() as session:
        broker_tasks.enqueue_upsert(setup.rt, session, device, first)
    await run_all(setup.rt)
    await _fail_once(setup, lambda rt, s: broker_tasks.enqueue_upsert(rt, s, device, second))
    async with setup.rt.db.transaction() as session:
        broker_tasks.enqueue_upsert(setup.rt, session, device, third)
    await run_all(setup.rt)
    assert await can_connect(setup.broker, device, third)
    assert not await can_connect(setup.broker, device, second)
    assert not await can_connect(setup.broker, device, first)
