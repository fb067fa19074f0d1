"""Update checks and outcomes: what an offer carries (a manifest the appliance can verify, a
short-lived URL of the binary), what is never offered, progress reports and their effects
(firmware version, notice, notification, live event), retries with backoff, bad orders."""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from epicura.appliances import service as appliances_service
from epicura.appliances.models import Appliance
from epicura.kit import clock
from epicura.ota import release_signing as rs
from epicura.realtime import channels
from tests.appliances.conftest import Device, Factory, assert_problem, down_messages, user
from tests.ota.conftest import (
    act,
    check,
    create_rollout,
    released,
    report,
    report_over_mqtt_path,
    rollout_detail,
)
from tests.support import API, Service

pytestmark = pytest.mark.anyio
ALL = [{"percent": 100, "soak_s": 3600, "success_threshold": 1, "failure_threshold": 1}]


async def active_rollout(svc: Service, admin: dict[str, str], key: Ed25519PrivateKey,
                         version: str = "1.5.0", **release: Any) -> dict[str, Any]:
    made = await released(svc, admin, key, version, **release)
    rollout = await create_rollout(svc, admin, made["id"], ALL,
                                   channel=release.get("channel", "stable"))
    return await act(svc, admin, rollout["id"], "start")


async def appliance(svc: Service, device: Device) -> Appliance:
    async with svc.runtime.db.sessions() as session:
        found = await session.get(Appliance, uuid.UUID(device.id))
        assert found is not None
        return found


async def test_an_offer_carries_a_verifiable_manifest_and_a_short_lived_url(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey,
        fleet: list[Device]) -> None:
    rollout = await active_rollout(svc, admin, release_key, min_from_version="1.0.0")
    device = fleet[0]
    before = clock.utcnow()
    reply = await check(svc, device, hw_revision="rev-a", channel="stable")
    assert reply.status_code == 200, reply.text
    offer = reply.json()
    assert set(offer) == {"release_id", "rollout_id", "version", "size", "sha256", "signature",
                          "key_id", "url", "url_expires_at", "manifest"}
    assert offer["rollout_id"] == rollout["id"] and offer["version"] == "1.5.0"
    # What the appliance does: verify the signature over the manifest's exact bytes with the
    # key it pins, check the manifest says what the offer says, then the binary's hash.
    manifest = base64.b64decode(offer["manifest"])
    assert offer["key_id"] == rs.key_id(release_key)
    assert rs.verify(rs.public_key_b64(release_key), manifest, offer["signature"])
    assert b'"version": "1.5.0"' in manifest and offer["sha256"].encode() in manifest
    expires = datetime.fromisoformat(offer["url_expires_at"])
    assert before < expires <= before + timedelta(hours=1, seconds=5)
    binary = await svc.client.get(offer["url"].removeprefix("https://app.epicura.test"))
    assert binary.status_code == 200
    assert len(binary.content) == offer["size"]
    assert hashlib.sha256(binary.content).hexdigest() == offer["sha256"]
    # A GET-only URL of that one object: another key with its signature is refused.
    other = offer["url"].replace(offer["release_id"], str(uuid.uuid4()))
    assert (await svc.client.get(other.removeprefix("https://app.epicura.test"))
            ).status_code == 403
    # The same offer again: 304 with If-None-Match.
    again = await svc.client.get(f"{API}/device/firmware/check", params={"current": "1.4.2"},
                                 headers={**device.headers, "If-None-Match": reply.headers["etag"]})
    assert again.status_code == 304
    # A user token is refused on the device route.
    cook = await user(svc, "ota-check-cook@example.com")
    assert (await svc.client.get(f"{API}/device/firmware/check", headers=cook)).status_code \
        == 401


async def test_what_is_never_offered(svc: Service, admin: dict[str, str],
                                     release_key: Ed25519PrivateKey, factory: Factory,
                                     fleet: list[Device]) -> None:
    rollout = await active_rollout(svc, admin, release_key, min_from_version="1.3.0")
    device = fleet[0]
    assert (await check(svc, device, current="1.5.0")).status_code == 204  # same version
    assert (await check(svc, device, current="2.0.0")).status_code == 204  # a downgrade
    assert (await check(svc, device, current="1.2.9")).status_code == 204  # below min_from
    assert (await check(svc, device, current="1.5.0-rc.1")).status_code == 200  # a pre-release
    assert (await check(svc, device, hw_revision="rev-b")).status_code == 204
    assert (await check(svc, device, channel="beta")).status_code == 204
    other_hw = await factory.device(hw_revision="rev-b")
    assert (await check(svc, other_hw)).status_code == 204
    beta = await factory.device()
    async with svc.runtime.db.transaction() as session:
        row = await session.get(Appliance, uuid.UUID(beta.id))
        assert row is not None
        row.channel = "beta"
    assert (await check(svc, beta)).status_code == 204
    assert (await check(svc, beta, channel="beta")).status_code == 204
    # A cooking session running on the appliance: nothing until it ends.
    session_id = uuid.uuid4()
    async with svc.runtime.db.transaction() as session:
        await appliances_service.set_current_session(session, uuid.UUID(device.id), session_id,
                                                     True)
    assert (await check(svc, device)).status_code == 204
    async with svc.runtime.db.transaction() as session:
        await appliances_service.set_current_session(session, uuid.UUID(device.id), session_id,
                                                     False)
    assert (await check(svc, device)).status_code == 200
    # A yanked release: never again, and its rollout ends.
    await svc.client.patch(f"{API}/admin/firmware/{rollout['release_id']}", headers=admin,
                           json={"status": "yanked"})
    assert (await check(svc, device)).status_code == 204
    assert (await rollout_detail(svc, admin, rollout["id"]))["state"] == "aborted"


async def test_the_newest_allowed_release_is_offered(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey,
        fleet: list[Device]) -> None:
    await active_rollout(svc, admin, release_key, "1.5.0")
    newest = await active_rollout(svc, admin, release_key, "1.6.0", min_from_version="1.5.0")
    assert (await check(svc, fleet[0])).json()["version"] == "1.5.0"  # 1.6.0 needs 1.5.0
    assert (await check(svc, fleet[0], current="1.5.0")).json()["rollout_id"] == newest["id"]


async def test_outcomes_update_the_appliance_tell_the_owner_and_go_live(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey,
        factory: Factory) -> None:
    cook = await user(svc, "ota-owner@example.com")
    device, _ = await factory.paired(cook)
    rollout = await active_rollout(svc, admin, release_key)
    channel = f"appliance:{device.id}"
    since = await channels.last_id(svc.runtime, channel)
    assert (await check(svc, device)).status_code == 200
    for status, extra in (("downloading", {"progress_pct": 40}), ("downloading",
                                                                 {"progress_pct": 80}),
                          ("downloaded", {}), ("verified", {}), ("installing", {})):
        assert (await report(svc, device, rollout["id"], status, **extra)).status_code == 204
    await report_over_mqtt_path(svc, device.id, rollout["id"], "succeeded")
    assert (await appliance(svc, device)).firmware_version == "1.5.0"
    events = await channels.replay(svc.runtime, channel, since) or []
    progress = [e["data"] for e in events if e["type"] == "ota.progress"]
    assert progress[0] == {"appliance_id": device.id, "version": "1.5.0",
                           "status": "downloading", "progress_pct": 40}
    assert [p["status"] for p in progress][-1] == "succeeded"
    assert (await down_messages(svc, device.id, "ota"))[-1]["payload"] is None  # cleared
    inbox = (await svc.client.get(f"{API}/notifications", headers=cook)).json()["items"]
    assert [item["kind"] for item in inbox] == ["firmware_installed", "firmware_available"]
    assert inbox[0]["data"]["version"] == "1.5.0"
    # Done: a later report cannot move it back; over MQTT it is dropped.
    assert_problem(await report(svc, device, rollout["id"], "downloading"), 409,
                   "invalid_status_transition")
    await report_over_mqtt_path(svc, device.id, rollout["id"], "failed")
    detail = await rollout_detail(svc, admin, rollout["id"])
    assert detail["stages"][0]["counts"]["succeeded"] == 1
    assert (await check(svc, device, current="1.5.0")).status_code == 204
    assert_problem(await report(svc, device, str(uuid.uuid4()), "downloading"), 404,
                   "not_in_rollout")
    assert_problem(await report(svc, device, rollout["id"], "exploded"), 422,
                   "validation_failed")


async def test_failures_are_offered_again_with_backoff_up_to_a_limit(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey,
        factory: Factory) -> None:
    cook = await user(svc, "ota-retry@example.com")
    device, _ = await factory.paired(cook)
    rollout = await active_rollout(svc, admin, release_key)
    with clock.frozen(clock.utcnow()):
        for attempt, wait_min in ((1, 5), (2, 10)):
            assert (await check(svc, device)).status_code == 200, attempt
            await report(svc, device, rollout["id"], "downloading")
            await report(svc, device, rollout["id"], "failed", error_code="download_failed")
            assert (await check(svc, device)).status_code == 204  # backing off
            clock.advance(timedelta(minutes=wait_min) - timedelta(seconds=1))
            assert (await check(svc, device)).status_code == 204
            clock.advance(timedelta(seconds=1))
        assert (await check(svc, device)).status_code == 200
        await report(svc, device, rollout["id"], "failed", error_code="download_failed")
        clock.advance(timedelta(minutes=25))  # past the next backoff (tokens last an hour)
        assert (await check(svc, device)).status_code == 204  # three failures: no more
    inbox = (await svc.client.get(f"{API}/notifications", headers=cook)).json()["items"]
    # told once at the start that it is available, once at the end that it failed
    assert [item["kind"] for item in inbox] == ["firmware_failed", "firmware_available"]


async def test_a_rollback_is_final_and_a_deferral_waits(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey,
        fleet: list[Device]) -> None:
    rollout = await active_rollout(svc, admin, release_key)
    with clock.frozen(clock.utcnow()):
        assert (await check(svc, fleet[0])).status_code == 200
        await report(svc, fleet[0], rollout["id"], "rolled_back", reason="watchdog")
        clock.advance(timedelta(minutes=25))  # past the next backoff (tokens last an hour)
        assert (await check(svc, fleet[0])).status_code == 204
        assert (await check(svc, fleet[1])).status_code == 200
        await report(svc, fleet[1], rollout["id"], "deferred", reason="user busy")
        assert (await check(svc, fleet[1])).status_code == 204
        clock.advance(timedelta(minutes=6))
        assert (await check(svc, fleet[1])).status_code == 200
    async with svc.runtime.db.sessions() as session:
        from epicura.ota.models import RolloutDevice

        rows = {str(r.appliance_id): r for r in await session.scalars(select(RolloutDevice))}
    assert rows[fleet[0].id].status == "rolled_back" and rows[fleet[0].id].reason == "watchdog"
    assert rows[fleet[1].id].status == "offered"
