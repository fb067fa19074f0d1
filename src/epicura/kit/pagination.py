"""Opaque cursors and the `{items, next_cursor}` list shape."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel

from epicura.kit.errors import ProblemError


class InvalidCursor(ProblemError):
    status = 400
    code = "invalid_cursor"
    title = "The cursor is not valid"


ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    next_cursor: str | None = None


def encode_cursor(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if cursor is None or cursor == "":
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise InvalidCursor() from exc
    if not isinstance(position, dict):
        raise InvalidCursor()
    return position


def encode_time_id(moment: datetime, item_id: uuid.UUID) -> str:
    """The cursor of a list ordered by (time, id): the last item's pair."""
    return encode_cursor({"t": moment.isoformat(), "i": str(item_id)})


def decode_time_id(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    position = decode_cursor(cursor)
    if position is None:
        return None
    try:
        moment = datetime.fromisoformat(position["t"])
        if moment.tzinfo is None:
            raise ValueError("naive time in cursor")
        return moment, uuid.UUID(position["i"])
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidCursor() from exc
