"""HTTP layer of `GET /recipes/{id}/scaled`: a recipe's current version for a number of servings,
in the units asked for, checked against an appliance's bowl and scale when one is named."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from epicura.auth.access import NotAuthenticated, OptionalUser
from epicura.kit.errors import ErrorItem, NotFound, ProblemError, ValidationFailed, responses
from epicura.kit.runtime import DbSession, RuntimeDep
from epicura.recipes import scaling, service
from epicura.recipes.schemas import (
    Difficulty,
    Direction,
    Nutrition,
    Requires,
    Unit,
)

router = APIRouter(tags=["recipes"])
PROFILE_PATTERN = r"^[a-z0-9-]+/[a-z0-9-]+$"


class ExceedsCapacity(ProblemError):
    status = 422
    code = "exceeds_capacity"
    title = "The scaled recipe does not fit the appliance's bowl or scale"


class ScaledIngredient(BaseModel):
    key: str
    name: str
    quantity: Decimal | None = Field(
        description="Scaled and rounded for the kitchen (a decimal string); null: to taste"
    )
    unit: Unit | None = Field(description="The output unit (converted when `units` asks)")
    note: str | None = None
    optional: bool = False
    group: str | None = None


class ScaledParams(BaseModel):
    """The step's params as in its step program; `target_weight_g` is scaled, and in imperial
    output `temperature_f` accompanies every `temperature_c` (it is not stored)."""

    model_config = ConfigDict(extra="forbid")

    temperature_c: float | None = None
    temperature_f: float | None = None
    duration_s: int | None = None
    speed: float | None = None
    direction: Direction | None = None
    target_weight_g: float | None = None
    prompt: str | None = None


class ScaledStep(BaseModel):
    title: str
    instruction: str = ""
    ingredient_keys: list[str] = []
    start: Literal["immediate", "on_temperature", "on_user_confirm"] = "immediate"
    action: Literal[
        "heat", "stir", "blend", "knead", "steam", "weigh", "await_user", "rest", "manual"
    ]
    params: ScaledParams


class ScaledContent(BaseModel):
    """The version's content (as `VersionContent`) with scaled, rounded, converted amounts."""

    title: str
    description: str = ""
    language: str = "en"
    servings: int
    prep_minutes: int = 0
    total_minutes: int | None = None
    difficulty: Difficulty = "easy"
    cuisine: str | None = None
    category: str | None = None
    tags: list[str] = []
    accessories: list[str] = []
    ingredients: list[ScaledIngredient] = []
    steps: list[ScaledStep] = []
    nutrition: Nutrition | None = Field(default=None, description="Per serving: not scaled")
    images: list[uuid.UUID] = []
    requires: Requires = Requires()


class ScaledRecipe(BaseModel):
    id: uuid.UUID
    current_version: int = Field(description="The version that was scaled")
    servings: int
    units: Literal["metric", "imperial"] | None = Field(
        description="As asked; null keeps the units as written (metric ones normalised)"
    )
    scale_factor: float = Field(description="servings / the version's servings")
    profile: str | None = Field(
        description="The capability profile the amounts were checked against, if any"
    )
    content: ScaledContent


async def _appliance_profile(
    rt: RuntimeDep, session: DbSession, user: Any, appliance_id: uuid.UUID
) -> str:
    """The capability profile of the caller's appliance (as `_appliance_fit` in router.py)."""
    if user is None:
        raise NotAuthenticated()
    lookup = rt.extras.get("appliance_profile")
    if lookup is None:
        raise NotFound("No such appliance")
    found: tuple[str, str | None] = await lookup(session, user, appliance_id)
    return found[0]


def _invalid(field: str, message: str, value: Any = None) -> ValidationFailed:
    return ValidationFailed(
        message,
        errors=[
            ErrorItem(
                loc=["query", field], msg=message, type="value_error", field=field, value=value
            )
        ],
    )


@router.get(
    "/recipes/{recipe_id}/scaled",
    response_model=ScaledRecipe,
    responses=responses(NotAuthenticated, NotFound, ExceedsCapacity),
)
async def scaled_recipe(
    recipe_id: uuid.UUID,
    rt: RuntimeDep,
    session: DbSession,
    user: OptionalUser,
    servings: Annotated[
        int | None,
        Query(ge=1, le=100, description="Servings to scale to; the version's own when omitted"),
    ] = None,
    units: Annotated[
        Literal["metric", "imperial"] | None,
        Query(description="Convert amounts; omitted keeps the units as written"),
    ] = None,
    appliance_id: Annotated[
        uuid.UUID | None,
        Query(description="Check the amounts against this appliance's capability profile"),
    ] = None,
    profile: Annotated[
        str | None,
        Query(
            pattern=PROFILE_PATTERN,
            max_length=81,
            examples=["epicura-1/rev-a"],
            description="Check against a capability profile (`model/hw_revision`) directly; "
            "not together with `appliance_id`",
        ),
    ] = None,
) -> Response:
    """The current version for `servings`, rounded to kitchen precision per unit and converted
    metric ↔ imperial on request. With `appliance_id` or `profile`, a scale whose estimated bowl
    load or a weigh step exceeds the profile is refused: 422 `exceeds_capacity`, one `errors[]`
    entry per limit (`field` `bowl_capacity_ml` or `max_weight_g`, `value`, `limit`, `profile`)."""
    if appliance_id is not None and profile is not None:
        raise _invalid("profile", "give appliance_id or profile, not both", profile)
    recipe = await service.readable(session, recipe_id, user)
    checked: str | None = profile
    if appliance_id is not None:
        checked = await _appliance_profile(rt, session, user, appliance_id)
    row = await service.version_of(session, recipe, recipe.current_version)
    content, factor = scaling.scale_content(row.content, servings, units)
    if checked is not None:
        limits = (await service.profiles_by_key(session)).get(checked)
        if limits is None:
            if appliance_id is not None:
                raise NotFound("The appliance's capability profile is unknown")
            raise _invalid("profile", f"unknown capability profile {checked}", checked)
        violations = scaling.capacity_violations(row.content, factor, limits)
        if violations:
            raise ExceedsCapacity(
                f"{content['servings']} servings exceed {checked}", errors=violations
            )
    body = {
        "id": recipe.id,
        "current_version": recipe.current_version,
        "servings": content["servings"],
        "units": units,
        "scale_factor": round(float(factor), 4),
        "profile": checked,
        "content": content,
    }
    public = recipe.status == "published" and recipe.visibility == "public" and user is None
    return Response(
        orjson.dumps(body, default=str),
        media_type="application/json",
        headers={"Cache-Control": "public, max-age=60" if public else "private, no-cache"},
    )
