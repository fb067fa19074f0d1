"""Fixtures: a PostgreSQL database built by the migrations for this run, a Redis key prefix per
test, a local SMTP server. Everything is named after this run and removed at the end."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import asyncpg
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from epicura.config import Settings
from epicura.kit.logging import configure
from epicura.migrate import run as run_migrations
from tests.support import Mailbox, Service, running, start_smtp, startup_tasks_done

PG_ADMIN_DSN = os.environ.get("TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:10]
TEST_JWT_SECRET = "test-jwt-secret-" + "x" * 32
TEST_REFRESH_SECRET = "test-refresh-secret-" + "y" * 32


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def json_logging() -> None:
    """Log as production does (JSON lines, secrets redacted), not structlog's dev console."""
    configure("DEBUG")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def smtp() -> Iterator[tuple[int, Mailbox]]:
    port = free_port()
    controller, box = start_smtp(port)
    yield port, box
    controller.stop()


def _pg_url(name: str) -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database for this run, built by the migrations; dropped at the end."""
    name = f"epicura_test_{RUN_ID}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    anyio.run(admin, f'CREATE DATABASE "{name}"')
    url = _pg_url(name)
    run_migrations(Settings(database_url=url, _env_file=None), "upgrade", "head")
    yield url
    anyio.run(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def base_settings(tmp_path: Path, smtp_port: int, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "epicura_env": "test",
        "data_dir": tmp_path,
        "jwt_secret": TEST_JWT_SECRET,
        "jwt_refresh_secret": TEST_REFRESH_SECRET,
        "smtp_url": f"smtp://127.0.0.1:{smtp_port}",
        "public_base_url": "https://app.epicura.test",
        "log_level": "DEBUG",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


async def _truncate(url: str) -> None:
    await truncate_tables(await asyncpg.connect(url))


async def truncate_tables(conn: asyncpg.Connection) -> None:
    """Empty every table but the migrations' own rows (seeded profiles, audit), then close."""
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename NOT IN ('alembic_version', 'audit_events', 'capability_profiles')"
        )
        names = ", ".join(f'"{row["tablename"]}"' for row in tables)
        await conn.execute(f"TRUNCATE {names} CASCADE")
    finally:
        await conn.close()


async def delete_keys(prefix: str) -> None:
    redis = Redis.from_url(REDIS_URL)
    try:
        async for key in redis.scan_iter(match=prefix + "*", count=500):
            await redis.delete(key)
    finally:
        await redis.aclose()


@pytest.fixture
def redis_prefix() -> str:
    return f"epicura-test-{RUN_ID}-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def pg_settings(tmp_path: Path, smtp: tuple[int, Mailbox], pg_database: str,
                redis_prefix: str) -> Iterator[Settings]:
    """Settings on the run's database and this test's Redis prefix; the prefix's keys are
    deleted afterwards whatever the test started (a service writes keys as it starts)."""
    yield base_settings(tmp_path, smtp[0], database_url=pg_database, redis_url=REDIS_URL,
                        redis_prefix=redis_prefix)
    with SyncRedis.from_url(REDIS_URL) as redis:
        for key in redis.scan_iter(match=redis_prefix + "*", count=500):
            redis.delete(key)


@pytest.fixture
async def svc(pg_settings: Settings, smtp: tuple[int, Mailbox],
              pg_database: str) -> AsyncIterator[Service]:
    """The service on PostgreSQL and Redis; jobs run when the test says so."""
    async with running(pg_settings, smtp[1]) as service:
        yield service
    await _truncate(pg_database)
    await delete_keys(pg_settings.redis_prefix)


@pytest.fixture
async def embedded(tmp_path: Path, smtp: tuple[int, Mailbox]) -> AsyncIterator[Service]:
    """The embedded default: SQLite file, in-process Redis stand-in and job runner."""
    settings = base_settings(tmp_path, smtp[0])
    assert settings.embedded
    async with running(settings, smtp[1]) as service:
        await startup_tasks_done(service)
        yield service


@pytest.fixture
async def embedded_unlimited(tmp_path: Path, smtp: tuple[int, Mailbox]) -> AsyncIterator[Service]:
    """The embedded default without rate limits, for tests that make many requests."""
    settings = base_settings(tmp_path, smtp[0], rate_limit_enabled=False)
    async with running(settings, smtp[1]) as service:
        await startup_tasks_done(service)
        yield service


@pytest.fixture(params=["postgres", "embedded"])
def api(request: pytest.FixtureRequest) -> Service:
    """The same test on PostgreSQL + Redis (`svc`) and on the embedded default."""
    service: Service = request.getfixturevalue(
        "svc" if request.param == "postgres" else "embedded_unlimited")
    return service
