"""Entity tags: strong ETags from content, `If-None-Match` (304) and `If-Match` (412/428)."""

from __future__ import annotations

import hashlib

from starlette.requests import Request

from epicura.kit.errors import PreconditionFailed, PreconditionRequired


def make_etag(*parts: object) -> str:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:32]
    return f'"{digest}"'


def _listed(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def not_modified(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    return header is not None and (header.strip() == "*" or etag in _listed(header))


def check_if_match(request: Request, etag: str, *, required: bool) -> None:
    header = request.headers.get("if-match")
    if header is None:
        if required:
            raise PreconditionRequired()
        return
    if header.strip() != "*" and etag not in _listed(header):
        raise PreconditionFailed()
