"""The step program of a pinned recipe version, as the session mirror needs it: each step's
title, programmed duration and prompt. Versions are immutable, so programs are kept in memory."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from epicura.recipes import service as recipes_service

MAX_CACHED = 5_000
TITLE_MAX = 200


@dataclass(frozen=True)
class Step:
    title: str
    action: str
    duration_s: int
    prompt: str | None


@dataclass(frozen=True)
class Program:
    title: str
    steps: tuple[Step, ...]

    def step(self, index: int | None) -> Step | None:
        if index is None or not 0 <= index < len(self.steps):
            return None
        return self.steps[index]

    def seconds_after(self, index: int) -> int:
        """The programmed seconds of the steps after `index`."""
        return sum(step.duration_s for step in self.steps[max(0, index + 1):])

    @property
    def total_s(self) -> int:
        return sum(step.duration_s for step in self.steps)


def program_of(content: dict[str, Any]) -> Program:
    steps = []
    for raw in content.get("steps") or ():
        params = raw.get("params") or {}
        duration = params.get("duration_s")
        prompt = params.get("prompt")
        steps.append(Step(
            title=str(raw.get("title") or "")[:TITLE_MAX],
            action=str(raw.get("action") or ""),
            duration_s=int(duration) if isinstance(duration, int | float) else 0,
            prompt=str(prompt) if prompt else None,
        ))
    return Program(title=str(content.get("title") or "")[:TITLE_MAX], steps=tuple(steps))


_cache: dict[tuple[uuid.UUID, int], Program] = {}


async def load(db: AsyncSession, recipe_id: uuid.UUID, version: int) -> Program | None:
    key = (recipe_id, version)
    found = _cache.get(key)
    if found is not None:
        return found
    content = await recipes_service.pinned_content(db, recipe_id, version)
    if content is None:
        return None
    if len(_cache) >= MAX_CACHED:
        _cache.clear()
    _cache[key] = found = program_of(content)
    return found
