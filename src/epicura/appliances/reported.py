"""What an appliance's own messages change on its record: last seen, presence, reported state,
alerts. Called by the MQTT bridge and the HTTPS device routes inside the ingest transaction
(services flush, never commit); the caller publishes the live events once it has committed.

Presence is `online` from a birth message or any other message, `offline` from a last will
(`lost`), a clean shutdown (`shutdown`) or 90 s without any message (`inactive`, `mark_inactive`).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Uuid, any_, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.appliances.models import CHANNELS, PROVISIONED, Appliance, ApplianceAlert

INACTIVITY_TIMEOUT = timedelta(seconds=90)
# `last_seen_at` is rewritten at most this often per appliance: a row update per message would
# cost more than the telemetry it rides on, and presence needs far less precision.
LAST_SEEN_RESOLUTION = timedelta(seconds=10)
ENVELOPE = ("v", "id", "ts")


@dataclass(frozen=True)
class Seen:
    """A known (provisioned) appliance that sent something in this batch."""

    owner_id: uuid.UUID | None
    came_online: bool


async def touch_seen(session: AsyncSession, seen: Collection[uuid.UUID],
                     presence_ids: Collection[uuid.UUID], now: datetime) -> dict[uuid.UUID, Seen]:
    """Record that these appliances spoke at `now`; returns the provisioned ones among them (the
    others' messages are dropped). An appliance that was offline comes online, unless its own
    presence message in this batch says what it is (`presence_ids`)."""
    ids = sorted(seen)
    rows = (await session.execute(
        select(Appliance.id, Appliance.owner_id, Appliance.online, Appliance.last_seen_at)
        .where(_id_among(session, ids), Appliance.lifecycle == PROVISIONED)
    )).all()
    stale_before = now - LAST_SEEN_RESOLUTION
    touch: list[uuid.UUID] = []
    woken: list[uuid.UUID] = []
    known: dict[uuid.UUID, Seen] = {}
    for appliance_id, owner_id, online, last_seen_at in rows:
        wakes = not online and appliance_id not in presence_ids
        known[appliance_id] = Seen(owner_id, wakes)
        if wakes:
            woken.append(appliance_id)
        elif last_seen_at is None or last_seen_at < stale_before:
            touch.append(appliance_id)
    # Sorted ids: concurrent bridges lock the same rows in the same order (no deadlock).
    if touch:
        await session.execute(
            update(Appliance).where(_id_among(session, sorted(touch))).values(last_seen_at=now)
        )
    if woken:
        await session.execute(
            update(Appliance).where(_id_among(session, sorted(woken)))
            .values(last_seen_at=now, online=True, presence_reason=None, updated_at=now)
        )
    return known


def _id_among(session: AsyncSession, ids: list[uuid.UUID]) -> ColumnElement[bool]:
    """`id = ANY($1)` on PostgreSQL: one prepared statement whatever the batch's size (an
    `IN (…)` list is a new statement, planned again, for every length)."""
    if session.get_bind().dialect.name == "postgresql":
        return Appliance.id == any_(bindparam("ids", ids, type_=postgresql.ARRAY(Uuid())))
    return Appliance.id.in_(ids)


async def apply_presence(session: AsyncSession, appliance_id: uuid.UUID, body: Mapping[str, Any],
                         now: datetime) -> dict[str, Any] | None:
    """A birth, last-will or shutdown message; returns the presence event's data when something
    a watcher cares about changed (online, reason or boot)."""
    appliance = await session.get(Appliance, appliance_id)
    if appliance is None:
        return None
    online = body["state"] == "online"
    reason = None if online else str(body["reason"])
    boot_id = body.get("boot_id") if online else appliance.boot_id
    changed = (appliance.online, appliance.presence_reason, appliance.boot_id) != (
        online, reason, boot_id)
    appliance.online = online
    appliance.presence_reason = reason
    if online:
        appliance.firmware_version = body["firmware_version"]
        appliance.boot_id = boot_id
    appliance.last_seen_at = now
    appliance.updated_at = now
    await session.flush()
    if not changed:
        return None
    event: dict[str, Any] = {"appliance_id": str(appliance_id), "online": online,
                             "at": now.isoformat()}
    if reason is not None:
        event["reason"] = reason
    return event


async def apply_state(session: AsyncSession, appliance_id: uuid.UUID, body: Mapping[str, Any],
                      ts: int, now: datetime) -> dict[str, Any] | None:
    """The appliance's reported state document; an older report (by its own `ts`) than the one
    already applied is ignored. Returns the stored document, or None when ignored."""
    appliance = await session.get(Appliance, appliance_id)
    if appliance is None:
        return None
    current = appliance.state or {}
    if isinstance(current.get("ts"), int) and current["ts"] > ts:
        return None
    state = {key: value for key, value in body.items() if key not in ENVELOPE}
    state["ts"] = ts
    appliance.state = state
    appliance.state_updated_at = now
    appliance.firmware_version = body["firmware_version"]
    if body["channel"] in CHANNELS:
        appliance.channel = body["channel"]
    if "session_id" in body:
        session_id = body["session_id"]
        appliance.current_session_id = None if session_id is None else uuid.UUID(session_id)
    appliance.updated_at = now
    await session.flush()
    return state


@dataclass(frozen=True)
class AlertChange:
    owner_id: uuid.UUID | None
    data: dict[str, Any]


def _insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(ApplianceAlert)


async def apply_alert(session: AsyncSession, appliance_id: uuid.UUID, body: Mapping[str, Any],
                      now: datetime) -> AlertChange:
    """Raise or clear the appliance's alert `alert_id` (one row per appliance and alert id, so a
    redelivered or concurrent report never makes a second one)."""
    raised = body["state"] == "raised"
    session_id = body.get("session_id")
    values: dict[str, Any] = {
        "code": body["code"], "severity": body["severity"], "state": body["state"],
        "data": body.get("data"), "updated_at": now,
        "cleared_at": None if raised else now,
    }
    if session_id is not None:
        values["session_id"] = uuid.UUID(session_id)
    statement = _insert(session).values(
        appliance_id=appliance_id, alert_id=body["alert_id"], raised_at=now, **values)
    if raised:  # raised again after a clear: a new occurrence
        values["raised_at"] = now
    await session.execute(statement.on_conflict_do_update(
        index_elements=["appliance_id", "alert_id"], set_=values))
    owner_id = await session.scalar(select(Appliance.owner_id).where(Appliance.id == appliance_id))
    data = {"alert_id": body["alert_id"], "appliance_id": str(appliance_id), "code": body["code"],
            "severity": body["severity"], "state": body["state"]}
    return AlertChange(owner_id, data)


async def mark_inactive(session: AsyncSession, now: datetime) -> list[uuid.UUID]:
    """Appliances still marked online that sent nothing for 90 s go offline (`inactive`): a
    will can be lost with the broker, and a broker outage sends no wills at all."""
    result = await session.execute(
        update(Appliance)
        .where(Appliance.online.is_(True), Appliance.lifecycle == PROVISIONED,
               (Appliance.last_seen_at.is_(None))
               | (Appliance.last_seen_at < now - INACTIVITY_TIMEOUT))
        .values(online=False, presence_reason="inactive", updated_at=now)
        .returning(Appliance.id)
    )
    return sorted(result.scalars().all())
