"""The recipe editor's form: the submitted fields turned into a new version's content, and the
validation messages placed at the step (or the field) they are about."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from epicura.kit.errors import ErrorItem
from epicura.recipes.schemas import ACTIONS, RecipeUpdate

TOP_FIELDS = ("title", "description", "servings", "prep_minutes", "difficulty")
MAX_FORM_STEPS = 120


@dataclass
class Problems:
    """Messages for the whole form and per step index."""

    general: list[str] = field(default_factory=list)
    steps: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))

    def __bool__(self) -> bool:
        return bool(self.general or self.steps)


@dataclass
class Submitted:
    content: dict[str, Any]  # what to show again in the form
    visibility: str | None
    summary: str | None
    version: int | None
    problems: Problems


def step_rows(content: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps as the form shows them: params as JSON text."""
    return [{**step, "params_json": json.dumps(step.get("params", {}), ensure_ascii=False)}
            for step in content.get("steps", [])]


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def parse(form: FormData, current: dict[str, Any]) -> Submitted:
    """The form over the current content: top fields and steps replaced, everything else
    (ingredients, images, requirements, ...) kept."""
    problems = Problems()
    content = dict(current)
    for name in TOP_FIELDS:
        content[name] = _text(form, name)
    content["tags"] = [t.strip() for t in _text(form, "tags").split(",") if t.strip()]
    steps: list[dict[str, Any]] = []
    count_text = _text(form, "step_count")
    count = min(int(count_text), MAX_FORM_STEPS) if count_text.isdigit() else 0
    for index in range(count + 1):  # the last one is the blank "new step"
        prefix = f"step-{index}-"
        title = _text(form, prefix + "title").strip()
        if _text(form, prefix + "remove") or (index == count and not title):
            continue
        step: dict[str, Any] = {"title": title,
                                "action": _text(form, prefix + "action"),
                                "instruction": _text(form, prefix + "instruction"),
                                "start": _text(form, prefix + "start") or "immediate"}
        params_text = _text(form, prefix + "params").strip() or "{}"
        try:
            step["params"] = json.loads(params_text)
            keys = json.loads(_text(form, prefix + "ingredient_keys") or "[]")
            step["ingredient_keys"] = keys if isinstance(keys, list) else []
        except json.JSONDecodeError:
            step["params"] = {}
            problems.steps[len(steps)].append("params: not valid JSON")
        step["params_json"] = params_text
        steps.append(step)
    content["steps"] = steps
    version_text = _text(form, "version")
    return Submitted(content=content, visibility=_text(form, "visibility") or None,
                     summary=_text(form, "summary").strip() or None,
                     version=int(version_text) if version_text.isdigit() else None,
                     problems=problems)


def validated(submitted: Submitted) -> RecipeUpdate | None:
    """The update to save, or None with the problems filled in."""
    body = {**submitted.content,
            "steps": [{k: v for k, v in s.items() if k != "params_json"}
                      for s in submitted.content["steps"]],
            "visibility": submitted.visibility, "summary": submitted.summary}
    if submitted.problems:
        return None
    try:
        return RecipeUpdate.model_validate(body)
    except ValidationError as exc:
        for error in exc.errors():
            place(submitted.problems, [*error["loc"]], error["msg"])
        return None


def place(problems: Problems, loc: list[Any], message: str) -> None:
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        rest = [str(part) for part in loc[2:] if str(part) not in ACTIONS]
        problems.steps[loc[1]].append(f"{'.'.join(rest) or 'step'}: {message}")
    else:
        problems.general.append(f"{'.'.join(str(p) for p in loc) or 'recipe'}: {message}")


def place_items(problems: Problems, items: list[ErrorItem], fallback: str) -> None:
    """A service's refusal (a step outside the capability profiles) at the steps it names."""
    for item in items:
        if item.step is not None:
            bound = f" (limit {item.limit}, got {item.value})" if item.limit is not None else ""
            problems.steps[item.step].append(f"{item.field or 'step'}: {item.msg}{bound}")
        else:
            place(problems, list(item.loc), item.msg)
    if not items:
        problems.general.append(fallback)
