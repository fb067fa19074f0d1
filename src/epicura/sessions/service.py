"""The rules of the cooking-sessions module."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from epicura.sessions import repository


async def is_owner(db: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID) -> bool:
    """Whether the session exists and belongs to the user (the WebSocket gateway asks this before
    a `session:{id}` subscription)."""
    return await repository.owner_of(db, session_id) == user_id
