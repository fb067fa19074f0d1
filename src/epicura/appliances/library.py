"""An appliance's local library: its owner's favourites, the recipes sent to it and the official
recipes it pins.

Every change to a library takes the appliance's next change number (`ApplianceSync.last_seq`,
locked until commit) and stamps the touched entries with it, so `GET /device/sync?cursor=`
returns exactly what changed since the cursor. The appliance is nudged (`down/sync`) through the
job outbox in the same transaction. Changes arrive from:

- the recipes module's change listener (favourite added or removed, new version, publish,
  archive), registered at import time below;
- `add_to_library` / `remove_from_library` (sessions module on `session.prepare`, device pins);
- a change of owner (pairing, unpairing): the library is rebuilt for the new owner, lazily at
  the next change or sync, or at once through `owner_changed`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy import Select, false, literal, or_, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.appliances.models import Appliance
from epicura.appliances.sync_models import REASONS, ApplianceSync, LibraryEntry
from epicura.bridge.outbox import enqueue_down
from epicura.kit import clock, jobs
from epicura.kit.db import UTCDateTime
from epicura.kit.runtime import Runtime
from epicura.recipes import service as recipes
from epicura.recipes.models import Favorite

log = structlog.get_logger("epicura.library")

FANOUT_JOB = "appliances.sync_fanout"
INLINE_NUDGES = 200  # more appliances than this: one job sends the nudges, in batches
FANOUT_BATCH = 500
_RUNTIME_KEY = "runtime"

IS_MEMBER = or_(LibraryEntry.favorite, LibraryEntry.sent, LibraryEntry.pinned)
_CURRENT_SEQ = (
    select(ApplianceSync.last_seq)
    .where(ApplianceSync.appliance_id == LibraryEntry.appliance_id)
    .scalar_subquery()
)


def install(rt: Runtime) -> None:
    """Let every session of this runtime find it (`session.info["runtime"]`): the recipes
    module's listeners get only a session, and nudges need the job enqueuer."""
    info = dict(rt.db.sessions.kw.get("info") or {})
    info[_RUNTIME_KEY] = rt
    rt.db.sessions.configure(info=info)


def insert_for(session: AsyncSession) -> Any:
    """The dialect's INSERT (both have ON CONFLICT)."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


# --- change numbers ------------------------------------------------------------------------

async def _lock_state(session: AsyncSession, appliance_id: uuid.UUID) -> ApplianceSync | None:
    found: ApplianceSync | None = await session.scalar(
        select(ApplianceSync).where(ApplianceSync.appliance_id == appliance_id)
        .with_for_update().execution_options(populate_existing=True))
    return found


async def _next_seq(session: AsyncSession, appliance_id: uuid.UUID) -> int:
    seq = await session.scalar(
        update(ApplianceSync).where(ApplianceSync.appliance_id == appliance_id)
        .values(last_seq=ApplianceSync.last_seq + 1, updated_at=clock.utcnow())
        .returning(ApplianceSync.last_seq))
    assert seq is not None, "the sync row exists once reconciled"
    return int(seq)


async def reconcile(
    session: AsyncSession, appliance_id: uuid.UUID, owner_id: uuid.UUID | None
) -> bool:
    """Lock the appliance's sync row (created if missing) and, if its library was built for
    another owner (or never built), rebuild it: every entry becomes a tombstone, then the new
    owner's favourites come in. True when it rebuilt."""
    state = await _lock_state(session, appliance_id)
    if state is None:
        await session.execute(
            insert_for(session)(ApplianceSync)
            .values(appliance_id=appliance_id, last_seq=0, owner_id=None,
                    updated_at=clock.utcnow())
            .on_conflict_do_nothing(index_elements=["appliance_id"]))
        state = await _lock_state(session, appliance_id)
        assert state is not None
        if owner_id is None:
            return False  # nothing was ever built: an empty library is already right
    elif state.owner_id == owner_id:
        return False
    seq = await _next_seq(session, appliance_id)
    await session.execute(
        update(LibraryEntry).where(LibraryEntry.appliance_id == appliance_id, IS_MEMBER)
        .values(favorite=False, sent=False, pinned=False, seq=seq, updated_at=clock.utcnow()))
    if owner_id is not None:
        await _add_favorites_of(session, appliance_id, owner_id, seq)
    await session.execute(
        update(ApplianceSync).where(ApplianceSync.appliance_id == appliance_id)
        .values(owner_id=owner_id))
    return True


async def _add_favorites_of(
    session: AsyncSession, appliance_id: uuid.UUID, owner_id: uuid.UUID, seq: int
) -> None:
    now = literal(clock.utcnow(), UTCDateTime())
    rows = select(
        literal(appliance_id, LibraryEntry.appliance_id.type), Favorite.recipe_id,
        true(), false(), false(), literal(seq, LibraryEntry.seq.type), now, now,
    ).where(Favorite.user_id == owner_id)
    statement = insert_for(session)(LibraryEntry).from_select(
        ["appliance_id", "recipe_id", "favorite", "sent", "pinned", "seq", "created_at",
         "updated_at"], rows)
    await session.execute(statement.on_conflict_do_update(
        index_elements=["appliance_id", "recipe_id"],
        set_={"favorite": True, "seq": statement.excluded.seq,
              "updated_at": statement.excluded.updated_at}))


async def _set_reason(
    session: AsyncSession, appliance_id: uuid.UUID, recipe_id: uuid.UUID, reason: str, on: bool
) -> None:
    """Give or take one reason for the recipe to be in the library, as a numbered change."""
    seq = await _next_seq(session, appliance_id)
    now = clock.utcnow()
    if on:
        values = {name: name == reason for name in REASONS}
        statement = insert_for(session)(LibraryEntry).values(
            appliance_id=appliance_id, recipe_id=recipe_id, seq=seq, created_at=now,
            updated_at=now, **values)
        await session.execute(statement.on_conflict_do_update(
            index_elements=["appliance_id", "recipe_id"],
            set_={reason: True, "seq": seq, "updated_at": now}))
    else:
        column = getattr(LibraryEntry, reason)
        await session.execute(
            update(LibraryEntry)
            .where(LibraryEntry.appliance_id == appliance_id, LibraryEntry.recipe_id == recipe_id,
                   column)
            .values({reason: False, "seq": seq, "updated_at": now}))


# --- what other modules call -----------------------------------------------------------------

async def add_to_library(
    session: AsyncSession, appliance_id: uuid.UUID, recipe_id: uuid.UUID, reason: str
) -> None:
    """Put a recipe in the appliance's library (`sent` on session.prepare, `pinned`) and nudge
    the appliance. The caller has checked that the owner may read the recipe."""
    await _change_reason(session, appliance_id, recipe_id, reason, on=True)


async def remove_from_library(
    session: AsyncSession, appliance_id: uuid.UUID, recipe_id: uuid.UUID, reason: str
) -> None:
    """Take one reason away; the recipe leaves the library (a tombstone) when none is left."""
    await _change_reason(session, appliance_id, recipe_id, reason, on=False)


async def _change_reason(
    session: AsyncSession, appliance_id: uuid.UUID, recipe_id: uuid.UUID, reason: str, on: bool
) -> None:
    if reason not in REASONS:
        raise ValueError(f"unknown library reason {reason!r}")
    owner_id = await session.scalar(select(Appliance.owner_id).where(Appliance.id == appliance_id))
    await reconcile(session, appliance_id, owner_id)
    await _set_reason(session, appliance_id, recipe_id, reason, on)
    nudge(session, [appliance_id], f"{reason}_{'added' if on else 'removed'}")


async def owner_changed(session: AsyncSession, appliance_id: uuid.UUID) -> None:
    """Pairing calls this after setting or clearing `owner_id`: the library follows the owner
    at once (sync would otherwise rebuild it on the appliance's next request)."""
    owner_id = await session.scalar(select(Appliance.owner_id).where(Appliance.id == appliance_id))
    if await reconcile(session, appliance_id, owner_id):
        nudge(session, [appliance_id], "owner_changed")


# --- reactions to recipe changes -------------------------------------------------------------

async def _on_recipe_change(session: AsyncSession, change: recipes.RecipeChange) -> None:
    if change.kind in ("favorite_added", "favorite_removed") and change.user_id is not None:
        await _favorite_changed(session, change.user_id, change.recipe_id,
                                change.kind == "favorite_added")
    else:
        await _recipe_changed(session, change.recipe_id, f"recipe_{change.kind}")


async def _favorite_changed(
    session: AsyncSession, user_id: uuid.UUID, recipe_id: uuid.UUID, on: bool
) -> None:
    owned = await session.scalars(
        select(Appliance.id).where(Appliance.owner_id == user_id).order_by(Appliance.id))
    appliance_ids = list(owned.all())
    for appliance_id in appliance_ids:  # in id order: the same lock order everywhere
        await reconcile(session, appliance_id, user_id)
        await _set_reason(session, appliance_id, recipe_id, "favorite", on)
    nudge(session, appliance_ids, "favorite_added" if on else "favorite_removed")


def _holders(recipe_id: uuid.UUID) -> Select[uuid.UUID]:
    return select(LibraryEntry.appliance_id).where(LibraryEntry.recipe_id == recipe_id, IS_MEMBER)


async def _recipe_changed(session: AsyncSession, recipe_id: uuid.UUID, reason: str) -> None:
    """A new version, publication or archive: a numbered change in every library holding the
    recipe (set-based, a few statements whatever the number of appliances)."""
    locked = await session.scalars(
        select(ApplianceSync.appliance_id)
        .where(ApplianceSync.appliance_id.in_(_holders(recipe_id)))
        .order_by(ApplianceSync.appliance_id).with_for_update())
    appliance_ids = list(locked.all())
    if not appliance_ids:
        return
    now = clock.utcnow()
    for start in range(0, len(appliance_ids), 5000):  # bounded statement parameters
        chunk = appliance_ids[start:start + 5000]
        await session.execute(
            update(ApplianceSync).where(ApplianceSync.appliance_id.in_(chunk))
            .values(last_seq=ApplianceSync.last_seq + 1, updated_at=now))
        await session.execute(
            update(LibraryEntry)
            .where(LibraryEntry.recipe_id == recipe_id, LibraryEntry.appliance_id.in_(chunk),
                   IS_MEMBER)
            .values(seq=_CURRENT_SEQ, updated_at=now))
    if len(appliance_ids) <= INLINE_NUDGES:
        nudge(session, appliance_ids, reason)
    else:
        runtime = session.info.get(_RUNTIME_KEY)
        if runtime is not None:
            runtime.jobs.enqueue(session, FANOUT_JOB, {"recipe_id": str(recipe_id),
                                                       "reason": reason})


recipes.on_change("device-sync", _on_recipe_change)


# --- nudges ----------------------------------------------------------------------------------

def nudge(session: AsyncSession, appliance_ids: Sequence[uuid.UUID], reason: str) -> None:
    """`down/sync {reason}` to each appliance once per transaction, sent after the commit."""
    runtime: Runtime | None = session.info.get(_RUNTIME_KEY)
    if runtime is None:
        if appliance_ids:  # a session from outside the service (a CLI): they sync later
            log.warning("sync_nudge_without_runtime", appliances=len(appliance_ids))
        return
    transaction = session.sync_session.get_transaction()
    nudged: tuple[object, set[uuid.UUID]] | None = session.info.get("sync_nudged")
    if nudged is None or nudged[0] is not transaction:
        nudged = session.info["sync_nudged"] = (transaction, set())
    for appliance_id in appliance_ids:
        if appliance_id not in nudged[1]:
            nudged[1].add(appliance_id)
            enqueue_down(runtime, session, appliance_id, "sync", {"reason": reason})


@jobs.handler(FANOUT_JOB)
async def fan_out_nudges(ctx: jobs.JobContext, payload: dict[str, Any]) -> None:
    """Nudge every appliance holding a recipe, `FANOUT_BATCH` per transaction (a popular
    official recipe may sit in many libraries)."""
    recipe_id = uuid.UUID(payload["recipe_id"])
    after = uuid.UUID(int=0)
    while True:
        async with ctx.db.transaction() as session:
            batch = list((await session.scalars(
                _holders(recipe_id).where(LibraryEntry.appliance_id > after)
                .order_by(LibraryEntry.appliance_id).limit(FANOUT_BATCH))).all())
            nudge(session, batch, str(payload["reason"]))
        if len(batch) < FANOUT_BATCH:
            return
        after = batch[-1]
