"""The simulated appliance without a network (issue 4, item 8): what it would send is valid per
`mqtt-topics.md` (checked with the bridge's own validators), telemetry is batched, and commands
are answered `accepted` then `done`, or `rejected`/`failed` with a reason."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from epicura.recipes.schemas import VersionContent
from epicura.simulator import messages
from epicura.simulator.cloud import Cloud
from epicura.simulator.commands import apply_config, run_command
from epicura.simulator.device import Device, Identity, Options
from epicura.simulator.program import from_content
from epicura.simulator.recipes import RecipeBook

pytestmark = pytest.mark.anyio
RECIPE_ID = "0b7f0a52-96a1-4c1e-9d0e-1f6f0e7c2a11"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


def content() -> dict[str, Any]:
    dumped: dict[str, Any] = VersionContent.model_validate({
        "title": "Quick soup", "servings": 2,
        "ingredients": [{"key": "stock", "name": "Stock", "quantity": 400, "unit": "ml"}],
        "steps": [
            {"title": "Stock", "action": "weigh", "params": {"target_weight_g": 400},
             "ingredient_keys": ["stock"]},
            {"title": "Simmer", "action": "heat", "params": {"temperature_c": 95,
                                                             "duration_s": 20, "speed": 1}},
            {"title": "Blend", "action": "blend", "params": {"speed": 8, "duration_s": 10}},
            {"title": "Serve", "action": "await_user", "params": {"prompt": "Serve it"}},
        ],
    }).model_dump(mode="json")
    return dumped


class UpLink:
    """Stands for a connected link; the tests read what the device queued for it."""

    def __init__(self) -> None:
        self.up = asyncio.Event()
        self.up.set()
        self.restarts = 0

    async def publish(self, name: str, payload: dict[str, Any], *, retain: bool = False) -> None:
        raise AssertionError("the sender does not run in these tests")

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()

    def restart(self) -> None:
        self.restarts += 1


@pytest.fixture
async def device() -> AsyncIterator[Device]:
    cloud = Cloud("http://127.0.0.1:9")  # never called by these tests
    identity = Identity(serial="SIM-T-1", device_id=str(uuid.uuid4()), device_secret="s" * 43)
    options = Options(session_every_s=1e12, lid_alert_per_s=1 / 20)
    dev = Device(identity, cloud, RecipeBook(cloud), options, random.Random(11), FakeClock())
    dev.link = UpLink()
    yield dev
    await cloud.aclose()


def run_seconds(device: Device, seconds: int) -> None:
    clock = device.clock
    assert isinstance(clock, FakeClock)
    for _ in range(seconds):
        clock.now += 1
        device.tick()


def sent(device: Device, name: str | None = None) -> list[dict[str, Any]]:
    return [payload for topic, payload, _ in device.pending if name in (None, topic)]


def results(device: Device) -> list[tuple[str, str | None]]:
    return [(p["status"], p.get("reason")) for p in sent(device, "cmd/result")]


async def test_everything_sent_is_valid_per_the_spec(device: Device) -> None:
    payloads = pytest.importorskip("epicura.bridge.payloads")
    device.start_session(from_content(content(), recipe_id=RECIPE_ID, recipe_version=2), None)
    run_seconds(device, 400)
    outgoing = [*device.birth(), *device.pending]
    kinds = {name for name, _, _ in outgoing}
    assert {"presence", "state", "telemetry", "session"} <= kinds
    now_ms = device.now_ms()
    for name, payload, _ in outgoing:
        raw = orjson.dumps(payload)
        message = payloads.parse(uuid.UUID(device.device_id), name, raw, now_ms)
        if name == "telemetry":
            assert message.refused == 0 and 1 <= len(message.samples) <= 300
    offline = messages.presence_offline(now_ms, "lost")
    payloads.parse(uuid.UUID(device.device_id), "presence", orjson.dumps(offline), now_ms)


async def test_telemetry_is_sampled_each_second_and_sent_every_two_to_five(device: Device) -> None:
    run_seconds(device, 120)
    batches = sent(device, "telemetry")
    assert batches and not sent(device, "telemetry/backlog")
    sizes = [len(b["samples"]) for b in batches]
    assert sum(sizes) == 120 - len(device._batch)
    assert all(1 <= size <= 6 for size in sizes) and max(sizes) >= 2
    assert [b["seq"] for b in batches] == list(range(1, len(batches) + 1))
    times = [s["t"] for b in batches for s in b["samples"]]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert len({b["id"] for b in batches}) == len(batches)


async def test_a_session_splits_the_batches_by_session_id(device: Device) -> None:
    run_seconds(device, 10)
    device.start_session(from_content(content(), recipe_id=RECIPE_ID, recipe_version=2), None)
    run_seconds(device, 200)
    session_ids = {b.get("session_id") for b in sent(device, "telemetry")}
    assert None in session_ids and len(session_ids) == 2
    named = [s.get("session_id") for s in sent(device, "state")]
    assert named[0] is not None and named[0] in session_ids  # the reported state names it


async def test_while_offline_telemetry_is_kept_as_backlog(device: Device) -> None:
    assert device.link is not None
    device.link.up.clear()
    run_seconds(device, 30)
    assert sent(device, "telemetry/backlog") and not sent(device, "telemetry")
    device.link.up.set()
    run_seconds(device, 30)
    assert sent(device, "telemetry")


def command(name: str, **args: Any) -> dict[str, Any]:
    return {"v": 1, "id": str(uuid.uuid4()), "ts": 0, "request_id": str(uuid.uuid4()),
            "name": name, "args": args, "expires_at": "2100-01-01T00:00:00Z"}


async def test_identify_is_accepted_then_done(device: Device) -> None:
    await run_command(device, command("identify"))
    assert results(device) == [("accepted", None), ("done", None)]


async def test_unknown_commands_and_impossible_ones_are_rejected(device: Device) -> None:
    await run_command(device, command("heat.start", temperature_c=200))
    await run_command(device, command("session.pause"))
    await run_command(device, command("session.abort"))
    assert results(device) == [("rejected", "unknown_command"), ("rejected", "no_session"),
                               ("rejected", "no_session")]


async def test_an_expired_command_is_ignored(device: Device) -> None:
    await run_command(device, command("identify") | {"expires_at": "2001-01-01T00:00:00Z"})
    assert results(device) == []


async def test_a_redelivered_command_gets_the_same_answer_once_more(device: Device) -> None:
    cmd = command("identify")
    await run_command(device, cmd)
    await run_command(device, cmd)
    assert results(device) == [("accepted", None), ("done", None), ("done", None)]
    assert device.counters.commands == 1


async def test_prepare_loads_the_recipe_and_the_cook_starts_it(device: Device) -> None:
    device.library[RECIPE_ID] = {"version": 2, "sha256": "0" * 64,
                                 "bundle": {"content": content()}}
    session_id = str(uuid.uuid4())
    await run_command(device, command("session.prepare", recipe_id=RECIPE_ID, recipe_version=2,
                                      servings=4, session_id=session_id))
    assert results(device) == [("accepted", None), ("done", None)]
    run_seconds(device, 15)
    assert device.model.session_id == session_id
    started = sent(device, "session")[0]
    assert (started["type"], started["recipe_id"], started["servings"]) == ("started",
                                                                           RECIPE_ID, 4)
    await run_command(device, command("session.prepare", recipe_id=RECIPE_ID))
    assert results(device)[-1] == ("rejected", "busy")

    await run_command(device, command("session.pause"))
    await run_command(device, command("session.abort"))
    assert results(device)[-4:] == [("accepted", None), ("done", None), ("accepted", None),
                                    ("done", None)]
    assert [e["type"] for e in sent(device, "session")][-2:] == ["paused", "aborted"]
    assert not device.model.busy


async def test_unpair_wipes_the_appliance(device: Device) -> None:
    device.library[RECIPE_ID] = {"version": 1, "sha256": "0" * 64, "bundle": None}
    apply_config(device, {"version": 3, "settings": {"units": "imperial"}})
    device.start_session(from_content(content()), None)
    await run_command(device, command("unpair"))
    assert results(device) == [("accepted", None), ("done", None)]
    assert not device.model.busy and device.library == {}
    assert device.settings == messages.DEFAULT_SETTINGS
    assert [e["type"] for e in sent(device, "session")][-1] == "aborted"


async def test_desired_config_is_applied_once_per_version(device: Device) -> None:
    apply_config(device, {"version": 2, "settings": {"units": "imperial", "sounds": False}})
    apply_config(device, {"version": 1, "settings": {"units": "metric"}})  # older: ignored
    assert device.settings["units"] == "imperial" and device.settings["sounds"] is False
    states = sent(device, "state")
    assert len(states) == 1 and states[0]["settings"]["units"] == "imperial"
