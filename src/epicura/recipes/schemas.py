"""The recipe content model (a version) and the API bodies of the recipes module.

A version's content is validated here for shape and sanity (types, absolute bounds, references
between steps and ingredients). Whether a step fits an appliance is checked at publish time against
the capability profiles the recipe declares (`rules.py`).
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

MAX_STEPS = 200
MAX_INGREDIENTS = 100
MAX_TAGS = 20

Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=40)
]
IngredientKey = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
Temperature = Annotated[float, Field(ge=0, le=250, allow_inf_nan=False)]
Speed = Annotated[float, Field(ge=0, le=20, allow_inf_nan=False)]
Duration = Annotated[int, Field(ge=1, le=7 * 86400)]
Weight = Annotated[float, Field(gt=0, le=100_000, allow_inf_nan=False)]

Unit = Literal[
    "g",
    "kg",
    "mg",
    "ml",
    "l",
    "dl",
    "cl",
    "tsp",
    "tbsp",
    "cup",
    "oz",
    "lb",
    "fl_oz",
    "pint",
    "quart",
    "piece",
    "pinch",
    "clove",
    "slice",
    "bunch",
    "can",
    "handful",
    "sprig",
    "leaf",
]
Difficulty = Literal["easy", "medium", "hard"]
Direction = Literal["forward", "reverse"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        """PostgreSQL cannot store NUL in text or JSONB: refuse it here (422), not there (500)."""
        items = value if isinstance(value, list) else (value,)
        if any(isinstance(item, str) and "\x00" in item for item in items):
            raise ValueError("text must not contain NUL characters")
        return value


class Ingredient(Strict):
    key: IngredientKey
    name: ShortText
    quantity: (
        Annotated[Decimal, Field(gt=0, le=100_000, max_digits=12, decimal_places=4)] | None
    ) = Field(default=None, description="null means 'to taste'")
    unit: Unit | None = None
    note: Annotated[str, StringConstraints(max_length=200)] | None = None
    optional: bool = False
    group: Annotated[str, StringConstraints(max_length=80)] | None = None


class HeatParams(Strict):
    temperature_c: Temperature
    duration_s: Duration
    speed: Speed | None = None


class MotionParams(Strict):
    speed: Speed
    duration_s: Duration
    temperature_c: Temperature | None = None
    direction: Direction = "forward"


class SteamParams(Strict):
    duration_s: Duration
    temperature_c: Temperature | None = None


class WeighParams(Strict):
    target_weight_g: Weight


class AwaitUserParams(Strict):
    prompt: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class RestParams(Strict):
    duration_s: Duration


class NoParams(Strict):
    pass


class StepBase(Strict):
    title: ShortText
    instruction: Text = ""
    ingredient_keys: Annotated[list[IngredientKey], Field(max_length=MAX_INGREDIENTS)] = []
    start: Literal["immediate", "on_temperature", "on_user_confirm"] = "immediate"

    @property
    def duration_s(self) -> int:
        return int(getattr(self.params, "duration_s", 0) or 0)  # type: ignore[attr-defined]


class HeatStep(StepBase):
    action: Literal["heat"]
    params: HeatParams


class StirStep(StepBase):
    action: Literal["stir"]
    params: MotionParams


class BlendStep(StepBase):
    action: Literal["blend"]
    params: MotionParams


class KneadStep(StepBase):
    action: Literal["knead"]
    params: MotionParams


class SteamStep(StepBase):
    action: Literal["steam"]
    params: SteamParams


class WeighStep(StepBase):
    action: Literal["weigh"]
    params: WeighParams


class AwaitUserStep(StepBase):
    action: Literal["await_user"]
    params: AwaitUserParams


class RestStep(StepBase):
    action: Literal["rest"]
    params: RestParams


class ManualStep(StepBase):
    action: Literal["manual"]
    params: NoParams = NoParams()


Step = Annotated[
    HeatStep
    | StirStep
    | BlendStep
    | KneadStep
    | SteamStep
    | WeighStep
    | AwaitUserStep
    | RestStep
    | ManualStep,
    Field(discriminator="action"),
]
ACTIONS = ("heat", "stir", "blend", "knead", "steam", "weigh", "await_user", "rest", "manual")


class Nutrition(Strict):
    kcal: Annotated[float, Field(ge=0, le=20_000)] | None = None
    protein_g: Annotated[float, Field(ge=0, le=5_000)] | None = None
    fat_g: Annotated[float, Field(ge=0, le=5_000)] | None = None
    carbs_g: Annotated[float, Field(ge=0, le=5_000)] | None = None
    fiber_g: Annotated[float, Field(ge=0, le=5_000)] | None = None
    sugar_g: Annotated[float, Field(ge=0, le=5_000)] | None = None
    salt_g: Annotated[float, Field(ge=0, le=5_000)] | None = None


class Requires(Strict):
    min_firmware: Annotated[str, StringConstraints(pattern=r"^\d+\.\d+\.\d+$")] | None = None
    capabilities: Annotated[list[Tag], Field(max_length=20)] = []
    profiles: Annotated[
        list[Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+/[a-z0-9-]+$")]],
        Field(
            min_length=1,
            max_length=10,
            description="Capability profiles (`model/hw_revision`) the recipe is written for",
        ),
    ] = ["epicura-1/rev-a"]


class VersionContent(Strict):
    """Everything a version holds; every content change creates a new version."""

    title: ShortText
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)] = ""
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")] = "en"
    servings: Annotated[int, Field(ge=1, le=100)] = 4
    prep_minutes: Annotated[int, Field(ge=0, le=10_000)] = 0
    total_minutes: Annotated[int, Field(ge=0, le=100_000)] | None = Field(
        default=None, description="Derived from the steps' durations plus prep time when omitted"
    )
    difficulty: Difficulty = "easy"
    cuisine: (
        Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, max_length=40)]
        | None
    ) = None
    category: (
        Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, max_length=40)]
        | None
    ) = None
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] = []
    accessories: Annotated[list[ShortText], Field(max_length=20)] = []
    ingredients: Annotated[list[Ingredient], Field(max_length=MAX_INGREDIENTS)] = []
    steps: Annotated[list[Step], Field(max_length=MAX_STEPS)] = []
    nutrition: Nutrition | None = None
    images: Annotated[list[uuid.UUID], Field(max_length=20)] = []
    requires: Requires = Requires()

    @field_validator("tags")
    @classmethod
    def _unique_tags(cls, tags: list[str]) -> list[str]:
        return list(dict.fromkeys(tags))

    @model_validator(mode="after")
    def _references_and_totals(self) -> VersionContent:
        keys = [ingredient.key for ingredient in self.ingredients]
        if len(set(keys)) != len(keys):
            raise ValueError("ingredient keys must be unique")
        known = set(keys)
        for index, step in enumerate(self.steps):
            missing = [key for key in step.ingredient_keys if key not in known]
            if missing:
                raise ValueError(f"step {index} references unknown ingredient keys: {missing}")
        if self.total_minutes is None:
            seconds = sum(step.duration_s for step in self.steps)
            self.total_minutes = self.prep_minutes + math.ceil(seconds / 60)
        return self


class RecipeCreate(VersionContent):
    visibility: Literal["private", "public"] = "private"
    is_official: bool = Field(default=False, description="Admins only")


class RecipeUpdate(VersionContent):
    visibility: Literal["private", "public"] | None = None
    summary: Annotated[str, StringConstraints(max_length=200)] | None = Field(
        default=None, description="What changed, shown in the version list"
    )


class RecipeOut(BaseModel):
    id: uuid.UUID
    owner_id: uuid.UUID | None
    visibility: str
    is_official: bool
    status: str
    current_version: int
    rating_avg: float | None
    rating_count: int
    cooked_count: int
    favorite_count: int
    is_favorite: bool | None = None
    created_at: datetime
    updated_at: datetime
    content: VersionContent


class RecipeSummary(BaseModel):
    id: uuid.UUID
    title: str
    description: str
    tags: list[str]
    difficulty: str
    total_minutes: int | None
    servings: int
    image_url: str | None
    is_official: bool
    current_version: int
    rating_avg: float | None
    updated_at: datetime


class VersionInfo(BaseModel):
    version: int
    created_at: datetime
    author: uuid.UUID | None
    summary: str | None


class VersionOut(BaseModel):
    recipe_id: uuid.UUID
    version: int
    created_at: datetime
    author: uuid.UUID | None
    summary: str | None
    content: VersionContent


class FieldChange(BaseModel):
    path: str
    before: Any = None
    after: Any = None
    change: Literal["added", "removed", "changed"]


class VersionDiff(BaseModel):
    recipe_id: uuid.UUID
    version: int
    against: int
    changes: list[FieldChange]


class CapabilityProfile(BaseModel):
    model: str
    hw_revision: str
    min_temp_c: float
    max_temp_c: float
    speed_min: float
    speed_max: float
    max_duration_s: int
    bowl_capacity_ml: int
    max_weight_g: int
    reverse: bool
    actions: list[str]


class TagCount(BaseModel):
    tag: str
    count: int
