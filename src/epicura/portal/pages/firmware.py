"""Firmware releases (list, detail, the streamed upload, yanking) and rollouts (list, the create
form, a detail whose per-stage progress refreshes itself, and the state buttons), all through
the OTA module's service, with the same checks and audit records as its admin API."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from epicura.kit.errors import ProblemError
from epicura.kit.pagination import decode_time_id, encode_time_id
from epicura.kit.runtime import ClientIp, DbSession, RuntimeDep
from epicura.ota import service as ota_service
from epicura.ota.schemas import ReleaseUpdate, RolloutCreate, RolloutState
from epicura.portal.access import CurrentPortal
from epicura.portal.pages.common import PAGE_SIZE, back, kept, notice
from epicura.portal.web import render

router = APIRouter()
STAGE_ROWS = 5  # rows of the create form's stage table (empty ones are skipped)
POLL_S = 3  # the rollout detail's progress refresh
Action = Literal["start", "pause", "resume", "advance", "abort"]
ACTIONS: dict[str, tuple[Action, ...]] = {
    "draft": ("start", "abort"), "active": ("pause", "advance", "abort"),
    "paused": ("resume", "advance", "abort"), "halted": ("resume", "advance", "abort"),
    "completed": (), "aborted": ()}
Cursor = Annotated[str | None, Query(max_length=500)]


# --- releases  -----------------------------------------------------------------------------------

async def _releases_page(request: Request, session: DbSession, *, status: str = "",
                         cursor: str | None = None, done: str | None = None,
                         upload_error: ProblemError | None = None) -> HTMLResponse:
    rows = await ota_service.list_releases(session, decode_time_id(cursor), PAGE_SIZE + 1,
                                           status or None)
    last = rows[PAGE_SIZE - 1] if len(rows) > PAGE_SIZE else None
    return render(request, "firmware.html", {
        "releases": [ota_service.release_view(row) for row in rows[:PAGE_SIZE]],
        "status": status, "query": kept(status=status), "notice": notice(done),
        "upload_error": upload_error,
        "next_cursor": encode_time_id(last.created_at, last.id) if last else None},
        status=upload_error.status if upload_error else 200)


@router.get("/firmware", include_in_schema=False)
async def releases(request: Request, portal: CurrentPortal, session: DbSession,
                   status: Literal["draft", "ready", "yanked", ""] = "",
                   cursor: Cursor = None, done: str | None = None) -> HTMLResponse:
    return await _releases_page(request, session, status=status, cursor=cursor, done=done)


@router.post("/firmware", include_in_schema=False)
async def upload(request: Request, portal: CurrentPortal, rt: RuntimeDep, session: DbSession,
                 ip: ClientIp) -> Response:
    """The OTA module's streamed upload, straight from the request body (never buffered: the
    CSRF token of a multipart form travels in the header or the query, not in the body). A
    refused upload comes back as the page with the reason (the refusal is audited)."""
    try:
        release = await ota_service.upload_release(rt, session, portal.admin, request.stream(),
                                                   request.headers.get("content-type", ""), ip)
    except ProblemError as exc:
        return await _releases_page(request, session, upload_error=exc)
    return back(f"/firmware/{release.id}", "uploaded")


@router.get("/firmware/{release_id}", include_in_schema=False)
async def release(request: Request, release_id: uuid.UUID, portal: CurrentPortal,
                  session: DbSession, done: str | None = None) -> HTMLResponse:
    found = await ota_service.release_or_404(session, release_id)
    return render(request, "firmware_release.html", {
        "r": ota_service.release_view(found), "notice": notice(done)})


@router.post("/firmware/{release_id}/yank", include_in_schema=False)
async def yank(release_id: uuid.UUID, portal: CurrentPortal, rt: RuntimeDep,
               session: DbSession, ip: ClientIp) -> RedirectResponse:
    """As `PATCH /admin/firmware/{id}` with `status: yanked` (its open rollouts are aborted)."""
    found = await ota_service.release_or_404(session, release_id, lock=True)
    await ota_service.update_release(rt, session, portal.admin, found,
                                     ReleaseUpdate(status="yanked"), ip)
    return back(f"/firmware/{release_id}", "yanked")


# --- rollouts  -----------------------------------------------------------------------------------

def _listed(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _stages(form: FormData) -> list[dict[str, str]]:
    rows = []
    for i in range(STAGE_ROWS):
        row = {k: str(form.get(f"stages-{i}-{k}", "")).strip()
               for k in ("percent", "soak_s", "success_threshold", "failure_threshold")}
        if any(row.values()):
            rows.append(row)
    return rows


def _blank_form() -> dict[str, object]:
    return {"release_id": "", "channel": "stable", "hw_revisions": "", "tags": "",
            "stages": [{"percent": "10", "soak_s": "3600", "success_threshold": "0.95",
                        "failure_threshold": "0.05"},
                       {"percent": "100", "soak_s": "0", "success_threshold": "0.95",
                        "failure_threshold": "0.05"}]}


async def _rollouts_page(request: Request, session: DbSession, *, state: str = "",
                         cursor: str | None = None, done: str | None = None,
                         form: dict[str, object] | None = None,
                         problems: list[str] | None = None, status: int = 200) -> HTMLResponse:
    rows = await ota_service.list_rollouts(session, decode_time_id(cursor), PAGE_SIZE + 1,
                                           state or None)
    last = rows[PAGE_SIZE - 1] if len(rows) > PAGE_SIZE else None
    ready = await ota_service.list_releases(session, None, 100, "ready")
    form = form or _blank_form()
    stages = list(form["stages"])  # type: ignore[call-overload]
    stages += [{} for _ in range(STAGE_ROWS - len(stages))]
    return render(request, "rollouts.html", {
        "rollouts": [await ota_service.rollout_view(session, row) for row in rows[:PAGE_SIZE]],
        "state": state, "query": kept(state=state), "notice": notice(done),
        "releases": [ota_service.release_view(row) for row in ready],
        "form": {**form, "stages": stages}, "problems": problems or [],
        "next_cursor": encode_time_id(last.created_at, last.id) if last else None},
        status=status)


@router.get("/rollouts", include_in_schema=False)
async def rollouts(request: Request, portal: CurrentPortal, session: DbSession,
                   state: RolloutState | Literal[""] = "", cursor: Cursor = None,
                   done: str | None = None, release: uuid.UUID | None = None) -> HTMLResponse:
    form = {**_blank_form(), "release_id": str(release)} if release else None
    return await _rollouts_page(request, session, state=state, cursor=cursor, done=done,
                                form=form)


@router.post("/rollouts", include_in_schema=False)
async def create(request: Request, portal: CurrentPortal, session: DbSession,
                 ip: ClientIp) -> Response:
    """A draft rollout from the form; a refused one comes back as submitted, with the reasons."""
    form = await request.form()
    submitted: dict[str, object] = {
        k: str(form.get(k, "")).strip() for k in ("release_id", "channel", "hw_revisions",
                                                  "tags")}
    submitted["stages"] = _stages(form)
    try:
        body = RolloutCreate.model_validate({
            "release_id": submitted["release_id"],
            "filter": {"channel": submitted["channel"],
                       "hw_revisions": _listed(str(submitted["hw_revisions"])),
                       "tags": _listed(str(submitted["tags"]))},
            "stages": submitted["stages"]})
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return await _rollouts_page(request, session, form=submitted, problems=problems,
                                    status=422)
    try:
        rollout = await ota_service.create_rollout(session, portal.admin, body, ip)
    except ProblemError as exc:
        problems = [exc.title] + ([exc.detail] if exc.detail and exc.detail != exc.title
                                  else [])
        return await _rollouts_page(request, session, form=submitted, problems=problems,
                                    status=exc.status)
    return back(f"/rollouts/{rollout.id}", "rollout_created")


async def _detail(request: Request, session: DbSession, rollout_id: uuid.UUID,
                  template: str, done: str | None = None) -> HTMLResponse:
    view = await ota_service.rollout_view(
        session, await ota_service.rollout_or_404(session, rollout_id))
    return render(request, template, {"ro": view, "actions": ACTIONS[view.state],
                                      "poll_s": POLL_S, "notice": notice(done)})


@router.get("/rollouts/{rollout_id}", include_in_schema=False)
async def rollout(request: Request, rollout_id: uuid.UUID, portal: CurrentPortal,
                  session: DbSession, done: str | None = None) -> HTMLResponse:
    return await _detail(request, session, rollout_id, "rollout.html", done)


@router.get("/rollouts/{rollout_id}/progress", include_in_schema=False)
async def progress(request: Request, rollout_id: uuid.UUID, portal: CurrentPortal,
                   session: DbSession) -> HTMLResponse:
    """The per-stage progress alone: what the detail page polls every few seconds."""
    return await _detail(request, session, rollout_id, "_rollout_progress.html")


@router.post("/rollouts/{rollout_id}/{action}", include_in_schema=False)
async def act(rollout_id: uuid.UUID, action: Action, portal: CurrentPortal, rt: RuntimeDep,
              session: DbSession, ip: ClientIp) -> RedirectResponse:
    """As `POST /admin/rollouts/{id}/{action}` (same transitions, checks and audit records)."""
    await ota_service.rollout_action(rt, session, portal.admin, rollout_id, action, ip)
    return back(f"/rollouts/{rollout_id}", action)
