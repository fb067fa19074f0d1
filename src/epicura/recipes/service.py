"""The rules of recipes: ownership and visibility, immutable versions, publishing."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.auth.models import ROLE_ADMIN, User
from epicura.kit import audit, clock
from epicura.kit.errors import Forbidden, NotFound, ProblemError
from epicura.kit.runtime import Runtime
from epicura.recipes import cache, repository
from epicura.recipes.diff import diff_contents
from epicura.recipes.models import ARCHIVED, DRAFT, PUBLIC, PUBLISHED, Recipe, RecipeVersion
from epicura.recipes.rules import profile_key, program_violations
from epicura.recipes.schemas import (
    CapabilityProfile,
    FieldChange,
    RecipeCreate,
    RecipeUpdate,
    VersionContent,
)


class StepOutOfRange(ProblemError):
    status = 422
    code = "step_out_of_range"
    title = "A step does not fit the appliance profiles the recipe declares"


class OfficialNeedsAdmin(Forbidden):
    code = "official_requires_admin"
    title = "Only Epicura's kitchen team (admins) can write official recipes"


class UnknownImage(ProblemError):
    status = 422
    code = "unknown_image"
    title = "images[] names an image that was not uploaded to this recipe"


class RecipeArchived(ProblemError):
    status = 409
    code = "recipe_archived"
    title = "The recipe is archived"


@dataclass(frozen=True)
class RecipeChange:
    """What changed: `version` (a new current version), `published`, `archived`,
    `favorite_added` / `favorite_removed` (by `user_id`)."""

    kind: str
    recipe_id: uuid.UUID
    user_id: uuid.UUID | None = None


ChangeListener = Callable[[AsyncSession, RecipeChange], Awaitable[None]]
_listeners: dict[str, ChangeListener] = {}


def on_change(name: str, listener: ChangeListener) -> None:
    """Have `listener` called inside the transaction of every recipe change, so another module
    (device sync) reacts atomically without this module knowing it. One listener per name."""
    _listeners[name] = listener


async def _changed(session: AsyncSession, change: RecipeChange) -> None:
    for listener in list(_listeners.values()):
        await listener(session, change)


def is_admin(user: User | None) -> bool:
    return user is not None and user.role == ROLE_ADMIN


def can_read(recipe: Recipe, user: User | None) -> bool:
    if recipe.status == PUBLISHED and recipe.visibility == PUBLIC:
        return True
    return user is not None and (recipe.owner_id == user.id or is_admin(user))


def can_edit(recipe: Recipe, user: User) -> bool:
    """Owners edit their recipes; official recipes are edited by admins."""
    if recipe.is_official:
        return is_admin(user)
    return recipe.owner_id == user.id or is_admin(user)


async def readable(session: AsyncSession, recipe_id: uuid.UUID, user: User | None) -> Recipe:
    """The recipe if this caller may see it; otherwise 404 (existence is not leaked)."""
    recipe = await repository.recipe(session, recipe_id)
    if recipe is None or not can_read(recipe, user):
        raise NotFound("No such recipe")
    return recipe


async def editable(session: AsyncSession, recipe_id: uuid.UUID, user: User) -> Recipe:
    """The recipe locked for change if this caller may edit it; 404 if they may not see it,
    403 if they may see it but not edit it (a public recipe of someone else)."""
    recipe = await repository.recipe(session, recipe_id, lock=True)
    if recipe is None or not can_read(recipe, user):
        raise NotFound("No such recipe")
    if not can_edit(recipe, user):
        raise Forbidden("Only the owner can change this recipe")
    return recipe


def content_json(content: VersionContent) -> dict[str, Any]:
    dumped: dict[str, Any] = content.model_dump(mode="json")
    return dumped


def content_sha256(content: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _apply_head(recipe: Recipe, content: dict[str, Any]) -> None:
    """Copy the fields lists and search read from the current version onto the recipe row."""
    recipe.title = content["title"]
    recipe.description = content["description"]
    recipe.language = content["language"]
    recipe.tags = list(content["tags"])
    recipe.category = content["category"]
    recipe.cuisine = content["cuisine"]
    recipe.difficulty = content["difficulty"]
    recipe.total_minutes = content["total_minutes"]
    recipe.servings = content["servings"]
    recipe.cover_image_id = uuid.UUID(content["images"][0]) if content["images"] else None
    recipe.profiles = list(content["requires"]["profiles"])
    recipe.min_firmware = content["requires"]["min_firmware"]
    recipe.search_text = repository.search_text_of(content)


def _new_version(
    recipe: Recipe, number: int, content: dict[str, Any], author: User, summary: str | None
) -> RecipeVersion:
    return RecipeVersion(
        recipe_id=recipe.id,
        version=number,
        content=content,
        sha256=content_sha256(content),
        author_id=author.id,
        summary=summary,
        created_at=clock.utcnow(),
    )


async def profiles_by_key(session: AsyncSession) -> dict[str, CapabilityProfile]:
    rows = await repository.profiles(session)
    return {
        profile_key(row.model, row.hw_revision): CapabilityProfile.model_validate(
            row, from_attributes=True
        )
        for row in rows
    }


async def check_program(session: AsyncSession, content: VersionContent) -> None:
    violations = program_violations(content, await profiles_by_key(session))
    if violations:
        raise StepOutOfRange(
            f"{len(violations)} step(s) outside the declared profiles", errors=violations
        )


async def create(session: AsyncSession, author: User, body: RecipeCreate) -> Recipe:
    if body.is_official and not is_admin(author):
        raise OfficialNeedsAdmin()
    if body.images:
        raise UnknownImage("Upload images to the recipe after creating it")
    now = clock.utcnow()
    content = content_json(
        VersionContent.model_validate(body.model_dump(exclude={"visibility", "is_official"}))
    )
    recipe = Recipe(
        owner_id=author.id,
        visibility=body.visibility,
        is_official=body.is_official,
        status=DRAFT,
        current_version=1,
        rating_count=0,
        cooked_count=0,
        favorite_count=0,
        created_at=now,
        updated_at=now,
    )
    _apply_head(recipe, content)
    session.add(recipe)
    await session.flush()
    session.add(_new_version(recipe, 1, content, author, "Created"))
    await session.flush()
    await repository.refresh_search(session, [recipe.id])
    audit.record(
        session, "recipe.created", actor_id=author.id, target_type="recipe", target_id=recipe.id
    )
    return recipe


async def update(session: AsyncSession, recipe: Recipe, author: User, body: RecipeUpdate) -> Recipe:
    """A whole new version (the caller has checked `If-Match` against the current one)."""
    if recipe.status == ARCHIVED:
        raise RecipeArchived()
    parsed = VersionContent.model_validate(body.model_dump(exclude={"visibility", "summary"}))
    unknown = set(parsed.images) - await repository.live_image_ids(
        session, recipe.id, parsed.images
    )
    if unknown:
        raise UnknownImage(f"Not images of this recipe: {sorted(str(i) for i in unknown)}")
    if recipe.status == PUBLISHED:
        await check_program(session, parsed)  # a published recipe stays cookable
    content = content_json(parsed)
    return await _append_version(
        session, recipe, author, content, body.summary or "Edited", visibility=body.visibility
    )


async def _append_version(
    session: AsyncSession,
    recipe: Recipe,
    author: User,
    content: dict[str, Any],
    summary: str,
    visibility: str | None = None,
) -> Recipe:
    number = recipe.current_version + 1
    session.add(_new_version(recipe, number, content, author, summary))
    recipe.current_version = number
    if visibility is not None:
        recipe.visibility = visibility
    _apply_head(recipe, content)
    recipe.updated_at = clock.utcnow()
    await session.flush()
    await repository.refresh_search(session, [recipe.id])
    await _changed(session, RecipeChange("version", recipe.id))
    return recipe


async def publish(session: AsyncSession, recipe: Recipe, actor: User) -> Recipe:
    if recipe.status == ARCHIVED:
        raise RecipeArchived()
    current = await current_content(session, recipe)
    await check_program(session, current)
    now = clock.utcnow()
    recipe.status = PUBLISHED
    recipe.published_at = recipe.published_at or now
    recipe.updated_at = now
    await session.flush()
    audit.record(
        session,
        "recipe.published",
        actor_id=actor.id,
        target_type="recipe",
        target_id=recipe.id,
        version=recipe.current_version,
    )
    await _changed(session, RecipeChange("published", recipe.id))
    return recipe


async def archive(session: AsyncSession, recipe: Recipe, actor: User) -> None:
    now = clock.utcnow()
    recipe.status = ARCHIVED
    recipe.archived_at = now
    recipe.updated_at = now
    await session.flush()
    audit.record(
        session, "recipe.archived", actor_id=actor.id, target_type="recipe", target_id=recipe.id
    )
    await _changed(session, RecipeChange("archived", recipe.id))


async def current_content(session: AsyncSession, recipe: Recipe) -> VersionContent:
    row = await repository.version(session, recipe.id, recipe.current_version)
    assert row is not None, "a recipe always has its current version"
    return VersionContent.model_validate(row.content)


async def version_of(session: AsyncSession, recipe: Recipe, number: int) -> RecipeVersion:
    if not 1 <= number < 2**31:  # the column is a 4-byte integer: beyond it, no such version
        raise NotFound("No such version")
    row = await repository.version(session, recipe.id, number)
    if row is None:
        raise NotFound("No such version")
    return row


async def versions_of(session: AsyncSession, recipe: Recipe) -> Sequence[RecipeVersion]:
    return await repository.versions(session, recipe.id)


async def diff(
    session: AsyncSession, recipe: Recipe, number: int, against: int
) -> list[FieldChange]:
    newer = await version_of(session, recipe, number)
    older = await version_of(session, recipe, against)
    return diff_contents(older.content, newer.content)


async def restore(session: AsyncSession, recipe: Recipe, author: User, number: int) -> Recipe:
    """A new version equal to version `number` (history is never rewritten)."""
    if recipe.status == ARCHIVED:
        raise RecipeArchived()
    old = await version_of(session, recipe, number)
    content = dict(old.content)
    # Images deleted since that version are dropped rather than refusing the restore.
    live = await repository.live_image_ids(
        session, recipe.id, [uuid.UUID(str(i)) for i in content["images"]]
    )
    content["images"] = [i for i in content["images"] if uuid.UUID(str(i)) in live]
    if recipe.status == PUBLISHED:
        await check_program(session, VersionContent.model_validate(content))
    return await _append_version(session, recipe, author, content, f"Restored version {number}")


async def set_favorite(session: AsyncSession, recipe: Recipe, user: User, on: bool) -> None:
    if on:
        changed = await repository.add_favorite(session, user.id, recipe.id, clock.utcnow())
    else:
        changed = await repository.remove_favorite(session, user.id, recipe.id)
    if changed:
        kind = "favorite_added" if on else "favorite_removed"
        await _changed(session, RecipeChange(kind, recipe.id, user.id))


async def is_favorite(session: AsyncSession, recipe: Recipe, user: User | None) -> bool | None:
    return None if user is None else await repository.is_favorite(session, user.id, recipe.id)


async def is_favorite_id(session: AsyncSession, recipe_id: uuid.UUID, user: User) -> bool:
    return await repository.is_favorite(session, user.id, recipe_id)


async def tag_counts(session: AsyncSession, limit: int = 200) -> list[tuple[str, int]]:
    return await repository.tag_counts(session, limit)


async def capability_profiles(session: AsyncSession) -> list[CapabilityProfile]:
    return list((await profiles_by_key(session)).values())


# --- what the cooking-sessions module calls ---------------------------------------------------

async def pinned_content(
    session: AsyncSession, recipe_id: uuid.UUID, number: int
) -> dict[str, Any] | None:
    """A version's content, without an access check: for a caller that checked access when it
    pinned the version (versions are immutable and never deleted while referenced)."""
    if not 1 <= number < 2**31:
        return None
    row = await repository.version(session, recipe_id, number)
    return None if row is None else row.content


async def current_title(session: AsyncSession, recipe_id: uuid.UUID) -> str | None:
    recipe = await repository.recipe(session, recipe_id)
    return None if recipe is None else recipe.title


async def count_cooked(rt: Runtime, session: AsyncSession, recipe_id: uuid.UUID) -> None:
    """A cooking session of the recipe completed: `cooked_count` + 1 (list and detail caches
    are told once the transaction commits)."""
    await repository.add_cooked(session, recipe_id)
    cache.changed(rt, session, recipe_id)


async def change_rating(
    rt: Runtime, session: AsyncSession, recipe_id: uuid.UUID, old: int | None, new: int | None
) -> None:
    """A cook rated a session of the recipe (`new`), replacing their earlier rating (`old`);
    None for no rating. Keeps `rating_avg` and `rating_count` over one rating per session."""
    if old == new:
        return
    await repository.change_rating(session, recipe_id, old, new)
    cache.changed(rt, session, recipe_id)
