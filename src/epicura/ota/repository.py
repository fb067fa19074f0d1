"""All SQL of the OTA module."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.ota.models import (
    OPEN_STATES,
    R_ACTIVE,
    R_COMPLETED,
    READY,
    FirmwareRelease,
    Rollout,
    RolloutDevice,
)


def _after(model: Any, after: tuple[datetime, uuid.UUID] | None) -> Any:
    if after is None:
        return True
    moment, last_id = after
    return or_(model.created_at < moment, (model.created_at == moment) & (model.id < last_id))


# --- releases  -----------------------------------------------------------------------------------

async def release(session: AsyncSession, release_id: uuid.UUID, *,
                  lock: bool = False) -> FirmwareRelease | None:
    return await session.get(FirmwareRelease, release_id, with_for_update=lock or None)


async def release_by_version(session: AsyncSession, version: str) -> FirmwareRelease | None:
    found: FirmwareRelease | None = await session.scalar(
        select(FirmwareRelease).where(FirmwareRelease.version == version))
    return found


async def releases(session: AsyncSession, after: tuple[datetime, uuid.UUID] | None,
                   limit: int, status: str | None = None) -> Sequence[FirmwareRelease]:
    query = select(FirmwareRelease).where(_after(FirmwareRelease, after))
    if status is not None:
        query = query.where(FirmwareRelease.status == status)
    query = query.order_by(FirmwareRelease.created_at.desc(), FirmwareRelease.id.desc())
    return (await session.scalars(query.limit(limit))).all()


# --- rollouts  -----------------------------------------------------------------------------------

async def rollout(session: AsyncSession, rollout_id: uuid.UUID, *,
                  lock: bool = False) -> Rollout | None:
    return await session.get(Rollout, rollout_id, with_for_update=lock or None,
                             populate_existing=lock or None)


async def rollouts(session: AsyncSession, after: tuple[datetime, uuid.UUID] | None, limit: int,
                   state: str | None = None) -> Sequence[Rollout]:
    query = select(Rollout).where(_after(Rollout, after))
    if state is not None:
        query = query.where(Rollout.state == state)
    query = query.order_by(Rollout.created_at.desc(), Rollout.id.desc())
    return (await session.scalars(query.limit(limit))).all()


async def rollout_ids_in_state(session: AsyncSession, state: str) -> Sequence[uuid.UUID]:
    return (await session.scalars(select(Rollout.id).where(Rollout.state == state)
                                  .order_by(Rollout.created_at))).all()


async def open_rollout_ids(session: AsyncSession,
                           release_id: uuid.UUID) -> Sequence[uuid.UUID]:
    return (await session.scalars(select(Rollout.id).where(
        Rollout.release_id == release_id, Rollout.state.in_(OPEN_STATES)))).all()


async def serving_rollouts(session: AsyncSession,
                           channel: str) -> Sequence[tuple[Rollout, FirmwareRelease]]:
    """Rollouts that may offer their release on `channel` (active or completed, release ready)."""
    rows = await session.execute(
        select(Rollout, FirmwareRelease)
        .join(FirmwareRelease, FirmwareRelease.id == Rollout.release_id)
        .where(Rollout.state.in_((R_ACTIVE, R_COMPLETED)), Rollout.channel == channel,
               FirmwareRelease.status == READY))
    return [(r, f) for r, f in rows.all()]


async def rolled_out_versions(session: AsyncSession, channel: str,
                              exclude_release: uuid.UUID) -> Sequence[tuple[str, list[str]]]:
    """(version, rollout hardware revisions) of the other releases a rollout on `channel` has
    started (whatever became of it since: halted, aborted, yanked)."""
    rows = await session.execute(
        select(FirmwareRelease.version, Rollout.hw_revisions)
        .join(FirmwareRelease, FirmwareRelease.id == Rollout.release_id)
        .where(Rollout.channel == channel, Rollout.started_at.is_not(None),
               Rollout.release_id != exclude_release))
    return [(version, list(revisions)) for version, revisions in rows.all()]


# --- devices in rollouts  ------------------------------------------------------------------------

async def device_rows(session: AsyncSession, appliance_id: uuid.UUID,
                      rollout_ids: Sequence[uuid.UUID]) -> Sequence[RolloutDevice]:
    if not rollout_ids:
        return []
    return (await session.scalars(select(RolloutDevice).where(
        RolloutDevice.appliance_id == appliance_id,
        RolloutDevice.rollout_id.in_(list(rollout_ids))))).all()


async def device_row(session: AsyncSession, rollout_id: uuid.UUID, appliance_id: uuid.UUID, *,
                     lock: bool = False) -> RolloutDevice | None:
    return await session.get(RolloutDevice, (rollout_id, appliance_id),
                             with_for_update=lock or None, populate_existing=lock or None)


async def add_members(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Devices entering a rollout's open stages; devices already in keep their row."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    for start in range(0, len(rows), 1000):
        await session.execute(insert(RolloutDevice).values(rows[start:start + 1000])
                              .on_conflict_do_nothing())


async def member_ids(session: AsyncSession, rollout_id: uuid.UUID) -> set[uuid.UUID]:
    return set((await session.scalars(select(RolloutDevice.appliance_id).where(
        RolloutDevice.rollout_id == rollout_id))).all())


async def counts(session: AsyncSession, rollout_id: uuid.UUID) -> dict[tuple[int, str], int]:
    """(stage, status) → devices."""
    rows = await session.execute(
        select(RolloutDevice.stage, RolloutDevice.status, func.count())
        .where(RolloutDevice.rollout_id == rollout_id)
        .group_by(RolloutDevice.stage, RolloutDevice.status))
    return {(stage, status): n for stage, status, n in rows.all()}


async def members_to_notify(session: AsyncSession, rollout_id: uuid.UUID,
                            last_stage: int) -> Sequence[RolloutDevice]:
    return (await session.scalars(select(RolloutDevice).where(
        RolloutDevice.rollout_id == rollout_id, RolloutDevice.stage <= last_stage,
        RolloutDevice.notified.is_(False)))).all()


async def notified_members(session: AsyncSession, rollout_id: uuid.UUID) -> Sequence[RolloutDevice]:
    return (await session.scalars(select(RolloutDevice).where(
        RolloutDevice.rollout_id == rollout_id, RolloutDevice.notified.is_(True)))).all()


async def mark_notified(session: AsyncSession, rollout_id: uuid.UUID,
                        appliance_ids: Sequence[uuid.UUID], notified: bool) -> None:
    if appliance_ids:
        await session.execute(update(RolloutDevice).where(
            RolloutDevice.rollout_id == rollout_id,
            RolloutDevice.appliance_id.in_(list(appliance_ids))).values(notified=notified))
