"""Login throttling: per account (growing delays) and per client address.

From the 6th consecutive failure on an identifier the next attempt waits 15 s, doubling each
failure up to 15 min; after 100 the identifier is locked until its password is reset. Counters
are keyed on the normalised identifier whether or not an account exists, so throttling tells an
attacker nothing about which e-mails are registered. Redis holds the counters for every instance;
if Redis is down they are kept in this process.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from epicura.kit import clock
from epicura.kit.errors import RateLimited
from epicura.kit.kv import Keys
from epicura.kit.ratelimit import RateLimiter

log = structlog.get_logger("epicura.auth.throttle")

FREE_FAILURES = 5
FIRST_DELAY_S = 15.0
MAX_DELAY_S = 900.0
LOCK_AFTER = 100
COUNTER_TTL_S = 7 * 86400
# Sets `until` only when it moves later (concurrent failures may finish in any order).
_RAISE_UNTIL = """
local old = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if tonumber(ARGV[1]) > old then redis.call('HSET', KEYS[1], 'until', ARGV[1]) end
return 0
"""


@dataclass
class FailureState:
    count: int = 0
    until: float = 0.0


def delay_after(count: int) -> float:
    if count < FREE_FAILURES:
        return 0.0
    return min(MAX_DELAY_S, FIRST_DELAY_S * 2.0 ** (count - FREE_FAILURES))


class LoginThrottle:
    def __init__(self, redis: Redis, keys: Keys, limiter: RateLimiter, per_ip_per_minute: int):
        self.redis = redis
        self.keys = keys
        self.limiter = limiter
        self.ip_limit = f"{per_ip_per_minute}/minute"
        self._local: dict[str, FailureState] = {}

    def _key(self, identifier: str) -> str:
        digest = hashlib.sha256(identifier.encode()).hexdigest()[:32]
        return self.keys("login-fail", digest)

    async def _load(self, key: str) -> FailureState:
        try:
            raw = await self.redis.hgetall(key)
        except RedisError:
            return self._local.get(key, FailureState())
        if not raw:
            return FailureState()
        return FailureState(int(raw.get(b"count", 0)), float(raw.get(b"until", 0)))

    async def check(self, identifier: str, ip: str) -> None:
        """Raise 429 when this address or identifier must wait; counts the attempt per address."""
        await self.limiter.hit(self.ip_limit, "login-ip", ip)
        state = await self._load(self._key(identifier))
        if state.count >= LOCK_AFTER:
            raise RateLimited(MAX_DELAY_S, "Too many failed attempts: reset the password")
        wait = state.until - clock.utcnow().timestamp()
        if wait > 0:
            raise RateLimited(wait)

    async def failed(self, identifier: str) -> None:
        """Count one failure atomically, so concurrent failures (a burst, several instances) are
        all counted; the wait only ever grows."""
        key = self._key(identifier)
        now = clock.utcnow().timestamp()
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hincrby(key, "count", 1)
                pipe.expire(key, COUNTER_TTL_S)
                count, _ = await pipe.execute()
            until = now + delay_after(int(count))
            await self.redis.eval(_RAISE_UNTIL, 1, key, repr(until))
        except RedisError:
            state = self._local.setdefault(key, FailureState())
            state.count += 1
            state.until = max(state.until, now + delay_after(state.count))

    async def clear(self, identifier: str) -> None:
        key = self._key(identifier)
        self._local.pop(key, None)
        try:
            await self.redis.delete(key)
        except RedisError as exc:
            log.warning("throttle_clear_failed", error=type(exc).__name__)
