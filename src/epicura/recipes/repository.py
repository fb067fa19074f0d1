"""All SQL of the recipes module except search and listing (`search.py`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.kit.textsearch import fold
from epicura.recipes.models import (
    PUBLIC,
    PUBLISHED,
    CapabilityProfileRow,
    Favorite,
    Recipe,
    RecipeImage,
    RecipeVersion,
)


async def profiles(session: AsyncSession) -> Sequence[CapabilityProfileRow]:
    query = select(CapabilityProfileRow).order_by(
        CapabilityProfileRow.model, CapabilityProfileRow.hw_revision
    )
    return (await session.scalars(query)).all()


async def recipe(
    session: AsyncSession, recipe_id: uuid.UUID, *, lock: bool = False
) -> Recipe | None:
    query = select(Recipe).where(Recipe.id == recipe_id)
    if lock:
        query = query.with_for_update()
    found: Recipe | None = await session.scalar(query)
    return found


async def version(session: AsyncSession, recipe_id: uuid.UUID, number: int) -> RecipeVersion | None:
    return await session.get(RecipeVersion, (recipe_id, number))


async def versions(session: AsyncSession, recipe_id: uuid.UUID) -> Sequence[RecipeVersion]:
    query = (
        select(RecipeVersion)
        .where(RecipeVersion.recipe_id == recipe_id)
        .order_by(RecipeVersion.version.desc())
    )
    return (await session.scalars(query)).all()


async def live_image_ids(
    session: AsyncSession, recipe_id: uuid.UUID, image_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    if not image_ids:
        return set()
    found = await session.scalars(
        select(RecipeImage.id).where(
            RecipeImage.recipe_id == recipe_id,
            RecipeImage.id.in_(list(image_ids)),
            RecipeImage.deleted_at.is_(None),
        )
    )
    return set(found.all())


async def is_favorite(session: AsyncSession, user_id: uuid.UUID, recipe_id: uuid.UUID) -> bool:
    return await session.get(Favorite, (user_id, recipe_id)) is not None


async def add_favorite(
    session: AsyncSession, user_id: uuid.UUID, recipe_id: uuid.UUID, at: Any
) -> bool:
    if await is_favorite(session, user_id, recipe_id):
        return False
    await session.execute(
        insert(Favorite).values(user_id=user_id, recipe_id=recipe_id, created_at=at)
    )
    await session.execute(
        update(Recipe)
        .where(Recipe.id == recipe_id)
        .values(favorite_count=Recipe.favorite_count + 1)
    )
    return True


async def remove_favorite(session: AsyncSession, user_id: uuid.UUID, recipe_id: uuid.UUID) -> bool:
    result = await session.execute(
        delete(Favorite).where(Favorite.user_id == user_id, Favorite.recipe_id == recipe_id)
    )
    if not getattr(result, "rowcount", 0):
        return False
    await session.execute(
        update(Recipe)
        .where(Recipe.id == recipe_id)
        .values(favorite_count=Recipe.favorite_count - 1)
    )
    return True


async def add_cooked(session: AsyncSession, recipe_id: uuid.UUID) -> None:
    await session.execute(
        update(Recipe).where(Recipe.id == recipe_id)
        .values(cooked_count=Recipe.cooked_count + 1)
    )


async def change_rating(
    session: AsyncSession, recipe_id: uuid.UUID, old: int | None, new: int | None
) -> None:
    """Replace one rating `old` by `new` (either None: a rating added or withdrawn) in one
    statement, so concurrent raters never lose each other's update. The sum of the ratings is
    an integer: `round(avg × count)` recovers it exactly from the stored mean."""
    added = (new is not None) - (old is not None)
    count = Recipe.rating_count + added
    total = func.round(func.coalesce(Recipe.rating_avg, 0.0) * Recipe.rating_count) \
        + (new or 0) - (old or 0)
    await session.execute(
        update(Recipe).where(Recipe.id == recipe_id).values(
            rating_count=count,
            rating_avg=case((count <= 0, None), else_=total * 1.0 / count),
        )
    )


async def tag_counts(session: AsyncSession, limit: int) -> list[tuple[str, int]]:
    """Tags of published public recipes with how many recipes carry each."""
    if session.get_bind().dialect.name == "postgresql":
        sql = text(
            "SELECT tag, count(*) AS n FROM recipes, jsonb_array_elements_text(tags::jsonb) AS tag "
            "WHERE status = :published AND visibility = :public "
            "GROUP BY tag ORDER BY n DESC, tag LIMIT :limit"
        )
    else:
        sql = text(
            "SELECT j.value AS tag, count(*) AS n FROM recipes, json_each(recipes.tags) AS j "
            "WHERE status = :published AND visibility = :public "
            "GROUP BY j.value ORDER BY n DESC, tag LIMIT :limit"
        )
    rows = await session.execute(sql, {"published": PUBLISHED, "public": PUBLIC, "limit": limit})
    return [(str(tag), int(n)) for tag, n in rows]


def keywords_of(content: dict[str, Any]) -> str:
    """Tags, cuisine and ingredient names: the middle weight of the search."""
    parts = [
        *content.get("tags", []),
        content.get("cuisine") or "",
        *(ingredient["name"] for ingredient in content.get("ingredients", [])),
    ]
    return " ".join(part for part in parts if part)


async def refresh_search(session: AsyncSession, recipe_ids: Sequence[uuid.UUID]) -> None:
    """Rebuild the search index entries of these recipes from their current versions."""
    if not recipe_ids:
        return
    if session.get_bind().dialect.name == "postgresql":
        await _refresh_postgres(session, recipe_ids)
    else:
        await _refresh_sqlite(session, recipe_ids)


async def _refresh_postgres(session: AsyncSession, recipe_ids: Sequence[uuid.UUID]) -> None:
    # Weighted: title (A), tags + cuisine + ingredient names (B), description (C); each both
    # stemmed in the recipe's language and as plain words, so exact and stemmed queries match.
    await session.execute(
        text(
            """
            WITH src AS (
                SELECT r.id, r.title, r.description,
                       (CASE r.language
                          WHEN 'en' THEN 'english' WHEN 'fr' THEN 'french'
                          WHEN 'de' THEN 'german' WHEN 'es' THEN 'spanish'
                          WHEN 'it' THEN 'italian' WHEN 'pt' THEN 'portuguese'
                          WHEN 'nl' THEN 'dutch' ELSE 'simple' END)::regconfig AS cfg,
                       concat_ws(' ',
                          (SELECT string_agg(t, ' ')
                             FROM jsonb_array_elements_text(v.content->'tags') t),
                          v.content->>'cuisine',
                          (SELECT string_agg(i->>'name', ' ')
                             FROM jsonb_array_elements(v.content->'ingredients') i)) AS keywords
                  FROM recipes r
                  JOIN recipe_versions v ON v.recipe_id = r.id AND v.version = r.current_version
                 WHERE r.id = ANY(:ids)
            )
            UPDATE recipes SET search_vector =
                setweight(to_tsvector(src.cfg, src.title), 'A')
             || setweight(to_tsvector('simple', src.title), 'A')
             || setweight(to_tsvector(src.cfg, src.keywords), 'B')
             || setweight(to_tsvector('simple', src.keywords), 'B')
             || setweight(to_tsvector(src.cfg, src.description), 'C')
              FROM src WHERE recipes.id = src.id
            """
        ),
        {"ids": list(recipe_ids)},
    )


async def _refresh_sqlite(session: AsyncSession, recipe_ids: Sequence[uuid.UUID]) -> None:
    rows = (
        await session.execute(
            select(Recipe.id, Recipe.title, Recipe.description, RecipeVersion.content)
            .join(
                RecipeVersion,
                (RecipeVersion.recipe_id == Recipe.id)
                & (RecipeVersion.version == Recipe.current_version),
            )
            .where(Recipe.id.in_(recipe_ids))
        )
    ).all()
    keys = [rid.hex for rid in recipe_ids]
    await session.execute(
        text("DELETE FROM recipes_fts WHERE recipe_id IN (SELECT value FROM json_each(:ids))"),
        {"ids": json.dumps(keys)},
    )
    for rid, title, description, content in rows:
        await session.execute(
            text(
                "INSERT INTO recipes_fts (recipe_id, title, keywords, description) "
                "VALUES (:id, :title, :keywords, :description)"
            ),
            {
                "id": rid.hex,
                "title": fold(title),
                "keywords": fold(keywords_of(content)),
                "description": fold(description),
            },
        )


def search_text_of(content: dict[str, Any]) -> str:
    """What typo-tolerant (trigram) matching looks at: title and keywords, folded."""
    return fold(f"{content['title']} {keywords_of(content)}")


async def count_versions(session: AsyncSession, recipe_id: uuid.UUID) -> int:
    query = select(func.count()).where(RecipeVersion.recipe_id == recipe_id)
    return int(await session.scalar(query) or 0)
