"""The hot reads: a recipe by id (cache first, one query on a miss) and anonymous list pages.

On PostgreSQL the by-id miss is a single statement on the raw read pool that returns the head row
and the current version's JSON as text, which goes into the reply without being decoded. On SQLite
(the embedded default) the same is read through SQLAlchemy.

Both the regular routes (router.py) and the routes in front of them (hot_routes.py) answer
through these functions, so the two paths cannot drift apart.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from sqlalchemy import select

from epicura.kit.errors import NotFound
from epicura.kit.etag import make_etag
from epicura.kit.runtime import Runtime
from epicura.recipes import render, search, search_pg
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
        head["rating_avg"],
        head["cooked_count"],
        head["favorite_count"],
    )


Reply = tuple[int, dict[str, str], bytes]  # status, headers, body
PUBLIC_CACHE = "public, max-age=60"
PRIVATE_CACHE = "private, no-cache"
LIST_CACHE = "public, max-age=15"


def entry_from(rt: Runtime, head: dict[str, Any], content: bytes) -> HeadEntry:
    return HeadEntry(
        head=head,
        content=content,
        etag=head_etag(head),
        public=head["status"] == PUBLISHED and head["visibility"] == PUBLIC,
        owner_id=head["owner_id"],
        status=head["status"],
        expires_at=time.monotonic() + caches(rt).heads.ttl_s,
        anonymous_body=render.recipe_body(head, content, None),
    )


def favorite_etag(etag: str, is_favorite: bool | None) -> str:
    # The favourite flag is per caller: fold it into the tag so caches never mix callers.
    return etag if is_favorite is None else f'{etag[:-1]}-{int(is_favorite)}"'


def recipe_reply(
    head: dict[str, Any],
    content: bytes,
    etag: str,
    is_favorite: bool | None,
    public: bool,
    if_none_match: str | None,
    anonymous_body: bytes | None = None,
) -> Reply:
    """(status, headers, body) of a recipe read: 304 when `If-None-Match` names the tag."""
    etag = favorite_etag(etag, is_favorite)
    headers = {
        "etag": etag,
        "cache-control": PUBLIC_CACHE if public and is_favorite is None else PRIVATE_CACHE,
    }
    if not_modified(if_none_match, etag):
        return 304, headers, b""
    if is_favorite is None and anonymous_body is not None:
        return 200, headers, anonymous_body
    return 200, headers, render.recipe_body(head, content, is_favorite)


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """`kit.etag.not_modified` on the header's value, for callers that hold no Request."""
    if if_none_match is None:
        return False
    listed = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",") if tag.strip()}
    return if_none_match.strip() == "*" or etag in listed


def anonymous_reply(entry: HeadEntry, if_none_match: str | None) -> Reply:
    return recipe_reply(entry.head, entry.content, entry.etag, None, True, if_none_match,
                        entry.anonymous_body)


async def anonymous_read(
    rt: Runtime, recipe_id: uuid.UUID, if_none_match: str | None
) -> Reply:
    """A recipe as an anonymous caller sees it: published and public, or 404."""
    entry = await recipe_entry(rt, recipe_id)
    if entry is None or not entry.public:
        raise NotFound("No such recipe")
    return anonymous_reply(entry, if_none_match)


def language_of(accept_language: str | None) -> str:
    """The first language the caller accepts (it picks the search's stemming)."""
    accept = "en" if accept_language is None else accept_language
    return accept.split(",")[0].split(";")[0].strip()[:8] or "en"


def page_key(language: str, query: str) -> str:
    return f"{language}?{query}"


async def anonymous_page(rt: Runtime, page_key: str, filters: search.Filters) -> bytes:
    """A page of the list as an anonymous caller sees it, from the page cache or the database
    (and then kept, unless a recipe changed while it was being read)."""
    pages = caches(rt).pages
    cached = pages.get(page_key)
    if cached is not None:
        return cached
    generation = pages.generation
    body = await page_body(rt, filters, None)
    pages.store(page_key, generation, body)
    return body


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


async def page_body(rt: Runtime, f: search.Filters, viewer: uuid.UUID | None) -> bytes:
    """One page of summaries as the reply's bytes."""
    image_url = render.image_url_of(rt)
    pool = rt.extras.get("read_pool")
    if pool is not None:
        rows, sort = await search_pg.fetch_page(pool, f, viewer)
        return render.summaries_from_json(rows, f.limit, sort, image_url)
    async with rt.db.sessions() as session:
        items, next_cursor = await search.page(session, f, viewer)
    return render.summaries_body(items, next_cursor, image_url)
