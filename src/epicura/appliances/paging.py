"""Cursors of the module's lists: the (time, id) of the last item of a page."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from epicura.kit.pagination import decode_time_id, encode_time_id

RowT = TypeVar("RowT")


def after(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    return decode_time_id(cursor)


def next_cursor(rows: Sequence[RowT], limit: int,
                key: Callable[[RowT], tuple[datetime | None, uuid.UUID]]) -> str | None:
    """A cursor when there is more than a page (`rows` was asked for `limit + 1`)."""
    if len(rows) <= limit:
        return None
    moment, last_id = key(rows[limit - 1])
    if moment is None:
        return None
    return encode_time_id(moment, last_id)
