"""A best-effort broadcast between the instances of the service, over Redis pub/sub.

For messages whose loss is tolerable because something else repairs it: cache invalidation
(entries also expire) and, later, live events (clients resume with `since`). Durable work goes
through the job table instead. On the embedded default the in-process Redis stand-in carries the
same messages. After the listener loses its connection it tells `on_reset` subscribers, since
messages may have been missed meanwhile.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from epicura.kit.kv import Keys

log = structlog.get_logger("epicura.bus")

Handler = Callable[[dict[str, Any]], None]
AnyHandler = Callable[[str, dict[str, Any]], None]
ResetHandler = Callable[[], None]


class EventBus:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._reset_handlers: list[ResetHandler] = []
        self._any_handlers: list[AnyHandler] = []
        self.ready = asyncio.Event()

    def subscribe(self, channel: str, handler: Handler) -> None:
        self._handlers[channel].append(handler)

    def subscribe_all(self, handler: AnyHandler) -> None:
        """Receive every channel's messages as `(channel, payload)` (the WebSocket gateway)."""
        self._any_handlers.append(handler)

    def channel_key(self, channel: str) -> str:
        """The Redis pub/sub channel a bus channel travels on (for scripts that publish)."""
        return self.keys("bus", channel)

    def on_reset(self, handler: ResetHandler) -> None:
        self._reset_handlers.append(handler)

    async def publish(self, channel: str, payload: dict[str, Any]) -> None:
        try:
            await self.redis.publish(self.channel_key(channel), orjson.dumps(payload, default=str))
        except RedisError as exc:
            log.warning("bus_publish_failed", channel=channel, error=type(exc).__name__)

    async def publish_many(self, events: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Publish several events in one round trip (a pipeline, not a transaction)."""
        if not events:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for channel, payload in events:
                    pipe.publish(self.channel_key(channel), orjson.dumps(payload, default=str))
                await pipe.execute()
        except RedisError as exc:
            log.warning("bus_publish_failed", events=len(events), error=type(exc).__name__)

    def _dispatch(self, raw_channel: bytes, data: bytes) -> None:
        channel = raw_channel.decode().removeprefix(self.keys("bus", ""))
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.warning("bus_bad_message", channel=channel)
            return
        for handler in self._handlers.get(channel, ()):
            try:
                handler(payload)
            except Exception:
                log.exception("bus_handler_failed", channel=channel)
        for any_handler in self._any_handlers:
            try:
                any_handler(channel, payload)
            except Exception:
                log.exception("bus_handler_failed", channel=channel)

    def _reset(self) -> None:
        for handler in self._reset_handlers:
            handler()

    async def run(self) -> None:
        """Listen until cancelled, reconnecting with backoff."""
        delay = 0.5
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("bus_listener_lost", error=type(exc).__name__)
                self.ready.clear()
                self._reset()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _listen(self) -> None:
        pubsub = self.redis.pubsub()
        try:
            await pubsub.psubscribe(self.keys("bus", "*"))
            self.ready.set()
            task = asyncio.current_task()
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if task is not None and task.cancelling():
                    # Python 3.11's wait_for (inside fakeredis, the embedded default's Redis) can
                    # swallow a cancellation that lands as a message arrives: honour it here.
                    raise asyncio.CancelledError()
                if message is not None and message.get("type") == "pmessage":
                    self._dispatch(message["channel"], message["data"])
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
