"""Fleet analytics on a large fleet: how long `GET /admin/analytics/*` take over 1 million cooking
sessions and a year of hourly telemetry rollups.

It makes a throwaway PostgreSQL database, migrates it, fills it in SQL (generate_series: no rows
pass through Python), runs ANALYZE, then times each endpoint through the app in this process
(ASGI transport, an admin's token) and prints median and p90. Nothing is asserted.

    uv run python bench/analytics.py                       # 1,000,000 sessions, 200 appliances
    uv run python bench/analytics.py --sessions 200000 --appliances 50 --samples 10

The rollups are a year of hourly buckets for every appliance (200 appliances: 1.75 million rows).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx2
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from epicura.app import create_app
from epicura.auth import service as auth_service
from epicura.config import Settings
from epicura.kit.logging import configure
from epicura.migrate import run as run_migrations

API = "/api/v1"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
PASSWORD = "correct horse battery staple"
METRICS = ("bowl_temp_c", "target_temp_c", "speed", "weight_g", "heater_w", "motor_rpm")


@asynccontextmanager
async def bench_database() -> AsyncIterator[Settings]:
    name = f"epicura_bench_{uuid.uuid4().hex[:10]}"
    prefix = f"epicura-bench-{name}:"
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    try:
        with tempfile.TemporaryDirectory(prefix="epicura-bench-") as folder:
            settings = Settings(
                _env_file=None, epicura_env="test", data_dir=Path(folder),
                database_url=f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}", redis_url=REDIS_URL,
                redis_prefix=prefix, jwt_secret="bench-jwt-secret-" + "a" * 32,
                jwt_refresh_secret="bench-refresh-secret-" + "b" * 32,
                rate_limit_enabled=False, log_level="WARNING",
            )
            await asyncio.to_thread(run_migrations, settings, "upgrade", "head")
            yield settings
    finally:
        redis = Redis.from_url(REDIS_URL)
        async for key in redis.scan_iter(match=prefix + "*", count=500):
            await redis.delete(key)
        await redis.aclose()
        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def _dsn(settings: Settings) -> str:
    assert settings.database_url is not None
    return settings.database_url.replace("postgresql+asyncpg://", "postgresql://")


async def fill(settings: Settings, sessions: int, appliances: int) -> None:
    conn = await asyncpg.connect(_dsn(settings))
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    year_ago = now - timedelta(days=365)
    try:
        started = time.perf_counter()
        await conn.execute(
            "INSERT INTO appliances (id, serial, model, hw_revision, lifecycle, "
            "factory_secret_hash, firmware_version, channel, tags, online, settings, "
            "config_version, created_at, updated_at) "
            "SELECT gen_random_uuid(), 'BENCH-' || i, 'epicura-' || (1 + i % 2), 'rev-a', "
            "'provisioned', repeat('x', 64), '1.' || (i % 5) || '.0', 'stable', '[]', "
            "i % 3 = 0, '{}', 0, now(), now() FROM generate_series(1, $1) AS i", appliances)
        await conn.execute(
            "INSERT INTO cooking_sessions (id, appliance_id, recipe_id, recipe_version, origin, "
            "status, step_elapsed_s, last_seq, duration_s, created_at, updated_at) "
            "SELECT gen_random_uuid(), a.ids[1 + i % cardinality(a.ids)], "
            "('00000000-0000-0000-0000-' || lpad(to_hex(i % 500), 12, '0'))::uuid, 1, 'app', "
            "(ARRAY['completed','completed','completed','aborted','failed'])[1 + i % 5], 0, -1, "
            "600 + i % 3000, $2::timestamptz - (random() * interval '365 days'), now() "
            "FROM generate_series(1, $1) AS i, "
            "(SELECT array_agg(id) AS ids FROM appliances) AS a", sessions, now)
        print(f"  {appliances} appliances and {sessions:,} sessions in "
              f"{time.perf_counter() - started:.1f} s")
        month = year_ago.replace(day=1, hour=0)
        while month <= now:
            following = (month + timedelta(days=32)).replace(day=1)
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS telemetry_1h_{month:%Y%m} PARTITION OF telemetry_1h "
                f"FOR VALUES FROM ('{month.isoformat()}') TO ('{following.isoformat()}')")
            month = following
        started = time.perf_counter()
        columns = ", ".join(f"{m}_min, {m}_max, {m}_sum, {m}_count, {m}_last" for m in METRICS)
        values = ", ".join("v - 5, v + 5, v * 60, 60, v" for _ in METRICS)
        await conn.execute(
            f"INSERT INTO telemetry_1h (appliance_id, bucket, samples, {columns}) "
            f"SELECT a.id, b, 60, {values} FROM appliances a, "
            "generate_series($1::timestamptz, $2::timestamptz, interval '1 hour') AS b, "
            "LATERAL (SELECT 20 + random() * 80 AS v) AS r", year_ago, now)
        rows = await conn.fetchval("SELECT count(*) FROM telemetry_1h")
        await conn.execute("ANALYZE")
        print(f"  {rows:,} hourly rollup rows in {time.perf_counter() - started:.1f} s")
    finally:
        await conn.close()


async def run(sessions: int, appliances: int, samples: int) -> None:
    async with bench_database() as settings:
        print(f"filling {_dsn(settings).rsplit('/', 1)[-1]}")
        await fill(settings, sessions, appliances)
        app = create_app(settings)
        async with LifespanManager(app, startup_timeout=60) as manager:
            rt = app.state.runtime
            async with rt.db.transaction() as session:
                await auth_service.create_admin(rt, session, "bench@example.com", PASSWORD,
                                                "Bench")
            transport = httpx2.ASGITransport(app=manager.app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://bench") as client:
                reply = await client.post(f"{API}/auth/login", json={
                    "email": "bench@example.com", "password": PASSWORD})
                headers = {"Authorization": f"Bearer {reply.json()['access_token']}"}
                year = {"from": (datetime.now(UTC) - timedelta(days=365)).isoformat()}
                cases = [
                    ("overview", "/admin/analytics/overview", {}),
                    ("sessions per day, 30 days", "/admin/analytics/sessions", {}),
                    ("sessions per day, 365 days", "/admin/analytics/sessions", year),
                    ("sessions by recipe, 30 days", "/admin/analytics/sessions",
                     {"group_by": "recipe"}),
                    ("sessions by firmware, 365 days", "/admin/analytics/sessions",
                     {**year, "group_by": "firmware"}),
                    ("sessions by status, 365 days", "/admin/analytics/sessions",
                     {**year, "group_by": "status"}),
                    ("telemetry by firmware, 30 days", "/admin/analytics/telemetry",
                     {"metric": "bowl_temp_c"}),
                    ("telemetry by model, 365 days", "/admin/analytics/telemetry",
                     {**year, "metric": "heater_w", "group_by": "model"}),
                ]
                print(f"\n{'endpoint':<34} {'median ms':>10} {'p90 ms':>10}")
                for name, path, params in cases:
                    timings = []
                    for _ in range(samples + 1):  # the first one warms the caches
                        started = time.perf_counter()
                        reply = await client.get(API + path, params=params, headers=headers)
                        timings.append((time.perf_counter() - started) * 1000)
                        if reply.status_code != 200:
                            raise SystemExit(f"{path}: {reply.status_code} {reply.text}")
                    timings = timings[1:]
                    p90 = statistics.quantiles(timings, n=10)[-1] if len(timings) > 1 else 0
                    print(f"{name:<34} {statistics.median(timings):>10.1f} {p90:>10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--appliances", type=int, default=200)
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()
    configure("WARNING")
    asyncio.run(run(args.sessions, args.appliances, args.samples))


if __name__ == "__main__":
    main()
