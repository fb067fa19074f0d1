"""One socket's state: who it is, what it subscribed to, and its bounded send queue.

The queue holds at most `Limits.send_queue` events; one more closes the socket with 1013 (the
client reconnects and resumes with `since`). Telemetry never queues up: each channel has one
slot holding its newest telemetry event, and the queue holds only a marker for the slot, so a slow
client costs at most one telemetry event per subscribed channel; a slot is queued at most once a
second per channel.

A subscription that is being set up (or caught up after the bus reconnected) buffers its live
events; once its replay has been delivered the buffer is flushed, skipping events whose id was
already delivered. Held events are delivered at most once per subscription and in id order.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from starlette.websockets import WebSocket

from epicura.realtime import metrics
from epicura.realtime.channels import parse_id
from epicura.realtime.protocol import (
    CLOSE_OVERLOADED,
    TELEMETRY,
    Channel,
    Limits,
)


@dataclass(frozen=True)
class LiveEvent:
    """An event ready to send: its type, its id (None for telemetry) and its frame's text."""

    type: str
    id: str | None
    text: str

    @property
    def key(self) -> tuple[int, int] | None:
        return None if self.id is None else parse_id(self.id)


@dataclass(eq=False)
class Subscription:
    channel: Channel
    bus_name: str
    last_id: str | None = None  # the newest held event delivered (or the subscribe point)
    buffer: list[LiveEvent] | None = field(default_factory=list)  # a list while setting up

    @property
    def last_key(self) -> tuple[int, int] | None:
        return None if self.last_id is None else parse_id(self.last_id)


@dataclass(frozen=True)
class _Slot:
    channel: str


class Connection:
    def __init__(self, websocket: WebSocket, limits: Limits) -> None:
        self.websocket = websocket
        self.limits = limits
        self.user_id: uuid.UUID | None = None
        self.session_id: uuid.UUID | None = None
        self.expires_at: datetime | None = None  # when the access token expires
        self.subscriptions: dict[str, Subscription] = {}  # by the client's channel name
        self.close_code: int | None = None
        self.close_reason = ""
        self.done = asyncio.Event()
        self._queue: deque[tuple[str, str] | _Slot] = deque()
        self._queued_events = 0
        self._telemetry: dict[str, str] = {}  # channel → its newest telemetry frame
        self._telemetry_at: dict[str, float] = {}  # channel → when its last one was queued
        self._wake = asyncio.Event()

    @property
    def authenticated(self) -> bool:
        return self.user_id is not None

    # --- closing -------------------------------------------------------------------------------

    def close(self, code: int, reason: str = "") -> None:
        """Ask the socket to close with `code` (the gateway sends the close frame)."""
        if self.done.is_set():
            return
        self.close_code, self.close_reason = code, reason
        self.done.set()

    def peer_closed(self) -> None:
        self.done.set()

    # --- sending -------------------------------------------------------------------------------

    def send(self, kind: str, text: str) -> None:
        """Queue a frame (a reply or an event); past the bound, close with 1013."""
        if self.done.is_set():
            return
        if self._queued_events >= self.limits.send_queue:
            metrics.overflows.inc()
            self.close(CLOSE_OVERLOADED, "send queue full: resume with since")
            return
        self._queued_events += 1
        self._queue.append((kind, text))
        self._wake.set()

    def _send_telemetry(self, channel: str, text: str) -> None:
        """At most one telemetry event a second per channel, newest kept: whatever instance or
        bridge it came from, the socket holds at most one per channel."""
        if self.done.is_set():
            return
        if channel in self._telemetry:  # one is waiting already: the newest replaces it
            metrics.telemetry_conflated.inc()
            self._telemetry[channel] = text
            return
        self._telemetry[channel] = text
        wait = (self._telemetry_at.get(channel, -1e9) + self.limits.telemetry_interval_s
                - time.monotonic())
        if wait <= 0:
            self._queue_telemetry(channel)
        else:
            asyncio.get_running_loop().call_later(wait, self._queue_telemetry, channel)

    def _queue_telemetry(self, channel: str) -> None:
        if self.done.is_set() or channel not in self._telemetry:
            return
        self._telemetry_at[channel] = time.monotonic()
        self._queue.append(_Slot(channel))
        self._wake.set()

    def deliver(self, subscription: Subscription, event: LiveEvent) -> None:
        """A live event of a subscribed channel."""
        if subscription.buffer is not None:
            if len(subscription.buffer) >= self.limits.send_queue:
                metrics.overflows.inc()
                self.close(CLOSE_OVERLOADED, "send queue full: resume with since")
            else:
                subscription.buffer.append(event)
            return
        if event.type == TELEMETRY:
            self._send_telemetry(subscription.channel.name, event.text)
            return
        key = event.key
        if key is not None:
            last = subscription.last_key
            if last is not None and key <= last:
                return  # already delivered (replay and live overlap)
            subscription.last_id = event.id
        self.send(event.type, event.text)

    def settle(self, subscription: Subscription, floor_id: str | None,
               replayed: list[LiveEvent]) -> None:
        """End a subscription's set-up: deliver `replayed` (events after `floor_id`), then what
        arrived live meanwhile, each held event at most once."""
        buffered = subscription.buffer or []
        subscription.buffer = None
        subscription.last_id = floor_id
        for event in (*replayed, *buffered):
            self.deliver(subscription, event)

    def drop_telemetry(self, channel: str) -> None:
        self._telemetry.pop(channel, None)
        self._telemetry_at.pop(channel, None)

    async def write_loop(self) -> None:
        """Write queued frames in order until cancelled (a slow client blocks here)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                item = self._queue.popleft()
                if isinstance(item, _Slot):
                    text = self._telemetry.pop(item.channel, None)
                    if text is None:
                        continue  # unsubscribed meanwhile
                    kind = TELEMETRY
                else:
                    self._queued_events -= 1
                    kind, text = item
                await self.websocket.send_text(text)
                metrics.events_sent.labels(kind).inc()
