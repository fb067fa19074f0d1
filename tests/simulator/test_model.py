"""The simulator's pure appliance model (issue 4, item 8): the thermal model, the step runner
and its session events, alerts. No clock and no I/O: time advances by `tick(dt)`."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from epicura.recipes.demo_recipes import demo_recipes
from epicura.recipes.schemas import VersionContent
from epicura.simulator.appliance import LID_ALERT, ApplianceModel
from epicura.simulator.physics import AMBIENT_C, Thermal, rpm_for_speed
from epicura.simulator.program import Program, from_content

MAX_OVERSHOOT_K = 6.0


def run_until_busy_ends(model: ApplianceModel, limit_s: int = 6 * 3600) -> list[dict[str, Any]]:
    samples = []
    for _ in range(limit_s):
        samples.append(model.tick(1.0))
        if not model.busy:
            return samples
    raise AssertionError(f"the session did not end within {limit_s} simulated seconds")


def session_events(model: ApplianceModel) -> list[dict[str, Any]]:
    return [body for kind, body in model.outbox if kind == "session"]


@pytest.mark.parametrize(("contents_g", "target_c"),
                         [(0, 37), (300, 120), (1000, 100), (2000, 100), (500, 60), (50, 180)])
def test_heating_converges_to_the_target_with_a_plausible_overshoot(
        contents_g: float, target_c: float) -> None:
    thermal = Thermal(contents_g=contents_g, target_c=target_c)
    readings = []
    for _ in range(3600):
        thermal.step(1.0)
        readings.append(thermal.sensor_c)
    reached = next(i for i, t in enumerate(readings) if t >= target_c - 1)
    assert max(thermal.bowl_c, *readings) <= target_c + MAX_OVERSHOOT_K
    assert max(readings) > target_c - 0.5  # it does get there
    assert abs(readings[-1] - target_c) < 0.5  # and holds it
    assert 0 <= thermal.heater_w <= 1000
    # No faster than a 1 kW element can heat what is in the bowl from the room's temperature.
    lower_bound_s = (target_c - 1 - AMBIENT_C) * thermal.capacity_j_per_k / 1000
    assert reached >= lower_bound_s * 0.9


def test_heating_a_litre_to_boiling_takes_minutes_not_seconds() -> None:
    thermal = Thermal(contents_g=1000, target_c=100)
    seconds = 0
    while thermal.sensor_c < 99:
        thermal.step(1.0)
        seconds += 1
    assert 5 * 60 <= seconds <= 15 * 60


def test_without_heat_the_bowl_cools_towards_the_room() -> None:
    thermal = Thermal(bowl_c=100, heater_c=100, sensor_c=100, contents_g=1000)
    readings = []
    for _ in range(3 * 3600):
        thermal.step(1.0)
        readings.append(thermal.bowl_c)
    assert all(b <= a for a, b in itertools.pairwise(readings))
    assert AMBIENT_C < readings[-1] < 40
    assert readings[600] > 60  # a litre of soup stays hot for a while
    assert thermal.heater_w == 0


def test_rpm_grows_with_speed() -> None:
    rpms = [rpm_for_speed(s / 2) for s in range(0, 21)]
    assert rpms[0] == 0
    assert all(b > a for a, b in itertools.pairwise(rpms))
    assert rpms[-1] == 10700


def every_kind_of_step() -> Program:
    content = VersionContent.model_validate({
        "title": "Everything", "servings": 2,
        "ingredients": [{"key": "water", "name": "Water", "quantity": 500, "unit": "ml"},
                        {"key": "onion", "name": "Onion", "quantity": 1, "unit": "piece"}],
        "steps": [
            {"title": "Add onion", "action": "await_user", "params": {"prompt": "Add the onion"},
             "ingredient_keys": ["onion"]},
            {"title": "Chop", "action": "blend", "params": {"speed": 5, "duration_s": 5}},
            {"title": "Water", "action": "weigh", "params": {"target_weight_g": 500}},
            {"title": "Boil", "action": "heat", "start": "on_temperature",
             "params": {"temperature_c": 100, "duration_s": 60, "speed": 1}},
            {"title": "Stir", "action": "stir", "start": "on_user_confirm",
             "params": {"speed": 2, "duration_s": 30, "temperature_c": 90,
                        "direction": "reverse"}},
            {"title": "Knead", "action": "knead", "params": {"speed": 3, "duration_s": 20}},
            {"title": "Steam", "action": "steam", "params": {"duration_s": 30}},
            {"title": "Rest", "action": "rest", "params": {"duration_s": 30}},
            {"title": "Serve", "action": "manual"},
        ],
    }).model_dump(mode="json")
    return from_content(content, recipe_id="r-1", recipe_version=3)


def test_a_program_runs_to_completion_with_the_expected_events() -> None:
    model = ApplianceModel(random.Random(7), lid_alert_per_s=0)
    runner = model.start_session(every_kind_of_step(), "5b3a4d0e-4a35-4f6b-9a7e-3d2f3c1b0a99")
    samples = run_until_busy_ends(model)
    events = session_events(model)

    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert {e["session_id"] for e in events} == {runner.session_id}
    started = events[0]
    assert started["type"] == "started"
    assert (started["recipe_id"], started["recipe_version"], started["servings"]) == ("r-1", 3, 2)
    per_step = [(e["type"], e.get("step_index")) for e in events[1:-1]]
    assert per_step == [
        ("step_started", 0), ("awaiting_user", 0), ("user_acknowledged", 0),
        ("step_completed", 0),
        ("step_started", 1), ("step_completed", 1),
        ("step_started", 2), ("step_completed", 2),
        ("step_started", 3), ("step_completed", 3),
        ("step_started", 4), ("awaiting_user", 4), ("user_acknowledged", 4),
        ("step_completed", 4),
        ("step_started", 5), ("step_completed", 5),
        ("step_started", 6), ("step_completed", 6),
        ("step_started", 7), ("step_completed", 7),
        ("step_started", 8), ("awaiting_user", 8), ("user_acknowledged", 8),
        ("step_completed", 8),
    ]
    completed = events[-1]
    assert completed["type"] == "completed"
    assert completed["data"]["peak_temp_c"] >= 99
    assert completed["data"]["energy_wh"] > 0
    weighed = next(e for e in events if e["type"] == "step_completed" and e["step_index"] == 2)
    assert weighed["data"]["weight_g"] >= 500  # the onion was in already
    # The heat step started on temperature: its minute counted from ~100 °C, not from cold.
    assert max(s["bowl_temp_c"] for s in samples) >= 99
    assert any(s["direction"] == "reverse" and s["motor_rpm"] > 0 for s in samples)
    assert samples[-1]["heater_w"] == 0 and samples[-1]["motor_rpm"] == 0


def test_samples_follow_the_steps() -> None:
    model = ApplianceModel(random.Random(3), lid_alert_per_s=0)
    model.start_session(every_kind_of_step())
    samples = run_until_busy_ends(model)
    blending = [s for s in samples if s["speed"] == 5]
    assert blending and all(s["motor_rpm"] > 1000 and s["lid"] == "locked" for s in blending)
    weighing = [s for s in samples if s["lid"] == "open" and s["speed"] == 0]
    assert weighing  # the lid is open while the cook adds things
    weights = [s["weight_g"] for s in samples]
    assert weights[0] < 120 <= weights[60] and max(weights) > 500  # onion, then water


def test_pause_resume_and_abort() -> None:
    model = ApplianceModel(random.Random(1), lid_alert_per_s=0)
    model.start_session(every_kind_of_step())
    for _ in range(30):
        model.tick(1.0)
    assert model.pause("remote")
    assert not model.pause("again")  # already paused
    assert model.thermal.target_c is None and model.motor.speed == 0
    for _ in range(60):  # the cook resumes on the appliance after a while
        model.tick(1.0)
    assert model.abort("remote")
    assert not model.busy
    types = [e["type"] for e in session_events(model)]
    assert types.index("paused") < types.index("resumed") < types.index("aborted")
    assert types[-1] == "aborted"
    assert not model.abort("twice")


def test_a_lid_alert_is_raised_then_cleared_and_the_session_goes_on() -> None:
    model = ApplianceModel(random.Random(5), lid_alert_per_s=0.2)
    model.start_session(every_kind_of_step())
    samples = run_until_busy_ends(model)
    alerts = [body for kind, body in model.outbox if kind == "alert"]
    assert alerts, "no alert at that rate"
    assert {a["code"] for a in alerts} == {LID_ALERT}
    by_id: dict[str, list[str]] = {}
    for alert in alerts:
        by_id.setdefault(alert["alert_id"], []).append(alert["state"])
        assert alert["severity"] == "warning" and alert["session_id"]
    assert all(states == ["raised", "cleared"] for states in by_id.values())
    assert session_events(model)[-1]["type"] == "completed"
    assert any(s["lid"] == "open" and s["motor_rpm"] == 0 and s["speed"] == 0 for s in samples)


@pytest.mark.parametrize("index", range(len(demo_recipes())))
def test_every_demo_recipe_cooks_to_completion(index: int) -> None:
    content = VersionContent.model_validate(demo_recipes()[index]).model_dump(mode="json")
    model = ApplianceModel(random.Random(index), lid_alert_per_s=1 / 600)
    model.start_session(from_content(content, recipe_id="r", recipe_version=1))
    run_until_busy_ends(model, limit_s=48 * 3600)
    events = session_events(model)
    assert events[-1]["type"] == "completed"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
