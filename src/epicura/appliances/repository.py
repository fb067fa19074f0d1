"""All SQL of the appliances module (but `reported.py`'s, which the bridge drives)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.appliances.models import (
    CMD_ACCEPTED,
    CMD_EXPIRED,
    CMD_SENT,
    PROVISIONED,
    Appliance,
    ApplianceAlert,
    ApplianceCommand,
    ClaimCode,
)


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# --- appliances ------------------------------------------------------------------------------

async def by_serial(session: AsyncSession, serial: str, *, lock: bool = False) -> Appliance | None:
    query = select(Appliance).where(Appliance.serial == serial)
    if lock:
        query = query.with_for_update()
    found: Appliance | None = await session.scalar(query)
    return found


async def by_id(session: AsyncSession, appliance_id: uuid.UUID, *,
                lock: bool = False) -> Appliance | None:
    query = select(Appliance).where(Appliance.id == appliance_id)
    if lock:
        query = query.with_for_update()
    found: Appliance | None = await session.scalar(query)
    return found


async def existing_serials(session: AsyncSession, serials: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(serials), 1000):  # bounded IN lists
        chunk = list(serials[start:start + 1000])
        found.update((await session.scalars(
            select(Appliance.serial).where(Appliance.serial.in_(chunk)))).all())
    return found


async def insert_new(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> dict[str, uuid.UUID]:
    """Insert the rows whose serial is not there yet (a concurrent import may have added some
    since we looked); returns serial → id of those inserted."""
    inserted: dict[str, uuid.UUID] = {}
    for start in range(0, len(rows), 1000):
        chunk = list(rows[start:start + 1000])
        statement = (_insert(session, Appliance).values(chunk)
                     .on_conflict_do_nothing(index_elements=["serial"])
                     .returning(Appliance.serial, Appliance.id))
        inserted.update({serial: id_ for serial, id_ in (await session.execute(statement)).all()})
    return inserted


async def owned(session: AsyncSession, owner_id: uuid.UUID,
                after: tuple[datetime, uuid.UUID] | None, limit: int) -> Sequence[Appliance]:
    """The owner's appliances in the order they were paired."""
    query = select(Appliance).where(Appliance.owner_id == owner_id,
                                    Appliance.lifecycle == PROVISIONED)
    if after is not None:
        paired, last_id = after
        query = query.where(or_(Appliance.paired_at > paired,
                                (Appliance.paired_at == paired) & (Appliance.id > last_id)))
    query = query.order_by(Appliance.paired_at, Appliance.id).limit(limit)
    return (await session.scalars(query)).all()


@dataclass(frozen=True)
class FleetFilter:
    q: str | None = None
    online_since: datetime | None = None  # online means marked online and seen since then
    online: bool | None = None
    firmware: str | None = None
    channel: str | None = None
    hw_revision: str | None = None
    lifecycle: str | None = None


def _online_clause(since: datetime) -> ColumnElement[bool]:
    return (Appliance.online.is_(True) & (Appliance.lifecycle == PROVISIONED)
            & (Appliance.last_seen_at >= since))


async def fleet(session: AsyncSession, where: FleetFilter,
                after: tuple[datetime, uuid.UUID] | None, limit: int) -> Sequence[Appliance]:
    query = select(Appliance)
    if where.q:
        pattern = _like(where.q.lower())
        query = query.where(or_(func.lower(Appliance.serial).like(pattern, escape="\\"),
                                func.lower(Appliance.name).like(pattern, escape="\\"),
                                func.lower(Appliance.model).like(pattern, escape="\\")))
    if where.online is not None and where.online_since is not None:
        clause = _online_clause(where.online_since)
        query = query.where(clause if where.online else ~clause | Appliance.last_seen_at.is_(None))
    for column, value in ((Appliance.firmware_version, where.firmware),
                          (Appliance.channel, where.channel),
                          (Appliance.hw_revision, where.hw_revision),
                          (Appliance.lifecycle, where.lifecycle)):
        if value is not None:
            query = query.where(column == value)
    if after is not None:
        created, last_id = after
        query = query.where(or_(Appliance.created_at < created,
                                (Appliance.created_at == created) & (Appliance.id < last_id)))
    query = query.order_by(Appliance.created_at.desc(), Appliance.id.desc()).limit(limit)
    return (await session.scalars(query)).all()


# --- claim codes -----------------------------------------------------------------------------

async def drop_open_codes(session: AsyncSession, appliance_id: uuid.UUID) -> None:
    """A new code supersedes the appliance's unused ones (and pairing ends them all)."""
    await session.execute(delete(ClaimCode).where(ClaimCode.appliance_id == appliance_id,
                                                  ClaimCode.used_at.is_(None)))


async def redeem_code(session: AsyncSession, code_hash: str, user_id: uuid.UUID,
                      now: datetime) -> uuid.UUID | None:
    """Mark the code used, if it is unused and unexpired; its appliance's id, else None. One
    statement, so under concurrent redemptions exactly one caller gets the row (the others wait
    for its lock and then find `used_at` set)."""
    result = await session.execute(
        update(ClaimCode)
        .where(ClaimCode.code_hash == code_hash, ClaimCode.used_at.is_(None),
               ClaimCode.expires_at > now)
        .values(used_at=now, used_by=user_id)
        .returning(ClaimCode.appliance_id)
    )
    found: uuid.UUID | None = result.scalar_one_or_none()
    return found


async def take_ownership(session: AsyncSession, appliance_id: uuid.UUID, user_id: uuid.UUID,
                         name: str | None, now: datetime) -> bool:
    """Pair a provisioned appliance that has no owner; False when it has one (or is gone)."""
    values: dict[str, Any] = {"owner_id": user_id, "paired_at": now, "updated_at": now}
    if name is not None:
        values["name"] = name
    result = await session.execute(
        update(Appliance)
        .where(Appliance.id == appliance_id, Appliance.owner_id.is_(None),
               Appliance.lifecycle == PROVISIONED)
        .values(**values)
        .returning(Appliance.id)
    )
    return result.scalar_one_or_none() is not None


async def prune_codes(session: AsyncSession, before: datetime) -> int:
    result = await session.execute(
        delete(ClaimCode).where(ClaimCode.expires_at < before).returning(ClaimCode.id))
    return len(result.all())


# --- commands --------------------------------------------------------------------------------

async def command(session: AsyncSession, appliance_id: uuid.UUID,
                  request_id: uuid.UUID) -> ApplianceCommand | None:
    found: ApplianceCommand | None = await session.scalar(
        select(ApplianceCommand).where(ApplianceCommand.request_id == request_id,
                                       ApplianceCommand.appliance_id == appliance_id))
    return found


async def record_result(session: AsyncSession, appliance_id: uuid.UUID, request_id: uuid.UUID,
                        status: str, reason: str | None, now: datetime) -> bool:
    """Move a command forward: `sent` (still within its expiry) → any result, `accepted` → a
    final one. A final status never changes, so a redelivered or late result is a no-op."""
    in_time = (ApplianceCommand.status == CMD_SENT) & (ApplianceCommand.expires_at > now)
    movable = in_time if status == CMD_ACCEPTED else in_time | (
        ApplianceCommand.status == CMD_ACCEPTED)
    result = await session.execute(
        update(ApplianceCommand)
        .where(ApplianceCommand.request_id == request_id,
               ApplianceCommand.appliance_id == appliance_id, movable)
        .values(status=status, reason=reason, updated_at=now)
        .returning(ApplianceCommand.request_id)
    )
    return result.scalar_one_or_none() is not None


async def expire_sent(session: AsyncSession, now: datetime) -> int:
    result = await session.execute(
        update(ApplianceCommand)
        .where(ApplianceCommand.status == CMD_SENT, ApplianceCommand.expires_at <= now)
        .values(status=CMD_EXPIRED, updated_at=now)
        .returning(ApplianceCommand.request_id)
    )
    return len(result.all())


# --- alerts ----------------------------------------------------------------------------------

async def alerts(session: AsyncSession, appliance_id: uuid.UUID, *, state: str | None,
                 since: datetime | None, after: tuple[datetime, uuid.UUID] | None,
                 limit: int) -> Sequence[ApplianceAlert]:
    query = select(ApplianceAlert).where(ApplianceAlert.appliance_id == appliance_id)
    if state is not None:
        query = query.where(ApplianceAlert.state == state)
    if since is not None:  # an owner sees nothing from before they paired
        query = query.where(ApplianceAlert.raised_at >= since)
    if after is not None:
        raised, last_id = after
        query = query.where(or_(ApplianceAlert.raised_at < raised,
                                (ApplianceAlert.raised_at == raised)
                                & (ApplianceAlert.id < last_id)))
    query = query.order_by(ApplianceAlert.raised_at.desc(), ApplianceAlert.id.desc()).limit(limit)
    return (await session.scalars(query)).all()
