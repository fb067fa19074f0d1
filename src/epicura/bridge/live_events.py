"""The bridge's live events on the bus: best effort, never in ingest's way.

- Telemetry is conflated per channel to at most one event per second, newest kept (what
  websocket-events.md promises clients anyway): the first one in a second goes out at once,
  a later one waits for the end of that second and replaces any still waiting. A fleet that
  publishes every few seconds is never held back; a fast publisher costs one event a second.
- Events go out in the background, one publish at a time, so a slow or absent Redis never
  slows ingest down: while one is in progress, new telemetry waits in the conflation table
  (superseded by newer) and other events are carried over to the next publish (bounded).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from redis.exceptions import RedisError

from epicura.bridge import metrics
from epicura.bridge.handlers import Event
from epicura.kit.runtime import Runtime
from epicura.realtime import channels

log = structlog.get_logger("epicura.bridge.events")

TELEMETRY_INTERVAL_S = 1.0
FLUSH_EVERY_S = 0.25
PUBLISH_TIMEOUT_S = 2.0
MAX_CARRIED = 10_000
MAX_CHANNELS = 200_000


class LiveEvents:
    def __init__(self, rt: Runtime, interval_s: float = TELEMETRY_INTERVAL_S) -> None:
        self.rt = rt
        self.interval_s = interval_s
        self._last_sent: dict[str, float] = {}  # telemetry channel → when its last event left
        self._waiting: dict[str, Event] = {}  # telemetry channel → newest event held back
        self._carried: list[Event] = []
        self._task: asyncio.Task[None] | None = None

    def offer(self, events: list[Event]) -> None:
        """Take a committed batch's events; send what may go now."""
        now = time.monotonic()
        ready = self._carried
        self._carried = []
        for channel, event in events:
            if event.get("type") != "telemetry":
                ready.append((channel, event))
            elif now - self._last_sent.get(channel, -1e9) >= self.interval_s:
                self._waiting.pop(channel, None)
                self._last_sent[channel] = now
                ready.append((channel, event))
            else:
                self._waiting[channel] = (channel, event)
        ready.extend(self._due(now))
        self._send(ready)

    def _due(self, now: float) -> list[Event]:
        due = [channel for channel in self._waiting
               if now - self._last_sent.get(channel, -1e9) >= self.interval_s]
        for channel in due:
            self._last_sent[channel] = now
        if len(self._last_sent) > MAX_CHANNELS:
            self._last_sent = {c: t for c, t in self._last_sent.items()
                               if now - t < self.interval_s}
        return [self._waiting.pop(channel) for channel in due]

    def _send(self, events: list[Event]) -> None:
        if not events:
            return
        if self._task is not None and not self._task.done():
            # Busy: telemetry waits (newer replaces it), the rest is carried (bounded).
            keep = []
            for channel, event in events:
                if event.get("type") == "telemetry":
                    self._waiting[channel] = (channel, event)
                    self._last_sent.pop(channel, None)
                else:
                    keep.append((channel, event))
            dropped = max(0, len(keep) - MAX_CARRIED)
            if dropped:
                metrics.events_dropped.inc(dropped)
            self._carried = keep[-MAX_CARRIED:]
            return
        self._task = asyncio.create_task(self._publish(events))

    async def _publish(self, events: list[Event]) -> None:
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                await channels.publish(self.rt, events)
        except (TimeoutError, RedisError):
            metrics.events_dropped.inc(len(events))
            log.warning("bridge_events_lost", events=len(events))

    async def run_flusher(self) -> None:
        """Send held-back telemetry once its second is over, even when no batch comes."""
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            self.offer([])

    async def drain(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
