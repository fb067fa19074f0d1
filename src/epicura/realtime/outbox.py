"""The event outbox: live events that must not be lost (a session finished, the cook is awaited,
an alert was raised) are written in the same transaction as the change that causes them, and
relayed to their channels after the commit.

`record()` adds the rows inside the caller's transaction; `wake(rt)` after the commit tells this
process's relay to publish them at once. Every process (serve, bridge, worker) runs a relay, so
rows left behind by a process that died between commit and publish are sent by whichever relay
polls next (each second). A relay takes rows with `FOR UPDATE SKIP LOCKED`, publishes them and
deletes them in one transaction: a crash after the publish and before the commit sends them
again (at least once, never zero times).

Consumers registered with `on_relay(fn)` (notifications, later) run inside the relay's
transaction with the rows, before they are published and deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import structlog
from redis.exceptions import RedisError
from sqlalchemy import BigInteger, Integer, String, delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from epicura.kit import clock
from epicura.kit.db import Base
from epicura.kit.runtime import Runtime
from epicura.realtime import channels

log = structlog.get_logger("epicura.realtime.outbox")

BATCH = 500
POLL_S = 1.0
BACKOFF_CAP_S = 10.0
RELAY_KEY = "event_outbox_relay"


class OutboxEvent(Base):
    __tablename__ = "event_outbox"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                    primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


Consumer = Callable[[AsyncSession, Sequence[OutboxEvent]], Awaitable[None]]
_consumers: list[Consumer] = []


def on_relay(consumer: Consumer) -> None:
    _consumers.append(consumer)


def record(session: AsyncSession, channel: str, event_type: str, data: dict[str, Any]) -> None:
    """Queue one event for `channel`, published once the caller's transaction commits."""
    session.add(OutboxEvent(channel=channel, type=event_type, data=data,
                            created_at=clock.utcnow()))


async def relay_once(rt: Runtime, limit: int = BATCH) -> int:
    """Publish and delete up to `limit` queued events; how many went."""
    async with rt.db.sessions() as session, session.begin():
        rows = (await session.scalars(
            select(OutboxEvent).order_by(OutboxEvent.id).limit(limit)
            .with_for_update(skip_locked=True))).all()
        if not rows:
            return 0
        for consumer in _consumers:
            await consumer(session, rows)
        await channels.publish(rt, [(row.channel, {"type": row.type, "data": row.data})
                                    for row in rows])
        await session.execute(delete(OutboxEvent).where(
            OutboxEvent.id.in_([row.id for row in rows])))
    return len(rows)


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
