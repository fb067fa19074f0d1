"""Read-only lists the portal shows beside a module's own views (an appliance's recent cooking
sessions and commands), as plain SQL over those tables; every change goes through the modules'
services."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Integer,
    String,
    bindparam,
    column,
    func,
    select,
    table,
    text,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Uuid

from epicura.kit.db import UTCDateTime

_RECENT_SESSIONS = text(
    "SELECT s.id, s.status, s.recipe_id, r.title AS recipe_title, s.created_at, s.duration_s "
    "FROM cooking_sessions s LEFT JOIN recipes r ON r.id = s.recipe_id "
    "WHERE s.appliance_id = :appliance ORDER BY s.created_at DESC LIMIT :limit"
).bindparams(bindparam("appliance", type_=Uuid())).columns(created_at=UTCDateTime())
_RECENT_COMMANDS = text(
    "SELECT request_id, name, status, reason, created_at FROM appliance_commands "
    "WHERE appliance_id = :appliance ORDER BY created_at DESC LIMIT :limit"
).bindparams(bindparam("appliance", type_=Uuid())).columns(created_at=UTCDateTime())


async def recent_sessions(session: AsyncSession, appliance_id: uuid.UUID,
                          limit: int = 10) -> list[dict[str, Any]]:
    rows = await session.execute(_RECENT_SESSIONS, {"appliance": appliance_id, "limit": limit})
    return [dict(row._mapping) for row in rows]


async def recent_commands(session: AsyncSession, appliance_id: uuid.UUID,
                          limit: int = 10) -> list[dict[str, Any]]:
    rows = await session.execute(_RECENT_COMMANDS, {"appliance": appliance_id, "limit": limit})
    return [dict(row._mapping) for row in rows]



_recipes = table(
    "recipes", column("id", Uuid()), column("title", String()), column("status", String()),
    column("visibility", String()), column("is_official", Boolean()),
    column("current_version", Integer()), column("owner_id", Uuid()),
    column("updated_at", UTCDateTime()))


async def recipes(session: AsyncSession, *, q: str | None, status: str | None,
                  official: bool | None, after: tuple[datetime, uuid.UUID] | None,
                  limit: int) -> list[dict[str, Any]]:
    """Every recipe (any owner, any status), newest change first."""
    c = _recipes.c
    query = select(_recipes).order_by(c.updated_at.desc(), c.id.desc()).limit(limit)
    if q:
        query = query.where(func.lower(c.title).contains(q.lower(), autoescape=True))
    if status:
        query = query.where(c.status == status)
    if official is not None:
        query = query.where(c.is_official.is_(official))
    if after is not None:
        query = query.where(tuple_(c.updated_at, c.id) < after)
    return [dict(row._mapping) for row in await session.execute(query)]
