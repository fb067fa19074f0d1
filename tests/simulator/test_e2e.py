"""The simulator against the real pieces (issue 4, item 8): the service on PostgreSQL and Redis
(jobs running, so broker credentials are made), a private Mosquitto with the dynamic-security
plugin, and a bridge consuming from it. Two simulated appliances import their serials as an
admin, provision, connect with their own credentials, report presence, state, telemetry and a
cooking session of a published recipe, answer a command, and say goodbye on stop; a rerun
reuses them."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import text

from epicura.auth import service as auth_service
from epicura.simulator.device import Options
from epicura.simulator.fleet import FleetConfig, FleetReport, run_fleet
from epicura.simulator.importers import api_importer
from tests.brokers import PrivateBroker
from tests.conftest import RUN_ID
from tests.support import API, STRONG_PASSWORD, Service, bearer

pytestmark = pytest.mark.anyio
ADMIN = "simulator-admin@example.com"
COOK = "simulator-cook@example.com"
DEADLINE_S = 60.0


async def eventually(check: Callable[[], Awaitable[bool]], what: str,
                     timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def rows(svc: Service, sql: str, **params: Any) -> list[Any]:
    async with svc.runtime.db.engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def publish_a_recipe(svc: Service, admin: dict[str, str]) -> str:
    recipe = {
        "title": "Simulator soup", "servings": 2, "visibility": "public", "is_official": True,
        "ingredients": [{"key": "stock", "name": "Stock", "quantity": 300, "unit": "ml"}],
        "steps": [
            {"title": "Stock", "action": "weigh", "params": {"target_weight_g": 300},
             "ingredient_keys": ["stock"]},
            {"title": "Warm", "action": "heat", "params": {"temperature_c": 60,
                                                           "duration_s": 30, "speed": 1}},
            {"title": "Serve", "action": "await_user", "params": {"prompt": "Serve"}},
        ],
    }
    created = await svc.client.post(f"{API}/recipes", json=recipe, headers=admin)
    assert created.status_code == 201, created.text
    recipe_id = str(created.json()["id"])
    published = await svc.client.post(f"{API}/recipes/{recipe_id}/publish", headers=admin)
    assert published.status_code == 200, published.text
    return recipe_id


def fleet_config(tmp_path: Path, broker: PrivateBroker, prefix: str,
                 **overrides: Any) -> FleetConfig:
    values: dict[str, Any] = {
        "appliances": 2, "api_url": "http://testserver", "serial_prefix": prefix,
        "mqtt_url": f"mqtt://127.0.0.1:{broker.port}", "state_file": tmp_path / "sim.json",
        "seed": 4, "options": Options(time_scale=30, session_every_s=60, lid_alert_per_s=0,
                                      boot_sync_within_s=1),
    }
    values.update(overrides)
    return FleetConfig(**values)


def api_client(svc: Service) -> httpx2.AsyncClient:
    transport = httpx2.ASGITransport(app=svc.app, client=("127.0.0.1", 40000))
    return httpx2.AsyncClient(transport=transport, base_url=f"http://testserver{API}")


async def claim_and_identify(svc: Service, report: FleetReport) -> dict[str, Any]:
    """A cook pairs the appliance the simulator printed a claim code for (the first one, nobody
    owns it yet) and asks it to identify itself; returns the command."""
    device = report.devices[0]
    assert report.claim is not None and report.claim[0] == device.identity.serial
    cook = bearer(await svc.signed_up(COOK))
    claimed = await svc.client.post(f"{API}/appliances/claim", headers=cook,
                                    json={"claim_code": report.claim[1]})
    assert claimed.status_code == 201, claimed.text
    sent = await svc.client.post(f"{API}/appliances/{device.device_id}/commands",
                                 headers=cook, json={"name": "identify"})
    assert sent.status_code == 202, sent.text
    url = f"{API}/appliances/{device.device_id}/commands/{sent.json()['request_id']}"
    result: dict[str, Any] = {}

    async def answered() -> bool:
        nonlocal result
        result = (await svc.client.get(url, headers=cook)).json()
        return result.get("status") in ("done", "rejected", "failed", "expired")

    await eventually(answered, "the identify command's result")
    return result


async def test_two_simulated_appliances_report_to_the_service(
        stack: Service, tmp_path: Path, broker: PrivateBroker) -> None:
    svc = stack
    async with svc.runtime.db.transaction() as session:
        await auth_service.create_admin(svc.runtime, session, ADMIN, STRONG_PASSWORD, "Admin")
    admin = bearer((await svc.login(ADMIN)).json())
    recipe_id = await publish_a_recipe(svc, admin)
    prefix = f"SIM{RUN_ID[:6].upper()}-"
    ready: list[FleetReport] = []
    stop = asyncio.Event()
    client = api_client(svc)
    fleet = asyncio.create_task(run_fleet(
        fleet_config(tmp_path, broker, prefix), importer=api_importer(ADMIN, STRONG_PASSWORD),
        client=client, stop=stop, on_ready=ready.append))
    try:
        await eventually(lambda: _ready(ready, fleet), "the fleet to provision")
        report = ready[0]
        ids = [uuid.UUID(d.device_id) for d in report.devices]
        assert report.provisioned == 2

        async def online_with_state_and_telemetry() -> bool:
            found = await rows(svc, "SELECT a.id FROM appliances a WHERE a.online AND a.state "
                               "IS NOT NULL AND (SELECT count(*) FROM telemetry_samples t "
                               "WHERE t.appliance_id = a.id) >= 5")
            return {row[0] for row in found} >= set(ids)

        await eventually(online_with_state_and_telemetry, "presence, state and telemetry")
        [(serial, firmware)] = await rows(svc, "SELECT serial, firmware_version FROM appliances "
                                          "WHERE id = :id", id=ids[0])
        assert serial == f"{prefix}000001" and firmware == "1.4.2"

        async def cooked_and_synced() -> bool:
            found: dict[str, int] = dict(await rows(
                svc, "SELECT kind, count(*) FROM device_messages WHERE appliance_id = ANY(:ids) "
                "GROUP BY kind", ids=ids))
            return found.get("session", 0) >= 3 and found.get("sync", 0) >= 2

        await eventually(cooked_and_synced,
                         f"session events of recipe {recipe_id} and sync reports")
        assert (await claim_and_identify(svc, report))["status"] == "done"
    finally:
        stop.set()
        await asyncio.wait_for(fleet, timeout=30)

    async def said_goodbye() -> bool:
        found = await rows(svc, "SELECT count(*) FROM appliances WHERE id = ANY(:ids) AND NOT "
                           "online AND presence_reason = 'shutdown'", ids=ids)
        return bool(found[0][0] == 2)

    await eventually(said_goodbye, "offline presence (shutdown)")
    samples = await rows(svc, "SELECT count(*), count(DISTINCT message_id) FROM "
                         "telemetry_samples WHERE appliance_id = ANY(:ids)", ids=ids)
    assert samples[0][0] >= 10

    again = await run_fleet(fleet_config(tmp_path, broker, prefix, duration_s=2),
                            importer=None, client=client)
    assert (again.provisioned, again.reused) == (0, 2)

    # A secret the service no longer accepts (a lost rotation): that appliance provisions again.
    state_file = tmp_path / "sim.json"
    state = json.loads(state_file.read_text())
    state["appliances"][1]["device_secret"] = "not-the-secret-" + "x" * 30
    state_file.write_text(json.dumps(state))
    healed = await run_fleet(fleet_config(tmp_path, broker, prefix, duration_s=2),
                             importer=None, client=client)
    assert (healed.provisioned, healed.reused) == (1, 1)
    assert json.loads(state_file.read_text())["appliances"][1]["device_secret"] != \
        state["appliances"][1]["device_secret"]
    await client.aclose()


async def _ready(ready: list[FleetReport], fleet: asyncio.Task[FleetReport]) -> bool:
    if fleet.done():
        fleet.result()  # raises what stopped it
        raise AssertionError("the fleet stopped before it was ready")
    return bool(ready)


async def test_the_https_fallback_carries_everything(svc: Service, tmp_path: Path) -> None:
    """`--transport https`: no broker at all; telemetry, state and presence arrive through
    `POST /device/telemetry` and `POST /device/events`."""
    async with svc.runtime.db.transaction() as session:
        await auth_service.create_admin(svc.runtime, session, ADMIN, STRONG_PASSWORD, "Admin")
    client = api_client(svc)
    stop = asyncio.Event()
    ready: list[FleetReport] = []
    config = FleetConfig(appliances=1, api_url="http://testserver", transport="https",
                         serial_prefix=f"SIMH{RUN_ID[:6].upper()}-",
                         state_file=tmp_path / "https.json",
                         options=Options(session_every_s=1e9, batch_s=(1.0, 1.5)))
    fleet = asyncio.create_task(run_fleet(config, importer=api_importer(ADMIN, STRONG_PASSWORD),
                                          client=client, stop=stop, on_ready=ready.append))
    try:
        await eventually(lambda: _ready(ready, fleet), "the fleet to provision")
        device_id = uuid.UUID(ready[0].devices[0].device_id)

        async def reported() -> bool:
            found = await rows(svc, "SELECT a.online, a.state IS NOT NULL, (SELECT count(*) "
                               "FROM telemetry_samples t WHERE t.appliance_id = a.id) FROM "
                               "appliances a WHERE a.id = :id", id=device_id)
            online, has_state, samples = found[0]
            return bool(online and has_state and samples >= 3)

        await eventually(reported, "state and telemetry over HTTPS")
    finally:
        stop.set()
        await asyncio.wait_for(fleet, timeout=30)
        await client.aclose()
    [(online, reason)] = await rows(svc, "SELECT online, presence_reason FROM appliances "
                                    "WHERE id = :id", id=device_id)
    assert (online, reason) == (False, "shutdown")
