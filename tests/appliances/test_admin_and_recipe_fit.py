"""The admin fleet routes (search, detail, decommission) and the recipes module's appliance hook
(`GET /recipes?appliance_id=`, `/recipes/{id}/scaled?appliance_id=`) end to end."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from epicura.bridge.broker_tasks import REMOVE_JOB
from tests.appliances.conftest import (
    Factory,
    assert_problem,
    audit_actions,
    down_messages,
    jobs_of,
    user,
)
from tests.recipes.test_recipe_flow import soup
from tests.support import API, Service

pytestmark = pytest.mark.anyio

FLEET = f"{API}/admin/appliances"


async def test_fleet_search_and_paging(svc: Service, factory: Factory) -> None:
    cook = await user(svc, "test-fleet-search@example.com")
    online, _ = await factory.paired(cook)
    offline = await factory.device(hw_revision="rev-b")
    imported = factory.row(serial="TST-FLEET-IMPORTED")
    await factory.import_rows([imported])
    await svc.client.patch(f"{API}/appliances/{online.id}", json={"channel": "beta"},
                           headers=cook)

    async def ids(**params: Any) -> list[str]:
        reply = await svc.client.get(FLEET, params=params, headers=factory.admin)
        assert reply.status_code == 200, reply.text
        return [item["id"] for item in reply.json()["items"]]

    everyone = await ids()
    assert len(everyone) == 3 and everyone[0] != online.id  # newest import first
    assert await ids(online=True) == [online.id]
    assert online.id not in await ids(online=False) and offline.id in await ids(online=False)
    assert await ids(channel="beta") == [online.id]
    assert await ids(hw_revision="rev-b") == [offline.id]
    assert await ids(firmware="1.4.2", lifecycle="provisioned") == [offline.id, online.id]
    assert len(await ids(q="fleet-imported")) == 1
    assert await ids(q="%") == []  # a wildcard is a literal character
    first = await svc.client.get(FLEET, params={"limit": 2}, headers=factory.admin)
    cursor = first.json()["next_cursor"]
    rest = await svc.client.get(FLEET, params={"limit": 2, "cursor": cursor},
                                headers=factory.admin)
    paged = [i["id"] for i in first.json()["items"]] + [i["id"] for i in rest.json()["items"]]
    assert paged == everyone and rest.json()["next_cursor"] is None
    detail = await svc.client.get(f"{FLEET}/{online.id}", headers=factory.admin)
    assert detail.status_code == 200
    body = detail.json()
    assert body["lifecycle"] == "provisioned" and body["owner_id"] and body["online"] is True
    assert not {"factory_secret_hash", "device_secret_hash"} & set(body)
    assert_problem(await svc.client.get(f"{FLEET}/{uuid.uuid4()}", headers=factory.admin),
                   404, "not_found")
    assert_problem(await svc.client.get(FLEET, headers=cook), 403, "forbidden")
    assert_problem(await svc.client.get(FLEET, params={"cursor": "e30"},
                                        headers=factory.admin), 400, "invalid_cursor")


async def test_decommission_ends_everything_and_tells_nothing(svc: Service,
                                                              factory: Factory) -> None:
    cook = await user(svc, "test-fleet-decommission@example.com")
    device, _ = await factory.paired(cook)
    url = f"{FLEET}/{device.id}/decommission"
    assert_problem(await svc.client.post(url, headers=cook), 403, "forbidden")
    reply = await svc.client.post(url, headers=factory.admin)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["lifecycle"] == "decommissioned" and body["owner_id"] is None
    assert body["online"] is False and body["decommissioned_at"]
    # Its token, its secret, its factory secret: all refused now.
    assert_problem(await svc.client.get(f"{API}/device/config", headers=device.headers), 401,
                   "unauthorized")
    assert_problem(await factory.token(device.id, device.secret), 401, "invalid_credentials")
    reprovision = await factory.provision({"serial": device.serial, "model": "epicura-1",
                                           "hw_revision": "rev-a",
                                           "factory_secret": device.factory_secret})
    assert_problem(reprovision, 403, "provision_refused")
    # The owner lost it; the appliance was told nothing; the broker loses its credentials.
    assert_problem(await svc.client.get(f"{API}/appliances/{device.id}", headers=cook), 404,
                   "not_found")
    assert await down_messages(svc, device.id, "cmd") == []
    assert len(await jobs_of(svc, REMOVE_JOB, device.id)) == 1
    again = await svc.client.post(url, headers=factory.admin)
    assert again.status_code == 200 and again.json() == body
    assert len(await jobs_of(svc, REMOVE_JOB, device.id)) == 1
    assert (await audit_actions(svc, device.id)).count("appliance.decommission") == 1
    # Its serial stays taken: a re-import skips it.
    skipped = await factory.import_rows([{"serial": device.serial, "model": "epicura-1",
                                          "hw_revision": "rev-a",
                                          "factory_secret": "another-secret-0123456"}])
    assert skipped["skipped"] == 1


async def _recipe(svc: Service, owner: dict[str, str], body: dict[str, Any]) -> str:
    reply = await svc.client.post(f"{API}/recipes", json=body, headers=owner)
    assert reply.status_code == 201, reply.text
    recipe_id: str = reply.json()["id"]
    return recipe_id


async def test_recipes_cookable_on_my_appliance(svc: Service, factory: Factory) -> None:
    cook = await user(svc, "test-fit-list@example.com")
    other = await user(svc, "test-fit-list-other@example.com")
    rev_a, _ = await factory.paired(cook)
    rev_b, _ = await factory.paired(cook, await factory.device(hw_revision="rev-b"))
    recipe_id = await _recipe(svc, cook, soup())
    # The appliances report firmware 1.4.2: 1.4.2 and 1.3.10 fit, 1.10.0 (numerically newer,
    # though it sorts first as text) and 2.0.0 do not.
    fits = [await _recipe(svc, cook, {**soup(f"Fits {version}"),
                                      "requires": {"min_firmware": version}})
            for version in ("1.4.2", "1.3.10")]
    for version in ("1.10.0", "2.0.0"):
        await _recipe(svc, cook, {**soup(f"Too new {version}"),
                                  "requires": {"min_firmware": version}})

    async def listed(appliance_id: str, headers: dict[str, str]) -> list[str]:
        reply = await svc.client.get(f"{API}/recipes", headers=headers,
                                     params={"mine": "true", "appliance_id": appliance_id})
        assert reply.status_code == 200, reply.text
        return [item["id"] for item in reply.json()["items"]]

    assert sorted(await listed(rev_a.id, cook)) == sorted([recipe_id, *fits])
    assert await listed(rev_b.id, cook) == []  # written for epicura-1/rev-a only
    foreign = await svc.client.get(f"{API}/recipes", headers=other,
                                   params={"appliance_id": rev_a.id})
    assert_problem(foreign, 404, "not_found")
    anonymous = await svc.client.get(f"{API}/recipes", params={"appliance_id": rev_a.id})
    assert_problem(anonymous, 401, "unauthorized")


async def test_scaling_checks_my_appliance(svc: Service, factory: Factory) -> None:
    cook = await user(svc, "test-fit-scaled@example.com")
    other = await user(svc, "test-fit-scaled-other@example.com")
    device, _ = await factory.paired(cook)
    recipe_id = await _recipe(svc, cook, {**soup(), "visibility": "public"})
    url = f"{API}/recipes/{recipe_id}/scaled"
    fits = await svc.client.get(url, params={"appliance_id": device.id, "servings": 4},
                                headers=cook)
    assert fits.status_code == 200, fits.text
    assert fits.json()["profile"] == "epicura-1/rev-a"
    too_much = await svc.client.get(url, params={"appliance_id": device.id, "servings": 20},
                                    headers=cook)
    problem = assert_problem(too_much, 422, "exceeds_capacity")
    assert problem["errors"][0]["profile"] == "epicura-1/rev-a"
    assert problem["errors"][0]["field"] == "bowl_capacity_ml"
    # Only the caller's own appliance; an appliance of an unknown profile has nothing to check.
    assert_problem(await svc.client.get(url, params={"appliance_id": device.id},
                                        headers=other), 404, "not_found")
    odd, _ = await factory.paired(cook, await factory.device(model="epicura-9"))
    assert_problem(await svc.client.get(url, params={"appliance_id": odd.id}, headers=cook),
                   404, "not_found")
