"""`firmware_available` (domain.md, Notifications): the owner of an appliance is told when its
stage of a rollout opens — once per rollout and appliance, whether the stage opens by start,
advance or evaluation, or the appliance's own check comes first; never again on a resume."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from epicura.ota.eligibility import bucket_of, stage_of
from tests.appliances.conftest import Factory, user
from tests.ota.conftest import act, check, create_rollout, evaluate, released
from tests.ota.test_rollouts import stages
from tests.support import API, Service

pytestmark = pytest.mark.anyio


async def told(svc: Service, cook: dict[str, str]) -> list[dict[str, Any]]:
    """The cook's `firmware_available` entries: (appliance, version) of each."""
    reply = await svc.client.get(f"{API}/notifications", headers=cook, params={"limit": 100})
    assert reply.status_code == 200, reply.text
    return sorted(({"appliance_id": item["data"]["appliance_id"],
                    "version": item["data"]["version"]}
                   for item in reply.json()["items"] if item["kind"] == "firmware_available"),
                  key=lambda entry: str(entry["appliance_id"]))


def entries(appliance_ids: list[str], version: str = "1.5.0") -> list[dict[str, Any]]:
    return [{"appliance_id": a, "version": version} for a in sorted(appliance_ids)]


async def test_owners_are_told_once_when_the_stage_of_their_appliance_opens(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey,
        factory: Factory) -> None:
    cook = await user(svc, "ota-available@example.com")
    devices = [(await factory.paired(cook))[0] for _ in range(6)]
    paired = [device.id for device in devices]
    unpaired = await factory.device()
    await factory.online(unpaired.id)
    release = await released(svc, admin, release_key, "1.5.0")
    rollout = await create_rollout(svc, admin, release["id"], stages(50, 100))
    stage = {d: stage_of(bucket_of(uuid.UUID(rollout["id"]), uuid.UUID(d)), [50, 100])
             for d in paired}
    assert await told(svc, cook) == []  # a draft tells nobody

    await act(svc, admin, rollout["id"], "start")
    first = [d for d in paired if stage[d] == 0]
    assert await told(svc, cook) == entries(first)
    # A pause and a resume send the notices again, not the notifications; nor does an
    # evaluation or the appliance's own check.
    await act(svc, admin, rollout["id"], "pause")
    await act(svc, admin, rollout["id"], "resume")
    await evaluate(svc)
    for device in devices:
        if device.id in first:
            assert (await check(svc, device)).status_code == 200
    assert await told(svc, cook) == entries(first)

    await act(svc, admin, rollout["id"], "advance")
    assert await told(svc, cook) == entries(paired)


async def test_an_appliance_whose_check_comes_before_the_evaluation_is_told_once(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey,
        factory: Factory) -> None:
    cook = await user(svc, "ota-available-late@example.com")
    release = await released(svc, admin, release_key, "1.5.0")
    rollout = await create_rollout(svc, admin, release["id"], stages(100))
    await act(svc, admin, rollout["id"], "start")
    late, _ = await factory.paired(cook)  # paired after the start: not a member yet
    assert await told(svc, cook) == []
    assert (await check(svc, late)).status_code == 200
    assert await told(svc, cook) == entries([late.id])
    await evaluate(svc)
    assert (await check(svc, late)).status_code == 200
    assert await told(svc, cook) == entries([late.id])
