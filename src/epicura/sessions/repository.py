"""All SQL of the sessions module."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.sessions.models import CookingSession


async def owner_of(db: AsyncSession, session_id: uuid.UUID) -> uuid.UUID | None:
    return (await db.execute(
        select(CookingSession.user_id).where(CookingSession.id == session_id)
    )).scalar_one_or_none()
