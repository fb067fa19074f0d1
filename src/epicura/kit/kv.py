"""The Redis client: a real server when `REDIS_URL` is set, an in-process stand-in otherwise.

Keys always go through `Keys`, so every deployment (and every test run) has its own prefix.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis


def connect(url: str | None) -> Redis:
    if url is None:
        from fakeredis import FakeAsyncRedis, FakeServer

        # One server per process: the embedded default runs everything in one process.
        return FakeAsyncRedis(server=FakeServer(), decode_responses=False)
    client: Redis = Redis.from_url(
        url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
    )
    return client


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, *parts: Any) -> str:
        return self.prefix + ":".join(str(p) for p in parts)
