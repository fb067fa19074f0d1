"""Scaling a recipe version to a number of servings, with kitchen rounding and unit conversion.

Pure functions, no I/O: the HTTP layer (`scaling_router.py`) reads the version and the profile.

Quantities scale linearly by ``servings / version servings``; a null quantity ("to taste")
stays null. Every scaled quantity is then rounded to what a cook can measure. The table is
chosen by the size of the unrounded value; a positive quantity never rounds to zero (the
smallest step of its row is the floor).

=========================  ===============================  ==============================
unit (of the output)       value                            rounded to
=========================  ===============================  ==============================
g, ml (also mg)            below 1                          0.1
                           1 to below 10                    0.5
                           10 to below 100                  1
                           100 to below 1,000               5
                           1,000 and above                  10, then shown as kg / l
                                                            (mg above 1,000 mg become g)
tsp, tbsp                  any                              ¼
cup                        any                              the nearer of ¼ and ⅓ steps
                                                            (⅓ shown as 0.3333)
oz, fl_oz                  below 1 / below 4 / 4 and above  ⅛ / ¼ / ½
lb, pint, quart            any                              ¼
piece, can, bunch, (none)  below 5 / 5 and above            ½ / 1
clove, slice, sprig, leaf,
handful, pinch             any                              1
=========================  ===============================  ==============================

Units of the output (``units``):

- ``None`` (as written): metric masses and volumes are normalised within their system
  (mg/g/kg, ml/l; dl and cl become ml), g and ml are promoted to kg and l from 1,000;
  imperial units keep their unit and are rounded in it.
- ``metric``: oz and lb become g/kg; fl_oz, cup, pint and quart become ml/l (then as above).
- ``imperial``: masses become oz (below 2 lb) or lb (from 2 lb); a mass below ¼ oz (7 g)
  stays metric, since fractions of an ounce that small cannot be measured. Volumes become cups
  from 3½ tbsp (52 ml, which rounds to ¼ cup), tbsp from 1 tbsp (15 ml) and tsp below that:
  kitchen spoons read better than fractions of a fluid ounce. Every ``temperature_c`` in step
  params gets a ``temperature_f`` beside it (instruction text is never rewritten).

In every mode tsp and tbsp, pinches, pieces and the other counted units stay what they are.

Step params that carry an amount scale too: a weigh step's ``target_weight_g`` is scaled and
rounded with the gram row of the table (it stays in grams: the unit is in the field's name).
Durations, temperatures and speeds never change.

The capacity check estimates the bowl's load from the scaled (unrounded) ingredients: masses
in grams, volumes (spoons included) in ml counted as grams (water-like), and a can as 400 g
(the common 400 g / 14.5 oz can). Other counted units (pieces, cloves, pinches, bunches, …)
are left out: their weight varies too much for a sane estimate (an egg or an onion). Optional
ingredients count, since the cook may add them. The load is compared with the profile's
``bowl_capacity_ml`` and ``max_weight_g``; a scaled weigh step is compared with
``max_weight_g``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from epicura.kit.errors import ErrorItem
from epicura.recipes.schemas import CapabilityProfile

Units = Literal["metric", "imperial"]

OZ_G = Decimal("28.349523125")
LB_G = Decimal("453.59237")
TSP_ML = Decimal("4.92892159375")
TBSP_ML = TSP_ML * 3
FL_OZ_ML = TBSP_ML * 2
CUP_ML = FL_OZ_ML * 8
PINT_ML = CUP_ML * 2
QUART_ML = CUP_ML * 4
CAN_G = Decimal(400)
# Imperial volumes are shown in cups from 3½ tbsp (52 ml), which rounds to ¼ cup: 4 tbsp and
# ¼ cup are the same amount, and ¼ cup written as metric (59 ml) must read ¼ cup again.
CUPS_FROM_ML = TBSP_ML * Decimal("3.5")

MASS: dict[str, Decimal] = {
    "mg": Decimal("0.001"),
    "g": Decimal(1),
    "kg": Decimal(1000),
    "oz": OZ_G,
    "lb": LB_G,
}
VOLUME: dict[str, Decimal] = {
    "ml": Decimal(1),
    "cl": Decimal(10),
    "dl": Decimal(100),
    "l": Decimal(1000),
    "fl_oz": FL_OZ_ML,
    "cup": CUP_ML,
    "pint": PINT_ML,
    "quart": QUART_ML,
}
SPOONS: dict[str, Decimal] = {"tsp": TSP_ML, "tbsp": TBSP_ML}
METRIC_UNITS = frozenset({"mg", "g", "kg", "ml", "cl", "dl", "l"})
IMPERIAL_UNITS = frozenset({"oz", "lb", "fl_oz", "cup", "pint", "quart"})
HALVES = frozenset({"piece", "can", "bunch"})
WHOLES = frozenset({"clove", "slice", "sprig", "leaf", "handful", "pinch"})

QUARTER = Decimal("0.25")
THIRD_PLACES = Decimal("0.0001")


def _step_round(value: Decimal, step: Decimal) -> Decimal:
    """`value` to the nearest multiple of `step` (halves up), never 0 for a positive value."""
    rounded = (value / step).to_integral_value(ROUND_HALF_UP) * step
    if rounded == 0 and value > 0:
        rounded = step
    return _plain(rounded)


def _plain(value: Decimal) -> Decimal:
    """Without trailing zeros and never in exponent form (`1E+3` → `1000`)."""
    if value == value.to_integral_value():
        return Decimal(int(value))
    return Decimal(format(value.normalize(), "f"))


def metric_step(value: Decimal) -> Decimal:
    """The rounding step of a quantity in g or ml (also mg) by its magnitude."""
    if value < 1:
        return Decimal("0.1")
    if value < 10:
        return Decimal("0.5")
    if value < 100:
        return Decimal(1)
    if value < 1000:
        return Decimal(5)
    return Decimal(10)


def round_cups(value: Decimal) -> Decimal:
    """The nearer of the ¼ and ⅓ grids (¼ on a tie), at least ¼ cup."""
    quarters = (value / QUARTER).to_integral_value(ROUND_HALF_UP) * QUARTER
    thirds_count = (value * 3).to_integral_value(ROUND_HALF_UP)
    thirds = thirds_count / 3
    best = quarters if abs(value - quarters) <= abs(value - thirds) else thirds
    if best == 0:
        return QUARTER if value > 0 else Decimal(0)
    return _plain(best.quantize(THIRD_PLACES))


def round_in_unit(value: Decimal, unit: str | None) -> Decimal:
    """Kitchen rounding of a quantity expressed in `unit` (see the module's table)."""
    if unit in ("g", "ml", "mg", "kg", "l", "cl", "dl"):
        return _step_round(value, metric_step(value))
    if unit in SPOONS:
        return _step_round(value, QUARTER)
    if unit == "cup":
        return round_cups(value)
    if unit in ("oz", "fl_oz"):
        step = Decimal("0.125") if value < 1 else QUARTER if value < 4 else Decimal("0.5")
        return _step_round(value, step)
    if unit in ("lb", "pint", "quart"):
        return _step_round(value, QUARTER)
    if unit in WHOLES:
        return _step_round(value, Decimal(1))
    # piece, can, bunch and a quantity without a unit ("2 eggs"): halves, then wholes
    return _step_round(value, Decimal("0.5") if value < 5 else Decimal(1))


def metric_amount(base: Decimal, *, mass: bool, small_unit: bool = False) -> tuple[Decimal, str]:
    """An amount in g (mass) or ml (volume) rounded and shown in a readable metric unit: kg / l
    from 1,000; mg below 1 g when the amount was written in mg (`small_unit`)."""
    if mass and small_unit and base < 1:
        milligrams = round_in_unit(base * 1000, "mg")
        if milligrams < 1000:
            return milligrams, "mg"
    rounded = round_in_unit(base, "g")
    big, small = ("kg", "g") if mass else ("l", "ml")
    if rounded >= 1000:
        return _plain(rounded / 1000), big
    return rounded, small


def imperial_amount(base: Decimal, *, mass: bool, small_unit: bool = False) -> tuple[Decimal, str]:
    """An amount in g (mass) or ml (volume) in a readable US unit (see the module docstring)."""
    if mass:
        ounces = base / OZ_G
        if ounces < QUARTER:
            return metric_amount(base, mass=True, small_unit=small_unit)
        if ounces < 32:
            rounded = round_in_unit(ounces, "oz")
            if rounded < 32:
                return rounded, "oz"
        return round_in_unit(base / LB_G, "lb"), "lb"
    if base >= CUPS_FROM_ML:
        return round_cups(base / CUP_ML), "cup"
    if base >= TBSP_ML:
        return round_in_unit(base / TBSP_ML, "tbsp"), "tbsp"
    return round_in_unit(base / TSP_ML, "tsp"), "tsp"


def present(quantity: Decimal, unit: str | None, units: Units | None) -> tuple[Decimal, str | None]:
    """A scaled (unrounded) quantity, rounded and in the unit the caller asked for."""
    if unit in MASS or unit in VOLUME:
        assert unit is not None
        mass = unit in MASS
        base = quantity * (MASS[unit] if mass else VOLUME[unit])
        small = unit == "mg"
        if units == "imperial":
            return imperial_amount(base, mass=mass, small_unit=small)
        if units == "metric" or unit in METRIC_UNITS:
            return metric_amount(base, mass=mass, small_unit=small)
    return round_in_unit(quantity, unit), unit


def fahrenheit(celsius: float) -> float:
    """°C to °F, to the whole degree."""
    return float(round(celsius * 9 / 5 + 32))


def scale_factor(servings: int, base_servings: int) -> Decimal:
    return Decimal(servings) / Decimal(base_servings)


def _quantity(raw: Any) -> Decimal | None:
    return None if raw is None else Decimal(str(raw))


def scale_ingredient(
    ingredient: Mapping[str, Any], factor: Decimal, units: Units | None
) -> dict[str, Any]:
    scaled = dict(ingredient)
    quantity = _quantity(ingredient.get("quantity"))
    if quantity is not None:
        unit = ingredient.get("unit")
        scaled["quantity"], scaled["unit"] = present(quantity * factor, unit, units)
    return scaled


def scale_step(step: Mapping[str, Any], factor: Decimal, units: Units | None) -> dict[str, Any]:
    params = dict(step.get("params") or {})
    if params.get("target_weight_g") is not None:
        grams = Decimal(str(params["target_weight_g"])) * factor
        params["target_weight_g"] = float(round_in_unit(grams, "g"))
    if units == "imperial" and params.get("temperature_c") is not None:
        params["temperature_f"] = fahrenheit(float(params["temperature_c"]))
    return {**step, "params": params}


def scale_content(
    content: Mapping[str, Any], servings: int | None, units: Units | None
) -> tuple[dict[str, Any], Decimal]:
    """A version's content (its JSON form) for `servings` in `units`, and the scale factor.
    The input is not modified (it may be a cached or ORM-held object)."""
    base = int(content.get("servings") or 1)
    target = servings or base
    factor = scale_factor(target, base)
    scaled = dict(content)
    scaled["servings"] = target
    scaled["ingredients"] = [
        scale_ingredient(item, factor, units) for item in content.get("ingredients", [])
    ]
    scaled["steps"] = [scale_step(step, factor, units) for step in content.get("steps", [])]
    return scaled, factor


@dataclass(frozen=True)
class Load:
    """What the scaled ingredients put in the bowl: grams with ml counted as grams."""

    grams: Decimal
    counted: tuple[str, ...]  # the ingredient keys that made up the estimate
    ignored: tuple[str, ...]  # keys with a quantity in a unit that has no sane weight


def ingredient_grams(quantity: Decimal, unit: str | None) -> Decimal | None:
    """The estimated weight of an amount, or None when it cannot be estimated sanely."""
    if unit in MASS:
        return quantity * MASS[unit]
    if unit in VOLUME:
        return quantity * VOLUME[unit]
    if unit in SPOONS:
        return quantity * SPOONS[unit]
    if unit == "can":
        return quantity * CAN_G
    return None


def estimate_load(ingredients: Iterable[Mapping[str, Any]], factor: Decimal) -> Load:
    total = Decimal(0)
    counted: list[str] = []
    ignored: list[str] = []
    for ingredient in ingredients:
        quantity = _quantity(ingredient.get("quantity"))
        if quantity is None:
            continue
        grams = ingredient_grams(quantity * factor, ingredient.get("unit"))
        if grams is None:
            ignored.append(str(ingredient.get("key")))
        else:
            total += grams
            counted.append(str(ingredient.get("key")))
    return Load(grams=total, counted=tuple(counted), ignored=tuple(ignored))


def _over(
    field: str,
    what: str,
    value: int | float,
    limit: int,
    profile: str,
    loc: list[str | int],
    step: int | None = None,
) -> ErrorItem:
    unit = "ml" if field.endswith("_ml") else "g"
    return ErrorItem(
        loc=loc,
        msg=f"{what} {value:g} {unit} exceeds {field} {limit} ({profile})",
        type="exceeds_capacity",
        step=step,
        field=field,
        value=value,
        limit=limit,
        profile=profile,
    )


def capacity_violations(
    content: Mapping[str, Any], factor: Decimal, profile: CapabilityProfile
) -> list[ErrorItem]:
    """Every limit of `profile` the content scaled by `factor` exceeds (empty when it fits)."""
    return list(_capacity_violations(content, factor, profile))


def _capacity_violations(
    content: Mapping[str, Any], factor: Decimal, profile: CapabilityProfile
) -> Iterator[ErrorItem]:
    name = f"{profile.model}/{profile.hw_revision}"
    load = estimate_load(content.get("ingredients", []), factor).grams
    shown = math.ceil(load)
    if load > profile.bowl_capacity_ml:
        yield _over(
            "bowl_capacity_ml",
            "estimated bowl load",
            shown,
            profile.bowl_capacity_ml,
            name,
            ["ingredients"],
        )
    if load > profile.max_weight_g:
        yield _over(
            "max_weight_g", "estimated weight", shown, profile.max_weight_g, name, ["ingredients"]
        )
    for index, step in enumerate(content.get("steps", [])):
        target = (step.get("params") or {}).get("target_weight_g")
        if target is None:
            continue
        scaled = float(round_in_unit(Decimal(str(target)) * factor, "g"))
        if scaled > profile.max_weight_g:
            yield _over(
                "max_weight_g",
                f"step {index}: target weight",
                scaled,
                profile.max_weight_g,
                name,
                ["steps", index, "params", "target_weight_g"],
                step=index,
            )
