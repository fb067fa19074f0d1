"""Device sync: what changed in an appliance's library since its cursor, each recipe version as a
signed bundle; the appliance's `up/sync` report; device pins of official recipes.

A bundle is the canonical JSON (keys sorted at every level, no whitespace, UTF-8, as orjson
writes it) of `{"content", "format", "recipe_id", "version"}`. `sha256` is the hex SHA-256 of
its bytes and `signature` the base64 Ed25519 signature of the same bytes (not of the hash) by
the key `key_id`; public keys are served by `GET /device/signing-keys`. The JSON reply carries
the bundle as a string: its UTF-8 encoding is exactly the signed bytes.

One page is one query over the appliance's library entries (ordered by change number, then
recipe id) joined to the recipe head and its current version; a version's content is read only
for entries that are live (in the library, not archived, readable by the owner).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, false, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.appliances import library
from epicura.appliances.models import Appliance
from epicura.appliances.sync_models import PINNED, ApplianceSync, LibraryEntry
from epicura.appliances.sync_schemas import BundleOut, SigningKeyOut, SigningKeySet, SyncPage
from epicura.bridge import handlers
from epicura.bridge.payloads import DeviceMessage
from epicura.kit import clock, signing
from epicura.kit.errors import NotFound
from epicura.kit.pagination import InvalidCursor, decode_cursor, encode_cursor
from epicura.kit.runtime import Runtime
from epicura.recipes import service as recipes
from epicura.recipes.models import ARCHIVED, PUBLIC, PUBLISHED, Recipe, RecipeVersion

BUNDLE_FORMAT = "epicura.recipe-bundle/1"
DEFAULT_LIMIT, MAX_LIMIT = 50, 100
SYNC_RATE = "120/minute"
_START = uuid.UUID(int=0)


@dataclass(frozen=True)
class Position:
    """After change `seq` of recipe `recipe_id`. `full`: a first sync still paging, which
    leaves tombstones out (the appliance has nothing to delete)."""

    seq: int
    recipe_id: uuid.UUID
    full: bool


def decode_position(cursor: str | None) -> Position:
    raw = decode_cursor(cursor)
    if raw is None:
        return Position(0, _START, True)
    try:
        seq, recipe_id, full = raw["s"], uuid.UUID(str(raw["r"])), bool(raw.get("f", False))
    except (KeyError, ValueError) as exc:
        raise InvalidCursor() from exc
    if type(seq) is not int or not 0 <= seq < 2**63:
        raise InvalidCursor()
    return Position(seq, recipe_id, full)


def encode_position(position: Position) -> str:
    raw: dict[str, Any] = {"s": position.seq, "r": position.recipe_id.hex}
    if position.full:
        raw["f"] = 1
    return encode_cursor(raw)


def bundle_of(recipe_id: uuid.UUID, version: int, content: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {"content": content, "format": BUNDLE_FORMAT, "recipe_id": str(recipe_id),
         "version": version},
        option=orjson.OPT_SORT_KEYS,
    )


def keystore(rt: Runtime) -> signing.KeyStore:
    """Private keys are sealed with a key derived from JWT_REFRESH_SECRET (domain-separated)."""
    store: signing.KeyStore | None = rt.extras.get("signing_keys")
    if store is None:
        store = rt.extras["signing_keys"] = signing.KeyStore(rt.refresh_key)
    return store


async def signer(rt: Runtime, session: AsyncSession) -> signing.Signer:
    """Development and tests make a key on first need; production refuses (503) until an
    operator runs `epicura keys generate`."""
    return await keystore(rt).signer(session, create_if_missing=not rt.settings.is_production)


async def published_keys(rt: Runtime, session: AsyncSession) -> SigningKeySet:
    store = keystore(rt)
    if not rt.settings.is_production and await store.active(session) is None:
        await store.signer(session, create_if_missing=True)
    return SigningKeySet(keys=[
        SigningKeyOut.model_validate(row, from_attributes=True) for row in await store.keys(session)
    ])


# --- the sync page ---------------------------------------------------------------------------

def _live(owner_id: uuid.UUID | None) -> Any:
    """In the library, not archived, and readable by the appliance's owner."""
    if owner_id is None:
        return false()
    readable = or_(Recipe.owner_id == owner_id,
                   and_(Recipe.status == PUBLISHED, Recipe.visibility == PUBLIC))
    return and_(library.IS_MEMBER, Recipe.status != ARCHIVED, readable)


async def _prepared(session: AsyncSession, appliance: Appliance) -> int:
    """Rebuild the library if its owner changed; the appliance's last change number."""
    row = (await session.execute(
        select(ApplianceSync.owner_id, ApplianceSync.last_seq)
        .where(ApplianceSync.appliance_id == appliance.id))).first()
    if row is None or row.owner_id != appliance.owner_id:
        # No nudge: the appliance is syncing now and gets the rebuilt library in this reply.
        await library.reconcile(session, appliance.id, appliance.owner_id)
        last = await session.scalar(
            select(ApplianceSync.last_seq).where(ApplianceSync.appliance_id == appliance.id))
        return int(last or 0)
    return int(row.last_seq)


async def changes(
    rt: Runtime, session: AsyncSession, appliance: Appliance, cursor: str | None, limit: int
) -> SyncPage:
    position = decode_position(cursor)
    await rt.limiter.hit(SYNC_RATE, "device-sync", str(appliance.id))
    key = await signer(rt, session)
    last_seq = await _prepared(session, appliance)
    if position.seq > last_seq:  # a cursor from before a restore (or another appliance)
        position = Position(0, _START, True)
    live = _live(appliance.owner_id)
    rows = (await session.execute(
        select(LibraryEntry.recipe_id, LibraryEntry.seq, live.label("live"),
               Recipe.current_version, RecipeVersion.content)
        .select_from(LibraryEntry)
        .join(Recipe, Recipe.id == LibraryEntry.recipe_id)
        .outerjoin(RecipeVersion, and_(RecipeVersion.recipe_id == Recipe.id,
                                       RecipeVersion.version == Recipe.current_version, live))
        .where(LibraryEntry.appliance_id == appliance.id,
               tuple_(LibraryEntry.seq, LibraryEntry.recipe_id)
               > tuple_(position.seq, position.recipe_id))
        .order_by(LibraryEntry.seq, LibraryEntry.recipe_id)
        .limit(limit + 1))).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    page = SyncPage(changes=[], deleted=[], cursor="", has_more=has_more)
    for row in rows:
        if row.live and row.content is not None:
            page.changes.append(_bundle(key, row.recipe_id, row.current_version, row.content))
        elif not position.full:
            page.deleted.append(row.recipe_id)
    if rows:
        position = Position(rows[-1].seq, rows[-1].recipe_id, position.full)
    page.cursor = encode_position(Position(position.seq, position.recipe_id,
                                           position.full and has_more))
    return page


def _bundle(
    key: signing.Signer, recipe_id: uuid.UUID, version: int, content: dict[str, Any]
) -> BundleOut:
    data = bundle_of(recipe_id, version, content)
    return BundleOut(recipe_id=recipe_id, version=version, bundle=data.decode(),
                     sha256=hashlib.sha256(data).hexdigest(), signature=key.sign(data),
                     key_id=key.key_id)


# --- pins and reports ------------------------------------------------------------------------

async def set_pin(session: AsyncSession, appliance: Appliance, recipe_id: uuid.UUID,
                  on: bool) -> None:
    """An appliance pins official, published, public recipes only (404 for anything else)."""
    if on:
        recipe = await recipes.readable(session, recipe_id, None)
        if not recipe.is_official:
            raise NotFound("No such official recipe")
        await library.add_to_library(session, appliance.id, recipe_id, PINNED)
    else:
        await library.remove_from_library(session, appliance.id, recipe_id, PINNED)


async def record_sync_report(
    session: AsyncSession, device_id: uuid.UUID, payload: dict[str, Any]
) -> None:
    """Keep the latest `up/sync` report `{cursor, installed: [{recipe_id, version, sha256}]}`
    (validated by the bridge) of the appliance."""
    installed = [
        {"recipe_id": str(item["recipe_id"]), "version": int(item["version"]),
         "sha256": str(item["sha256"])}
        for item in payload.get("installed", [])
    ]
    now = clock.utcnow()
    values = {"report_cursor": payload.get("cursor"), "report_installed": installed,
              "reported_at": now, "updated_at": now}
    statement = library.insert_for(session)(ApplianceSync).values(
        appliance_id=device_id, last_seq=0, owner_id=None, **values)
    await session.execute(
        statement.on_conflict_do_update(index_elements=["appliance_id"], set_=values))


async def latest_report(session: AsyncSession, appliance_id: uuid.UUID) -> dict[str, Any] | None:
    row = await session.get(ApplianceSync, appliance_id)
    if row is None or row.reported_at is None:
        return None
    return {"cursor": row.report_cursor, "installed": row.report_installed,
            "reported_at": row.reported_at}


async def _on_sync_message(ctx: handlers.HandlerContext, message: DeviceMessage) -> None:
    await record_sync_report(ctx.session, message.device_id, message.body)


handlers.register("sync", _on_sync_message)
