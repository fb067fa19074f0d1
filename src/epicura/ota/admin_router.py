"""`/admin/firmware*` and `/admin/rollouts*` (admin role only; 403 for others)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from epicura.auth.access import CurrentAdmin, NotAuthenticated, current_admin
from epicura.auth.router import json_only
from epicura.kit.errors import (
    BodyTooLarge,
    Forbidden,
    PreconditionFailed,
    UnsupportedMediaType,
    ValidationFailed,
    responses,
)
from epicura.kit.etag import check_if_match, not_modified
from epicura.kit.pagination import InvalidCursor, Page, decode_time_id, encode_time_id
from epicura.kit.runtime import ClientIp, DbSession, RuntimeDep
from epicura.ota import releases, rollouts, views
from epicura.ota.schemas import ReleaseOut, ReleaseUpdate, RolloutCreate, RolloutOut, RolloutState

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(current_admin)])
ADMIN_ERRORS = (NotAuthenticated, Forbidden)
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified (`If-None-Match`)"}}
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": ["manifest", "signature", "binary"],
            "properties": {
                "manifest": {"type": "string", "format": "binary",
                             "description": "The release manifest (JSON), as signed"},
                "signature": {"type": "string", "format": "binary",
                              "description": "Detached Ed25519 signature of the manifest's "
                                             "bytes: base64 text or the raw 64 bytes"},
                "binary": {"type": "string", "format": "binary",
                           "description": "The firmware image; send it last"},
            },
        }}},
    },
}
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=500)]


def _json(body: ReleaseOut | RolloutOut, etag: str, status_code: int = 200) -> JSONResponse:
    return JSONResponse(body.model_dump(mode="json"), status_code=status_code,
                        headers={"ETag": etag})


# --- releases  -----------------------------------------------------------------------------------

@router.post("/firmware", status_code=201, response_model=ReleaseOut,
             responses=responses(*ADMIN_ERRORS, *releases.UPLOAD_ERRORS, ValidationFailed,
                                 UnsupportedMediaType, BodyTooLarge),
             openapi_extra=UPLOAD_BODY)
async def upload_release(request: Request, admin: CurrentAdmin, rt: RuntimeDep,
                         session: DbSession, ip: ClientIp) -> JSONResponse:
    """Upload a release: `manifest`, `signature` and `binary` parts (send the binary last).
    The binary streams to storage while it is hashed; the release is `ready` once its size,
    SHA-256 and the manifest's signature by a trusted release key check out, else 422 naming
    what failed (`manifest_invalid`, `unknown_key`, `signature_invalid`, `size_mismatch`,
    `hash_mismatch`). A version is uploaded once (409 `release_exists`)."""
    release = await releases.upload_release(rt, session, admin, request.stream(),
                                            request.headers.get("content-type", ""), ip)
    return _json(views.release_view(release), views.release_etag(release), 201)


@router.get("/firmware", response_model=Page[ReleaseOut],
            responses=responses(*ADMIN_ERRORS, InvalidCursor))
async def list_releases(session: DbSession, limit: Limit = 20, cursor: Cursor = None,
                        status: Literal["draft", "ready", "yanked"] | None = None,
                        ) -> Page[ReleaseOut]:
    """Releases, newest first."""
    rows = await releases.list_releases(session, decode_time_id(cursor), limit + 1, status)
    more = len(rows) > limit
    return Page[ReleaseOut](
        items=[views.release_view(row) for row in rows[:limit]],
        next_cursor=encode_time_id(rows[limit - 1].created_at, rows[limit - 1].id)
        if more else None)


@router.get("/firmware/{release_id}", response_model=ReleaseOut,
            responses={**responses(*ADMIN_ERRORS, releases.ReleaseNotFound), **NOT_MODIFIED})
async def get_release(release_id: uuid.UUID, session: DbSession, request: Request) -> Response:
    release = await releases.get_or_404(session, release_id)
    etag = views.release_etag(release)
    if not_modified(request, etag):
        return Response(status_code=304, headers={"ETag": etag})
    return _json(views.release_view(release), etag)


@router.patch("/firmware/{release_id}", response_model=ReleaseOut,
              dependencies=[Depends(json_only)],
              responses=responses(*ADMIN_ERRORS, releases.ReleaseNotFound, ValidationFailed,
                                  PreconditionFailed))
async def update_release(release_id: uuid.UUID, body: ReleaseUpdate, request: Request,
                         admin: CurrentAdmin, rt: RuntimeDep, session: DbSession,
                         ip: ClientIp) -> JSONResponse:
    """`notes`, or `status: yanked` (never offered again; its open rollouts are aborted).
    Takes `If-Match`."""
    release = await releases.get_or_404(session, release_id, lock=True)
    check_if_match(request, views.release_etag(release), required=False)
    release = await releases.update_release(rt, session, admin, release, body, ip)
    return _json(views.release_view(release), views.release_etag(release))


# --- rollouts  -----------------------------------------------------------------------------------

@router.post("/rollouts", status_code=201, response_model=RolloutOut,
             dependencies=[Depends(json_only)],
             responses=responses(*ADMIN_ERRORS, rollouts.ReleaseNotReady,
                                 rollouts.FilterOutsideRelease, rollouts.VersionBelowFleet,
                                 rollouts.RolloutExists, ValidationFailed))
async def create_rollout(body: RolloutCreate, admin: CurrentAdmin, session: DbSession,
                         ip: ClientIp) -> JSONResponse:
    """A rollout in `draft`: the release, a filter (channel, hardware revisions, tags every
    device must carry) and growing stages `{percent, soak_s, success_threshold,
    failure_threshold, failure_max_devices?}` (thresholds are shares 0–1 of the stage's
    devices). 422 `version_below_fleet` when the release is below a version already rolled out
    to that channel and hardware, or when every appliance of the filter runs it or newer."""
    rollout = await rollouts.create(session, admin, body, ip)
    view = await views.rollout_view(session, rollout)
    return _json(view, views.rollout_etag(view), 201)


@router.get("/rollouts", response_model=Page[RolloutOut],
            responses=responses(*ADMIN_ERRORS, InvalidCursor))
async def list_rollouts(session: DbSession, limit: Limit = 20, cursor: Cursor = None,
                        state: RolloutState | None = None) -> Page[RolloutOut]:
    """Rollouts, newest first, each with its per-stage counts."""
    rows = await rollouts.list_rollouts(session, decode_time_id(cursor), limit + 1, state)
    more = len(rows) > limit
    return Page[RolloutOut](
        items=[await views.rollout_view(session, row) for row in rows[:limit]],
        next_cursor=encode_time_id(rows[limit - 1].created_at, rows[limit - 1].id)
        if more else None)


@router.get("/rollouts/{rollout_id}", response_model=RolloutOut,
            responses={**responses(*ADMIN_ERRORS, rollouts.RolloutNotFound), **NOT_MODIFIED})
async def get_rollout(rollout_id: uuid.UUID, session: DbSession, request: Request) -> Response:
    """The rollout with, per stage, its devices by latest outcome."""
    view = await views.rollout_view(session, await rollouts.get_or_404(session, rollout_id))
    etag = views.rollout_etag(view)
    if not_modified(request, etag):
        return Response(status_code=304, headers={"ETag": etag})
    return _json(view, etag)


@router.post("/rollouts/{rollout_id}/{action}", response_model=RolloutOut,
             responses=responses(*ADMIN_ERRORS, rollouts.RolloutNotFound,
                                 rollouts.InvalidTransition, rollouts.ReleaseNotReady,
                                 rollouts.VersionBelowFleet))
async def rollout_action(rollout_id: uuid.UUID,
                         action: Literal["start", "pause", "resume", "advance", "abort"],
                         admin: CurrentAdmin, rt: RuntimeDep, session: DbSession,
                         ip: ClientIp) -> JSONResponse:
    """`start` (draft → active, stage 1 opens), `pause`, `resume` (paused or halted → active;
    the stage's soak starts again), `advance` (the next stage opens now, or the rollout
    completes after its last) and `abort`. 409 `invalid_transition` otherwise; `start` checks
    again for a downgrade (422 `version_below_fleet`)."""
    rollout = await rollouts.act(rt, session, admin, rollout_id, action, ip)
    view = await views.rollout_view(session, rollout)
    return _json(view, views.rollout_etag(view))
