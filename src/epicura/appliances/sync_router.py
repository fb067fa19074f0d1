"""HTTP layer of device sync: `GET /device/sync`, `GET /device/signing-keys`, device pins."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from epicura.appliances import sync
from epicura.appliances.access import CurrentDevice, DeviceNotAuthenticated
from epicura.appliances.sync_schemas import SigningKeySet, SyncPage
from epicura.kit.errors import NotFound, RateLimited, responses
from epicura.kit.pagination import InvalidCursor
from epicura.kit.runtime import DbSession, RuntimeDep
from epicura.kit.signing import SigningKeyMissing, SigningKeyUnreadable

router = APIRouter(prefix="/device", tags=["device"])


@router.get(
    "/sync",
    response_model=SyncPage,
    responses=responses(DeviceNotAuthenticated, InvalidCursor, RateLimited, SigningKeyMissing,
                        SigningKeyUnreadable),
)
async def device_sync(
    appliance: CurrentDevice,
    rt: RuntimeDep,
    session: DbSession,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=sync.MAX_LIMIT)] = sync.DEFAULT_LIMIT,
) -> SyncPage:
    """What changed in this appliance's library (its owner's favourites, recipes sent to it,
    official recipes it pins) since `cursor`: the current version of each recipe as a signed
    bundle, and the ids of recipes to delete. Without a cursor: the whole library. Ask again
    with the returned `cursor` while `has_more`; a `down/sync` MQTT message says when to ask.

    Each bundle is canonical JSON (keys sorted, no whitespace) of `{content, format,
    recipe_id, version}`; `sha256` (hex) and `signature` (base64 Ed25519, by `key_id`) cover
    its UTF-8 bytes. Verify with the public keys of `GET /device/signing-keys`."""
    return await sync.changes(rt, session, appliance, cursor, limit)


@router.get("/signing-keys", response_model=SigningKeySet, responses=responses())
async def signing_keys(rt: RuntimeDep, session: DbSession, response: Response) -> SigningKeySet:
    """Public keys that sign recipe bundles (public: no secret here). `active` signs now,
    `pending` will, `retired` signed earlier bundles. Firmware should pin the keys of
    `epicura keys export-public` and accept a new key only when a key it trusts endorsed it."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return await sync.published_keys(rt, session)


@router.put(
    "/pins/{recipe_id}", status_code=204,
    responses=responses(DeviceNotAuthenticated, NotFound),
)
async def pin(
    recipe_id: uuid.UUID, appliance: CurrentDevice, session: DbSession
) -> Response:
    """Keep an official recipe in this appliance's library (404 for any other recipe)."""
    await sync.set_pin(session, appliance, recipe_id, True)
    return Response(status_code=204)


@router.delete(
    "/pins/{recipe_id}", status_code=204, responses=responses(DeviceNotAuthenticated),
)
async def unpin(
    recipe_id: uuid.UUID, appliance: CurrentDevice, session: DbSession
) -> Response:
    """Release a pin; the recipe leaves the library unless a favourite or a send keeps it."""
    await sync.set_pin(session, appliance, recipe_id, False)
    return Response(status_code=204)
