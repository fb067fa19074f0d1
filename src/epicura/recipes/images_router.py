"""HTTP layer of `/recipes/{id}/images`: multipart upload and deletion, by the recipe's editor."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from epicura.auth.access import CurrentPrincipal, CurrentUser, NotAuthenticated, current_user
from epicura.kit.errors import (
    DependencyUnavailable,
    ErrorItem,
    Forbidden,
    NotFound,
    UnsupportedMediaType,
    ValidationFailed,
    responses,
)
from epicura.kit.runtime import DbSession, RuntimeDep
from epicura.recipes import images, service

router = APIRouter(tags=["recipes"])
FILE_FIELD = "file"
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {
                        FILE_FIELD: {
                            "type": "string",
                            "format": "binary",
                            "description": "A JPEG, PNG or WebP image of at most 10 MiB",
                        },
                    },
                },
            },
        },
    },
}


class ImageOut(BaseModel):
    id: uuid.UUID
    url: str = Field(description="The largest rendition; the URL expires (1–2 h)")
    width: int
    height: int
    renditions: dict[str, str] = Field(description="URL of each rendition by nominal width")


async def read_upload(request: Request) -> bytes:
    """The bytes of the `file` part, read with a hard cap (413 beyond 10 MiB)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "multipart/form-data":
        raise UnsupportedMediaType("Send multipart/form-data with a `file` part")
    form = await request.form(max_files=1, max_fields=4)
    try:
        part = form.get(FILE_FIELD)
        if not isinstance(part, UploadFile):
            raise ValidationFailed(
                errors=[
                    ErrorItem(
                        loc=["body", FILE_FIELD],
                        msg="A file part named `file` is required",
                        type="missing",
                    )
                ]
            )
        data = await part.read(images.MAX_IMAGE_BYTES + 1)
    finally:
        await form.close()
    if len(data) > images.MAX_IMAGE_BYTES:
        raise images.ImageTooLarge()
    return data


@router.post(
    "/recipes/{recipe_id}/images",
    status_code=201,
    response_model=ImageOut,
    openapi_extra=UPLOAD_BODY,
    responses=responses(
        NotAuthenticated,
        Forbidden,
        NotFound,
        images.ImageTooLarge,
        UnsupportedMediaType,
        images.InvalidImage,
        images.TooManyImages,
        service.RecipeArchived,
        DependencyUnavailable,
    ),
)
async def upload_image(
    recipe_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    rt: RuntimeDep,
    session: DbSession,
) -> JSONResponse:
    """Add an image to the recipe (owner or admin). Checked by content (JPEG, PNG, WebP),
    cleaned of metadata and stored as WebP renditions; list its `id` in a version's `images`."""
    # The token is checked first (no database), the body read next, and only then is a database
    # connection taken: a slow upload never holds a connection or the recipe's row lock.
    data = await read_upload(request)
    user = await current_user(principal, session)
    recipe = await service.editable(session, recipe_id, user)
    body = await images.upload(rt, session, recipe, user, data)
    return JSONResponse(body, status_code=201)


@router.delete(
    "/recipes/{recipe_id}/images/{image_id}",
    status_code=204,
    responses=responses(NotAuthenticated, Forbidden, NotFound),
)
async def delete_image(
    recipe_id: uuid.UUID, image_id: uuid.UUID, user: CurrentUser, rt: RuntimeDep, session: DbSession
) -> Response:
    """Delete an image (owner or admin); its stored files are removed shortly after."""
    recipe = await service.editable(session, recipe_id, user)
    await images.delete(rt, session, recipe, user, image_id)
    return Response(status_code=204)
