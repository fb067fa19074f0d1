"""A firmware rollout run end to end with simulated appliances (issue 7, item 5): the service on
PostgreSQL and Redis with its jobs (they publish the retained `down/ota` notices), a private
Mosquitto and a bridge (it takes the `up/ota` reports). An admin trusts a release key, uploads a
signed release and starts a rollout; the simulated appliances, told by the notice, check, verify
the signature and the hash for real, install, reboot and report, and the service records it."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from epicura.auth import service as auth_service
from epicura.ota import release_signing as rs
from epicura.simulator.device import Options
from epicura.simulator.fleet import FleetReport, run_fleet
from epicura.simulator.importers import api_importer
from tests.brokers import PrivateBroker
from tests.conftest import RUN_ID
from tests.ota.conftest import act, create_rollout, released, rollout_detail, trust_new_key
from tests.simulator.test_e2e import ADMIN, _ready, api_client, eventually, fleet_config, rows
from tests.support import STRONG_PASSWORD, Service, bearer

pytestmark = pytest.mark.anyio
NEW_VERSION = "1.5.0"


async def start_rollout(svc: Service, admin: dict[str, str], release_id: str) -> str:
    """One stage of the whole fleet, halting once half of it has failed."""
    stage = {"percent": 100, "soak_s": 0, "success_threshold": 0.9, "failure_threshold": 0.5}
    rollout_id = str((await create_rollout(svc, admin, release_id, [stage]))["id"])
    await act(svc, admin, rollout_id, "start")
    return rollout_id


def counts(detail: dict[str, Any]) -> dict[str, int]:
    total: dict[str, int] = {}
    for stage in detail["stages"]:
        for status, n in stage["counts"].items():
            total[status] = total.get(status, 0) + n
    return {status: n for status, n in total.items() if n}


Running = tuple[dict[str, str], str, FleetReport, asyncio.Event, asyncio.Task[Any]]


async def run_rollout(svc: Service, tmp_path: Path, broker: PrivateBroker, prefix: str,
                      appliances: int, transport: str = "mqtt", **ota: Any) -> Running:
    """Admin, key and release; the fleet online (its first checks find nothing); then the
    rollout starts. Over MQTT the `down/ota` notice makes the appliances check; over HTTPS
    nothing comes down, so they check every simulated 30 s (a real second)."""
    async with svc.runtime.db.transaction() as session:
        await auth_service.create_admin(svc.runtime, session, ADMIN, STRONG_PASSWORD, "Admin")
    admin = bearer((await svc.login(ADMIN)).json())
    key = await trust_new_key(svc)
    release_id = str((await released(svc, admin, key, NEW_VERSION))["id"])
    options = Options(time_scale=30, session_every_s=1e9, lid_alert_per_s=0,
                      boot_sync_within_s=1, ota_install_s=30,
                      ota_check_every_s=1e9 if transport == "mqtt" else 30,
                      release_keys={rs.key_id(key): rs.public_key_b64(key)}, **ota)
    ready: list[FleetReport] = []
    stop = asyncio.Event()
    fleet = asyncio.create_task(run_fleet(
        fleet_config(tmp_path, broker, prefix, appliances=appliances, options=options,
                     transport=transport),
        importer=api_importer(ADMIN, STRONG_PASSWORD), client=api_client(svc), stop=stop,
        on_ready=ready.append))
    await eventually(lambda: _ready(ready, fleet), "the fleet to provision")
    report = ready[0]
    ids = [uuid.UUID(d.device_id) for d in report.devices]

    async def online() -> bool:
        found = await rows(svc, "SELECT count(*) FROM appliances WHERE id = ANY(:ids) AND online "
                           "AND state IS NOT NULL", ids=ids)
        return bool(found[0][0] == len(ids))

    await eventually(online, "the appliances online with their state")
    return admin, await start_rollout(svc, admin, release_id), report, stop, fleet


@pytest.mark.parametrize("transport", ["mqtt", "https"])
async def test_a_rollout_installs_on_the_simulated_appliances(
        stack: Service, tmp_path: Path, broker: PrivateBroker, transport: str) -> None:
    svc = stack
    admin, rollout_id, report, stop, fleet = await run_rollout(
        svc, tmp_path, broker, f"SIMO{transport[0].upper()}{RUN_ID[:6].upper()}-",
        appliances=2, transport=transport)
    ids = [uuid.UUID(d.device_id) for d in report.devices]
    try:
        async def installed() -> bool:
            found = await rows(svc, "SELECT count(*) FROM appliances WHERE id = ANY(:ids) AND "
                               "firmware_version = :v", ids=ids, v=NEW_VERSION)
            return bool(found[0][0] == len(ids)) and counts(
                await rollout_detail(svc, admin, rollout_id)) == {"succeeded": len(ids)}

        await eventually(installed, "the update installed and reported on every appliance")
        assert all(d.identity.firmware_version == NEW_VERSION for d in report.devices)
        assert sum(d.counters.updates for d in report.devices) == len(ids)

        async def back_online() -> bool:  # presence after the reboot: the new version, online
            found = await rows(svc, "SELECT count(*) FROM appliances WHERE id = ANY(:ids) AND "
                               "online AND state->>'firmware_version' = :v", ids=ids,
                               v=NEW_VERSION)
            return bool(found[0][0] == len(ids))

        await eventually(back_online, "the rebooted appliances online with the new version")
    finally:
        stop.set()
        await asyncio.wait_for(fleet, timeout=30)
    # downloading at 0, 25, 50 and 75 %, downloaded, verified, installing, succeeded: once each
    reported = await rows(svc, "SELECT appliance_id, count(*) FROM device_messages WHERE "
                          "appliance_id = ANY(:ids) AND kind = 'ota' GROUP BY appliance_id",
                          ids=ids)
    assert dict(reported) == {appliance_id: 8 for appliance_id in ids}


async def test_a_rollout_halts_itself_when_the_simulated_installs_fail(
        stack: Service, tmp_path: Path, broker: PrivateBroker) -> None:
    svc = stack
    admin, rollout_id, report, stop, fleet = await run_rollout(
        svc, tmp_path, broker, f"SIMF{RUN_ID[:6].upper()}-", appliances=3,
        ota_failure_rate=1.0)
    try:
        async def halted() -> bool:
            detail = await rollout_detail(svc, admin, rollout_id)
            return bool(detail["state"] == "halted")

        await eventually(halted, "the rollout to halt")
        detail = await rollout_detail(svc, admin, rollout_id)
        assert counts(detail).get("failed", 0) >= 1 and "succeeded" not in counts(detail)
        assert all(d.identity.firmware_version != NEW_VERSION for d in report.devices)
    finally:
        stop.set()
        await asyncio.wait_for(fleet, timeout=30)
