"""All SQL of the sessions module."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.sessions.models import LIVE, CookingSession, SessionEvent


def _insert(db: AsyncSession) -> Any:
    return pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert


def _postgres(db: AsyncSession) -> bool:
    return db.get_bind().dialect.name == "postgresql"


async def owner_of(db: AsyncSession, session_id: uuid.UUID) -> uuid.UUID | None:
    return (await db.execute(
        select(CookingSession.user_id).where(CookingSession.id == session_id)
    )).scalar_one_or_none()


async def get(db: AsyncSession, session_id: uuid.UUID, *,
              lock: bool = False) -> CookingSession | None:
    query = select(CookingSession).where(CookingSession.id == session_id)
    if lock:
        query = query.with_for_update()
    found: CookingSession | None = await db.scalar(query.execution_options(populate_existing=True))
    return found


async def insert_if_absent(db: AsyncSession, values: dict[str, Any]) -> None:
    """A session created from an appliance's event: two bridges may race to create it."""
    await db.execute(_insert(db)(CookingSession).values(**values).on_conflict_do_nothing())


async def insert_event(db: AsyncSession, values: dict[str, Any]) -> bool:
    """Log an event; False when `(session_id, seq)` is already there (a redelivery)."""
    statement = _insert(db)(SessionEvent).values(**values).on_conflict_do_nothing(
        index_elements=["session_id", "seq"]).returning(SessionEvent.id)
    return (await db.execute(statement)).scalar_one_or_none() is not None


async def events_after(db: AsyncSession, session_id: uuid.UUID, appliance_id: uuid.UUID,
                       after_seq: int, limit: int) -> Sequence[SessionEvent]:
    """The session's events (sent by its appliance) numbered after `after_seq`, in order."""
    return (await db.scalars(
        select(SessionEvent)
        .where(SessionEvent.session_id == session_id, SessionEvent.appliance_id == appliance_id,
               SessionEvent.seq > after_seq)
        .order_by(SessionEvent.seq).limit(limit)
    )).all()


@dataclass(frozen=True)
class Filters:
    user_id: uuid.UUID
    appliance_id: uuid.UUID | None = None
    status: str | None = None
    recipe_id: uuid.UUID | None = None
    start: datetime | None = None
    end: datetime | None = None


def _where(f: Filters) -> list[ColumnElement[bool]]:
    where = [CookingSession.user_id == f.user_id]
    if f.appliance_id is not None:
        where.append(CookingSession.appliance_id == f.appliance_id)
    if f.status is not None:
        where.append(CookingSession.status == f.status)
    if f.recipe_id is not None:
        where.append(CookingSession.recipe_id == f.recipe_id)
    if f.start is not None:
        where.append(CookingSession.created_at >= f.start)
    if f.end is not None:
        where.append(CookingSession.created_at < f.end)
    return where


async def history(db: AsyncSession, f: Filters, after: tuple[datetime, uuid.UUID] | None,
                  limit: int) -> Sequence[CookingSession]:
    """Newest first, by (created_at, id)."""
    where = _where(f)
    if after is not None:
        moment, last_id = after
        where.append((CookingSession.created_at < moment)
                     | ((CookingSession.created_at == moment) & (CookingSession.id < last_id)))
    return (await db.scalars(
        select(CookingSession).where(*where)
        .order_by(CookingSession.created_at.desc(), CookingSession.id.desc()).limit(limit)
    )).all()


async def counts_by_status(db: AsyncSession, f: Filters) -> dict[str, int]:
    rows = await db.execute(select(CookingSession.status, func.count())
                            .where(*_where(f)).group_by(CookingSession.status))
    return {status: int(n) for status, n in rows.all()}


async def top_recipes(db: AsyncSession, f: Filters, limit: int) -> list[tuple[uuid.UUID, int, int]]:
    """(recipe id, sessions, completed sessions), most cooked first."""
    completed = func.count().filter(CookingSession.status == "completed")
    rows = await db.execute(
        select(CookingSession.recipe_id, func.count(), completed).where(*_where(f))
        .group_by(CookingSession.recipe_id)
        .order_by(func.count().desc(), CookingSession.recipe_id).limit(limit))
    return [(recipe_id, int(n), int(done)) for recipe_id, n, done in rows.all()]


async def by_month(db: AsyncSession, f: Filters) -> list[tuple[str, int, int]]:
    """(UTC month `YYYY-MM` of the start, sessions, seconds cooked), oldest month first."""
    moment = func.coalesce(CookingSession.started_at, CookingSession.created_at)
    month = (func.to_char(func.timezone("UTC", moment), "YYYY-MM") if _postgres(db)
             else func.strftime("%Y-%m", moment))
    rows = await db.execute(
        select(month.label("month"), func.count(),
               func.coalesce(func.sum(CookingSession.duration_s), 0))
        .where(*_where(f)).group_by("month").order_by("month"))
    return [(str(m), int(n), int(seconds)) for m, n, seconds in rows.all()]


async def live_quiet_since(db: AsyncSession, cutoff: datetime,
                           limit: int) -> Sequence[CookingSession]:
    """Live sessions with no event since `cutoff`, not yet announced stale (locked, skipping
    rows another sweep or the bridge holds)."""
    query = (select(CookingSession)
             .where(CookingSession.status.in_(sorted(LIVE)),
                    CookingSession.last_event_at < cutoff,
                    CookingSession.stale_announced_at.is_(None))
             .order_by(CookingSession.last_event_at).limit(limit))
    if _postgres(db):
        query = query.with_for_update(skip_locked=True)
    return (await db.scalars(query)).all()


async def live_on(db: AsyncSession, appliance_ids: Sequence[uuid.UUID]
                  ) -> list[tuple[uuid.UUID, uuid.UUID | None, uuid.UUID]]:
    """(session, user, appliance) of the live sessions on these appliances."""
    rows = await db.execute(
        select(CookingSession.id, CookingSession.user_id, CookingSession.appliance_id)
        .where(CookingSession.appliance_id.in_(list(appliance_ids)),
               CookingSession.status.in_(sorted(LIVE))))
    return [(sid, uid, aid) for sid, uid, aid in rows.all()]


async def announced_stale(db: AsyncSession, limit: int) -> Sequence[CookingSession]:
    query = (select(CookingSession)
             .where(CookingSession.status.in_(sorted(LIVE)),
                    CookingSession.stale_announced_at.is_not(None))
             .order_by(CookingSession.stale_announced_at).limit(limit))
    if _postgres(db):
        query = query.with_for_update(skip_locked=True)
    return (await db.scalars(query)).all()


async def erase_notes(db: AsyncSession, user_id: uuid.UUID) -> None:
    await db.execute(update(CookingSession).where(
        CookingSession.user_id == user_id, CookingSession.notes.is_not(None)).values(notes=None))
