"""A recipe version as the appliance runs it: its steps, read leniently from the recipe content
(`domain.md`, "Step (the step program)"), and how much each step adds to the bowl."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Rough grams per unit, to put a plausible weight in the bowl when the cook adds ingredients.
GRAMS_PER_UNIT = {
    "g": 1.0, "kg": 1000.0, "mg": 0.001, "ml": 1.0, "l": 1000.0, "dl": 100.0, "cl": 10.0,
    "tsp": 5.0, "tbsp": 15.0, "cup": 240.0, "oz": 28.35, "lb": 453.6, "fl_oz": 29.6,
    "pint": 473.0, "quart": 946.0, "piece": 120.0, "pinch": 0.5, "clove": 5.0, "bunch": 40.0,
    "can": 400.0, "handful": 30.0, "sprig": 1.0, "leaf": 0.5,
}
ACTIONS = frozenset({"heat", "stir", "blend", "knead", "steam", "weigh", "await_user", "rest",
                     "manual"})
STEAM_DEFAULT_C = 100.0


@dataclass(frozen=True)
class SimStep:
    index: int
    action: str
    title: str
    start: str = "immediate"
    duration_s: float = 0.0
    temperature_c: float | None = None
    speed: float = 0.0
    direction: str = "forward"
    target_weight_g: float = 0.0
    prompt: str = ""
    adds_g: float = 0.0

    @property
    def waits_for_user(self) -> bool:
        return self.action in ("await_user", "manual")


@dataclass(frozen=True)
class Program:
    """What a session cooks: a recipe version (ids are None for a local program)."""

    title: str
    steps: tuple[SimStep, ...]
    recipe_id: str | None = None
    recipe_version: int | None = None
    servings: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def ingredient_grams(ingredient: dict[str, Any], scale: float) -> float:
    quantity = ingredient.get("quantity")
    if quantity is None:
        return 0.0
    try:
        amount = float(quantity)
    except (TypeError, ValueError):
        return 0.0
    return amount * GRAMS_PER_UNIT.get(str(ingredient.get("unit") or "piece"), 50.0) * scale


def _number(params: dict[str, Any], name: str, default: float = 0.0) -> float:
    value = params.get(name)
    return float(value) if isinstance(value, int | float) else default


def _step(index: int, raw: dict[str, Any], grams: dict[str, float]) -> SimStep:
    action = str(raw.get("action"))
    if action not in ACTIONS:
        raise ValueError(f"step {index}: unknown action {action!r}")
    params = raw.get("params") or {}
    temperature = params.get("temperature_c")
    if action == "steam" and temperature is None:
        temperature = STEAM_DEFAULT_C
    adds = sum(grams.get(key, 0.0) for key in raw.get("ingredient_keys") or [])
    return SimStep(
        index=index,
        action=action,
        title=str(raw.get("title") or action),
        start=str(raw.get("start") or "immediate"),
        duration_s=_number(params, "duration_s"),
        temperature_c=float(temperature) if isinstance(temperature, int | float) else None,
        speed=_number(params, "speed"),
        direction=str(params.get("direction") or "forward"),
        target_weight_g=_number(params, "target_weight_g"),
        prompt=str(params.get("prompt") or raw.get("instruction") or raw.get("title") or ""),
        adds_g=adds,
    )


def from_content(content: dict[str, Any], *, recipe_id: str | None = None,
                 recipe_version: int | None = None, servings: int | None = None) -> Program:
    """Build the program of a version's content; quantities scale with `servings`."""
    base_servings = int(content.get("servings") or 1)
    scale = (servings or base_servings) / base_servings
    grams = {str(i.get("key")): ingredient_grams(i, scale) for i in content.get("ingredients", [])}
    steps = tuple(_step(i, raw, grams) for i, raw in enumerate(content.get("steps") or []))
    if not steps:
        raise ValueError("a recipe without steps cannot be cooked")
    return Program(title=str(content.get("title") or "Recipe"), steps=steps, recipe_id=recipe_id,
                   recipe_version=recipe_version, servings=servings or base_servings)
