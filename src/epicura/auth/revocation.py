"""Which login sessions are revoked, checked on every authenticated request.

Redis holds the ids of sessions revoked within an access token's lifetime (older tokens are
expired anyway). A marker key says the set is complete: after a Redis restart the marker is gone,
so requests fall back to PostgreSQL until the set is rebuilt. If Redis cannot answer, PostgreSQL
answers; if neither can, the request fails closed with 503.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Collection, Iterable
from datetime import timedelta

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from epicura.auth import repository
from epicura.kit import clock
from epicura.kit.db import Database
from epicura.kit.errors import DependencyUnavailable
from epicura.kit.kv import Keys

log = structlog.get_logger("epicura.auth.revocation")

MGET_CHUNK = 1000


class RevocationSet:
    def __init__(self, redis: Redis, keys: Keys, db: Database, ttl_s: int) -> None:
        self.redis = redis
        self.keys = keys
        self.db = db
        self.ttl_s = ttl_s
        self.ready_key = keys("revoked", "complete")
        # Revoked here while Redis could not be told. Redis may come back with its data, the
        # "complete" marker included, but without these: answer them from here, and write them
        # to Redis at the next chance.
        self._unpublished: set[uuid.UUID] = set()

    def _key(self, sid: uuid.UUID) -> str:
        return self.keys("revoked", sid)

    async def add(self, sids: list[uuid.UUID]) -> bool:
        """Mark sessions revoked in Redis; False if Redis did not take it (the caller queues a
        retry; meanwhile PostgreSQL, which already has it, is what the marker check falls to)."""
        if not sids:
            return True
        try:
            await self._publish(sids)
            return True
        except RedisError as exc:
            log.warning("revocation_publish_failed", error=type(exc).__name__)
            self._unpublished.update(sids)
            with contextlib.suppress(RedisError):
                await self.redis.delete(self.ready_key)
            return False

    async def _publish(self, sids: Iterable[uuid.UUID]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.set(self._key(sid), b"1", ex=self.ttl_s)
            await pipe.execute()

    async def is_revoked(self, sid: uuid.UUID) -> bool:
        return sid in await self.revoked_among([sid])

    async def _publish_pending(self) -> None:
        """Revocations Redis could not take before: written now that it answers."""
        if self._unpublished:
            pending = set(self._unpublished)
            await self._publish(pending)
            self._unpublished -= pending

    async def revoked_among(self, sids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        """Which of many sessions are revoked, in one Redis round trip per thousand (the
        WebSocket gateway asks for all its sockets every few seconds); PostgreSQL answers when
        Redis cannot, in one query."""
        revoked = {sid for sid in sids if sid in self._unpublished}
        rest = [sid for sid in sids if sid not in revoked]
        try:
            await self._publish_pending()
            for start in range(0, len(rest), MGET_CHUNK):
                chunk = rest[start:start + MGET_CHUNK]
                complete, *values = await self.redis.mget(
                    self.ready_key, *(self._key(sid) for sid in chunk))
                if complete is None:
                    return revoked | await self._revoked_in_db(rest)
                revoked.update(sid for sid, value in zip(chunk, values, strict=True)
                               if value is not None)
            return revoked
        except RedisError as exc:
            log.warning("revocation_check_redis_down", error=type(exc).__name__)
        return revoked | await self._revoked_in_db(rest)

    async def _revoked_in_db(self, sids: list[uuid.UUID]) -> set[uuid.UUID]:
        try:
            async with self.db.sessions() as session:
                live = await repository.live_sessions_among(session, sids)
        except (SQLAlchemyError, OSError) as exc:
            log.error("revocation_check_failed", error=type(exc).__name__)
            raise DependencyUnavailable("Cannot check the sessions right now") from exc
        return set(sids) - live

    async def rebuild(self) -> None:
        """Load the recently revoked sessions into Redis, then mark the set complete."""
        since = clock.utcnow() - timedelta(seconds=self.ttl_s)
        async with self.db.sessions() as session:
            sids = list(await repository.recently_revoked_sessions(session, since))
        if not await self.add(sids):
            # Fail the job so it is retried: reporting success would leave the set incomplete.
            raise DependencyUnavailable("Redis did not take the revoked sessions")
        await self.redis.set(self.ready_key, b"1")
        log.info("revocation_set_rebuilt", sessions=len(sids))
