"""The process's shared parts, built once from the settings and reached by request handlers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.config import Settings
from epicura.kit import kv
from epicura.kit.bus import EventBus
from epicura.kit.db import Database
from epicura.kit.errors import ProblemError
from epicura.kit.jobs import Enqueuer
from epicura.kit.mail import Mailer, create_mailer
from epicura.kit.net import client_ip
from epicura.kit.ratelimit import RateLimiter
from epicura.kit.security import JwtKeys, PasswordHasher, Sealer

log = structlog.get_logger("epicura.runtime")


@dataclass
class Runtime:
    settings: Settings
    db: Database
    redis: Redis
    keys: kv.Keys
    limiter: RateLimiter
    hasher: PasswordHasher
    jwt: JwtKeys
    sealer: Sealer
    jobs: Enqueuer
    mailer: Mailer
    refresh_key: bytes
    bus: EventBus
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        refresh_secret = settings.jwt_refresh_secret.get_secret_value().encode()
        previous = settings.jwt_previous_secret
        sealer = Sealer(refresh_secret)
        redis = kv.connect(settings.redis_url)
        keys = kv.Keys(settings.redis_prefix)
        return cls(
            settings=settings,
            db=Database(settings.sqlalchemy_url, pool_size=settings.database_pool_size),
            redis=redis,
            keys=keys,
            limiter=RateLimiter(
                settings.redis_url, prefix=settings.redis_prefix,
                enabled=settings.rate_limit_enabled,
            ),
            hasher=PasswordHasher(
                memory_kib=settings.argon2_memory_kib,
                time_cost=settings.argon2_time_cost,
                parallelism=settings.argon2_parallelism,
            ),
            jwt=JwtKeys.from_secrets(
                settings.jwt_secret.get_secret_value().encode(),
                previous.get_secret_value().encode() if previous else None,
            ),
            sealer=sealer,
            jobs=Enqueuer(sealer),
            mailer=create_mailer(settings.smtp_url, settings.data_dir / "mail"),
            refresh_key=refresh_secret,
            bus=EventBus(redis, keys),
        )

    async def close(self) -> None:
        await self.redis.aclose()
        await self.db.dispose()


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def _runtime_dependency(request: Request) -> Runtime:
    """`get_runtime` as a dependency. Async on purpose: FastAPI runs a plain `def` dependency in
    a worker thread, and that hop cost about 0.1 ms on every request."""
    return get_runtime(request)


async def _db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One request, one transaction: committed when the handler returns. A business error that
    keeps its changes (an audit record of a failed login) commits too; anything else rolls back."""
    runtime = get_runtime(request)
    async with runtime.db.sessions() as session:
        try:
            yield session
        except ProblemError as exc:
            if exc.keeps_changes:
                await session.commit()
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()
            for callback in session.info.pop("after_commit", ()):
                await callback()


RuntimeDep = Annotated[Runtime, Depends(_runtime_dependency)]
DbSession = Annotated[AsyncSession, Depends(_db_session, scope="function")]


def after_commit(session: AsyncSession, callback: Callable[[], Awaitable[None]]) -> None:
    """Run `callback` once the request's transaction has committed (never if it rolls back):
    for best-effort notices such as cache invalidation. Durable work uses the job table."""
    session.info.setdefault("after_commit", []).append(callback)


def request_ip(request: Request) -> str:
    return client_ip(request, get_runtime(request).settings.trusted_proxy_networks)


ClientIp = Annotated[str, Depends(request_ip)]


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
