"""The issue's end state on the server side, over 100 appliances: a signed release, a 3-stage
rollout that advances on its own after each soak, halts itself when installs start failing (the
threshold crossed by reports over HTTPS and over up/ota alike), offers nothing more, and a fixed
release rolled out after it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from epicura.appliances.access import issue_device_token
from epicura.appliances.models import Appliance
from epicura.kit import clock
from epicura.ota.eligibility import bucket_of, stage_of
from tests.ota.conftest import (
    act,
    appliance_row,
    create_rollout,
    evaluate,
    released,
    report_over_mqtt_path,
    rollout_detail,
)
from tests.support import API, Service, bearer

pytestmark = pytest.mark.anyio
FLEET = 100
STAGES = [{"percent": p, "soak_s": 900, "success_threshold": 0.9, "failure_threshold": 0.1}
          for p in (10, 40, 100)]


async def make_fleet(svc: Service) -> list[Appliance]:
    fleet = [appliance_row() for _ in range(FLEET)]
    async with svc.runtime.db.transaction() as session:
        session.add_all(fleet)
    return fleet


async def update(svc: Service, appliance: Appliance, outcome: str, *, mqtt: bool) -> int:
    """One appliance's round: check; on an offer, download and report `outcome`."""
    headers = bearer(issue_device_token(svc.runtime, appliance)[0])
    offer = await svc.client.get(f"{API}/device/firmware/check", headers=headers,
                                 params={"current": "1.4.2"})
    if offer.status_code != 200:
        return offer.status_code
    rollout_id = offer.json()["rollout_id"]
    for status in ("downloading", "verified", "installing", outcome):
        if mqtt:
            await report_over_mqtt_path(svc, str(appliance.id), rollout_id, status)
        else:
            reply = await svc.client.post(f"{API}/device/firmware/status", headers=headers,
                                          json={"rollout_id": rollout_id, "status": status})
            assert reply.status_code == 204, reply.text
    return 200


async def test_a_fleet_rollout_advances_halts_itself_and_a_fix_follows(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey) -> None:
    fleet = await make_fleet(svc)
    release = await released(svc, admin, release_key, "1.5.0")
    rollout = await create_rollout(svc, admin, release["id"], STAGES)
    rid = uuid.UUID(rollout["id"])
    stage = {a.id: stage_of(bucket_of(rid, a.id), [10, 40, 100]) for a in fleet}
    with clock.frozen(clock.utcnow()):
        await act(svc, admin, rollout["id"], "start")
        for appliance in fleet:  # stage 1 installs fine; the others are not offered yet
            got = await update(svc, appliance, "succeeded", mqtt=appliance.id.int % 2 == 0)
            assert got == (200 if stage[appliance.id] == 0 else 204)
        clock.advance(timedelta(seconds=901))
        assert await evaluate(svc) == {rollout["id"]: "advanced"}

        # Stage 2 starts failing: the rollout halts on the report that crosses 10 %.
        second = [a for a in fleet if stage[a.id] == 1]
        halted_after: int | None = None
        for n, appliance in enumerate(second):
            outcome = "succeeded" if n % 3 else "failed"
            got = await update(svc, appliance, outcome, mqtt=n % 2 == 0)
            state = (await rollout_detail(svc, admin, rollout["id"]))["state"]
            if state == "halted":
                halted_after = n
                break
            assert got == 200
        assert halted_after is not None
        detail = await rollout_detail(svc, admin, rollout["id"])
        devices = sum(s["devices"] for s in detail["stages"][:2])
        failed = sum(s["counts"]["failed"] for s in detail["stages"])
        assert failed / devices > 0.1 and (failed - 1) / devices <= 0.1  # crossed just now
        for appliance in second[halted_after + 1:]:
            assert await update(svc, appliance, "succeeded", mqtt=False) == 204  # none offered

    # The fix: 1.5.0 is yanked (its rollout ends), 1.5.1 goes out to everyone still on 1.4.2.
    assert (await svc.client.patch(f"{API}/admin/firmware/{release['id']}", headers=admin,
                                   json={"status": "yanked"})).status_code == 200
    assert (await rollout_detail(svc, admin, rollout["id"]))["state"] == "aborted"
    fixed = await released(svc, admin, release_key, "1.5.1")
    follow_up = await create_rollout(svc, admin, fixed["id"], [
        {"percent": 100, "soak_s": 0, "success_threshold": 0.9, "failure_threshold": 0.1}])
    await act(svc, admin, follow_up["id"], "start")
    results: dict[str, Any] = {}
    for appliance in fleet:
        results[str(appliance.id)] = await update(svc, appliance, "succeeded", mqtt=False)
    assert set(results.values()) == {200}  # each appliance reports 1.4.2 in this check
    assert await evaluate(svc) == {follow_up["id"]: "completed"}
