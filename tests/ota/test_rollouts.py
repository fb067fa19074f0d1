"""Rollouts: stable bucketing into growing stages, the retained down/ota notice, automatic
advance after the soak, automatic halt on failures (at once and by the periodic evaluation),
devices joining later, admin actions and their audit trail."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from epicura.kit import clock
from epicura.ota.eligibility import bucket_of, cutoff, stage_of
from epicura.ota.models import RolloutDevice
from tests.appliances.conftest import Device, Factory, assert_problem, audit_actions, down_messages
from tests.ota.conftest import (
    act,
    check,
    create_rollout,
    evaluate,
    released,
    report,
    report_over_mqtt_path,
    rollout_detail,
)
from tests.support import Service

pytestmark = pytest.mark.anyio

def stage_plan(rollout_id: str, devices: list[Device],
               percents: list[float]) -> dict[str, int | None]:
    return {d.id: stage_of(bucket_of(uuid.UUID(rollout_id), uuid.UUID(d.id)), percents)
            for d in devices}


def stages(*percents: float, soak_s: int = 600, success: float = 0.9,
           failure: float = 0.2) -> list[dict[str, Any]]:
    return [{"percent": p, "soak_s": soak_s, "success_threshold": success,
             "failure_threshold": failure} for p in percents]


async def members(svc: Service, rollout_id: str) -> dict[str, RolloutDevice]:
    async with svc.runtime.db.sessions() as session:
        rows = await session.scalars(select(RolloutDevice).where(
            RolloutDevice.rollout_id == uuid.UUID(rollout_id)))
        return {str(row.appliance_id): row for row in rows}


async def notices(svc: Service, device: Device) -> list[dict[str, Any]]:
    return [{"payload": m["payload"], "retain": m["retain"]}
            for m in await down_messages(svc, device.id, "ota")]


def test_buckets_are_stable_and_stages_only_grow() -> None:
    rollout = uuid.uuid4()
    devices = [uuid.uuid4() for _ in range(2000)]
    first = [bucket_of(rollout, d) for d in devices]
    assert first == [bucket_of(rollout, d) for d in devices]  # stable
    assert all(0 <= b < 10_000 for b in first)
    assert len({bucket_of(uuid.uuid4(), devices[0]) for _ in range(50)}) > 40  # per rollout
    percents = [1, 10, 50, 100]
    for bucket in first:
        stage = stage_of(bucket, percents)
        assert stage is not None
        # In its stage and every later one, in none before: its place never changes.
        assert all(bucket < cutoff(p) for p in percents[stage:])
        assert all(bucket >= cutoff(p) for p in percents[:stage])
    shares = [sum(1 for b in first if b < cutoff(p)) / len(first) for p in percents]
    assert shares[0] < 0.03 and 0.07 < shares[1] < 0.13 and 0.45 < shares[2] < 0.55
    assert shares[3] == 1


async def test_a_three_stage_rollout_advances_after_each_soak_and_completes(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey,
        factory: Factory, fleet: list[Device]) -> None:
    release = await released(svc, admin, release_key, "1.5.0")
    # Created on the running clock: its audit entry is strictly before the frozen ones.
    rollout = await create_rollout(svc, admin, release["id"], stages(20, 60, 100, success=0.5))
    assert rollout["state"] == "draft" and rollout["current_stage"] is None
    plan = stage_plan(rollout["id"], fleet, [20, 60, 100])
    with clock.frozen(clock.utcnow() + timedelta(milliseconds=5)):
        for device in fleet:  # the clock jumped: say they are still online
            await factory.online(device.id)
        started = await act(svc, admin, rollout["id"], "start")
        assert started["state"] == "active" and started["current_stage"] == 0
        for device in fleet:
            offer = await check(svc, device)
            if plan[device.id] == 0:
                assert offer.status_code == 200, offer.text
                assert await notices(svc, device) == [{
                    "payload": {"rollout_id": rollout["id"], "version": "1.5.0"},
                    "retain": True}]
            else:
                assert offer.status_code == 204
                assert await notices(svc, device) == []
        in_first = [d for d in fleet if plan[d.id] == 0]
        for device in in_first:
            assert (await report(svc, device, rollout["id"], "succeeded")).status_code == 204
        assert await evaluate(svc) == {}  # the soak has not passed
        clock.advance(timedelta(seconds=601))
        for device in fleet:
            await factory.online(device.id)
        assert await evaluate(svc) == {rollout["id"]: "advanced"}
        detail = await rollout_detail(svc, admin, rollout["id"])
        assert detail["current_stage"] == 1
        assert [s["status"] for s in detail["stages"]] == ["passed", "open", "waiting"]
        assert detail["stages"][0]["counts"]["succeeded"] == len(in_first)
        # The stage a device fell in never changes, whatever opened since.
        rows = await members(svc, rollout["id"])
        assert {d: row.stage for d, row in rows.items()} == {
            d: s for d, s in plan.items() if s is not None and s <= 1}
        assert all(row.bucket == bucket_of(uuid.UUID(rollout["id"]), uuid.UUID(d))
                   for d, row in rows.items())
        for device in fleet:
            if plan[device.id] == 1:
                assert (await check(svc, device)).status_code == 200
                await report(svc, device, rollout["id"], "succeeded")
        clock.advance(timedelta(seconds=601))
        assert await evaluate(svc) == {rollout["id"]: "advanced"}
        for device in fleet:
            if plan[device.id] == 2:
                assert (await check(svc, device)).status_code == 200
                await report(svc, device, rollout["id"], "succeeded")
        assert await evaluate(svc) == {}  # the last stage soaks too
        clock.advance(timedelta(seconds=601))
        assert await evaluate(svc) == {rollout["id"]: "completed"}
    detail = await rollout_detail(svc, admin, rollout["id"])
    assert detail["state"] == "completed" and detail["ended_at"] is not None
    assert sum(s["counts"]["succeeded"] for s in detail["stages"]) == len(fleet)
    assert await audit_actions(svc, rollout["id"]) == [
        "rollout.created", "rollout.start", "rollout.advanced", "rollout.advanced",
        "rollout.completed"]


async def test_failure_reports_halt_the_rollout_at_once_and_it_resumes(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey,
        fleet: list[Device]) -> None:
    release = await released(svc, admin, release_key, "1.5.0")
    rollout = await create_rollout(svc, admin, release["id"], stages(100, failure=0.2))
    await act(svc, admin, rollout["id"], "start")
    for device in fleet:
        assert (await check(svc, device)).status_code == 200
    # 10 devices, threshold 0.2: two failures are at it, the third crosses it.
    await report(svc, fleet[0], rollout["id"], "failed", error_code="flash_write")
    await report_over_mqtt_path(svc, fleet[1].id, rollout["id"], "rolled_back")
    assert (await rollout_detail(svc, admin, rollout["id"]))["state"] == "active"
    await report_over_mqtt_path(svc, fleet[2].id, rollout["id"], "failed",
                                error_code="boot_loop")
    detail = await rollout_detail(svc, admin, rollout["id"])
    assert detail["state"] == "halted"
    assert "3 of 10" in detail["halt_reason"]
    assert detail["stages"][0]["counts"]["failed"] == 2
    assert detail["stages"][0]["counts"]["rolled_back"] == 1
    # No further offers, and every notice left is cleared.
    for device in fleet[3:]:
        assert (await check(svc, device)).status_code == 204
        assert (await notices(svc, device))[-1] == {"payload": None, "retain": True}
    assert "rollout.halted" in await audit_actions(svc, rollout["id"])

    resumed = await act(svc, admin, rollout["id"], "resume")
    assert resumed["state"] == "active" and resumed["halt_reason"] is None
    assert (await check(svc, fleet[5])).status_code == 200
    assert (await notices(svc, fleet[5]))[-1]["payload"] == {
        "rollout_id": rollout["id"], "version": "1.5.0"}
    # Still above the threshold: the periodic evaluation halts it again within its period.
    assert await evaluate(svc) == {rollout["id"]: "halted"}


async def test_the_periodic_evaluation_halts_on_failures_reported_while_paused(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey,
        fleet: list[Device]) -> None:
    release = await released(svc, admin, release_key, "1.5.0")
    rollout = await create_rollout(svc, admin, release["id"], stages(100, failure=0.1))
    await act(svc, admin, rollout["id"], "start")
    for device in fleet[:3]:
        assert (await check(svc, device)).status_code == 200
    await act(svc, admin, rollout["id"], "pause")
    assert (await check(svc, fleet[4])).status_code == 204  # paused: nothing offered
    for device in fleet[:3]:  # installs already under way still report
        assert (await report(svc, device, rollout["id"], "failed")).status_code == 204
    await act(svc, admin, rollout["id"], "resume")
    assert await evaluate(svc) == {rollout["id"]: "halted"}
    assert (await rollout_detail(svc, admin, rollout["id"]))["state"] == "halted"


async def test_devices_joining_later_fall_in_and_are_told(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey,
        factory: Factory, fleet: list[Device]) -> None:
    release = await released(svc, admin, release_key, "1.5.0")
    rollout = await create_rollout(svc, admin, release["id"], stages(100))
    await act(svc, admin, rollout["id"], "start")
    assert len(await members(svc, rollout["id"])) == len(fleet)
    newcomer = await factory.device()
    await factory.online(newcomer.id)
    elsewhere = await factory.device(hw_revision="rev-b")
    await factory.online(elsewhere.id)
    await evaluate(svc)
    rows = await members(svc, rollout["id"])
    assert newcomer.id in rows and elsewhere.id not in rows
    assert await notices(svc, newcomer) == [{
        "payload": {"rollout_id": rollout["id"], "version": "1.5.0"}, "retain": True}]
    assert (await check(svc, newcomer)).status_code == 200
    assert (await check(svc, elsewhere)).status_code == 204


async def test_admin_actions_follow_the_state_machine_and_are_audited(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey,
        fleet: list[Device]) -> None:
    release = await released(svc, admin, release_key, "1.5.0")
    rollout = await create_rollout(svc, admin, release["id"], stages(10, 100))
    rid = rollout["id"]
    assert_problem(await svc.client.post(f"/api/v1/admin/rollouts/{rid}/pause", headers=admin),
                   409, "invalid_transition")
    await act(svc, admin, rid, "start")
    assert (await act(svc, admin, rid, "pause"))["state"] == "paused"
    assert (await act(svc, admin, rid, "resume"))["state"] == "active"
    assert (await act(svc, admin, rid, "advance"))["current_stage"] == 1
    aborted = await act(svc, admin, rid, "abort")
    assert aborted["state"] == "aborted" and aborted["ended_at"] is not None
    for action in ("start", "resume", "advance", "abort", "pause"):
        assert_problem(await svc.client.post(f"/api/v1/admin/rollouts/{rid}/{action}",
                                             headers=admin), 409, "invalid_transition")
    for device in fleet:
        assert (await check(svc, device)).status_code == 204
        told = await notices(svc, device)
        assert not told or told[-1] == {"payload": None, "retain": True}
    assert await audit_actions(svc, rid) == [
        "rollout.created", "rollout.start", "rollout.pause", "rollout.resume",
        "rollout.advance", "rollout.abort"]
    # An aborted rollout frees its release for another one.
    again = await create_rollout(svc, admin, release["id"], stages(100))
    assert_problem(await svc.client.post("/api/v1/admin/rollouts", headers=admin, json={
        "release_id": release["id"], "stages": stages(100),
        "filter": {"channel": "stable", "hw_revisions": ["rev-a"]}}), 409, "rollout_exists")
    listed = await svc.client.get("/api/v1/admin/rollouts", headers=admin)
    assert [r["id"] for r in listed.json()["items"]] == [again["id"], rid]


async def test_rollouts_are_checked_against_their_release(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey) -> None:
    release = await released(svc, admin, release_key, "1.5.0")
    body = {"release_id": release["id"], "stages": stages(100),
            "filter": {"channel": "beta", "hw_revisions": ["rev-a"]}}
    url = "/api/v1/admin/rollouts"
    assert_problem(await svc.client.post(url, headers=admin, json=body),
                   422, "filter_outside_release")
    body["filter"] = {"channel": "stable", "hw_revisions": ["rev-z"]}
    assert_problem(await svc.client.post(url, headers=admin, json=body),
                   422, "filter_outside_release")
    body["filter"] = {"channel": "stable", "hw_revisions": ["rev-a"]}
    body["stages"] = stages(50, 10)
    assert_problem(await svc.client.post(url, headers=admin, json=body),
                   422, "validation_failed")
    body["stages"], body["release_id"] = stages(100), str(uuid.uuid4())
    assert_problem(await svc.client.post(url, headers=admin, json=body),
                   422, "release_not_ready")
    await svc.client.patch(f"/api/v1/admin/firmware/{release['id']}", headers=admin,
                           json={"status": "yanked"})
    body["release_id"] = release["id"]
    assert_problem(await svc.client.post(url, headers=admin, json=body),
                   422, "release_not_ready")
    body["surprise"] = 1
    assert_problem(await svc.client.post(url, headers=admin, json=body),
                   422, "validation_failed")
