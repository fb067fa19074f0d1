"""The event outbox: live events that must not be lost (a session finished, the cook is awaited,
an alert was raised) are written in the same transaction as the change that causes them, and
relayed to their channels after the commit.

`record()` adds the rows inside the caller's transaction; `wake(rt)` after the commit tells this
process's relay to publish them at once. Every process (serve, bridge, worker) runs a relay, so
rows left behind by a process that died between commit and publish are sent by whichever relay
polls next (each second). One relay works at a time (a transaction-scoped advisory lock on
PostgreSQL; the embedded default is one process), so events go out in the order they were
committed. A relay publishes a batch and marks it relayed in one transaction: a crash after the
publish and before the commit sends it again (at least once, never zero times). Relayed rows are
kept a day (what was sent, and when) and then pruned.

Consumers registered with `on_relay(fn)` (notifications) run inside the relay's transaction
with the rows, before they are published and marked, so what they write commits with the mark.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from prometheus_client import Histogram
from redis.exceptions import RedisError
from sqlalchemy import BigInteger, Index, Integer, String, delete, func, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from epicura.kit import clock, schedule
from epicura.kit.db import Base
from epicura.kit.jobs import JobContext
from epicura.kit.metrics import registry
from epicura.kit.runtime import Runtime
from epicura.realtime import channels

log = structlog.get_logger("epicura.realtime.outbox")

BATCH = 500
POLL_S = 1.0
BACKOFF_CAP_S = 10.0
RELAY_KEY = "event_outbox_relay"
KEEP_RELAYED_S = 86_400
PRUNE_EVERY_S = 3600
PRUNE_BATCH = 5000
# One relay at a time keeps commit order; the key is this table's, within the database.
_RELAY_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtext('epicura.event_outbox'))")
PENDING = text("relayed_at IS NULL")

relay_lag = Histogram(
    "epicura_outbox_relay_lag_seconds", "From an outbox event's commit to its publication",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=registry,
)


class OutboxEvent(Base):
    __tablename__ = "event_outbox"
    __table_args__ = (Index("ix_event_outbox_pending", "id", postgresql_where=PENDING,
                            sqlite_where=PENDING),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                    primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    relayed_at: Mapped[datetime | None]


Consumer = Callable[[AsyncSession, Sequence[OutboxEvent]], Awaitable[None]]
_consumers: list[Consumer] = []


def on_relay(consumer: Consumer) -> None:
    _consumers.append(consumer)


_loaded = False


def load_consumers() -> None:
    """Import the modules whose consumers must see every relayed row, whichever process relays
    it (each registers with `on_relay` at import time). A module with a consumer adds it here."""
    global _loaded
    if _loaded:
        return
    from epicura.notifications import service as _notifications  # noqa: F401 - inbox + push

    _loaded = True


def record(session: AsyncSession, channel: str, event_type: str, data: dict[str, Any]) -> None:
    """Queue one event for `channel`, published once the caller's transaction commits."""
    session.add(OutboxEvent(channel=channel, type=event_type, data=data,
                            created_at=clock.utcnow()))


async def relay_once(rt: Runtime, limit: int = BATCH) -> int:
    """Publish up to `limit` pending events in commit order and mark them relayed; how many
    went (0 also when another relay holds the turn)."""
    load_consumers()
    async with rt.db.sessions() as session, session.begin():
        if not rt.settings.is_sqlite and not await session.scalar(_RELAY_LOCK):
            return 0
        rows = (await session.scalars(
            select(OutboxEvent).where(OutboxEvent.relayed_at.is_(None))
            .order_by(OutboxEvent.id).limit(limit))).all()
        if not rows:
            return 0
        for consumer in _consumers:
            await consumer(session, rows)
        await channels.publish(rt, [(row.channel, {"type": row.type, "data": row.data})
                                    for row in rows])
        now = clock.utcnow()
        await session.execute(update(OutboxEvent).where(
            OutboxEvent.id.in_([row.id for row in rows])).values(relayed_at=now))
    for row in rows:
        relay_lag.observe(max(0.0, (now - row.created_at).total_seconds()))
    return len(rows)


async def pending(rt: Runtime) -> int:
    async with rt.db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxEvent)
                                         .where(OutboxEvent.relayed_at.is_(None))) or 0)


@schedule.every(PRUNE_EVERY_S, "outbox.prune")
async def prune_relayed(ctx: JobContext) -> None:
    """Relayed events older than a day, in batches (the pending ones are never touched)."""
    cutoff = clock.utcnow() - timedelta(seconds=KEEP_RELAYED_S)
    while True:
        async with ctx.db.transaction() as session:
            ids = select(OutboxEvent.id).where(OutboxEvent.relayed_at < cutoff).limit(PRUNE_BATCH)
            result = await session.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(ids)))
        if (getattr(result, "rowcount", 0) or 0) < PRUNE_BATCH:
            return


class Relay:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.wakeup = asyncio.Event()

    async def run(self, poll_s: float = POLL_S) -> None:
        """Relay until cancelled: at once when woken, else every `poll_s`; back off while
        PostgreSQL or Redis is away (the rows wait, nothing is lost)."""
        delay = poll_s
        while True:
            self.wakeup.clear()
            try:
                while await relay_once(self.rt) == BATCH:
                    pass
                delay = poll_s
            except (SQLAlchemyError, RedisError, OSError) as exc:
                delay = min(delay * 2, BACKOFF_CAP_S)
                log.warning("outbox_relay_failed", error=type(exc).__name__, retry_in_s=delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.wakeup.wait()


def relay(rt: Runtime) -> Relay:
    """This process's relay (one per runtime)."""
    found = rt.extras.get(RELAY_KEY)
    if found is None:
        found = rt.extras[RELAY_KEY] = Relay(rt)
    assert isinstance(found, Relay)
    return found


def wake(rt: Runtime) -> None:
    relay(rt).wakeup.set()
