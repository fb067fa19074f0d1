"""In-process caches of the hottest reads, kept correct across instances.

- `HeadCache`: a recipe's rendered reply by id. Any change to a recipe is announced on the event
  bus after its transaction commits; every instance drops the entry. A read that raced with a
  change does not store its (possibly stale) result: each key carries an invalidation counter read
  before the database query and compared before storing. Entries also expire after `ttl_s`, and
  the whole cache is dropped when the bus reconnects (messages may have been missed).
- `PageCache`: anonymous list pages by query string, dropped on any recipe change.

Version contents are immutable and cached separately (`render.VersionCache`).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from epicura.kit.runtime import Runtime, after_commit

CHANNEL = "recipes.changed"


@dataclass(frozen=True)
class HeadEntry:
    head: dict[str, Any]
    content: bytes
    etag: str
    public: bool
    owner_id: uuid.UUID
    status: str
    expires_at: float
    anonymous_body: bytes  # the reply without a favourite flag, rendered once per entry


class HeadCache:
    def __init__(self, capacity: int = 50_000, ttl_s: float = 60.0) -> None:
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._entries: OrderedDict[uuid.UUID, HeadEntry] = OrderedDict()
        self._invalidations: dict[uuid.UUID, int] = {}
        self._epoch = 0  # bumped by clear(): invalidates every read in flight

    def token(self, recipe_id: uuid.UUID) -> tuple[int, int]:
        return self._epoch, self._invalidations.get(recipe_id, 0)

    def get(self, recipe_id: uuid.UUID) -> HeadEntry | None:
        entry = self._entries.get(recipe_id)
        if entry is None:
            return None
        if entry.expires_at < time.monotonic():
            self._entries.pop(recipe_id, None)
            return None
        return entry

    def store(self, recipe_id: uuid.UUID, token: tuple[int, int], entry: HeadEntry) -> None:
        if token != self.token(recipe_id) or self.capacity == 0:
            return  # changed while we were reading: do not keep what we read
        self._entries[recipe_id] = entry
        self._entries.move_to_end(recipe_id)
        if len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def invalidate(self, recipe_id: uuid.UUID) -> None:
        self._invalidations[recipe_id] = self._invalidations.get(recipe_id, 0) + 1
        self._entries.pop(recipe_id, None)
        if len(self._invalidations) > 4 * self.capacity:
            self.clear()

    def clear(self) -> None:
        self._epoch += 1
        self._entries.clear()
        self._invalidations.clear()


class PageCache:
    def __init__(self, capacity: int = 2_000, ttl_s: float = 15.0) -> None:
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._pages: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.generation = 0

    def get(self, key: str) -> bytes | None:
        found = self._pages.get(key)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def store(self, key: str, generation: int, body: bytes) -> None:
        if generation != self.generation or self.capacity == 0:
            return
        self._pages[key] = (time.monotonic() + self.ttl_s, body)
        self._pages.move_to_end(key)
        if len(self._pages) > self.capacity:
            self._pages.popitem(last=False)

    def clear(self) -> None:
        self.generation += 1
        self._pages.clear()


@dataclass
class RecipeCaches:
    heads: HeadCache
    pages: PageCache

    def on_change(self, payload: dict[str, Any]) -> None:
        raw = payload.get("id")
        if raw is None:
            self.heads.clear()
        else:
            self.heads.invalidate(uuid.UUID(str(raw)))
        self.pages.clear()

    def reset(self) -> None:
        self.heads.clear()
        self.pages.clear()


def caches(rt: Runtime) -> RecipeCaches:
    found: RecipeCaches | None = rt.extras.get("recipe_caches")
    if found is None:
        enabled = rt.settings.recipe_cache_enabled
        found = RecipeCaches(
            HeadCache(capacity=50_000 if enabled else 0),
            PageCache(capacity=2_000 if enabled else 0),
        )
        rt.extras["recipe_caches"] = found
        rt.bus.subscribe(CHANNEL, found.on_change)
        rt.bus.on_reset(found.reset)
    return found


def changed(rt: Runtime, session: AsyncSession, recipe_id: uuid.UUID | None) -> None:
    """Announce, once the transaction commits, that a recipe (or, with None, any) changed."""

    async def announce() -> None:
        payload = {} if recipe_id is None else {"id": str(recipe_id)}
        caches(rt).on_change(payload)  # this instance at once, the others through the bus
        await rt.bus.publish(CHANNEL, payload)

    after_commit(session, announce)
