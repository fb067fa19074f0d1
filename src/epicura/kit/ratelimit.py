"""Rate limits for everything a stranger can call, on Redis shared by every instance.

If Redis cannot be reached the limiter falls back to this process's memory: limits keep holding
(per instance) rather than failing every request or letting everything through.
"""

from __future__ import annotations

import time

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from epicura.kit.errors import RateLimited

log = structlog.get_logger("epicura.ratelimit")


class RateLimiter:
    def __init__(self, redis_url: str | None, *, prefix: str, enabled: bool = True) -> None:
        self.enabled = enabled
        self._fallback = MovingWindowRateLimiter(MemoryStorage())
        self._limiter = self._fallback
        if redis_url is not None:
            storage: Storage = RedisStorage(
                _limits_uri(redis_url), implementation="redispy", key_prefix=prefix + "rl"
            )
            self._limiter = MovingWindowRateLimiter(storage)

    async def hit(self, limit: str | RateLimitItem, *identifiers: str) -> None:
        """Count one call; raise 429 `rate_limited` with `Retry-After` when over the limit."""
        if not self.enabled:
            return
        item = parse(limit) if isinstance(limit, str) else limit
        limiter = self._limiter
        try:
            allowed = await limiter.hit(item, *identifiers)
        except (RedisError, OSError, ConnectionError) as exc:
            log.warning("rate_limit_storage_down", error=type(exc).__name__)
            limiter = self._fallback
            allowed = await limiter.hit(item, *identifiers)
        if not allowed:
            stats = await limiter.get_window_stats(item, *identifiers)
            raise RateLimited(max(1.0, stats.reset_time - time.time()))

    async def test(self, limit: str, *identifiers: str) -> bool:
        """True when one more call would be allowed (nothing is counted)."""
        if not self.enabled:
            return True
        try:
            return await self._limiter.test(parse(limit), *identifiers)
        except (RedisError, OSError, ConnectionError):
            return await self._fallback.test(parse(limit), *identifiers)


def _limits_uri(redis_url: str) -> str:
    scheme, sep, rest = redis_url.partition("://")
    return f"async+{scheme}{sep}{rest}"
