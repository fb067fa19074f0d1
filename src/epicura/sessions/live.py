"""The live events of a session (websocket-events.md) and how they leave.

In the bridge, events go through the handler context (`ctx.emit`). Elsewhere (a request, the
stale sweep) `Announcer` collects them: must-not-lose ones (`durable`) are written to the event
outbox in the caller's transaction; the others are published after the commit, best effort.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from epicura.kit.runtime import Runtime, after_commit
from epicura.realtime import channels, outbox
from epicura.sessions import machine
from epicura.sessions.models import CookingSession
from epicura.sessions.program import Program

# (channel, event type, data, durable)
Emit = Callable[[str, str, dict[str, Any], bool], None]
UPDATED, AWAITING_USER, FINISHED = "session.updated", "session.awaiting_user", "session.finished"


def session_channel(session_id: uuid.UUID) -> str:
    return f"session:{session_id}"


def appliance_channel(appliance_id: uuid.UUID) -> str:
    return f"appliance:{appliance_id}"


def user_channel(user_id: uuid.UUID) -> str:
    return f"user:{user_id}"


def updated_data(row: CookingSession, program: Program | None, now: datetime,
                 status: str | None = None) -> dict[str, Any]:
    return {
        "session_id": str(row.id), "status": status or row.status, "step_index": row.step_index,
        "step_title": row.step_title, "step_remaining_s": machine.step_remaining_s(row, now),
        "remaining_s": machine.remaining_s(row, program, now),
    }


def updated(emit: Emit, row: CookingSession, program: Program | None, now: datetime,
            status: str | None = None) -> None:
    data = updated_data(row, program, now, status)
    emit(session_channel(row.id), UPDATED, data, False)
    emit(appliance_channel(row.appliance_id), UPDATED, data, False)


def awaiting_user(emit: Emit, row: CookingSession, prompt: str | None) -> None:
    data = {"session_id": str(row.id), "step_index": row.step_index, "prompt": prompt}
    emit(session_channel(row.id), AWAITING_USER, data, True)
    if row.user_id is not None:
        emit(user_channel(row.user_id), AWAITING_USER, data, True)


def finished(emit: Emit, row: CookingSession) -> None:
    data = {"session_id": str(row.id), "status": row.status, "summary": row.summary}
    emit(session_channel(row.id), FINISHED, data, True)
    if row.user_id is not None:
        emit(user_channel(row.user_id), FINISHED, data, True)


class Announcer:
    """Collects a transaction's events: durable ones into the outbox at once, the others kept
    for `publish` after the commit (`after_commit_of` does both for a request)."""

    def __init__(self, db: AsyncSession) -> None:
        self.db = db
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.durable = 0

    def __call__(self, channel: str, event_type: str, data: dict[str, Any],
                 durable: bool) -> None:
        if durable:
            outbox.record(self.db, channel, event_type, data)
            self.durable += 1
        else:
            self.events.append((channel, {"type": event_type, "data": data}))

    async def publish(self, rt: Runtime) -> None:
        """After the commit."""
        if self.durable:
            outbox.wake(rt)
        await channels.publish_quietly(rt, self.events)

    def after_commit(self, rt: Runtime) -> None:
        """Publish once the request's transaction commits."""

        async def send() -> None:
            await self.publish(rt)

        after_commit(self.db, send)
