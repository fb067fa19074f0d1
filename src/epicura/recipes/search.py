"""Listing and search: one SQL statement per page, portable between PostgreSQL and SQLite.

PostgreSQL: weighted full-text search (`websearch_to_tsquery`, never a syntax error) plus trigram
word similarity for misspellings, both index-backed. SQLite: FTS5 with the Porter stemmer plus the
same similarity as a registered function. Pages use keyset cursors on the sort key and the id, so
a page boundary does not move when other recipes are added or removed.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    case,
    cast,
    column,
    exists,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.kit.pagination import InvalidCursor, decode_cursor, encode_cursor
from epicura.kit.textsearch import fts5_match, query_words, ts_config
from epicura.recipes.models import ARCHIVED, PUBLIC, PUBLISHED, Favorite, Recipe

Sort = Literal["relevance", "newest", "popular", "title"]
TRIGRAM_THRESHOLD_PG = 0.5
TRIGRAM_THRESHOLD_SQLITE = 0.45

SUMMARY_COLUMNS = (
    Recipe.id,
    Recipe.title,
    Recipe.description,
    Recipe.tags,
    Recipe.difficulty,
    Recipe.total_minutes,
    Recipe.servings,
    Recipe.cover_image_id,
    Recipe.is_official,
    Recipe.current_version,
    Recipe.rating_avg,
    Recipe.updated_at,
)


@dataclass(frozen=True)
class Filters:
    q: str | None = None
    tags: tuple[str, ...] = ()
    category: str | None = None
    cuisine: str | None = None
    difficulty: str | None = None
    max_total_minutes: int | None = None
    official: bool | None = None
    mine: bool = False
    favorites: bool = False
    profile: str | None = None  # "model/hw_revision" of the appliance the recipe must fit
    firmware: str | None = None
    language: str = "en"
    sort: Sort | None = None
    limit: int = 20
    cursor: str | None = None

    @property
    def effective_sort(self) -> Sort:
        if self.sort is not None and (self.sort != "relevance" or self.has_query):
            return self.sort
        return "relevance" if self.has_query else "newest"

    @property
    def has_query(self) -> bool:
        return bool(self.q and query_words(self.q))


def _visible(viewer: uuid.UUID | None) -> ColumnElement[bool]:
    public = and_(Recipe.status == PUBLISHED, Recipe.visibility == PUBLIC)
    own = Recipe.owner_id == viewer if viewer is not None else false()
    return and_(Recipe.status != ARCHIVED, or_(public, own))


def _has_tags(dialect: str, tags: tuple[str, ...]) -> list[ColumnElement[bool]]:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import JSONB

        return [Recipe.tags.cast(JSONB).contains(list(tags))]
    each = func.json_each(Recipe.tags).table_valued("value")
    return [exists(select(literal(1)).select_from(each).where(each.c.value == tag)) for tag in tags]


def firmware_parts(version: str | None) -> list[int] | None:
    """`1.4.2` (or `1.4.2-beta`, `v1.4.2`) → [1, 4, 2]; None when it names no version (then
    nothing is refused for firmware: the appliance has not reported one yet)."""
    match = re.match(r"^v?(\d{1,9})\.(\d{1,9})\.(\d{1,9})", (version or "").strip())
    return [int(part) for part in match.groups()] if match else None


def _runs_on_firmware(dialect: str, firmware: str | None) -> list[ColumnElement[bool]]:
    """The recipe's `requires.min_firmware` (strictly MAJOR.MINOR.PATCH) is at most the
    appliance's firmware, compared as numbers."""
    parts = firmware_parts(firmware)
    if parts is None:
        return []
    if dialect == "postgresql":
        needed = func.string_to_array(Recipe.min_firmware, ".").cast(ARRAY(Integer))
        return [or_(Recipe.min_firmware.is_(None), needed <= cast(parts, ARRAY(Integer)))]
    key = ".".join(str(part).zfill(9) for part in parts)
    return [or_(Recipe.min_firmware.is_(None), func.version_key(Recipe.min_firmware) <= key)]


def _filters(f: Filters, viewer: uuid.UUID | None, dialect: str) -> list[ColumnElement[bool]]:
    if any("\x00" in text for text in (*f.tags, f.category or "", f.cuisine or "")):
        return [false()]  # nothing stored holds NUL, and PostgreSQL refuses it as a parameter
    where: list[ColumnElement[bool]] = [_visible(viewer)]
    if f.mine:
        where.append(Recipe.owner_id == viewer)
    if f.favorites:
        where.append(exists().where(Favorite.recipe_id == Recipe.id, Favorite.user_id == viewer))
    if f.tags:
        where.extend(_has_tags(dialect, f.tags))
    for field_column, value in (
        (Recipe.category, f.category),
        (Recipe.cuisine, f.cuisine),
        (Recipe.difficulty, f.difficulty),
    ):
        if value is not None:
            where.append(field_column == value.lower())
    if f.max_total_minutes is not None:
        where.append(Recipe.total_minutes <= f.max_total_minutes)
    if f.official is not None:
        where.append(Recipe.is_official == f.official)
    if f.profile is not None:
        where.extend(_has_profile(dialect, f.profile))
        where.extend(_runs_on_firmware(dialect, f.firmware))
    return where


def _has_profile(dialect: str, profile: str) -> list[ColumnElement[bool]]:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import JSONB

        return [Recipe.profiles.cast(JSONB).contains([profile])]
    each = func.json_each(Recipe.profiles).table_valued("value")
    return [exists(select(literal(1)).select_from(each).where(each.c.value == profile))]


def _relevance(f: Filters, dialect: str) -> tuple[ColumnElement[bool], ColumnElement[float]]:
    """(matches, rank) for the query text."""
    assert f.q is not None
    words = " ".join(query_words(f.q))
    if dialect == "postgresql":
        # The configuration name comes from a fixed table, never from the request.
        config: ColumnElement[Any] = literal_column(f"'{ts_config(f.language)}'::regconfig")
        text = f.q.replace("\x00", " ")  # PostgreSQL refuses NUL in any text parameter
        tsq = func.websearch_to_tsquery(config, text).op("||")(
            func.websearch_to_tsquery(literal_column("'simple'::regconfig"), text)
        )
        vector: ColumnElement[Any] = literal_column("recipes.search_vector")
        similarity = func.word_similarity(words, Recipe.search_text)
        matches = or_(
            literal_column_op(vector, "@@", tsq),
            literal(words).op("<%")(Recipe.search_text),
        )
        rank = func.ts_rank_cd(vector, tsq) + similarity * 0.5
        return matches, rank
    fts = table("recipes_fts", column("recipe_id"), column("recipes_fts"))
    fts_ids = select(fts.c.recipe_id).where(fts.c.recipes_fts.op("MATCH")(fts5_match(f.q)))
    in_fts = Recipe.id.in_(fts_ids)
    similarity = func.word_similarity(words, Recipe.search_text)
    matches = or_(in_fts, similarity >= TRIGRAM_THRESHOLD_SQLITE)
    rank = similarity + case((in_fts, 1.0), else_=0.0)
    return matches, rank


def literal_column_op(left: Any, op: str, right: Any) -> ColumnElement[bool]:
    expression: ColumnElement[bool] = left.op(op)(right)
    return expression


def _order(sort: Sort, rank: ColumnElement[float] | None) -> tuple[list[Any], list[Any]]:
    """(sort key expressions, their directions: True for descending)."""
    if sort == "relevance" and rank is not None:
        return [rank, Recipe.id], [True, True]
    if sort == "popular":
        return [Recipe.favorite_count + Recipe.cooked_count, Recipe.id], [True, True]
    if sort == "title":
        return [func.lower(Recipe.title), Recipe.id], [False, False]
    return [Recipe.created_at, Recipe.id], [True, True]


def _after(keys: list[Any], descending: list[bool], values: list[Any]) -> ColumnElement[bool]:
    """Rows strictly after the cursor position, in the sort's direction (keyset pagination)."""
    (k1, k2), (d1, _) = keys, descending
    v1, v2 = values

    def beyond(key: Any, value: Any) -> Any:
        return key < value if d1 else key > value

    return or_(beyond(k1, v1), and_(k1 == v1, beyond(k2, v2)))


def cursor_values(sort: Sort, raw: str | None) -> list[Any] | None:
    position = decode_cursor(raw)
    if position is None:
        return None
    try:
        if position["s"] != sort:
            raise InvalidCursor("The cursor belongs to another sort order")
        first, last_id = position["k"], uuid.UUID(position["i"])
        if sort == "newest":
            first = datetime.fromisoformat(first)
            if first.tzinfo is None:
                raise ValueError("naive")  # cursors are written with the offset
            first = first.astimezone(UTC)  # OverflowError at the ends of the calendar
        elif sort in ("relevance", "popular"):
            first = float(first) if sort == "relevance" else int(first)
            if sort == "popular" and not -(2**31) <= first < 2**31:
                raise ValueError("out of range")  # the counters are 4-byte integers
        else:
            first = str(first)
            if "\x00" in first:
                raise ValueError("NUL")
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as exc:
        raise InvalidCursor() from exc
    return [first, last_id]


def build_query(f: Filters, viewer: uuid.UUID | None, dialect: str) -> tuple[Select[Any], Sort]:
    sort = f.effective_sort
    where = _filters(f, viewer, dialect)
    rank: ColumnElement[float] | None = None
    if f.has_query:
        matches, rank = _relevance(f, dialect)
        where.append(matches)
    keys, descending = _order(sort, rank)
    values = cursor_values(sort, f.cursor)
    if values is not None:
        where.append(_after(keys, descending, values))
    order_by = [
        key.desc() if desc else key.asc() for key, desc in zip(keys, descending, strict=True)
    ]
    query: Any = (
        select(*SUMMARY_COLUMNS, keys[0].label("sort_key"))
        .where(*where)
        .order_by(*order_by)
        .limit(f.limit + 1)
    )
    return query, sort


async def page(
    session: AsyncSession, f: Filters, viewer: uuid.UUID | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of summaries (as plain dicts, image ids not yet turned into URLs)."""
    dialect = session.get_bind().dialect.name
    query, sort = build_query(f, viewer, dialect)
    rows = (await session.execute(query)).mappings().all()
    items = [dict(row) for row in rows[: f.limit]]
    next_cursor = None
    if len(rows) > f.limit:
        last = items[-1]
        key = last.pop("sort_key")
        next_cursor = encode_cursor(
            {
                "s": sort,
                "k": key.isoformat() if isinstance(key, datetime) else key,
                "i": str(last["id"]),
            }
        )
    for item in items:
        item.pop("sort_key", None)
    return items, next_cursor
