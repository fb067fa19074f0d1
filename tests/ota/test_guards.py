"""Guards of reliability-security.md's OTA cases: no downgrade by configuration (T42), an
absolute failure bound next to the share (T40's "5 % or 20 devices"), and a `succeeded` report
naming another version than the release's is no success (T41)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.appliances.conftest import Device, assert_problem
from tests.ota.conftest import (
    ADMIN_ROLLOUTS,
    act,
    check,
    create_rollout,
    released,
    report,
    report_over_mqtt_path,
    rollout_detail,
)
from tests.ota.test_checks import appliance
from tests.ota.test_rollouts import members, stages
from tests.support import Service

pytestmark = pytest.mark.anyio


async def try_rollout(svc: Service, admin: dict[str, str], release_id: str,
                      revision: str = "rev-a") -> Any:
    return await svc.client.post(ADMIN_ROLLOUTS, headers=admin, json={
        "release_id": release_id, "stages": stages(100),
        "filter": {"channel": "stable", "hw_revisions": [revision], "tags": []}})


async def test_t42_no_rollout_takes_the_fleet_back_to_an_older_version(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey,
        fleet: list[Device]) -> None:
    # The whole fleet runs 1.4.2: a rollout of 1.4.0 (or 1.4.2) is refused.
    for version in ("1.4.0", "1.4.2"):
        old = await released(svc, admin, release_key, version)
        refused = assert_problem(await try_rollout(svc, admin, old["id"]), 422,
                                 "version_below_fleet")
        assert version in refused["detail"]
    # A draft of 1.4.9 is fine until 1.5.0 has been rolled out to the same channel and hardware.
    draft = await create_rollout(svc, admin, (await released(
        svc, admin, release_key, "1.4.9", hw_revisions=["rev-a", "rev-b"]))["id"], stages(100))
    newer = await create_rollout(svc, admin, (await released(
        svc, admin, release_key, "1.5.0"))["id"], stages(100))
    await act(svc, admin, newer["id"], "start")
    refused = assert_problem(await svc.client.post(
        f"{ADMIN_ROLLOUTS}/{draft['id']}/start", headers=admin), 422, "version_below_fleet")
    assert "1.5.0" in refused["detail"]
    await act(svc, admin, draft["id"], "abort")
    assert_problem(await try_rollout(svc, admin, draft["release_id"]), 422,
                   "version_below_fleet")
    # Another hardware revision had no 1.5.0: 1.4.9 may go there.
    assert (await try_rollout(svc, admin, draft["release_id"], "rev-b")).status_code == 201
    # Rolling the same release out again (after an abort) is no downgrade.
    await act(svc, admin, newer["id"], "abort")
    again = await try_rollout(svc, admin, newer["release_id"])
    assert again.status_code == 201, again.text


async def test_an_absolute_failure_bound_halts_a_rollout_below_its_share(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey,
        fleet: list[Device]) -> None:
    release = await released(svc, admin, release_key, "1.5.0")
    bounded = [{**stages(100, failure=0.5)[0], "failure_max_devices": 1}]
    rollout = await create_rollout(svc, admin, release["id"], bounded)
    assert rollout["stages"][0]["failure_max_devices"] == 1
    await act(svc, admin, rollout["id"], "start")
    for device in fleet[:2]:
        assert (await check(svc, device)).status_code == 200
    await report(svc, fleet[0], rollout["id"], "failed", error_code="flash_write")
    assert (await rollout_detail(svc, admin, rollout["id"]))["state"] == "active"  # 1: allowed
    await report_over_mqtt_path(svc, fleet[1].id, rollout["id"], "rolled_back")
    detail = await rollout_detail(svc, admin, rollout["id"])  # 2 of 10: 20 % < 50 %, but > 1
    assert detail["state"] == "halted"
    assert "more than the 1 failures allowed" in detail["halt_reason"]
    unbounded = await create_rollout(svc, admin, (await released(
        svc, admin, release_key, "1.5.1"))["id"], stages(100))
    assert unbounded["stages"][0]["failure_max_devices"] is None


async def test_t41_succeeded_on_another_version_is_recorded_as_a_failure(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey,
        fleet: list[Device]) -> None:
    release = await released(svc, admin, release_key, "1.5.0")
    rollout = await create_rollout(svc, admin, release["id"], stages(100, failure=0.5))
    await act(svc, admin, rollout["id"], "start")
    for device in fleet[:3]:
        assert (await check(svc, device)).status_code == 200
    # Over HTTPS: it says succeeded but booted back into 1.4.2.
    assert (await report(svc, fleet[0], rollout["id"], "succeeded",
                         version="1.4.2")).status_code == 204
    # Over MQTT: the same; and a true success naming the release's version.
    await report_over_mqtt_path(svc, fleet[1].id, rollout["id"], "succeeded", version="1.5.1")
    await report_over_mqtt_path(svc, fleet[2].id, rollout["id"], "succeeded", version="1.5.0")
    rows = await members(svc, rollout["id"])
    assert [(rows[d.id].status, rows[d.id].error_code) for d in fleet[:3]] == [
        ("failed", "version_mismatch"), ("failed", "version_mismatch"), ("succeeded", None)]
    assert [(await appliance(svc, d)).firmware_version for d in fleet[:3]] == [
        "1.4.2", "1.4.2", "1.5.0"]
    counts = (await rollout_detail(svc, admin, rollout["id"]))["stages"][0]["counts"]
    assert counts["failed"] == 2 and counts["succeeded"] == 1
