"""Listing and search on PostgreSQL: one hand-written statement on the raw read pool.

`search.build_query` (SQLAlchemy) is the reference and serves SQLite. Building and compiling it
costs 0.4–1 ms of Python per request, more than the query itself, so on PostgreSQL the same
statement is written here as text with numbered parameters, and PostgreSQL renders each row's JSON:
a page is joined from 21 strings instead of being built from 21 dicts.
tests/recipes/test_listing_sql.py checks that both give the same pages.

Plans (EXPLAIN ANALYZE on 10,000 recipes; indexes in migration 0003):
- Anonymous callers see published public recipes only. That predicate is written as constants,
  so even a cached generic plan can use the partial indexes on each sort key: the first page reads
  21 index entries instead of sorting every row.
- A signed-in caller also sees their own unlisted recipes. `public OR own` cannot follow one
  index order, so the statement is a UNION ALL of the public branch and the caller's unlisted
  branch, each sorted and limited, merged and limited again.
"""

# ruff: noqa: S608 - statements are joined from fixed fragments; every value from the request is a
# numbered parameter, and the text search configuration name comes from a fixed table.

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from epicura.kit.textsearch import query_words, ts_config
from epicura.recipes.search import Filters, Sort, cursor_values, firmware_parts

PUBLIC = "r.status = 'published' AND r.visibility = 'public'"
# The caller's recipes that the public branch does not hold (drafts, private ones).
OWN_UNLISTED = (
    "r.status <> 'archived' AND NOT (r.status = 'published' AND r.visibility = 'public')"
)

# What a page row carries out of the sorted, limited part of the statement.
COLUMNS = (
    "r.id, r.title, r.description, r.tags, r.difficulty, r.total_minutes, r.servings, "
    "r.is_official, r.current_version, r.rating_avg, r.updated_at, r.cover_image_id"
)
# The summary as `render.summaries_body` writes it (less `image_url`, added in Python): the same
# keys in the same order, timestamps and whole-number floats as orjson prints them. Built from
# the page's rows only, after the LIMIT: a search sorts every match, and rendering each of those
# rows before the sort cost more than the search itself.
UPDATED_AT = (
    "to_char(p.updated_at AT TIME ZONE 'UTC', CASE WHEN extract(microseconds FROM p.updated_at)"
    "::int % 1000000 = 0 THEN 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"' "
    "ELSE 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"' END)"
)
RATING_AVG = (
    "CASE WHEN p.rating_avg = trunc(p.rating_avg) AND abs(p.rating_avg) < 1e15 "
    "THEN to_json(p.rating_avg::numeric(18, 1)) ELSE to_json(p.rating_avg) END"
)
ITEM_JSON = (
    "(SELECT row_to_json(j) FROM (SELECT p.id, p.title, p.description, p.tags, p.difficulty, "
    "p.total_minutes, p.servings, p.is_official, p.current_version, "
    f"{RATING_AVG} AS rating_avg, {UPDATED_AT} AS updated_at) j)::text"
)


class Params:
    """Numbered parameters, each with its type written at its place."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any, pg_type: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{pg_type}"


def _filters(f: Filters, viewer: uuid.UUID | None, p: Params) -> list[str]:
    """`search._filters` without the visibility part (each branch adds its own)."""
    if any("\x00" in text for text in (*f.tags, f.category or "", f.cuisine or "")):
        return ["false"]  # nothing stored holds NUL, and PostgreSQL refuses it as a parameter
    where: list[str] = []
    if f.mine:
        where.append(f"r.owner_id = {p(viewer, 'uuid')}")
    if f.favorites:
        where.append(
            "EXISTS (SELECT 1 FROM recipe_favorites fav WHERE fav.recipe_id = r.id "
            f"AND fav.user_id = {p(viewer, 'uuid')})"
        )
    if f.tags:
        where.append(f"r.tags @> {p(orjson.dumps(list(f.tags)).decode(), 'jsonb')}")
    for name, value in (("category", f.category), ("cuisine", f.cuisine),
                        ("difficulty", f.difficulty)):
        if value is not None:
            where.append(f"r.{name} = {p(value.lower(), 'text')}")
    if f.max_total_minutes is not None:
        where.append(f"r.total_minutes <= {p(f.max_total_minutes, 'int4')}")
    if f.official is not None:
        where.append(f"r.is_official = {p(f.official, 'bool')}")
    if f.profile is not None:
        where.append(f"r.profiles @> {p(orjson.dumps([f.profile]).decode(), 'jsonb')}")
        firmware = firmware_parts(f.firmware)
        if firmware is not None:  # as search._runs_on_firmware
            where.append(f"(r.min_firmware IS NULL OR string_to_array(r.min_firmware, '.')::int[]"
                         f" <= {p(firmware, 'int[]')})")
    return where


def _relevance(f: Filters, p: Params) -> tuple[str, str]:
    """(matches, rank) as `search._relevance` writes them for PostgreSQL. Both conditions are
    index-backed: GIN on the tsvector, GIN trigram for `<%` (word similarity)."""
    assert f.q is not None
    words = p(" ".join(query_words(f.q)), "text")
    text = p(f.q.replace("\x00", " "), "text")  # PostgreSQL refuses NUL in any text parameter
    # The configuration name comes from a fixed table, never from the request.
    tsq = (f"(websearch_to_tsquery('{ts_config(f.language)}'::regconfig, {text}) "
           f"|| websearch_to_tsquery('simple'::regconfig, {text}))")
    matches = f"(r.search_vector @@ {tsq} OR {words} <% r.search_text)"
    # float8 as in the reference (a float parameter there): a plain 0.5 would make the sum real.
    similarity = f"word_similarity({words}, r.search_text) * 0.5::float8"
    rank = f"(ts_rank_cd(r.search_vector, {tsq}) + {similarity})"
    return matches, rank


def _sort_key(sort: Sort, rank: str | None) -> tuple[str, bool, str]:
    """(key expression, descending, parameter type of a cursor's key)."""
    if sort == "relevance" and rank is not None:
        return rank, True, "float8"
    if sort == "popular":
        return "(r.favorite_count + r.cooked_count)", True, "int4"
    if sort == "title":
        return "lower(r.title)", False, "text"
    return "r.created_at", True, "timestamptz"


def listing_sql(f: Filters, viewer: uuid.UUID | None) -> tuple[str, list[Any], Sort]:
    """The statement of one page (`limit + 1` rows of item JSON, cover image id, sort key, id)."""
    sort = f.effective_sort
    p = Params()
    where = _filters(f, viewer, p)
    rank = None
    if f.has_query:
        matches, rank = _relevance(f, p)
        where.append(matches)
    key, descending, key_type = _sort_key(sort, rank)
    direction, beyond = ("DESC", "<") if descending else ("ASC", ">")
    position = cursor_values(sort, f.cursor)
    if position is not None:
        # A row comparison: the same rows as `search._after`, and an index condition.
        after = f"({p(position[0], key_type)}, {p(position[1], 'uuid')})"
        where.append(f"({key}, r.id) {beyond} {after}")
    limit = p(f.limit + 1, "int4")
    select = f"SELECT {COLUMNS}, {key} AS sort_key FROM recipes r"
    tail = f"ORDER BY {key} {direction}, r.id {direction} LIMIT {limit}"
    page = f"{select} WHERE {' AND '.join([PUBLIC, *where])} {tail}"
    if viewer is not None:
        own = f"r.owner_id = {p(viewer, 'uuid')}"
        unlisted = f"{select} WHERE {' AND '.join([OWN_UNLISTED, own, *where])} {tail}"
        page = (f"SELECT * FROM (({page}) UNION ALL ({unlisted})) u "
                f"ORDER BY u.sort_key {direction}, u.id {direction} LIMIT {limit}")
    sql = (f"SELECT {ITEM_JSON} AS item, p.cover_image_id, p.sort_key, p.id FROM ({page}) p "
           f"ORDER BY p.sort_key {direction}, p.id {direction}")
    return sql, p.values, sort


async def fetch_page(
    pool: asyncpg.Pool[Any], f: Filters, viewer: uuid.UUID | None
) -> tuple[Sequence[Any], Sort]:
    """The rows of one page. The read pool's sessions carry the same word-similarity threshold
    for `<%` as the app's engine (kit/readpool.py), so typo tolerance is the same on both paths."""
    sql, args, sort = listing_sql(f, viewer)
    return await pool.fetch(sql, *args), sort
