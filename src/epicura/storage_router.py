"""`GET /files/{key}`: the local store's objects, served only through URLs this service signed.

Used on the embedded default (no S3): the URL carries its expiry and an HMAC of (key, expiry), so
it can be handed to any client, cached by it, and stops working at `exp`. With S3 configured,
clients get presigned S3 URLs instead and this route answers 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from epicura.kit import clock
from epicura.kit.errors import Forbidden, NotFound, responses
from epicura.kit.runtime import RuntimeDep
from epicura.kit.storage import FILES_PATH, LocalStorage, ObjectMissingError, storage_of, valid_key

router = APIRouter(tags=["files"])


class BadSignature(Forbidden):
    code = "invalid_signature"
    title = "The link is invalid or has expired"


@router.get(
    f"{FILES_PATH}/{{key:path}}",
    response_class=StreamingResponse,
    responses={
        **responses(BadSignature, NotFound),
        200: {"description": "The stored object", "content": {"image/webp": {},
                                                              "application/octet-stream": {}}},
    },
)
async def signed_file(
    key: str,
    rt: RuntimeDep,
    exp: Annotated[int, Query(ge=0, le=2**40, description="Expiry, Unix seconds")],
    sig: Annotated[str, Query(min_length=1, max_length=100, description="HMAC of key and exp")],
) -> StreamingResponse:
    """A stored file, if the URL's signature is valid and not expired (403 otherwise)."""
    storage = storage_of(rt)
    if not isinstance(storage, LocalStorage):
        raise NotFound()
    if not storage.signer.verify(key, exp, sig):
        raise BadSignature()
    if not valid_key(key):  # only reachable with a signature over a bad key: refused all the same
        raise NotFound()
    try:
        found = await storage.open(key)
    except ObjectMissingError as exc:
        raise NotFound() from exc
    remaining = max(0, exp - int(clock.utcnow().timestamp()))
    headers = {
        "Content-Length": str(found.size),
        "Cache-Control": f"private, max-age={remaining}, immutable",
    }
    return StreamingResponse(found.chunks, media_type=found.content_type, headers=headers)
