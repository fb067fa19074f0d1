"""HTTP layer of `/recipes*` and `/capability-profiles`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from epicura.auth.access import CurrentUser, NotAuthenticated, OptionalUser
from epicura.auth.router import json_only
from epicura.kit.errors import (
    Forbidden,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    responses,
)
from epicura.kit.etag import check_if_match, make_etag, not_modified
from epicura.kit.pagination import InvalidCursor, Page
from epicura.kit.runtime import DbSession, RuntimeDep
from epicura.recipes import render, search, service
from epicura.recipes.models import Recipe
from epicura.recipes.schemas import (
    CapabilityProfile,
    RecipeCreate,
    RecipeOut,
    RecipeSummary,
    RecipeUpdate,
    TagCount,
    VersionDiff,
    VersionInfo,
    VersionOut,
)

router = APIRouter(tags=["recipes"], dependencies=[Depends(json_only)])
JSON = "application/json"
PUBLIC_CACHE = "public, max-age=60"
PRIVATE_CACHE = "private, no-cache"


def version_cache(rt: RuntimeDep) -> render.VersionCache:
    cache = rt.extras.get("recipe_versions")
    if cache is None:
        cache = rt.extras["recipe_versions"] = render.VersionCache()
    return cache


def image_url(rt: RuntimeDep) -> render.ImageUrl:
    resolver: render.ImageUrl | None = rt.extras.get("recipe_image_url")
    return resolver or (lambda _image_id: None)


def recipe_etag(recipe: Recipe) -> str:
    return make_etag(recipe.id, recipe.current_version, recipe.updated_at.isoformat(),
                     recipe.rating_count, recipe.cooked_count, recipe.favorite_count)


async def _recipe_response(request: Request, rt: RuntimeDep, session: DbSession,
                           recipe: Recipe, user: Any, status: int = 200) -> Response:
    etag = recipe_etag(recipe)
    is_favorite = await service.is_favorite(session, recipe, user)
    # The favourite flag is per caller: fold it into the tag so caches never mix callers.
    etag = etag if is_favorite is None else f'{etag[:-1]}-{int(is_favorite)}"'
    public = recipe.status == "published" and recipe.visibility == "public" and user is None
    headers = {"ETag": etag, "Cache-Control": PUBLIC_CACHE if public else PRIVATE_CACHE}
    if status == 200 and not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    cache = version_cache(rt)
    content = cache.get(recipe.id, recipe.current_version)
    if content is None:
        row = await service.version_of(session, recipe, recipe.current_version)
        content = cache.put(recipe.id, recipe.current_version, row.content)
    body = render.recipe_body(render.head_dict(recipe), content, is_favorite)
    return Response(body, status_code=status, media_type=JSON, headers=headers)


@router.get("/recipes", response_model=Page[RecipeSummary],
            responses=responses(NotAuthenticated, InvalidCursor))
async def list_recipes(
    rt: RuntimeDep, session: DbSession, user: OptionalUser, request: Request,
    q: Annotated[str | None, Query(max_length=200)] = None,
    tags: Annotated[str | None, Query(max_length=400, description="Comma list; all must match")] = None,
    category: Annotated[str | None, Query(max_length=40)] = None,
    cuisine: Annotated[str | None, Query(max_length=40)] = None,
    difficulty: Literal["easy", "medium", "hard"] | None = None,
    max_total_minutes: Annotated[int | None, Query(ge=0, le=100_000)] = None,
    official: bool | None = None,
    mine: bool = False,
    favorites: bool = False,
    appliance_id: uuid.UUID | None = None,
    sort: Literal["relevance", "newest", "popular", "title"] | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    """Published public recipes, plus the caller's own; full-text, typo-tolerant search with `q`."""
    if (mine or favorites or appliance_id) and user is None:
        raise NotAuthenticated()
    profile, firmware = await _appliance_fit(rt, session, user, appliance_id)
    filters = search.Filters(
        q=q, tags=tuple(t.strip().lower() for t in (tags or "").split(",") if t.strip()),
        category=category, cuisine=cuisine, difficulty=difficulty,
        max_total_minutes=max_total_minutes, official=official, mine=mine, favorites=favorites,
        profile=profile, firmware=firmware, language=_language(request), sort=sort, limit=limit,
        cursor=cursor,
    )
    items, next_cursor = await search.page(session, filters, user.id if user else None)
    body = render.summaries_body(items, next_cursor, image_url(rt))
    headers = {"Cache-Control": PRIVATE_CACHE if user else "public, max-age=15"}
    return Response(body, media_type=JSON, headers=headers)


def _language(request: Request) -> str:
    accept = request.headers.get("accept-language", "en")
    return accept.split(",")[0].split(";")[0].strip()[:8] or "en"


async def _appliance_fit(rt: RuntimeDep, session: DbSession, user: Any,
                         appliance_id: uuid.UUID | None) -> tuple[str | None, str | None]:
    """The capability profile and firmware of the caller's appliance, for "cookable on"."""
    if appliance_id is None:
        return None, None
    lookup = rt.extras.get("appliance_profile")
    if lookup is None:
        raise NotFound("No such appliance")
    found: tuple[str, str | None] = await lookup(session, user, appliance_id)
    return found


@router.post("/recipes", status_code=201, response_model=RecipeOut,
             responses=responses(NotAuthenticated, service.OfficialNeedsAdmin))
async def create_recipe(body: RecipeCreate, user: CurrentUser, rt: RuntimeDep,
                        session: DbSession, request: Request) -> Response:
    """A new private draft at version 1; admins may set `is_official`."""
    recipe = await service.create(session, user, body)
    response = await _recipe_response(request, rt, session, recipe, user, status=201)
    response.headers["Location"] = f"/api/v1/recipes/{recipe.id}"
    return response


@router.get("/recipes/tags", response_model=list[TagCount], responses=responses())
async def list_tags(session: DbSession,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> JSONResponse:
    """Tags of published public recipes with their counts, most used first."""
    counts = await service.tag_counts(session, limit)
    return JSONResponse([{"tag": tag, "count": n} for tag, n in counts],
                        headers={"Cache-Control": "public, max-age=60"})


@router.get("/capability-profiles", response_model=list[CapabilityProfile], responses=responses())
async def capability_profiles(session: DbSession) -> list[CapabilityProfile]:
    """The appliance models and revisions recipes can be written for, with their limits."""
    return await service.capability_profiles(session)


@router.get("/recipes/{recipe_id}", response_model=RecipeOut,
            responses=responses(NotFound, NotAuthenticated))
async def get_recipe(recipe_id: uuid.UUID, rt: RuntimeDep, session: DbSession,
                     user: OptionalUser, request: Request) -> Response:
    """The recipe with its current version's content; `ETag` (and 304 on `If-None-Match`)."""
    recipe = await service.readable(session, recipe_id, user)
    return await _recipe_response(request, rt, session, recipe, user)


@router.put("/recipes/{recipe_id}", response_model=RecipeOut,
            responses=responses(NotAuthenticated, Forbidden, NotFound, PreconditionFailed,
                                PreconditionRequired, service.StepOutOfRange,
                                service.RecipeArchived))
async def update_recipe(recipe_id: uuid.UUID, body: RecipeUpdate, user: CurrentUser,
                        rt: RuntimeDep, session: DbSession, request: Request) -> Response:
    """Replace the content: a new version. `If-Match` with the current `ETag` is required."""
    recipe = await service.editable(session, recipe_id, user)
    _check_if_match(request, recipe, await service.is_favorite(session, recipe, user))
    recipe = await service.update(session, recipe, user, body)
    return await _recipe_response(request, rt, session, recipe, user)


def _check_if_match(request: Request, recipe: Recipe, is_favorite: bool | None) -> None:
    etag = recipe_etag(recipe)
    accepted = {etag, f'{etag[:-1]}-{int(bool(is_favorite))}"'}
    header = request.headers.get("if-match")
    if header is None:
        raise PreconditionRequired()
    for tag in accepted:
        try:
            check_if_match(request, tag, required=True)
            return
        except PreconditionFailed:
            continue
    raise PreconditionFailed()


@router.delete("/recipes/{recipe_id}", status_code=204,
               responses=responses(NotAuthenticated, Forbidden, NotFound))
async def archive_recipe(recipe_id: uuid.UUID, user: CurrentUser, session: DbSession) -> Response:
    """Archive: hidden from lists, kept for sessions and devices (which get a tombstone)."""
    recipe = await service.editable(session, recipe_id, user)
    await service.archive(session, recipe, user)
    return Response(status_code=204)


@router.post("/recipes/{recipe_id}/publish", response_model=RecipeOut,
             responses=responses(NotAuthenticated, Forbidden, NotFound, service.StepOutOfRange,
                                 service.RecipeArchived))
async def publish_recipe(recipe_id: uuid.UUID, user: CurrentUser, rt: RuntimeDep,
                         session: DbSession, request: Request) -> Response:
    """Validate every step against the declared capability profiles, then publish; 422
    `step_out_of_range` lists each violation (step index, field, value, limit, profile)."""
    recipe = await service.editable(session, recipe_id, user)
    recipe = await service.publish(session, recipe, user)
    return await _recipe_response(request, rt, session, recipe, user)


@router.get("/recipes/{recipe_id}/versions", response_model=list[VersionInfo],
            responses=responses(NotFound, NotAuthenticated))
async def list_versions(recipe_id: uuid.UUID, session: DbSession,
                        user: OptionalUser) -> list[VersionInfo]:
    recipe = await service.readable(session, recipe_id, user)
    return [VersionInfo(version=row.version, created_at=row.created_at, author=row.author_id,
                        summary=row.summary) for row in await service.versions_of(session, recipe)]


@router.get("/recipes/{recipe_id}/versions/{number}", response_model=VersionOut,
            responses=responses(NotFound, NotAuthenticated))
async def get_version(recipe_id: uuid.UUID, number: int, session: DbSession,
                      user: OptionalUser) -> Response:
    recipe = await service.readable(session, recipe_id, user)
    row = await service.version_of(session, recipe, number)
    out = VersionOut.model_validate({
        "recipe_id": recipe.id, "version": row.version, "created_at": row.created_at,
        "author": row.author_id, "summary": row.summary, "content": row.content,
    })
    return JSONResponse(out.model_dump(mode="json"),
                        headers={"ETag": f'"{row.sha256[:32]}"', "Cache-Control": PRIVATE_CACHE})


@router.get("/recipes/{recipe_id}/versions/{number}/diff", response_model=VersionDiff,
            responses=responses(NotFound, NotAuthenticated))
async def diff_versions(recipe_id: uuid.UUID, number: int,
                        against: Annotated[int, Query(ge=1)], session: DbSession,
                        user: OptionalUser) -> VersionDiff:
    """Field-level differences from version `against` to version `number`."""
    recipe = await service.readable(session, recipe_id, user)
    changes = await service.diff(session, recipe, number, against)
    return VersionDiff(recipe_id=recipe.id, version=number, against=against, changes=changes)


@router.post("/recipes/{recipe_id}/versions/{number}/restore", response_model=RecipeOut,
             responses=responses(NotAuthenticated, Forbidden, NotFound, service.StepOutOfRange,
                                 service.RecipeArchived))
async def restore_version(recipe_id: uuid.UUID, number: int, user: CurrentUser, rt: RuntimeDep,
                          session: DbSession, request: Request) -> Response:
    """A new version whose content equals version `number`."""
    recipe = await service.editable(session, recipe_id, user)
    recipe = await service.restore(session, recipe, user, number)
    return await _recipe_response(request, rt, session, recipe, user)


@router.put("/recipes/{recipe_id}/favorite", status_code=204,
            responses=responses(NotAuthenticated, NotFound))
async def favorite(recipe_id: uuid.UUID, user: CurrentUser, session: DbSession) -> Response:
    recipe = await service.readable(session, recipe_id, user)
    await service.set_favorite(session, recipe, user, True)
    return Response(status_code=204)


@router.delete("/recipes/{recipe_id}/favorite", status_code=204,
               responses=responses(NotAuthenticated, NotFound))
async def unfavorite(recipe_id: uuid.UUID, user: CurrentUser, session: DbSession) -> Response:
    recipe = await service.readable(session, recipe_id, user)
    await service.set_favorite(session, recipe, user, False)
    return Response(status_code=204)
