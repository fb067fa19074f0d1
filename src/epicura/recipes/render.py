"""Turning recipes into response bytes, with immutable versions cached in this process.

A version never changes, so its JSON is cached by (recipe id, version) and never needs
invalidating: a new version is a new key, and the recipe's head row (which names the current
version and holds the counters) is read fresh on every request. That keeps every instance
correct without any cross-instance messages.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson

from epicura.kit.pagination import encode_cursor
from epicura.kit.runtime import Runtime
from epicura.recipes.models import Recipe

ImageUrl = Callable[[uuid.UUID | None], str | None]
HEAD_FIELDS = (
    "visibility",
    "is_official",
    "status",
    "current_version",
    "rating_avg",
    "rating_count",
    "cooked_count",
    "favorite_count",
)


class VersionCache:
    """A bounded LRU of rendered version contents."""

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[uuid.UUID, int], bytes] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, recipe_id: uuid.UUID, version: int) -> bytes | None:
        key = (recipe_id, version)
        found = self._items.get(key)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return found

    def put(self, recipe_id: uuid.UUID, version: int, content: dict[str, Any]) -> bytes:
        rendered = orjson.dumps(content, default=str)
        if self.capacity == 0:
            return rendered
        self._items[(recipe_id, version)] = rendered
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return rendered


def head_dict(recipe: Recipe) -> dict[str, Any]:
    head = {name: getattr(recipe, name) for name in HEAD_FIELDS}
    head.update(
        id=recipe.id,
        owner_id=recipe.owner_id,
        created_at=recipe.created_at,
        updated_at=recipe.updated_at,
    )
    return head


def recipe_body(head: dict[str, Any], content: bytes, is_favorite: bool | None) -> bytes:
    """The recipe JSON: its head fields and the current version's cached content, spliced."""
    fields = dict(head, is_favorite=is_favorite)
    prefix = orjson.dumps(fields, default=str)
    return prefix[:-1] + b',"content":' + content + b"}"


def summaries_body(
    items: list[dict[str, Any]], next_cursor: str | None, image_url: ImageUrl
) -> bytes:
    for item in items:
        item["image_url"] = image_url(item.pop("cover_image_id"))
    return orjson.dumps({"items": items, "next_cursor": next_cursor}, default=str)


def image_url_of(rt: Runtime) -> ImageUrl:
    resolver: ImageUrl | None = rt.extras.get("recipe_image_url")
    return resolver or (lambda _image_id: None)


def next_cursor_of(sort: str, key: Any, last_id: Any) -> str:
    return encode_cursor(
        {"s": sort, "k": key.isoformat() if isinstance(key, datetime) else key, "i": str(last_id)}
    )


def summaries_from_json(
    rows: Sequence[Any], limit: int, sort: str, image_url: ImageUrl
) -> bytes:
    """The page from rows of (item JSON built by PostgreSQL without `image_url`, cover image id,
    sort key, id): the same document `summaries_body` writes, joined rather than re-encoded."""
    items = []
    for item, cover_image_id, _key, _id in rows[:limit]:
        url = image_url(cover_image_id) if cover_image_id is not None else None
        items.append(f'{item[:-1]},"image_url":{orjson.dumps(url).decode()}}}')
    next_cursor = None
    if len(rows) > limit:
        _item, _cover, key, last_id = rows[limit - 1]
        next_cursor = next_cursor_of(sort, key, last_id)
    cursor_json = orjson.dumps(next_cursor).decode()
    return f'{{"items":[{",".join(items)}],"next_cursor":{cursor_json}}}'.encode()
