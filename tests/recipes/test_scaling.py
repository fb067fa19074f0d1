"""Scaling and units (issue 3, item 6): the kitchen rounding table, metric ↔ imperial, the
capacity check (pure functions), and `GET /recipes/{id}/scaled` on PostgreSQL."""

from __future__ import annotations

import copy
import uuid
from decimal import Decimal
from typing import Any

import pytest

from epicura.recipes import scaling
from epicura.recipes.scaling_router import ScaledRecipe
from epicura.recipes.schemas import CapabilityProfile, VersionContent
from tests.recipes.test_recipe_flow import soup
from tests.support import API, Service, bearer

pytestmark = pytest.mark.anyio

D = Decimal


def profile(bowl_ml: int = 2200, max_g: int = 5000) -> CapabilityProfile:
    return CapabilityProfile(
        model="epicura-1", hw_revision="rev-a", min_temp_c=37, max_temp_c=180, speed_min=0,
        speed_max=10, max_duration_s=43200, bowl_capacity_ml=bowl_ml, max_weight_g=max_g,
        reverse=True, actions=["heat", "stir", "blend", "knead", "steam", "weigh", "await_user",
                               "rest", "manual"])


def content_of(recipe: dict[str, Any]) -> dict[str, Any]:
    """The stored JSON form of a version's content (what the service keeps)."""
    dumped: dict[str, Any] = VersionContent.model_validate(recipe).model_dump(mode="json")
    return dumped


def bread(weigh_g: float = 2000) -> dict[str, Any]:
    return {
        "title": "Farmhouse bread",
        "servings": 4,
        "ingredients": [
            {"key": "flour", "name": "Flour", "quantity": 500, "unit": "g"},
            {"key": "water", "name": "Water", "quantity": "0.3", "unit": "l"},
            {"key": "salt", "name": "Salt", "quantity": 2, "unit": "tsp"},
            {"key": "eggs", "name": "Eggs", "quantity": 2, "unit": "piece"},
            {"key": "pepper", "name": "Pepper", "quantity": None, "unit": None},
        ],
        "steps": [
            {"title": "Weigh flour", "action": "weigh", "params": {"target_weight_g": weigh_g},
             "ingredient_keys": ["flour"]},
            {"title": "Knead", "action": "knead",
             "params": {"speed": 3, "duration_s": 300, "temperature_c": 37}},
            {"title": "Rest", "action": "rest", "params": {"duration_s": 3600}},
        ],
    }


# --- the rounding table ------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("0.04", "0.1"), ("0.26", "0.3"),            # below 1: 0.1, never 0
    ("3.2", "3"), ("3.3", "3.5"), ("9.74", "9.5"),  # below 10: 0.5
    ("47.4", "47"), ("47.5", "48"),              # below 100: 1
    ("432", "430"), ("433", "435"),              # below 1,000: 5
    ("1234", "1230"), ("1235", "1240"),          # from 1,000: 10
])
def test_grams_and_millilitres_round_by_magnitude(value: str, expected: str) -> None:
    assert scaling.round_in_unit(D(value), "g") == D(expected)
    assert scaling.round_in_unit(D(value), "ml") == D(expected)


@pytest.mark.parametrize(("value", "unit", "expected"), [
    ("1.1", "tsp", "1"), ("1.13", "tsp", "1.25"), ("0.05", "tbsp", "0.25"), ("2.6", "tbsp", "2.5"),
    ("0.3", "cup", "0.3333"), ("0.7", "cup", "0.6667"), ("0.74", "cup", "0.75"),
    ("0.5", "cup", "0.5"), ("1.3", "cup", "1.3333"), ("0.02", "cup", "0.25"),
    ("0.1", "piece", "0.5"), ("1.2", "piece", "1"), ("1.3", "piece", "1.5"),
    ("6.4", "piece", "6"), ("0.75", "can", "1"), ("2.4", None, "2.5"),
    ("0.3", "clove", "1"), ("2.5", "clove", "3"), ("0.4", "pinch", "1"), ("1.4", "pinch", "1"),
    ("0.2", "oz", "0.25"), ("0.3", "oz", "0.25"), ("3.3", "oz", "3.25"), ("5.3", "oz", "5.5"),
    ("1.1", "lb", "1"), ("1.2", "lb", "1.25"), ("0.4", "fl_oz", "0.375"),
])
def test_kitchen_rounding_per_unit(value: str, unit: str | None, expected: str) -> None:
    assert scaling.round_in_unit(D(value), unit) == D(expected)


@pytest.mark.parametrize("unit", sorted({*scaling.MASS, *scaling.VOLUME, *scaling.SPOONS,
                                         *scaling.HALVES, *scaling.WHOLES}))
def test_a_positive_quantity_never_rounds_to_zero(unit: str) -> None:
    for units in (None, "metric", "imperial"):
        quantity, _ = scaling.present(D("0.0001"), unit, units)
        assert quantity > 0, (unit, units)


def test_rounded_quantities_fit_the_stored_decimal_shape() -> None:
    for raw in ("0.01", "0.333", "1.17", "2.9", "17", "333.3", "4999"):
        for unit in ("cup", "g", "oz", "tbsp"):
            for units in (None, "metric", "imperial"):
                quantity, _ = scaling.present(D(raw), unit, units)
                exponent = quantity.as_tuple().exponent
                assert isinstance(exponent, int) and -exponent <= 4
                assert "E" not in str(quantity)


# --- units -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("quantity", "unit", "expected"), [
    ("1234", "g", ("1.23", "kg")), ("999", "g", ("1", "kg")), ("0.25", "kg", ("250", "g")),
    ("1500", "ml", ("1.5", "l")), ("0.2", "l", ("200", "ml")), ("2.5", "dl", ("250", "ml")),
    ("4", "cl", ("40", "ml")), ("50", "mg", ("50", "mg")), ("1500", "mg", ("1.5", "g")),
    ("2", "tbsp", ("2", "tbsp")), ("3", "piece", ("3", "piece")),
])
def test_metric_output_normalises_and_promotes(quantity: str, unit: str,
                                               expected: tuple[str, str]) -> None:
    for units in (None, "metric"):
        assert scaling.present(D(quantity), unit, units) == (D(expected[0]), expected[1])


@pytest.mark.parametrize(("quantity", "unit", "expected"), [
    ("1", "oz", ("28", "g")), ("1", "lb", ("455", "g")), ("3", "lb", ("1.36", "kg")),
    ("1", "cup", ("235", "ml")), ("2", "fl_oz", ("59", "ml")), ("1", "pint", ("475", "ml")),
    ("1.5", "quart", ("1.42", "l")), ("1", "tsp", ("1", "tsp")), ("1", "pinch", ("1", "pinch")),
])
def test_imperial_input_converts_to_metric(quantity: str, unit: str,
                                           expected: tuple[str, str]) -> None:
    assert scaling.present(D(quantity), unit, "metric") == (D(expected[0]), expected[1])


@pytest.mark.parametrize(("quantity", "unit", "expected"), [
    ("400", "g", ("14", "oz")), ("100", "g", ("3.5", "oz")), ("12", "g", ("0.375", "oz")),
    ("500", "g", ("17.5", "oz")), ("1", "kg", ("2.25", "lb")), ("2", "g", ("2", "g")),
    ("250", "ml", ("1", "cup")), ("80", "ml", ("0.3333", "cup")), ("1", "l", ("4.25", "cup")),
    ("30", "ml", ("2", "tbsp")), ("5", "ml", ("1", "tsp")), ("2", "tbsp", ("2", "tbsp")),
    ("1", "pint", ("2", "cup")), ("8", "oz", ("8", "oz")), ("1", "clove", ("1", "clove")),
])
def test_metric_input_converts_to_imperial(quantity: str, unit: str,
                                           expected: tuple[str, str]) -> None:
    assert scaling.present(D(quantity), unit, "imperial") == (D(expected[0]), expected[1])


def test_imperial_units_are_kept_as_written_when_no_units_are_asked() -> None:
    assert scaling.present(D("1.1"), "cup", None) == (D("1"), "cup")
    assert scaling.present(D("0.55"), "lb", None) == (D("0.5"), "lb")
    assert scaling.present(D("3"), "fl_oz", None) == (D("3"), "fl_oz")


def test_conversions_round_trip_within_rounding() -> None:
    # From 4 oz up the steps are ½ oz and ¼ lb: within 7 % both ways.
    for grams in (D(120), D(125), D(454), D(900), D(2000)):
        ounces, unit = scaling.present(grams, "g", "imperial")
        back, metric = scaling.present(ounces, unit, "metric")
        in_grams = back * (1000 if metric == "kg" else 1)
        assert abs(in_grams - grams) / grams < D("0.07"), (grams, ounces, unit, back, metric)
    for cups in (D("0.25"), D("0.3333"), D("0.5"), D("0.6667"), D("1"), D("2.5")):
        millilitres, unit = scaling.present(cups, "cup", "metric")
        assert unit == "ml"
        assert scaling.present(millilitres, unit, "imperial") == (cups, "cup")


def test_fahrenheit() -> None:
    assert [scaling.fahrenheit(c) for c in (0, 37, 100, 180, 250)] == [32, 99, 212, 356, 482]


# --- scaling a version -------------------------------------------------------------------------

def test_scale_content_scales_linearly_and_leaves_the_input_alone() -> None:
    original = content_of(soup())
    kept = copy.deepcopy(original)
    scaled, factor = scaling.scale_content(original, 6, None)
    assert original == kept
    assert factor == D("1.5")
    assert scaled["servings"] == 6
    assert [(i["key"], i["quantity"], i["unit"]) for i in scaled["ingredients"]] == [
        ("onion", D("1.5"), "piece"), ("tomato", D("1.2"), "kg"), ("basil", None, None)]
    assert [s["params"] for s in scaled["steps"]] == [s["params"] for s in original["steps"]]
    assert scaled["total_minutes"] == original["total_minutes"]
    assert scaled["title"] == original["title"]


def test_scaling_down_keeps_counts_above_zero() -> None:
    scaled, factor = scaling.scale_content(content_of(soup()), 1, None)
    assert factor == D("0.25")
    assert [(i["quantity"], i["unit"]) for i in scaled["ingredients"]] == [
        (D("0.5"), "piece"), (D(200), "g"), (None, None)]


def test_omitted_servings_keep_the_versions_own() -> None:
    scaled, factor = scaling.scale_content(content_of(soup()), None, "imperial")
    assert (scaled["servings"], factor) == (4, D(1))
    assert scaled["ingredients"][1]["quantity"] == D("28")  # 800 g = 28.2 oz, to ½ oz
    assert scaled["ingredients"][1]["unit"] == "oz"


def test_weigh_targets_scale_and_durations_do_not() -> None:
    original = content_of(bread(weigh_g=333))
    scaled, _ = scaling.scale_content(original, 10, "metric")
    weigh, knead, rest = (step["params"] for step in scaled["steps"])
    assert weigh == {"target_weight_g": 835.0}  # 832.5 to 5 g
    assert knead["duration_s"] == 300 and rest == {"duration_s": 3600}
    assert "temperature_f" not in knead
    water = scaled["ingredients"][1]
    assert (water["quantity"], water["unit"]) == (D("750"), "ml")


def test_imperial_adds_fahrenheit_beside_celsius_only() -> None:
    scaled, _ = scaling.scale_content(content_of(soup()), 4, "imperial")
    by_action = [(s["action"], s["params"]) for s in scaled["steps"]]
    assert by_action[2] == ("heat", {"temperature_c": 100.0, "temperature_f": 212.0,
                                     "duration_s": 900, "speed": 1.0})
    assert all("temperature_f" not in p for a, p in by_action if a != "heat")
    assert scaled["steps"][2]["instruction"] == ""


# --- capacity --------------------------------------------------------------------------------

def test_load_counts_weights_volumes_spoons_and_cans_but_not_pieces() -> None:
    ingredients: list[dict[str, Any]] = [
        {"key": "flour", "quantity": "500", "unit": "g"},
        {"key": "milk", "quantity": "0.25", "unit": "l"},
        {"key": "oil", "quantity": "2", "unit": "tbsp"},
        {"key": "beans", "quantity": "1", "unit": "can"},
        {"key": "butter", "quantity": "4", "unit": "oz"},
        {"key": "eggs", "quantity": "3", "unit": "piece"},
        {"key": "salt", "quantity": None, "unit": None},
    ]
    load = scaling.estimate_load(ingredients, D(2))
    expected = (500 + 250 + 2 * scaling.TBSP_ML + 400 + 4 * scaling.OZ_G) * 2
    assert load.grams == expected
    assert load.counted == ("flour", "milk", "oil", "beans", "butter")
    assert load.ignored == ("eggs",)


def test_capacity_fits_until_the_bowl_is_full() -> None:
    content = content_of(soup())  # 800 g of tomatoes for 4
    assert scaling.capacity_violations(content, scaling.scale_factor(11, 4), profile()) == []
    assert scaling.capacity_violations(content, scaling.scale_factor(11, 4),
                                       profile(bowl_ml=2200)) == []  # 2,200 exactly fits
    [over] = scaling.capacity_violations(content, scaling.scale_factor(12, 4), profile())
    assert (over.field, over.value, over.limit, over.profile, over.type) == (
        "bowl_capacity_ml", 2400, 2200, "epicura-1/rev-a", "exceeds_capacity")


def test_capacity_names_every_limit_exceeded() -> None:
    content = content_of(bread(weigh_g=1000))  # 500 g + 300 ml + 2 tsp, weigh 1,000 g
    small = profile(bowl_ml=1000, max_g=900)
    found = scaling.capacity_violations(content, D(2), small)
    assert [(v.field, v.limit, v.step) for v in found] == [
        ("bowl_capacity_ml", 1000, None), ("max_weight_g", 900, None), ("max_weight_g", 900, 0)]
    assert found[0].value == 1620  # (500 + 300 + 9.86) × 2, rounded up
    assert found[2].value == 2000.0
    assert found[2].loc == ["steps", 0, "params", "target_weight_g"]


def test_a_weigh_step_alone_can_exceed_the_scale() -> None:
    # 810 g of ingredients × 3 fit a 3 l bowl; the 2 kg weigh step × 3 does not fit the scale.
    found = scaling.capacity_violations(content_of(bread(weigh_g=2000)), D(3),
                                        profile(bowl_ml=3000))
    assert [(v.field, v.value, v.limit, v.step) for v in found] == [
        ("max_weight_g", 6000.0, 5000, 0)]


# --- the endpoint ----------------------------------------------------------------------------

async def _create(svc: Service, owner: dict[str, str], body: dict[str, Any]) -> str:
    reply = await svc.client.post(f"{API}/recipes", json=body, headers=owner)
    assert reply.status_code == 201, reply.text
    rid: str = reply.json()["id"]
    return rid


async def test_scaled_recipe_for_its_owner(svc: Service) -> None:
    owner = bearer(await svc.signed_up("test-scaling-owner@example.com"))
    rid = await _create(svc, owner, soup())
    reply = await svc.client.get(f"{API}/recipes/{rid}/scaled", params={"servings": 8},
                                 headers=owner)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    ScaledRecipe.model_validate(body)  # the documented shape
    assert (body["id"], body["current_version"], body["servings"], body["units"]) == (
        rid, 1, 8, None)
    assert (body["scale_factor"], body["profile"]) == (2.0, None)
    assert body["content"]["servings"] == 8
    assert [(i["key"], i["quantity"], i["unit"]) for i in body["content"]["ingredients"]] == [
        ("onion", "2", "piece"), ("tomato", "1.6", "kg"), ("basil", None, None)]
    assert [s["params"] for s in body["content"]["steps"]] == [
        {"speed": 5.0, "duration_s": 5, "temperature_c": None, "direction": "forward"},
        {"prompt": "Add the tomatoes"},
        {"temperature_c": 100.0, "duration_s": 900, "speed": 1.0},
        {"speed": 10.0, "duration_s": 60, "temperature_c": None, "direction": "forward"}]
    assert reply.headers["cache-control"] == "private, no-cache"


async def test_imperial_is_not_stored(svc: Service) -> None:
    owner = bearer(await svc.signed_up("test-scaling-imperial@example.com"))
    rid = await _create(svc, owner, soup())
    reply = await svc.client.get(f"{API}/recipes/{rid}/scaled",
                                 params={"servings": 2, "units": "imperial"}, headers=owner)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    ScaledRecipe.model_validate(body)
    assert (body["units"], body["scale_factor"]) == ("imperial", 0.5)
    tomato = body["content"]["ingredients"][1]
    assert (tomato["quantity"], tomato["unit"]) == ("14", "oz")  # 400 g
    heat = body["content"]["steps"][2]["params"]
    assert (heat["temperature_c"], heat["temperature_f"]) == (100.0, 212.0)
    stored = (await svc.client.get(f"{API}/recipes/{rid}", headers=owner)).json()["content"]
    assert "temperature_f" not in stored["steps"][2]["params"]
    assert (stored["servings"], stored["ingredients"][1]["quantity"]) == (4, "800")
    metric = await svc.client.get(f"{API}/recipes/{rid}/scaled", params={"units": "metric"},
                                  headers=owner)
    assert "temperature_f" not in metric.json()["content"]["steps"][2]["params"]
    assert metric.json()["content"]["ingredients"][1]["quantity"] == "800"


async def test_bad_servings_and_queries_are_a_clean_422(svc: Service) -> None:
    owner = bearer(await svc.signed_up("test-scaling-bad-query@example.com"))
    rid = await _create(svc, owner, soup())
    for servings in ("0", "-1", "101", str(10**12), str(10**80), "abc", "2.5", "", "1e3"):
        reply = await svc.client.get(f"{API}/recipes/{rid}/scaled?servings={servings}",
                                     headers=owner)
        assert reply.status_code == 422, (servings, reply.text)
        assert reply.headers["content-type"] == "application/problem+json"
        problem = reply.json()
        assert problem["code"] == "validation_failed"
        assert problem["errors"][0]["loc"] == ["query", "servings"], servings
    for query, field in (
        ({"units": "kelvin"}, "units"), ({"profile": "not a profile"}, "profile"),
        ({"profile": "epicura-9/rev-z"}, "profile"),
        ({"profile": "epicura-1/rev-a", "appliance_id": str(uuid.uuid4())}, "profile"),
        ({"appliance_id": "not-a-uuid"}, "appliance_id"),
    ):
        reply = await svc.client.get(f"{API}/recipes/{rid}/scaled", params=query, headers=owner)
        assert reply.status_code == 422, (query, reply.text)
        assert reply.json()["code"] == "validation_failed"
        assert reply.json()["errors"][0]["loc"] == ["query", field], query


async def test_exceeding_the_bowl_is_refused_with_the_limit_named(svc: Service) -> None:
    owner = bearer(await svc.signed_up("test-scaling-capacity@example.com"))
    rid = await _create(svc, owner, soup())
    fits = await svc.client.get(f"{API}/recipes/{rid}/scaled",
                                params={"servings": 11, "profile": "epicura-1/rev-a"},
                                headers=owner)
    assert fits.status_code == 200, fits.text
    assert fits.json()["profile"] == "epicura-1/rev-a"
    refused = await svc.client.get(f"{API}/recipes/{rid}/scaled",
                                   params={"servings": 12, "profile": "epicura-1/rev-a"},
                                   headers=owner)
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["code"] == "exceeds_capacity"
    assert [(e["field"], e["value"], e["limit"], e["profile"]) for e in problem["errors"]] == [
        ("bowl_capacity_ml", 2400, 2200, "epicura-1/rev-a")]
    # Without a profile there is nothing to check against.
    unchecked = await svc.client.get(f"{API}/recipes/{rid}/scaled", params={"servings": 12},
                                     headers=owner)
    assert unchecked.status_code == 200


async def test_a_scaled_weigh_step_over_the_scale_is_refused(svc: Service) -> None:
    owner = bearer(await svc.signed_up("test-scaling-weigh@example.com"))
    rid = await _create(svc, owner, bread(weigh_g=2400))  # 810 g of ingredients for 4
    reply = await svc.client.get(f"{API}/recipes/{rid}/scaled",
                                 params={"servings": 10, "profile": "epicura-1/rev-a"},
                                 headers=owner)
    assert reply.status_code == 422
    errors = reply.json()["errors"]
    assert [(e["field"], e["value"], e["limit"], e["step"]) for e in errors] == [
        ("max_weight_g", 6000.0, 5000, 0)]
    unchecked = await svc.client.get(f"{API}/recipes/{rid}/scaled", params={"servings": 10},
                                     headers=owner)
    assert unchecked.json()["content"]["steps"][0]["params"]["target_weight_g"] == 6000.0


async def test_appliance_profiles_need_the_appliances_module(svc: Service) -> None:
    owner = bearer(await svc.signed_up("test-scaling-appliance@example.com"))
    rid = await _create(svc, owner, soup())
    appliance = str(uuid.uuid4())
    reply = await svc.client.get(f"{API}/recipes/{rid}/scaled",
                                 params={"appliance_id": appliance}, headers=owner)
    assert reply.status_code == 404
    # With a lookup registered (what the appliances module will do), its profile is checked.
    calls: list[uuid.UUID] = []

    async def lookup(_session: Any, _user: Any, appliance_id: uuid.UUID) -> tuple[str, str]:
        calls.append(appliance_id)
        return "epicura-1/rev-a", "1.0.0"

    svc.runtime.extras["appliance_profile"] = lookup
    try:
        refused = await svc.client.get(f"{API}/recipes/{rid}/scaled",
                                       params={"appliance_id": appliance, "servings": 20},
                                       headers=owner)
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["profile"] == "epicura-1/rev-a"
        assert calls == [uuid.UUID(appliance)]
    finally:
        del svc.runtime.extras["appliance_profile"]


async def test_visibility_is_that_of_the_recipe(svc: Service) -> None:
    owner = bearer(await svc.signed_up("test-scaling-vis-owner@example.com"))
    other = bearer(await svc.signed_up("test-scaling-vis-other@example.com"))
    private = await _create(svc, owner, soup())
    for headers in (other, {}):
        reply = await svc.client.get(f"{API}/recipes/{private}/scaled",
                                     params={"servings": 2}, headers=headers)
        assert reply.status_code == 404
        assert reply.json()["code"] == "not_found"
    missing = await svc.client.get(f"{API}/recipes/{uuid.uuid4()}/scaled", headers=owner)
    assert missing.status_code == 404

    public = await _create(svc, owner, {**soup(), "visibility": "public"})
    published = await svc.client.post(f"{API}/recipes/{public}/publish", headers=owner)
    assert published.status_code == 200, published.text
    anonymous = await svc.client.get(f"{API}/recipes/{public}/scaled", params={"servings": 2})
    assert anonymous.status_code == 200
    assert anonymous.json()["content"]["ingredients"][1]["quantity"] == "400"
    assert anonymous.headers["cache-control"] == "public, max-age=60"
    others = await svc.client.get(f"{API}/recipes/{public}/scaled", headers=other)
    assert others.status_code == 200
    # An appliance is only ever the caller's own.
    unsigned = await svc.client.get(f"{API}/recipes/{public}/scaled",
                                    params={"appliance_id": str(uuid.uuid4())})
    assert unsigned.status_code == 401


async def test_scaled_on_the_embedded_default(embedded: Service) -> None:
    owner = bearer(await embedded.signed_up("test-scaling-embedded@example.com"))
    rid = await _create(embedded, owner, soup())
    reply = await embedded.client.get(f"{API}/recipes/{rid}/scaled",
                                      params={"servings": 12, "profile": "epicura-1/rev-a"},
                                      headers=owner)
    assert reply.status_code == 422 and reply.json()["code"] == "exceeds_capacity"


def test_the_endpoint_is_documented() -> None:
    from epicura.app import create_app
    from epicura.config import Settings

    document = create_app(Settings(_env_file=None)).openapi()
    operation = document["paths"][f"{API}/recipes/{{recipe_id}}/scaled"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert names == {"recipe_id", "servings", "units", "appliance_id", "profile"}
    assert "exceeds_capacity" in operation["responses"]["422"]["x-codes"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ScaledRecipe"}
