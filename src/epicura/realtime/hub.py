"""The gateway's per-instance part: which sockets are open and what they subscribed to, live
events from the bus fanned out to them, and the sweep that closes sockets whose access token
expired or whose login session was revoked.

Every instance receives every channel's events from the bus (Redis pub/sub) and hands each to
the sockets subscribed here; nothing about a socket is kept outside its instance. After the bus
listener lost its connection, every subscription is caught up from the channel's held events
(`channels.replay`) once the listener is back, as a reconnecting client would resume.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine, Iterable
from datetime import datetime
from typing import Any

import structlog
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from epicura.auth import service as auth_service
from epicura.kit import clock
from epicura.kit.errors import DependencyUnavailable
from epicura.kit.runtime import Runtime
from epicura.realtime import access, channels
from epicura.realtime.connection import Connection, LiveEvent, Subscription
from epicura.realtime.protocol import (
    CLOSE_UNAUTHORIZED,
    NOT_FOUND,
    Channel,
    Limits,
    error_frame,
    frame,
    resync_frame,
)

log = structlog.get_logger("epicura.realtime.hub")

HUB_KEY = "realtime_hub"
CHECK_CONCURRENCY = 8


def live_event(channel_name: str, payload: dict[str, Any]) -> LiveEvent | None:
    """A bus message (or a replayed one) as the frame sent on `channel_name`; None if it is not
    an event."""
    kind, data, event_id = payload.get("type"), payload.get("data"), payload.get("id")
    if not isinstance(kind, str) or not isinstance(data, dict):
        return None
    if event_id is not None:
        try:
            channels.parse_id(event_id)
        except ValueError:
            return None
    return LiveEvent(kind, event_id, frame(kind, data, channel=channel_name, event_id=event_id))


def client_channel(bus_name: str) -> str:
    return "user" if bus_name.startswith("user:") else bus_name


class Hub:
    def __init__(self, rt: Runtime, limits: Limits | None = None) -> None:
        self.rt = rt
        self.limits = limits or Limits()
        self.connections: set[Connection] = set()
        self._subscribers: dict[str, dict[Connection, Subscription]] = defaultdict(dict)
        self._per_user: Counter[uuid.UUID] = Counter()
        self._catch_up: asyncio.Task[None] | None = None

    # --- sockets -------------------------------------------------------------------------------

    def register(self, connection: Connection) -> None:
        self.connections.add(connection)

    def unregister(self, connection: Connection) -> None:
        self.connections.discard(connection)
        for subscription in list(connection.subscriptions.values()):
            self.unsubscribe(connection, subscription)
        if connection.user_id is not None:
            self._per_user[connection.user_id] -= 1
            if self._per_user[connection.user_id] <= 0:
                del self._per_user[connection.user_id]

    def admit(self, connection: Connection, user_id: uuid.UUID) -> bool:
        """Count the socket for its user; False when the user has too many here."""
        if self._per_user[user_id] >= self.limits.sockets_per_user:
            return False
        self._per_user[user_id] += 1
        return True

    def subscribe(self, connection: Connection, subscription: Subscription) -> None:
        connection.subscriptions[subscription.channel.name] = subscription
        self._subscribers[subscription.bus_name][connection] = subscription

    def unsubscribe(self, connection: Connection, subscription: Subscription) -> None:
        if connection.subscriptions.get(subscription.channel.name) is subscription:
            del connection.subscriptions[subscription.channel.name]
        connection.drop_telemetry(subscription.channel.name)
        subscribers = self._subscribers.get(subscription.bus_name)
        if subscribers is not None:
            subscribers.pop(connection, None)
            if not subscribers:
                del self._subscribers[subscription.bus_name]

    # --- events --------------------------------------------------------------------------------

    def dispatch(self, bus_name: str, payload: dict[str, Any]) -> None:
        """The bus's handler: one message of any channel (called on the listener's task)."""
        subscribers = self._subscribers.get(bus_name)
        if not subscribers:
            return
        event = live_event(client_channel(bus_name), payload)
        if event is None:
            log.warning("bus_message_not_an_event", channel=bus_name)
            return
        for connection, subscription in list(subscribers.items()):
            connection.deliver(subscription, event)

    async def resume(self, connection: Connection, subscription: Subscription,
                     since: str | None, announce: Callable[[str], None] | None = None) -> None:
        """Finish setting up a subscription whose live events are being buffered: `announce`
        the channel's last id, then deliver the held events after `since` (or say
        `resync.required` when they are no longer all held), then the buffered ones. Raises
        what `channels` raises (RedisError; InvalidEventId for a bad `since`)."""
        last = await channels.last_id(self.rt, subscription.bus_name)
        held = None if since is None else await channels.replay(self.rt, subscription.bus_name,
                                                                since)
        if announce is not None:
            announce(last)
        name = subscription.channel.name
        if since is None:
            connection.settle(subscription, last, [])
        elif held is None:
            connection.send("resync.required", resync_frame(name))
            connection.settle(subscription, last, [])
        else:
            replayed = [event for payload in held if (event := live_event(name, payload))]
            connection.settle(subscription, since, replayed)

    def on_bus_reset(self) -> None:
        """The bus listener lost its connection: buffer every subscription's live events from
        now on and catch them all up once the listener is back."""
        for connection in self.connections:
            for subscription in connection.subscriptions.values():
                if subscription.buffer is None:
                    subscription.buffer = []
        if self._catch_up is None or self._catch_up.done():
            self._catch_up = asyncio.create_task(self._catch_up_all())

    async def _catch_up_all(self) -> None:
        await self.rt.bus.ready.wait()
        for connection in list(self.connections):
            for subscription in list(connection.subscriptions.values()):
                if subscription.buffer is None:
                    continue
                try:
                    await self.resume(connection, subscription, subscription.last_id)
                except (RedisError, ValueError) as exc:
                    log.warning("catch_up_failed", error=type(exc).__name__)
                    connection.send("resync.required",
                                    resync_frame(subscription.channel.name))
                    connection.settle(subscription, subscription.last_id, [])

    # --- the sweep -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Close sockets whose token expired or whose login session was revoked, every
        `sweep_every_s` (so within 5 s of it); drop subscriptions to appliances and cooking
        sessions that are no longer the user's every `ownership_every_s`."""
        checked_at = time.monotonic()
        while True:
            await asyncio.sleep(self.limits.sweep_every_s)
            try:
                await self.sweep(clock.utcnow())
                if time.monotonic() - checked_at >= self.limits.ownership_every_s:
                    checked_at = time.monotonic()
                    await self.recheck_ownership()
            except Exception:
                log.exception("realtime_sweep_failed")

    async def sweep(self, now: datetime) -> None:
        authenticated = [c for c in self.connections if c.authenticated and not c.done.is_set()]
        for connection in authenticated:
            if connection.expires_at is not None and connection.expires_at <= now:
                connection.close(CLOSE_UNAUTHORIZED, "access token expired")
        sessions = {c.session_id for c in authenticated if c.session_id is not None}
        try:
            revoked = await auth_service.revocations(self.rt).revoked_among(sessions)
        except DependencyUnavailable:
            return  # logged by the revocation set; asked again at the next sweep
        for connection in authenticated:
            if connection.session_id in revoked:
                connection.close(CLOSE_UNAUTHORIZED, "login session ended")

    async def recheck_ownership(self) -> None:
        """An appliance unpaired (and maybe claimed by someone else) or a session gone: its
        subscribers get `error` `not_found` for the channel and nothing more of it."""
        holders: dict[tuple[uuid.UUID, Channel], list[tuple[Connection, Subscription]]] = {}
        for connection in self.connections:
            if connection.user_id is None:
                continue
            for subscription in connection.subscriptions.values():
                if subscription.channel.kind != "user":
                    key = (connection.user_id, subscription.channel)
                    holders.setdefault(key, []).append((connection, subscription))

        async def check(user_id: uuid.UUID, channel: Channel) -> None:
            try:
                if await access.may_subscribe(self.rt, user_id, channel):
                    return
            except (SQLAlchemyError, OSError):
                return  # asked again next time
            for connection, subscription in holders[(user_id, channel)]:
                if connection.subscriptions.get(channel.name) is subscription:
                    self.unsubscribe(connection, subscription)
                    connection.send("error", error_frame(
                        NOT_FOUND, "no such channel (any more)", channel=channel.name))

        await _bounded(check(user_id, channel) for user_id, channel in list(holders))


async def _bounded(checks: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run the checks, a bounded number at a time (a pool's worth, not thousands at once)."""
    gate = asyncio.Semaphore(CHECK_CONCURRENCY)

    async def gated(check: Coroutine[Any, Any, None]) -> None:
        async with gate:
            await check

    await asyncio.gather(*(gated(check) for check in checks))


def install(rt: Runtime) -> Hub:
    """Create this instance's hub and connect it to the bus (at startup)."""
    hub = Hub(rt)
    rt.bus.subscribe_all(hub.dispatch)
    rt.bus.on_reset(hub.on_bus_reset)
    rt.extras[HUB_KEY] = hub
    return hub


def hub_of(rt: Runtime) -> Hub:
    hub: Hub = rt.extras[HUB_KEY]
    return hub
