"""Recipes: every recipe listed and filtered; the editor (content and step program, with the
messages at the step they are about), publishing, versions with their diff, and restore — all
through recipes.service, so the same rules as the API apply."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from epicura.kit.errors import Conflict, ProblemError
from epicura.kit.pagination import decode_time_id, encode_time_id
from epicura.kit.runtime import DbSession
from epicura.portal import recipe_form, repository
from epicura.portal.access import CurrentPortal
from epicura.portal.pages.common import PAGE_SIZE, PLAIN_TEXT, back, kept, notice
from epicura.portal.web import render
from epicura.recipes import service as recipes_service
from epicura.recipes.schemas import ACTIONS

router = APIRouter(prefix="/recipes")


class ChangedMeanwhile(Conflict):
    code = "version_conflict"
    title = "Someone saved a newer version meanwhile: reload the recipe and edit again"


@router.get("", include_in_schema=False)
async def recipes(
    request: Request, portal: CurrentPortal, session: DbSession,
    q: Annotated[str | None, Query(max_length=200, pattern=PLAIN_TEXT)] = None,
    status: Literal["draft", "published", "archived", ""] = "",
    official: Literal["true", "false", ""] = "",
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> HTMLResponse:
    rows = await repository.recipes(session, q=q, status=status or None,
                                    official=None if not official else official == "true",
                                    after=decode_time_id(cursor), limit=PAGE_SIZE + 1)
    last = rows[PAGE_SIZE - 1] if len(rows) > PAGE_SIZE else None
    return render(request, "recipes.html", {
        "recipes": rows[:PAGE_SIZE], "f": {"q": q or "", "status": status, "official": official},
        "query": kept(q=q, status=status, official=official),
        "next_cursor": encode_time_id(last["updated_at"], last["id"]) if last else None})


async def _editor(request: Request, portal: CurrentPortal, session: DbSession,
                  recipe_id: uuid.UUID, *, content: dict[str, Any] | None = None,
                  problems: recipe_form.Problems | None = None, status: int = 200,
                  done: str | None = None, summary: str | None = None) -> HTMLResponse:
    recipe = await recipes_service.readable(session, recipe_id, portal.admin)
    if content is None:
        content = recipes_service.content_json(
            await recipes_service.current_content(session, recipe))
        steps = recipe_form.step_rows(content)
    else:
        steps = content["steps"]
    return render(request, "recipe.html", {
        "recipe": recipe, "content": content, "steps": steps, "actions": ACTIONS,
        "problems": problems or recipe_form.Problems(), "notice": notice(done),
        "summary": summary or "",
        "versions": await recipes_service.versions_of(session, recipe)}, status=status)


@router.get("/{recipe_id}", include_in_schema=False)
async def recipe(request: Request, recipe_id: uuid.UUID, portal: CurrentPortal,
                 session: DbSession, done: str | None = None) -> HTMLResponse:
    return await _editor(request, portal, session, recipe_id, done=done)


@router.post("/{recipe_id}", include_in_schema=False)
async def save(request: Request, recipe_id: uuid.UUID, portal: CurrentPortal,
               session: DbSession) -> Response:
    """A new version from the form; on a validation error the form comes back as submitted,
    each message at its step."""
    found = await recipes_service.editable(session, recipe_id, portal.admin)
    current = recipes_service.content_json(
        await recipes_service.current_content(session, found))
    submitted = recipe_form.parse(await request.form(), current)
    if submitted.version != found.current_version:
        raise ChangedMeanwhile()
    body = recipe_form.validated(submitted)
    if body is not None:
        try:
            await recipes_service.update(session, found, portal.admin, body)
            return back(f"/recipes/{recipe_id}", "saved")
        except ProblemError as exc:
            if exc.status != 422:
                raise
            recipe_form.place_items(submitted.problems, exc.errors or [], exc.title)
    return await _editor(request, portal, session, recipe_id, content=submitted.content,
                         problems=submitted.problems, status=422, summary=submitted.summary)


@router.post("/{recipe_id}/publish", include_in_schema=False)
async def publish(request: Request, recipe_id: uuid.UUID, portal: CurrentPortal,
                  session: DbSession) -> Response:
    found = await recipes_service.editable(session, recipe_id, portal.admin)
    try:
        await recipes_service.publish(session, found, portal.admin)
    except recipes_service.StepOutOfRange as exc:
        problems = recipe_form.Problems()
        recipe_form.place_items(problems, exc.errors or [], exc.title)
        problems.general.insert(0, "Not published: " + (exc.detail or exc.title))
        return await _editor(request, portal, session, recipe_id, problems=problems,
                             status=422)
    return back(f"/recipes/{recipe_id}", "published")


@router.get("/{recipe_id}/versions/{number}", include_in_schema=False)
async def version(request: Request, recipe_id: uuid.UUID, number: int, portal: CurrentPortal,
                  session: DbSession,
                  against: Annotated[int | None, Query(ge=1)] = None) -> HTMLResponse:
    found = await recipes_service.readable(session, recipe_id, portal.admin)
    row = await recipes_service.version_of(session, found, number)
    base = against or max(1, number - 1)
    changes = (await recipes_service.diff(session, found, number, base)
               if base != number else [])
    return render(request, "recipe_version.html", {
        "recipe": found, "version": row, "against": base, "changes": changes})


@router.post("/{recipe_id}/versions/{number}/restore", include_in_schema=False)
async def restore(recipe_id: uuid.UUID, number: int, portal: CurrentPortal,
                  session: DbSession) -> RedirectResponse:
    found = await recipes_service.editable(session, recipe_id, portal.admin)
    await recipes_service.restore(session, found, portal.admin, number)
    return back(f"/recipes/{recipe_id}", "restored")
