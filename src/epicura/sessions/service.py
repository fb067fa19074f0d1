"""The rules of the cooking-sessions module that the routers (and the WebSocket gateway) call.

Ownership is checked in one place (`get_owned_or_404`): another user's session is a 404. A
session is shown `stale` while it is live and neither an event of it nor anything else from its
appliance (telemetry included) has arrived for 90 s; it clears when the appliance speaks.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from epicura.appliances import service as appliances_service
from epicura.auth.models import User
from epicura.kit import clock
from epicura.kit.errors import Conflict, NotFound
from epicura.kit.ids import uuid7
from epicura.kit.runtime import Runtime
from epicura.recipes import service as recipes_service
from epicura.sessions import live, machine, mirror, program, repository
from epicura.sessions.models import (
    ABORTED,
    LIVE,
    ORIGIN_APP,
    PLANNED,
    STALE,
    TERMINAL,
    CookingSession,
    SessionEvent,
)
from epicura.sessions.program import Program
from epicura.sessions.schemas import (
    MonthCount,
    RecipeCount,
    RecipeRef,
    SessionCreate,
    SessionOut,
    SessionStats,
    SessionUpdate,
)

STALE_AFTER = timedelta(seconds=90)
PREPARE, PAUSE, ABORT = "session.prepare", "session.pause", "session.abort"


class SessionNotFound(NotFound):
    title = "No such cooking session"


class SessionFinished(Conflict):
    code = "session_finished"
    title = "The session has ended"


class SessionNotStarted(Conflict):
    code = "session_not_started"
    title = "The session has not started on the appliance yet"


class SessionNotFinished(Conflict):
    code = "session_not_finished"
    title = "A session can be rated once it has ended"


async def is_owner(db: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID) -> bool:
    """Whether the session exists and belongs to the user (the WebSocket gateway asks this before
    a `session:{id}` subscription)."""
    return await repository.owner_of(db, session_id) == user_id


async def live_on_appliances(db: AsyncSession, appliance_ids: Sequence[uuid.UUID]
                             ) -> list[tuple[uuid.UUID, uuid.UUID | None, uuid.UUID]]:
    """(session id, user id, appliance id) of the sessions running, paused or awaiting the cook
    on these appliances (the notifications module asks when appliances go offline)."""
    if not appliance_ids:
        return []
    return await repository.live_on(db, appliance_ids)


async def get_owned_or_404(db: AsyncSession, user: User, session_id: uuid.UUID, *,
                           lock: bool = False) -> CookingSession:
    row = await repository.get(db, session_id, lock=lock)
    if row is None or row.user_id != user.id:
        raise SessionNotFound()
    return row


async def forget_notes(db: AsyncSession, user_id: uuid.UUID) -> None:
    """An erased account: its notes go; its sessions stay (anonymous statistics)."""
    await repository.erase_notes(db, user_id)


def install(rt: Runtime) -> None:
    hooks = rt.extras.setdefault("account_deleted_hooks", [])
    if forget_notes not in hooks:
        hooks.append(forget_notes)


# --- reading ---------------------------------------------------------------------------------

Activity = tuple[datetime | None, uuid.UUID | None]  # the appliance's last seen, current session


def last_heard(row: CookingSession, appliance: Activity) -> datetime | None:
    """The last sign of life of a session: its own last event, or anything from its appliance
    while the appliance runs it (an appliance that moved on to another session, its final
    event lost, says nothing more of this one)."""
    seen, current = appliance
    times = (row.last_event_at, seen if current == row.id else None)
    return max((t for t in times if t is not None), default=None)


def shown_status(row: CookingSession, appliance: Activity, now: datetime) -> str:
    if row.status not in LIVE:
        return row.status
    heard = last_heard(row, appliance)
    return STALE if heard is None or heard < now - STALE_AFTER else row.status


@dataclass
class Viewer:
    """Shapes sessions for replies, looking up each recipe version and appliance once."""

    db: AsyncSession
    now: datetime

    def __post_init__(self) -> None:
        self._seen: dict[uuid.UUID, Activity] = {}

    async def view(self, row: CookingSession) -> SessionOut:
        plan = await program.load(self.db, row.recipe_id, row.recipe_version)
        if row.appliance_id not in self._seen:
            self._seen[row.appliance_id] = await appliances_service.activity(
                self.db, row.appliance_id)
        return view(row, plan, self._seen[row.appliance_id], self.now)


def view(row: CookingSession, plan: Program | None, appliance: Activity,
         now: datetime) -> SessionOut:
    return SessionOut(
        id=row.id, appliance_id=row.appliance_id,
        recipe=RecipeRef(id=row.recipe_id, version=row.recipe_version,
                         title=plan.title if plan else None,
                         step_count=len(plan.steps) if plan else None),
        servings=row.servings, origin=row.origin,
        status=shown_status(row, appliance, now),
        step_index=row.step_index, step_title=row.step_title,
        step_remaining_s=machine.step_remaining_s(row, now),
        remaining_s=machine.remaining_s(row, plan, now),
        started_at=row.started_at, ended_at=row.ended_at, duration_s=row.duration_s,
        last_event_at=row.last_event_at, summary=row.summary, rating=row.rating, notes=row.notes,
        created_at=row.created_at, updated_at=row.updated_at,
    )


async def history(db: AsyncSession, filters: repository.Filters,
                  after: tuple[datetime, uuid.UUID] | None,
                  limit: int) -> Sequence[CookingSession]:
    return await repository.history(db, filters, after, limit)


async def events(db: AsyncSession, row: CookingSession, after_seq: int,
                 limit: int) -> Sequence[SessionEvent]:
    return await repository.events_after(db, row.id, row.appliance_id, after_seq, limit)


async def stats(db: AsyncSession, filters: repository.Filters, top: int) -> SessionStats:
    months = await repository.by_month(db, filters)
    recipes = []
    for recipe_id, sessions, completed in await repository.top_recipes(db, filters, top):
        title = await recipes_service.current_title(db, recipe_id)
        recipes.append(RecipeCount(recipe_id=recipe_id, title=title, sessions=sessions,
                                   completed=completed))
    return SessionStats(
        by_status=await repository.counts_by_status(db, filters), top_recipes=recipes,
        total_cooking_s=sum(seconds for _m, _n, seconds in months),
        by_month=[MonthCount(month=m, sessions=n, cooking_s=s) for m, n, s in months],
    )


# --- changing --------------------------------------------------------------------------------

async def create(rt: Runtime, db: AsyncSession, user: User, body: SessionCreate,
                 ip: str | None) -> CookingSession:
    """A planned session: `session.prepare` goes to the appliance (which must be the caller's
    and online), pinned to a recipe version the caller may read, and the recipe joins the
    appliance's library."""
    appliance = await appliances_service.get_owned_or_404(db, user, body.appliance_id, lock=True)
    session_id = uuid7()
    args = body.model_dump(mode="json", exclude={"appliance_id"}, exclude_none=True)
    command = await appliances_service.send_command(
        rt, db, user, appliance, PREPARE, {**args, "session_id": str(session_id)}, ip)
    version = int(command.args["recipe_version"])
    await appliances_service.send_to_library(db, appliance.id, body.recipe_id)
    content = await recipes_service.pinned_content(db, body.recipe_id, version)
    servings = body.servings or (content or {}).get("servings")
    now = clock.utcnow()
    row = CookingSession(
        id=session_id, user_id=user.id, appliance_id=appliance.id, recipe_id=body.recipe_id,
        recipe_version=version, servings=servings, origin=ORIGIN_APP, status=PLANNED,
        step_elapsed_s=0.0, last_seq=-1, created_at=now, updated_at=now)
    db.add(row)
    await db.flush()
    announcer = live.Announcer(db)
    live.updated(announcer, row, await program.load(db, row.recipe_id, version), now)
    announcer.after_commit(rt)
    return row


async def update(rt: Runtime, db: AsyncSession, row: CookingSession,
                 body: SessionUpdate) -> CookingSession:
    given = body.model_fields_set
    if "rating" in given and body.rating != row.rating:
        if row.status not in TERMINAL:
            raise SessionNotFinished()
        await recipes_service.change_rating(rt, db, row.recipe_id, row.rating, body.rating)
        row.rating = body.rating
    if "notes" in given:
        row.notes = body.notes
    row.updated_at = clock.utcnow()
    await db.flush()
    return row


async def command(rt: Runtime, db: AsyncSession, user: User, session_id: uuid.UUID, name: str,
                  ip: str | None) -> uuid.UUID:
    """`session.pause` or `session.abort` to the session's appliance (the appliance acts and
    reports). Aborting a session the appliance has not started ends it at once. Locks the
    appliance, then the session: the order in which the bridge's ingest takes them."""
    found = await get_owned_or_404(db, user, session_id)
    appliance = await appliances_service.get_owned_or_404(db, user, found.appliance_id,
                                                          lock=True)
    row = await get_owned_or_404(db, user, session_id, lock=True)
    if row.status in TERMINAL:
        raise SessionFinished()
    if name == PAUSE and row.status == PLANNED:
        raise SessionNotStarted()
    sent = await appliances_service.send_command(rt, db, user, appliance, name,
                                                 {"session_id": str(row.id)}, ip)
    if name == ABORT and row.status == PLANNED:
        now = clock.utcnow()
        row.status, row.ended_at, row.duration_s, row.updated_at = ABORTED, now, 0, now
        announcer = live.Announcer(db)
        await mirror.finish(rt, db, row, None, announcer)
        announcer.after_commit(rt)
    return sent.request_id


def telemetry_span(row: CookingSession, now: datetime) -> tuple[datetime, datetime]:
    start = row.started_at or row.created_at
    end = max(row.ended_at or now, start + timedelta(seconds=1))
    return start, end
