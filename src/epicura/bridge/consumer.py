"""The bridge's consumer: MQTT in, validated, stored in batches, acknowledged after the commit.

Messages arrive on a persistent MQTT 5 session through the shared subscription (several bridges
split the stream). They are taken in micro-batches (up to `batch_max` messages or `batch_wait_s`
after the first), validated (a bad one is counted, logged at most once per device and minute,
and acknowledged: it is deliberately dropped), stored in one transaction, and only then
acknowledged, in the order received. When the database fails the batch is retried with backoff
and nothing is acknowledged meanwhile: the broker stops sending once `Receive Maximum` messages
are unacknowledged, so memory stays bounded, and `/readyz` says 503. A batch that keeps failing
while the database answers holds a message that breaks the pipeline: it is then stored message
by message and the failing one dropped, so one bad message cannot stop the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from epicura.bridge import ingest, metrics
from epicura.bridge.broker_admin import BrokerEndpoint
from epicura.bridge.ingest import Outcome
from epicura.bridge.live_events import LiveEvents
from epicura.bridge.mqtt_session import MqttSession, MqttUnavailable, Received, SessionOptions
from epicura.bridge.payloads import DeviceMessage, Rejected, parse, parse_topic
from epicura.kit.errors import is_dependency_down
from epicura.kit.runtime import Runtime
from epicura.realtime import outbox

log = structlog.get_logger("epicura.bridge")

SUBSCRIPTION = "$share/epicura/epicura/v1/+/up/#"
ATTEMPTS_BEFORE_SPLIT = 3
TOPIC_CACHE_SIZE = 200_000


@dataclass(frozen=True)
class BridgeOptions:
    session: SessionOptions
    subscription: str = SUBSCRIPTION
    batch_max: int = 500
    batch_wait_s: float = 0.05
    retry_first_s: float = 0.2
    retry_cap_s: float = 5.0


@dataclass
class Health:
    """What `/readyz` of the bridge reports."""

    mqtt_connected: bool = False
    storing: bool = True
    last_error: str | None = None

    @property
    def ready(self) -> bool:
        return self.mqtt_connected and self.storing


class LogGate:
    """At most one log line per key (device) and interval: a device spamming garbage must not
    flood the logs."""

    def __init__(self, interval_s: float = 60.0, max_keys: int = 10_000) -> None:
        self.interval_s = interval_s
        self.max_keys = max_keys
        self._last: dict[str, float] = {}

    def allows(self, key: str) -> bool:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            return False
        if len(self._last) >= self.max_keys:
            self._last = {k: v for k, v in self._last.items() if now - v < self.interval_s}
        self._last[key] = now
        return True


@dataclass
class _Batch:
    received: list[Received]
    messages: list[DeviceMessage] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (kind, reason)


class Bridge:
    def __init__(self, rt: Runtime, endpoint: BrokerEndpoint, options: BridgeOptions) -> None:
        self.rt = rt
        self.endpoint = endpoint
        self.options = options
        self.health = Health()
        self._wake = asyncio.Event()
        self._log_gate = LogGate()
        self.live = LiveEvents(rt)
        self._storing = False  # the store stage is busy with a batch
        # This bridge's own tallies (connections, batches, acks, outcomes): /metrics has the
        # process-wide ones; these tell one bridge of a process from another (tests, logs).
        self.stats: Counter[str] = Counter()
        self._topics: dict[str, tuple[uuid.UUID, str]] = {}  # topic → (device, kind), parsed

    async def run(self) -> None:
        """Consume until cancelled, reconnecting with backoff (aiomqtt/paho never reconnect
        by themselves here)."""
        helpers = [asyncio.create_task(self.live.run_flusher()),
                   asyncio.create_task(outbox.relay(self.rt).run())]
        try:
            await self._connect_and_consume()
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _connect_and_consume(self) -> None:
        delay = 0.5
        while True:
            session = MqttSession(self.endpoint, self.options.session, self._wake.set)
            try:
                present = await session.connect()
                await session.subscribe(self.options.subscription, qos=1)
                log.info("bridge_connected", client_id=self.options.session.client_id,
                         session_present=present)
                self._set_connected(True)
                self.stats["connections"] += 1
                delay = 0.5
                await self._consume(session)
            except MqttUnavailable as exc:
                log.warning("bridge_mqtt_unavailable", error=str(exc))
            finally:
                self._set_connected(False)
                await session.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _set_connected(self, connected: bool) -> None:
        self.health.mqtt_connected = connected
        metrics.mqtt_connected.set(1 if connected else 0)

    async def _consume(self, session: MqttSession) -> None:
        """Two stages: intake takes and validates the next batch (CPU) while the previous one
        is being stored (mostly waiting on PostgreSQL); batches are stored and acknowledged
        one at a time, in the order received."""
        session.lost.add_done_callback(lambda _f: self._wake.set())
        validated: asyncio.Queue[_Batch] = asyncio.Queue(maxsize=1)
        intake = asyncio.create_task(self._intake(session, validated))
        try:
            while session.alive:
                getter = asyncio.ensure_future(validated.get())
                waiters: set[asyncio.Future[Any]] = {getter, session.lost, intake}
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not getter.done():
                        getter.cancel()
                if getter.cancelled():
                    break
                self._storing = True
                try:
                    await self._process(session, getter.result())
                finally:
                    self._storing = False
                    self._wake.set()  # intake may hand over what it gathered meanwhile
        finally:
            intake.cancel()
            await asyncio.gather(intake, return_exceptions=True)
        if not intake.cancelled() and (error := intake.exception()) is not None:
            raise error
        raise MqttUnavailable(f"connection lost: {session.lost.result()}")

    async def _intake(self, session: MqttSession, validated: asyncio.Queue[_Batch]) -> None:
        while session.alive:
            await self._next_batch_ready(session, validated)
            if not session.alive:
                return
            received = session.inbox[: self.options.batch_max]
            del session.inbox[: len(received)]
            metrics.unacked.set(len(session.inbox) + len(received))
            await validated.put(self._validate(received))

    async def _next_batch_ready(self, session: MqttSession,
                                validated: asyncio.Queue[_Batch]) -> None:
        """A batch is ready when it is full, when `batch_wait_s` has passed since its first
        message, or as soon as the store stage is idle: batches grow only while the database
        is busy (low latency when quiet, large batches under load)."""
        while not session.inbox and session.alive:
            self._wake.clear()
            await self._wake.wait()
        deadline = asyncio.get_running_loop().time() + self.options.batch_wait_s
        while (len(session.inbox) < self.options.batch_max and session.alive
               and (self._storing or not validated.empty())):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._wake.wait()

    # --- one batch ---------------------------------------------------------------------------

    async def _process(self, session: MqttSession, batch: _Batch) -> None:
        received = batch.received
        outcome = await self._store_reliably(session, batch.messages, split=True)
        if outcome is None:  # the connection went first: the broker will send them again
            return
        if session.alive:
            for item in received:
                if item.qos == 1:
                    session.ack(item.mid)
                    self.stats["acked"] += 1
        self._count(batch, outcome)
        self.live.offer(outcome.events)

    def _validate(self, received: list[Received]) -> _Batch:
        batch = _Batch(received)
        now_ms = int(time.time() * 1000)
        topics = self._topics
        for item in received:
            kind = "unknown"
            try:
                route = topics.get(item.topic)
                if route is None:
                    if len(topics) >= TOPIC_CACHE_SIZE:
                        topics.clear()
                    route = topics[item.topic] = parse_topic(item.topic)
                device_id, kind = route
                batch.messages.append(parse(device_id, kind, item.payload, now_ms))
            except Rejected as exc:
                batch.rejected.append((kind, exc.reason))
                self._log_rejected(item.topic, exc)
        return batch

    def _log_rejected(self, topic: str, exc: Rejected) -> None:
        parts = topic.split("/", 3)
        device = parts[2][:40] if len(parts) > 2 else "?"
        if self._log_gate.allows(device):
            log.warning("device_message_rejected", device=device, topic=topic[:120],
                        reason=exc.reason, detail=exc.detail[:200])

    async def _store_reliably(self, session: MqttSession, messages: Sequence[DeviceMessage],
                              *, split: bool) -> Outcome | None:
        """Store, retrying while the database is away; None when the MQTT connection is lost
        first (nothing acknowledged: the broker redelivers)."""
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                outcome = await ingest.store_batch(self.rt, messages)
            except Exception as exc:
                attempt += 1
                metrics.store_failures.inc()
                self.health.storing = False
                self.health.last_error = type(exc).__name__
                down = is_dependency_down(exc)
                log.warning("ingest_store_failed", attempt=attempt, messages=len(messages),
                            error=type(exc).__name__, dependency_down=down,
                            exc_info=not down)
                if not down and attempt >= ATTEMPTS_BEFORE_SPLIT and await self._db_answers():
                    if split and len(messages) > 1:
                        return await self._store_one_by_one(session, messages)
                    return _dropped(messages)
                if not session.alive:
                    return None
                await asyncio.sleep(min(self.options.retry_cap_s,
                                        self.options.retry_first_s * 2 ** (attempt - 1)))
            else:
                metrics.batch_seconds.observe(time.perf_counter() - started)
                self.health.storing = True
                self.health.last_error = None
                return outcome

    async def _store_one_by_one(self, session: MqttSession,
                                messages: Sequence[DeviceMessage]) -> Outcome | None:
        merged = Outcome()
        for message in messages:
            outcome = await self._store_reliably(session, [message], split=False)
            if outcome is None:
                return None
            merged.results.update(outcome.results)
            merged.events.extend(outcome.events)
            merged.fresh.extend(outcome.fresh)
        return merged

    async def _db_answers(self) -> bool:
        from sqlalchemy import text

        try:
            async with asyncio.timeout(2):
                async with self.rt.db.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def _count(self, batch: _Batch, outcome: Outcome) -> None:
        counts: Counter[tuple[str, str]] = Counter()
        for message, result in ingest.per_message(batch.messages, outcome):
            counts[(message.kind, result)] += 1
        reasons: Counter[str] = Counter()
        for kind, reason in batch.rejected:
            counts[(kind, "rejected")] += 1
            reasons[reason] += 1
        for (kind, result), count in counts.items():
            metrics.mqtt_messages.labels(kind, result).inc(count)
            self.stats[result] += count
        self.stats["batches"] += 1
        for reason, count in reasons.items():
            metrics.rejected.labels("mqtt", reason).inc(count)
        metrics.batch_size.observe(len(batch.received))

    async def drain(self) -> None:
        await self.live.drain()


def _dropped(messages: Sequence[DeviceMessage]) -> Outcome:
    for message in messages:
        log.error("device_message_dropped_after_errors", kind=message.kind,
                  device_id=str(message.device_id), message_id=str(message.id))
    return Outcome(results={m.id: ingest.DROPPED_ERROR for m in messages})
