"""The one ingest pipeline, shared by the MQTT bridge and the HTTPS device routes.

For a batch of validated messages, in one transaction:
1. the appliances that spoke are touched (`last_seen_at`, back online); messages of appliances
   that are not provisioned are dropped;
2. the message ids are recorded (`device_messages`): a redelivered message stops here;
3. telemetry samples of the new messages are written in bulk, and the latest sample of each
   appliance upserted;
4. every other new message goes to the handler of its kind (handlers.py), each inside a
   savepoint so that one failing handler drops only its own message.
Live events are published on the bus after the commit (`publish_events`).
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.appliances import reported
from epicura.bridge import handlers, metrics, store
from epicura.bridge.handlers import Event, HandlerContext
from epicura.bridge.payloads import TELEMETRY_KINDS, DeviceMessage
from epicura.bridge.reported_handlers import appliance_channel
from epicura.kit import clock
from epicura.kit.errors import is_dependency_down
from epicura.kit.runtime import Runtime
from epicura.realtime import channels, outbox

log = structlog.get_logger("epicura.bridge.ingest")

STORED, DUPLICATE, UNKNOWN_DEVICE, HANDLER_ERROR, DROPPED_ERROR = (
    "stored", "duplicate", "unknown_device", "handler_error", "dropped_error")


@dataclass
class Outcome:
    """What became of each message of a batch (by message id), and the events to publish."""

    results: dict[uuid.UUID, str] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    fresh: list[DeviceMessage] = field(default_factory=list)
    seen: set[uuid.UUID] = field(default_factory=set)  # looked up, online: remember once committed
    durable: int = 0  # events written to the outbox: wake the relay once committed


_partitions = store.Partitions()


async def store_batch(rt: Runtime, messages: Sequence[DeviceMessage],
                      now: datetime | None = None) -> Outcome:
    """Store a batch in its own transaction; the caller acknowledges and publishes after."""
    now = now or clock.utcnow()
    rows = await prepare_rows(rt, messages)
    async with rt.db.sessions() as session, session.begin():
        outcome = await ingest(rt, session, messages, now, rows)
    await _after_commit(session)
    if outcome.durable:
        outbox.wake(rt)
    recently_seen.remember(outcome.seen)
    observe_committed(outcome, clock.utcnow())
    return outcome


async def _after_commit(session: AsyncSession) -> None:
    """What handlers' services asked to run once committed (`kit.runtime.after_commit`, e.g. a
    recipe cache invalidation), as a request's boundary runs it. Best effort."""
    for callback in session.info.pop("after_commit", ()):
        try:
            await callback()
        except Exception:
            log.exception("after_commit_callback_failed")


async def prepare_rows(rt: Runtime, messages: Sequence[DeviceMessage]) -> list[tuple[Any, ...]]:
    """The telemetry rows of these messages, with the day partitions they need (made before the
    batch's transaction, never inside it)."""
    unique = {m.id: m for m in reversed(messages) if m.kind in TELEMETRY_KINDS}
    rows = store.sample_rows(unique.values())
    await _partitions.ensure(rt.db, store.sample_days(rows))
    return rows


async def ingest(rt: Runtime, session: AsyncSession, messages: Sequence[DeviceMessage],
                 now: datetime, rows: list[tuple[Any, ...]] | None = None) -> Outcome:
    """The pipeline inside the caller's transaction (flushes, never commits). `rows`: the
    telemetry rows when the caller already built them."""
    outcome = Outcome()
    unique = _first_of_each(messages, outcome)
    known = await _touch(session, unique, outcome, now)
    candidates = []
    for message in unique:
        if message.device_id in known:
            candidates.append(message)
        else:
            outcome.results[message.id] = UNKNOWN_DEVICE
    fresh_ids = await store.claim_ids(session, candidates, now)
    for message in candidates:
        if message.id in fresh_ids:
            outcome.results[message.id] = STORED
            outcome.fresh.append(message)
        else:
            outcome.results[message.id] = DUPLICATE
    await _store_telemetry(session, outcome, rows)
    await _run_handlers(rt, session, outcome, now)
    return outcome


class RecentlySeen:
    """Appliances this process found provisioned and online, and touched, in the last few
    seconds: their next messages skip the appliance lookup (one query per batch saved at
    thousands of messages per second). Filled only after a commit; an appliance's own presence
    message takes it out, so its next message is looked up again. A state changed by someone
    else (offline by another bridge, decommissioned) is seen within `ttl_s`."""

    def __init__(self, ttl_s: float = reported.LAST_SEEN_RESOLUTION.total_seconds(),
                 max_size: int = 200_000) -> None:
        self.ttl_s = ttl_s
        self.max_size = max_size
        self._at: dict[uuid.UUID, float] = {}

    def fresh(self, ids: set[uuid.UUID]) -> set[uuid.UUID]:
        oldest = time.monotonic() - self.ttl_s
        return {i for i in ids if self._at.get(i, -1.0) > oldest}

    def forget(self, ids: set[uuid.UUID]) -> None:
        for appliance_id in ids:
            self._at.pop(appliance_id, None)

    def remember(self, ids: set[uuid.UUID]) -> None:
        if len(self._at) + len(ids) > self.max_size:
            self._at.clear()
        now = time.monotonic()
        for appliance_id in ids:
            self._at[appliance_id] = now


recently_seen = RecentlySeen()


async def _touch(session: AsyncSession, unique: list[DeviceMessage], outcome: Outcome,
                 now: datetime) -> set[uuid.UUID]:
    """The provisioned appliances among the senders (recorded as seen; woken if offline)."""
    presence_ids = {m.device_id for m in unique if m.kind == "presence"}
    recently_seen.forget(presence_ids)
    senders = {m.device_id for m in unique}
    cached = recently_seen.fresh(senders)
    looked_up = await reported.touch_seen(session, senders - cached, presence_ids, now) \
        if senders - cached else {}
    for appliance_id, seen in looked_up.items():
        if seen.came_online:
            outcome.events.append(_presence_event(appliance_id, now))
    outcome.seen = set(looked_up) - presence_ids
    return cached | set(looked_up)


def _first_of_each(messages: Sequence[DeviceMessage], outcome: Outcome) -> list[DeviceMessage]:
    """The same id twice in one batch (a redelivery racing its original) is stored once."""
    unique: list[DeviceMessage] = []
    for message in messages:
        if message.id in outcome.results:
            continue
        outcome.results[message.id] = DUPLICATE
        unique.append(message)
    return unique


def _presence_event(appliance_id: uuid.UUID, now: datetime) -> Event:
    return (appliance_channel(appliance_id), {
        "type": "appliance.presence",
        "data": {"appliance_id": str(appliance_id), "online": True, "at": now.isoformat()},
    })


async def _store_telemetry(session: AsyncSession, outcome: Outcome,
                           rows: list[tuple[Any, ...]] | None) -> None:
    telemetry = [m for m in outcome.fresh if m.kind in TELEMETRY_KINDS]
    if not telemetry:
        return
    fresh_ids = {m.id for m in telemetry}
    if rows is None:
        rows = store.sample_rows(telemetry)
    else:  # built before deduplication: keep the rows of new messages only
        rows = [row for row in rows if row[2] in fresh_ids]
    await store.write_samples(session, rows)
    await store.upsert_latest(session, store.newest_samples(telemetry))
    outcome.events.extend(_telemetry_events(telemetry))


def _telemetry_events(messages: list[DeviceMessage]) -> list[Event]:
    """One event per appliance (and per session) per batch, its samples merged."""
    merged: dict[tuple[uuid.UUID, uuid.UUID | None], list[dict[str, Any]]] = defaultdict(list)
    for message in messages:
        if message.samples and message.kind == "telemetry":  # backlog is history, not live
            merged[(message.device_id, message.session_id)].extend(message.samples)
    events: list[Event] = []
    for (appliance_id, session_id), samples in merged.items():
        data: dict[str, Any] = {"appliance_id": str(appliance_id), "samples": samples}
        if session_id is not None:
            data["session_id"] = str(session_id)
        event = {"type": "telemetry", "data": data}
        events.append((appliance_channel(appliance_id), event))
        if session_id is not None:
            events.append((f"session:{session_id}", event))
    return events


async def _run_handlers(rt: Runtime, session: AsyncSession, outcome: Outcome,
                        now: datetime) -> None:
    handlers.load()
    ctx = HandlerContext(rt=rt, session=session, now=now, events=outcome.events)
    for message in outcome.fresh:
        if message.kind in TELEMETRY_KINDS:
            continue
        fn = handlers.handler_for(message.kind)
        if fn is None:
            continue
        mark = len(ctx.events)
        try:
            async with session.begin_nested():
                await fn(ctx, message)
        except Exception as exc:
            if is_dependency_down(exc):
                raise
            # A handler's bug must not hold up the stream: its message is dropped, loudly.
            del ctx.events[mark:]
            outcome.results[message.id] = HANDLER_ERROR
            log.exception("device_message_handler_failed", kind=message.kind,
                          device_id=str(message.device_id), message_id=str(message.id))
    outcome.durable = ctx.durable


def per_message(messages: Sequence[DeviceMessage],
                outcome: Outcome) -> Iterator[tuple[DeviceMessage, str]]:
    """Each message with what became of it; a second copy of an id in the same batch is a
    duplicate."""
    seen: set[uuid.UUID] = set()
    for message in messages:
        if message.id in seen:
            yield message, DUPLICATE
        else:
            seen.add(message.id)
            yield message, outcome.results.get(message.id, DROPPED_ERROR)


def observe_committed(outcome: Outcome, committed_at: datetime) -> None:
    """Lag (device publish time → commit) and sample counts of the new messages."""
    committed_s = committed_at.timestamp()
    stored = refused = 0
    for message in outcome.fresh:
        metrics.ingest_lag.observe(max(0.0, committed_s - message.ts / 1000))
        stored += len(message.samples)
        refused += message.refused
    if stored:
        metrics.samples.labels("stored").inc(stored)
    if refused:
        metrics.samples.labels("refused").inc(refused)


async def publish_events(rt: Runtime, outcome: Outcome) -> None:
    """After the commit: live events (best effort) and a nudge to the outbox relay."""
    if outcome.durable:
        outbox.wake(rt)
    await channels.publish_quietly(rt, outcome.events)
