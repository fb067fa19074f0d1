"""The audit log's listing query."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.kit.audit import AuditEvent


async def listing(session: AsyncSession, *, actor: uuid.UUID | None, action: str | None,
                  start: datetime | None, end: datetime | None,
                  after: tuple[datetime, uuid.UUID] | None, limit: int) -> Sequence[AuditEvent]:
    """Newest first; `action` matches a whole action or, ending in `.`, a family of them."""
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    if actor is not None:
        query = query.where(AuditEvent.actor_id == actor)
    if action:
        query = query.where(AuditEvent.action.startswith(action, autoescape=True)
                            if action.endswith(".") else AuditEvent.action == action)
    if start is not None:
        query = query.where(AuditEvent.at >= start)
    if end is not None:
        query = query.where(AuditEvent.at < end)
    if after is not None:
        query = query.where(tuple_(AuditEvent.at, AuditEvent.id) < after)
    return (await session.scalars(query)).all()
