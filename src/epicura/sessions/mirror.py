"""The bridge side: `up/session` events mirrored into cooking sessions.

Idempotent by `(session_id, seq)`: an event is logged with `ON CONFLICT DO NOTHING`, and only a
newly logged one can change anything. The topic's device is the identity: an event naming a
session of another appliance is refused (and counted), never logged or applied.

A session the appliance starts on its own (origin `device`) is created from its first event,
which must name the recipe version (`recipe_id`, `recipe_version`), for the appliance's owner,
who must be able to read that recipe. Events of an appliance without an owner are dropped and
counted: nobody could ever see that session. An event that arrives before the one that creates
its session (two bridges split one appliance's stream) is logged and waits; the session takes
it up when it is created.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.appliances import service as appliances_service
from epicura.auth import service as auth_service
from epicura.bridge.handlers import HandlerContext, register
from epicura.bridge.payloads import DeviceMessage
from epicura.kit.errors import NotFound
from epicura.kit.metrics import registry
from epicura.kit.runtime import Runtime
from epicura.recipes import service as recipes_service
from epicura.sessions import live, machine, program, repository
from epicura.sessions.models import (
    COMPLETED,
    LIVE,
    ORIGIN_DEVICE,
    PLANNED,
    CookingSession,
    SessionEvent,
)
from epicura.telemetry import service as telemetry_service

log = structlog.get_logger("epicura.sessions.mirror")

rejected = Counter(
    "epicura_session_events_rejected_total",
    "Session events refused: another appliance's session, an appliance without owner, a "
    "first event that does not name a readable recipe version",
    ("reason",), registry=registry,
)
PENDING_LIMIT = 10_000


def _device_time(message: DeviceMessage, now: datetime) -> datetime:
    return min(datetime.fromtimestamp(message.ts / 1000, UTC), now)


async def on_session_event(ctx: HandlerContext, message: DeviceMessage) -> None:
    body, db, now = message.body, ctx.session, ctx.now
    session_id = uuid.UUID(body["session_id"])
    row = await repository.get(db, session_id, lock=True)
    created = False
    if row is None:
        owner_id = await appliances_service.owner_of(db, message.device_id)
        if owner_id is None:
            _refuse("no_owner", message)
            return
        if body.get("recipe_id") is None or body.get("recipe_version") is None:
            await _log(db, message, now)  # waits for the event that names the recipe
            return
        row = await _create(db, message, session_id, owner_id, now)
        if row is None:
            return
        created = True
    if row.appliance_id != message.device_id:
        _refuse("other_appliance", message)
        return
    logged = await _log(db, message, now)
    if not logged and not created:
        return  # a redelivery
    await apply_events(ctx.rt, db, row, [_event_of(message, now)] if logged else [], now,
                       ctx_emit(ctx), pending=created)


def ctx_emit(ctx: HandlerContext) -> live.Emit:
    def emit(channel: str, event_type: str, data: dict[str, Any], durable: bool) -> None:
        ctx.emit(channel, event_type, data, durable=durable)

    return emit


def _refuse(reason: str, message: DeviceMessage) -> None:
    rejected.labels(reason).inc()
    log.warning("session_event_refused", reason=reason, device_id=str(message.device_id),
                session_id=message.body.get("session_id"), message_id=str(message.id))


def _event_of(message: DeviceMessage, now: datetime) -> machine.Event:
    body = message.body
    return machine.Event(type=body["type"], seq=body["seq"], step_index=body.get("step_index"),
                         data=body.get("data"), device_time=_device_time(message, now))


async def _log(db: AsyncSession, message: DeviceMessage, now: datetime) -> bool:
    body = message.body
    return await repository.insert_event(db, {
        "session_id": uuid.UUID(body["session_id"]), "appliance_id": message.device_id,
        "seq": body["seq"], "type": body["type"], "step_index": body.get("step_index"),
        "data": body.get("data"), "device_ts": _device_time(message, now), "received_at": now,
    })


async def _create(db: AsyncSession, message: DeviceMessage, session_id: uuid.UUID,
                  owner_id: uuid.UUID, now: datetime) -> CookingSession | None:
    """The session of an appliance-started cook (None: refused, the recipe version is not one
    its owner can read)."""
    body = message.body
    recipe_id = uuid.UUID(body["recipe_id"])
    try:
        recipe = await recipes_service.readable(db, recipe_id, await auth_service.get_user(
            db, owner_id))
    except NotFound:
        _refuse("recipe_not_readable", message)
        return None
    version = body["recipe_version"]
    if await program.load(db, recipe.id, version) is None:
        _refuse("recipe_not_readable", message)
        return None
    await repository.insert_if_absent(db, {
        "id": session_id, "user_id": owner_id, "appliance_id": message.device_id,
        "recipe_id": recipe.id, "recipe_version": version, "servings": body.get("servings"),
        "origin": ORIGIN_DEVICE, "status": PLANNED, "step_elapsed_s": 0.0, "last_seq": -1,
        "created_at": now, "updated_at": now,
    })
    return await repository.get(db, session_id, lock=True)


async def apply_events(rt: Runtime, db: AsyncSession, row: CookingSession,
                       events: list[machine.Event], now: datetime, emit: live.Emit, *,
                       pending: bool = False) -> None:
    """Apply events to the session (locked) and announce what changed. `pending`: the session
    was just created; events of its appliance logged before it are taken up too."""
    plan = await program.load(db, row.recipe_id, row.recipe_version)
    was_stale, was_live = row.stale_announced_at is not None, row.status in LIVE
    changes = [(event, machine.apply(row, event, plan, now)) for event in events]
    if pending:
        waiting = await repository.events_after(db, row.id, row.appliance_id, row.last_seq,
                                                PENDING_LIMIT)
        changes += [(event, machine.apply(row, event, plan, now))
                    for event in map(_logged, waiting)]
    row.last_event_at = now
    row.stale_announced_at = None
    row.updated_at = now
    await db.flush()
    if row.status in LIVE and not was_live:
        await appliances_service.set_current_session(db, row.appliance_id, row.id, running=True)
    for _event, change in changes:
        if change.awaiting:
            live.awaiting_user(emit, row, change.prompt)
    final = [event for event, change in changes if change.finished]
    if final:
        await finish(rt, db, row, final[0].data, emit)
    elif any(change.updated for _event, change in changes) or was_stale:
        live.updated(emit, row, plan, now)


def _logged(event: SessionEvent) -> machine.Event:
    return machine.Event(type=event.type, seq=event.seq, step_index=event.step_index,
                         data=event.data, device_time=event.device_ts or event.received_at)


async def finish(rt: Runtime, db: AsyncSession, row: CookingSession,
                 device_data: dict[str, Any] | None, emit: live.Emit) -> None:
    """The session has just ended: summary, the recipe's cooked count, the appliance's current
    session, and `session.updated` (its final status) and `session.finished`."""
    row.summary = await summary_of(db, row, device_data)
    await db.flush()
    await appliances_service.set_current_session(db, row.appliance_id, row.id, running=False)
    if row.status == COMPLETED:
        await recipes_service.count_cooked(rt, db, row.recipe_id)
    live.updated(emit, row, None, row.ended_at or row.updated_at)  # the appliance's watchers too
    live.finished(emit, row)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


async def summary_of(db: AsyncSession, row: CookingSession,
                     device_data: dict[str, Any] | None) -> dict[str, Any]:
    """From the session's telemetry (one aggregate over its samples). Without any sample, the
    appliance's own figures in its final event, if it sent them."""
    if row.started_at is None:  # never started: nothing was cooked
        return {"duration_s": row.duration_s, "samples": 0, "peak_temp_c": None,
                "mean_temp_c": None, "energy_wh": None, "source": None}
    end = row.ended_at or row.started_at
    figures = await telemetry_service.session_figures(db, row.appliance_id, row.id,
                                                      row.started_at, end)
    summary: dict[str, Any] = {
        "duration_s": row.duration_s, "samples": figures.samples,
        "peak_temp_c": _rounded(figures.peak_temp_c),
        "mean_temp_c": _rounded(figures.mean_temp_c),
        "energy_wh": _rounded(figures.energy_wh), "source": "telemetry",
    }
    if figures.samples == 0:
        reported = device_data or {}
        summary["source"] = "appliance"
        for name in ("peak_temp_c", "mean_temp_c", "energy_wh"):
            value = reported.get(name)
            summary[name] = (round(float(value), 1) if isinstance(value, int | float)
                             and not isinstance(value, bool) else None)
    return summary


register("session", on_session_event)
