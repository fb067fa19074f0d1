"""Timing side channel of the public auth routes (T13): does a reply take measurably longer when
the e-mail is registered?

For each pair (login with a known e-mail and a wrong password vs an unknown e-mail; forgot-password
known vs unknown; register a taken vs a new address) it sends interleaved requests in random order
to the app running in this process and prints the median latency of each arm and their delta.
Rate limits are switched off and the per-identifier login counters are cleared between samples
(outside the timed part) so that every sample takes the full path.

    uv run python bench/auth_timing.py                     # embedded default (SQLite, no Redis)
    uv run python bench/auth_timing.py --backend postgres  # a throwaway PostgreSQL DB + Redis
    uv run python bench/auth_timing.py --samples 300 --warmup 20

The app is served through an in-process ASGI transport, so the numbers are the app's own work
without network noise. The checklist's target is a median delta of at most 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx2
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from epicura.app import create_app
from epicura.auth.service import services
from epicura.config import Settings
from epicura.kit.logging import configure
from epicura.kit.runtime import Runtime
from epicura.migrate import run as run_migrations

API = "/api/v1"
PASSWORD = "correct horse battery staple"
WRONG = "not the right password at all"
SECRET_A = "bench-jwt-secret-" + "a" * 32
SECRET_B = "bench-refresh-secret-" + "b" * 32

Request = Callable[[], Awaitable[httpx2.Response]]


@asynccontextmanager
async def embedded_settings() -> AsyncIterator[Settings]:
    with tempfile.TemporaryDirectory(prefix="epicura-bench-") as folder:
        yield Settings(_env_file=None, epicura_env="test", data_dir=Path(folder),  # type: ignore[call-arg]
                       jwt_secret=SECRET_A, jwt_refresh_secret=SECRET_B,
                       rate_limit_enabled=False, log_level="WARNING")


@asynccontextmanager
async def postgres_settings(admin_dsn: str, redis_url: str) -> AsyncIterator[Settings]:
    name = f"epicura_bench_{uuid.uuid4().hex[:10]}"
    prefix = f"epicura-bench-{name}:"
    conn = await asyncpg.connect(admin_dsn)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    try:
        with tempfile.TemporaryDirectory(prefix="epicura-bench-") as folder:
            settings = Settings(  # type: ignore[call-arg]
                _env_file=None, epicura_env="test", data_dir=Path(folder),
                database_url=f"{admin_dsn.rsplit('/', 1)[0]}/{name}", redis_url=redis_url,
                redis_prefix=prefix, jwt_secret=SECRET_A, jwt_refresh_secret=SECRET_B,
                rate_limit_enabled=False, log_level="WARNING",
            )
            await asyncio.to_thread(run_migrations, settings, "upgrade", "head")
            yield settings
    finally:
        redis = Redis.from_url(redis_url)
        async for key in redis.scan_iter(match=prefix + "*", count=500):
            await redis.delete(key)
        await redis.aclose()
        conn = await asyncpg.connect(admin_dsn)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def timed(request: Request, expected: int) -> float:
    started = time.perf_counter()
    reply = await request()
    elapsed = time.perf_counter() - started
    if reply.status_code != expected:
        raise SystemExit(f"unexpected {reply.status_code}: {reply.text}")
    return elapsed * 1000


async def compare(name: str, arms: dict[str, tuple[Request, int]], samples: int, warmup: int,
                  before_each: Callable[[], Awaitable[None]]) -> list[str]:
    results: dict[str, list[float]] = {arm: [] for arm in arms}
    for index in range(warmup + samples):
        order = list(arms)
        random.shuffle(order)
        for arm in order:
            await before_each()
            request, expected = arms[arm]
            took = await timed(request, expected)
            if index >= warmup:
                results[arm].append(took)
    (first, a), (second, b) = results.items()
    med_a, med_b = statistics.median(a), statistics.median(b)
    return [
        f"{name}:",
        f"  {first:<28} median {med_a:8.2f} ms  p90 {statistics.quantiles(a, n=10)[-1]:8.2f} ms",
        f"  {second:<28} median {med_b:8.2f} ms  p90 {statistics.quantiles(b, n=10)[-1]:8.2f} ms",
        f"  delta (second - first)       {med_b - med_a:+8.2f} ms   |delta| <= 5 ms: "
        f"{'yes' if abs(med_b - med_a) <= 5 else 'NO'}",
    ]


async def bench(settings: Settings, samples: int, warmup: int) -> None:
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager:
        rt: Runtime = app.state.runtime
        transport = httpx2.ASGITransport(app=manager.app, client=("127.0.0.1", 40000))
        async with httpx2.AsyncClient(transport=transport, base_url="http://bench") as client:
            known = "known-cook@example.com"
            unknown = "unknown-cook@example.com"
            reply = await client.post(f"{API}/auth/register", json={
                "email": known, "password": PASSWORD, "display_name": "Known Cook"})
            assert reply.status_code == 202, reply.text
            throttle, _ = services(rt)

            async def clear_counters() -> None:
                await throttle.clear(known)
                await throttle.clear(unknown)

            async def nothing() -> None:
                return None

            def post(path: str, body: Callable[[], dict[str, str]]) -> Request:
                return lambda: client.post(f"{API}{path}", json=body())

            fresh = (f"new-cook-{n}@example.com" for n in range(10**9))

            # One Argon2id verify on its own (F-S5: < 1 s).
            stored = await rt.hasher.hash(PASSWORD)
            verify_ms = []
            for _ in range(20):
                started = time.perf_counter()
                await rt.hasher.verify(WRONG, stored)
                verify_ms.append((time.perf_counter() - started) * 1000)

            backend = ("embedded (SQLite, in-process Redis)" if settings.embedded
                       else "PostgreSQL + Redis")
            lines = [
                f"backend: {backend}; "
                f"{samples} samples per arm after {warmup} warm-up, interleaved in random order",
                f"argon2id m={settings.argon2_memory_kib},t={settings.argon2_time_cost},"
                f"p={settings.argon2_parallelism}: one verify median "
                f"{statistics.median(verify_ms):.2f} ms",
            ]
            lines += await compare("login (401)", {
                "known e-mail, wrong password": (
                    post("/auth/login", lambda: {"email": known, "password": WRONG}), 401),
                "unknown e-mail": (
                    post("/auth/login", lambda: {"email": unknown, "password": WRONG}), 401),
            }, samples, warmup, clear_counters)
            lines += await compare("forgot-password (202)", {
                "known e-mail": (post("/auth/password/forgot", lambda: {"email": known}), 202),
                "unknown e-mail": (post("/auth/password/forgot", lambda: {"email": unknown}), 202),
            }, samples, warmup, nothing)
            lines += await compare("register (202)", {
                "taken e-mail": (post("/auth/register", lambda: {
                    "email": known, "password": PASSWORD, "display_name": "Someone"}), 202),
                "new e-mail": (post("/auth/register", lambda: {
                    "email": next(fresh), "password": PASSWORD, "display_name": "Someone"}), 202),
            }, samples, warmup, nothing)
            print("\n".join(lines), flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=("embedded", "postgres"), default="embedded")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--pg-admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    configure("WARNING")
    if args.backend == "embedded":
        async with embedded_settings() as settings:
            await bench(settings, args.samples, args.warmup)
    else:
        async with postgres_settings(args.pg_admin_dsn, args.redis_url) as settings:
            await bench(settings, args.samples, args.warmup)


if __name__ == "__main__":
    asyncio.run(main())
