"""HTTP layer of `/recipes*` and `/capability-profiles`."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from epicura.auth.access import (
    CurrentUser,
    NotAuthenticated,
    OptionalUser,
    bearer,
    current_principal,
    current_user,
)
from epicura.auth.router import json_only
from epicura.kit.errors import (
    Forbidden,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    responses,
)
from epicura.kit.pagination import InvalidCursor, Page
from epicura.kit.runtime import DbSession, Runtime, RuntimeDep
from epicura.recipes import cache, hot, render, search, service
from epicura.recipes.cache import HeadEntry
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
PRIVATE_CACHE = hot.PRIVATE_CACHE
LIST_CACHE = hot.LIST_CACHE




def render_cache(rt: Runtime) -> render.VersionCache:
    found: render.VersionCache | None = rt.extras.get("recipe_versions")
    if found is None:
        capacity = 20_000 if rt.settings.recipe_cache_enabled else 0
        found = rt.extras["recipe_versions"] = render.VersionCache(capacity)
    return found


BearerToken = Annotated[str | None, Depends(bearer)]


def _response(reply: hot.Reply) -> Response:
    status, headers, body = reply
    if status == 304:
        return Response(status_code=304, headers=headers)
    return Response(body, status_code=status, media_type=JSON, headers=headers)


async def _recipe_response(
    request: Request,
    rt: Runtime,
    session: DbSession,
    recipe: Recipe,
    user: Any,
    status: int = 200,
) -> Response:
    """The reply after a change, read through this request's session."""
    version_cache = render_cache(rt)
    content = version_cache.get(recipe.id, recipe.current_version)
    if content is None:
        row = await service.version_of(session, recipe, recipe.current_version)
        content = version_cache.put(recipe.id, recipe.current_version, row.content)
    head = render.head_dict(recipe)
    is_favorite = await service.is_favorite(session, recipe, user)
    public = recipe.status == "published" and recipe.visibility == "public"
    # A creation (201) is never answered 304.
    if_none_match = request.headers.get("if-none-match") if status == 200 else None
    code, headers, body = hot.recipe_reply(head, content, hot.head_etag(head), is_favorite,
                                           public, if_none_match)
    return _response((status if code == 200 else code, headers, body))


@router.get(
    "/recipes",
    response_model=Page[RecipeSummary],
    responses=responses(NotAuthenticated, InvalidCursor),
)
async def list_recipes(
    rt: RuntimeDep,
    token: BearerToken,
    request: Request,
    q: Annotated[str | None, Query(max_length=200)] = None,
    tags: Annotated[
        str | None, Query(max_length=400, description="Comma list; all must match")
    ] = None,
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
    """Published public recipes, plus the caller's own; full-text, typo-tolerant search with `q`.
    Anonymous pages are cached briefly and dropped on any recipe change."""
    language = _language(request)
    if token is None and (mine or favorites or appliance_id):
        raise NotAuthenticated()
    filters = search.Filters(
        q=q,
        tags=tuple(t.strip().lower() for t in (tags or "").split(",") if t.strip()),
        category=category,
        cuisine=cuisine,
        difficulty=difficulty,
        max_total_minutes=max_total_minutes,
        official=official,
        mine=mine,
        favorites=favorites,
        language=language,
        sort=sort,
        limit=limit,
        cursor=cursor,
    )
    if token is None:
        body = await hot.anonymous_page(rt, hot.page_key(language, request.url.query), filters)
        return Response(body, media_type=JSON, headers={"Cache-Control": LIST_CACHE})
    async with rt.db.sessions() as session:
        user = await current_user(await current_principal(request, rt, token), session)
        profile, firmware = await _appliance_fit(rt, session, user, appliance_id)
    filters = dataclasses.replace(filters, profile=profile, firmware=firmware)
    body = await hot.page_body(rt, filters, user.id)
    return Response(body, media_type=JSON, headers={"Cache-Control": PRIVATE_CACHE})


def _language(request: Request) -> str:
    return hot.language_of(request.headers.get("accept-language"))


async def _appliance_fit(
    rt: Runtime, session: DbSession, user: Any, appliance_id: uuid.UUID | None
) -> tuple[str | None, str | None]:
    """The capability profile and firmware of the caller's appliance, for "cookable on"."""
    if appliance_id is None:
        return None, None
    lookup = rt.extras.get("appliance_profile")
    if lookup is None:
        raise NotFound("No such appliance")
    found: tuple[str, str | None] = await lookup(session, user, appliance_id)
    return found


@router.post(
    "/recipes",
    status_code=201,
    response_model=RecipeOut,
    responses=responses(NotAuthenticated, service.OfficialNeedsAdmin, service.UnknownImage),
)
async def create_recipe(
    body: RecipeCreate, user: CurrentUser, rt: RuntimeDep, session: DbSession, request: Request
) -> Response:
    """A new private draft at version 1; admins may set `is_official`."""
    recipe = await service.create(session, user, body)
    cache.changed(rt, session, recipe.id)
    response = await _recipe_response(request, rt, session, recipe, user, status=201)
    response.headers["Location"] = f"/api/v1/recipes/{recipe.id}"
    return response


@router.get("/recipes/tags", response_model=list[TagCount], responses=responses())
async def list_tags(
    session: DbSession, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> JSONResponse:
    """Tags of published public recipes with their counts, most used first."""
    counts = await service.tag_counts(session, limit)
    return JSONResponse(
        [{"tag": tag, "count": n} for tag, n in counts],
        headers={"Cache-Control": "public, max-age=60"},
    )


@router.get("/capability-profiles", response_model=list[CapabilityProfile], responses=responses())
async def capability_profiles(session: DbSession) -> list[CapabilityProfile]:
    """The appliance models and revisions recipes can be written for, with their limits."""
    return await service.capability_profiles(session)


@router.get(
    "/recipes/{recipe_id}",
    response_model=RecipeOut,
    responses=responses(NotFound, NotAuthenticated),
)
async def get_recipe(
    recipe_id: uuid.UUID, rt: RuntimeDep, token: BearerToken, request: Request
) -> Response:
    """The recipe with its current version's content; `ETag` (and 304 on `If-None-Match`)."""
    if token is None:
        if_none_match = request.headers.get("if-none-match")
        return _response(await hot.anonymous_read(rt, recipe_id, if_none_match))
    entry = await hot.recipe_entry(rt, recipe_id)
    async with rt.db.sessions() as session:
        user = await current_user(await current_principal(request, rt, token), session)
        if entry is None or not _visible(entry, user):
            raise NotFound("No such recipe")
        is_favorite = await service.is_favorite_id(session, recipe_id, user)
    return _response(hot.recipe_reply(entry.head, entry.content, entry.etag, is_favorite,
                                      entry.public, request.headers.get("if-none-match")))


def _visible(entry: HeadEntry, user: Any) -> bool:
    if entry.public:
        return True
    return bool(entry.owner_id == user.id or service.is_admin(user))


@router.put(
    "/recipes/{recipe_id}",
    response_model=RecipeOut,
    responses=responses(
        NotAuthenticated,
        Forbidden,
        NotFound,
        PreconditionFailed,
        PreconditionRequired,
        service.StepOutOfRange,
        service.RecipeArchived,
        service.UnknownImage,
    ),
)
async def update_recipe(
    recipe_id: uuid.UUID,
    body: RecipeUpdate,
    user: CurrentUser,
    rt: RuntimeDep,
    session: DbSession,
    request: Request,
) -> Response:
    """Replace the content: a new version. `If-Match` with the current `ETag` is required."""
    recipe = await service.editable(session, recipe_id, user)
    _check_if_match(request, recipe)
    recipe = await service.update(session, recipe, user, body)
    cache.changed(rt, session, recipe.id)
    return await _recipe_response(request, rt, session, recipe, user)


def _check_if_match(request: Request, recipe: Recipe) -> None:
    """`If-Match` must name the current state: the plain tag or a caller's favourite variant."""
    etag = hot.head_etag(render.head_dict(recipe))
    header = request.headers.get("if-match")
    if header is None:
        raise PreconditionRequired()
    accepted = {etag, hot.favorite_etag(etag, True), hot.favorite_etag(etag, False)}
    if header.strip() != "*" and not accepted & {t.strip() for t in header.split(",")}:
        raise PreconditionFailed()


@router.delete(
    "/recipes/{recipe_id}",
    status_code=204,
    responses=responses(NotAuthenticated, Forbidden, NotFound),
)
async def archive_recipe(
    recipe_id: uuid.UUID, user: CurrentUser, rt: RuntimeDep, session: DbSession
) -> Response:
    """Archive: hidden from lists, kept for sessions and devices (which get a tombstone)."""
    recipe = await service.editable(session, recipe_id, user)
    await service.archive(session, recipe, user)
    cache.changed(rt, session, recipe.id)
    return Response(status_code=204)


@router.post(
    "/recipes/{recipe_id}/publish",
    response_model=RecipeOut,
    responses=responses(
        NotAuthenticated, Forbidden, NotFound, service.StepOutOfRange, service.RecipeArchived
    ),
)
async def publish_recipe(
    recipe_id: uuid.UUID, user: CurrentUser, rt: RuntimeDep, session: DbSession, request: Request
) -> Response:
    """Validate every step against the declared capability profiles, then publish; 422
    `step_out_of_range` lists each violation (step index, field, value, limit, profile)."""
    recipe = await service.editable(session, recipe_id, user)
    recipe = await service.publish(session, recipe, user)
    cache.changed(rt, session, recipe.id)
    return await _recipe_response(request, rt, session, recipe, user)


@router.get(
    "/recipes/{recipe_id}/versions",
    response_model=list[VersionInfo],
    responses=responses(NotFound, NotAuthenticated),
)
async def list_versions(
    recipe_id: uuid.UUID, session: DbSession, user: OptionalUser
) -> list[VersionInfo]:
    recipe = await service.readable(session, recipe_id, user)
    return [
        VersionInfo(
            version=row.version,
            created_at=row.created_at,
            author=row.author_id,
            summary=row.summary,
        )
        for row in await service.versions_of(session, recipe)
    ]


@router.get(
    "/recipes/{recipe_id}/versions/{number}",
    response_model=VersionOut,
    responses=responses(NotFound, NotAuthenticated),
)
async def get_version(
    recipe_id: uuid.UUID, number: int, session: DbSession, user: OptionalUser
) -> Response:
    recipe = await service.readable(session, recipe_id, user)
    row = await service.version_of(session, recipe, number)
    out = VersionOut.model_validate(
        {
            "recipe_id": recipe.id,
            "version": row.version,
            "created_at": row.created_at,
            "author": row.author_id,
            "summary": row.summary,
            "content": row.content,
        }
    )
    return JSONResponse(
        out.model_dump(mode="json"),
        headers={"ETag": f'"{row.sha256[:32]}"', "Cache-Control": PRIVATE_CACHE},
    )


@router.get(
    "/recipes/{recipe_id}/versions/{number}/diff",
    response_model=VersionDiff,
    responses=responses(NotFound, NotAuthenticated),
)
async def diff_versions(
    recipe_id: uuid.UUID,
    number: int,
    against: Annotated[int, Query(ge=1)],
    session: DbSession,
    user: OptionalUser,
) -> VersionDiff:
    """Field-level differences from version `against` to version `number`."""
    recipe = await service.readable(session, recipe_id, user)
    changes = await service.diff(session, recipe, number, against)
    return VersionDiff(recipe_id=recipe.id, version=number, against=against, changes=changes)


@router.post(
    "/recipes/{recipe_id}/versions/{number}/restore",
    response_model=RecipeOut,
    responses=responses(
        NotAuthenticated, Forbidden, NotFound, service.StepOutOfRange, service.RecipeArchived
    ),
)
async def restore_version(
    recipe_id: uuid.UUID,
    number: int,
    user: CurrentUser,
    rt: RuntimeDep,
    session: DbSession,
    request: Request,
) -> Response:
    """A new version whose content equals version `number`."""
    recipe = await service.editable(session, recipe_id, user)
    recipe = await service.restore(session, recipe, user, number)
    cache.changed(rt, session, recipe.id)
    return await _recipe_response(request, rt, session, recipe, user)


async def _set_favorite(
    recipe_id: uuid.UUID, request: Request, user: CurrentUser, rt: RuntimeDep, session: DbSession
) -> Response:
    # PUT marks the recipe a favourite, DELETE unmarks it; both answer 204 whatever it was.
    recipe = await service.readable(session, recipe_id, user)
    await service.set_favorite(session, recipe, user, request.method == "PUT")
    cache.changed(rt, session, recipe.id)
    return Response(status_code=204)


for _method, _name in (("PUT", "favorite"), ("DELETE", "unfavorite")):
    router.add_api_route(
        "/recipes/{recipe_id}/favorite",
        _set_favorite,
        methods=[_method],
        name=_name,
        status_code=204,
        responses=responses(NotAuthenticated, NotFound),
    )
