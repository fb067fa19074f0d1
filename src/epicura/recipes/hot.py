"""The hot read of a recipe by id: cache first, one query on a miss.

On PostgreSQL the miss is a single statement on the raw read pool that returns the head row and
the current version's JSON as text, which goes into the reply without being decoded. On SQLite
(the embedded default) the same is read through SQLAlchemy.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from sqlalchemy import select

from epicura.kit.etag import make_etag
from epicura.kit.runtime import Runtime
from epicura.recipes import render
from epicura.recipes.cache import HeadEntry, caches
from epicura.recipes.models import PUBLIC, PUBLISHED, Recipe, RecipeVersion

HEAD_SQL = """
SELECT r.id, r.owner_id, r.visibility, r.is_official, r.status, r.current_version,
       r.rating_avg, r.rating_count, r.cooked_count, r.favorite_count, r.created_at,
       r.updated_at, v.content::text AS content
  FROM recipes r
  JOIN recipe_versions v ON v.recipe_id = r.id AND v.version = r.current_version
 WHERE r.id = $1
"""


def head_etag(head: dict[str, Any]) -> str:
    return make_etag(
        head["id"],
        head["current_version"],
        head["updated_at"].isoformat(),
        head["rating_count"],
        head["cooked_count"],
        head["favorite_count"],
    )


def entry_from(rt: Runtime, head: dict[str, Any], content: bytes) -> HeadEntry:
    return HeadEntry(
        head=head,
        content=content,
        etag=head_etag(head),
        public=head["status"] == PUBLISHED and head["visibility"] == PUBLIC,
        owner_id=head["owner_id"],
        status=head["status"],
        expires_at=time.monotonic() + caches(rt).heads.ttl_s,
    )


async def _read_postgres(rt: Runtime, recipe_id: uuid.UUID) -> tuple[dict[str, Any], bytes] | None:
    pool = rt.extras["read_pool"]
    row = await pool.fetchrow(HEAD_SQL, recipe_id)
    if row is None:
        return None
    head = dict(row)
    content = head.pop("content").encode()
    head["id"], head["owner_id"] = uuid.UUID(str(head["id"])), uuid.UUID(str(head["owner_id"]))
    return head, content


async def _read_sqlite(rt: Runtime, recipe_id: uuid.UUID) -> tuple[dict[str, Any], bytes] | None:
    async with rt.db.sessions() as session:
        found = (
            await session.execute(
                select(Recipe, RecipeVersion.content)
                .join(
                    RecipeVersion,
                    (RecipeVersion.recipe_id == Recipe.id)
                    & (RecipeVersion.version == Recipe.current_version),
                )
                .where(Recipe.id == recipe_id)
            )
        ).first()
    if found is None:
        return None
    recipe, content = found
    return render.head_dict(recipe), orjson.dumps(content, default=str)


async def recipe_entry(rt: Runtime, recipe_id: uuid.UUID) -> HeadEntry | None:
    heads = caches(rt).heads
    entry = heads.get(recipe_id)
    if entry is not None:
        return entry
    token = heads.token(recipe_id)
    read = _read_postgres if "read_pool" in rt.extras else _read_sqlite
    found = await read(rt, recipe_id)
    if found is None:
        return None
    entry = entry_from(rt, *found)
    heads.store(recipe_id, token, entry)
    return entry
