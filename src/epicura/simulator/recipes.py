"""Recipes the simulated cooks choose from: the service's published recipes, read once, and the
programs of the versions they cook (cached; a version never changes)."""

from __future__ import annotations

import random
from typing import Any

import structlog

from epicura.simulator.cloud import Cloud, CloudError
from epicura.simulator.program import Program, from_content

log = structlog.get_logger("epicura.simulator")


class RecipeBook:
    def __init__(self, cloud: Cloud, *, limit: int = 50) -> None:
        self.cloud = cloud
        self.limit = limit
        self.summaries: list[dict[str, Any]] = []
        self._programs: dict[tuple[str, int | None], Program] = {}
        self._loaded = False

    async def load(self) -> None:
        try:
            self.summaries = await self.cloud.published_recipes(self.limit)
        except (CloudError, OSError) as exc:
            log.warning("simulator.recipes_unavailable", error=str(exc))
        self._loaded = True
        if not self.summaries:
            log.warning("simulator.no_recipes", hint="seed some (`epicura seed --demo`); "
                        "appliances will not cook on their own")

    async def random_program(self, rng: random.Random) -> Program | None:
        if not self._loaded:
            await self.load()
        if not self.summaries:
            return None
        summary = rng.choice(self.summaries)
        return await self.program(str(summary["id"]), summary.get("current_version"))

    async def program(self, recipe_id: str, version: int | None, *,
                      servings: int | None = None, token: str | None = None,
                      content: dict[str, Any] | None = None) -> Program | None:
        """The program of a version: from `content` (a synced bundle) or read from the API."""
        key = (recipe_id, version)
        if servings is None and key in self._programs:
            return self._programs[key]
        if content is None:
            found = await self.cloud.recipe_version(recipe_id, version, token)
            if found is None:
                return None
            content, version = found["content"], found["version"]
        try:
            program = from_content(content, recipe_id=recipe_id, recipe_version=version,
                                   servings=servings)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("simulator.recipe_unusable", recipe_id=recipe_id, error=str(exc))
            return None
        if servings is None:
            self._programs[(recipe_id, version)] = program
        return program
