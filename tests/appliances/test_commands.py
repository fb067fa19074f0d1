"""Commands: only the allowed names (nothing that heats or turns the blades), arguments checked
per name, 409 offline, `down/cmd` with its expiry, results from the appliance (the bridge's
`record_command_result`) that never regress, expiry on read and by the sweep, Idempotency-Key."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from epicura.appliances.commands import expire_commands, record_command_result
from epicura.appliances.models import ApplianceCommand
from epicura.kit import clock
from tests.appliances.conftest import (
    Device,
    Factory,
    assert_problem,
    audit_actions,
    down_messages,
    user,
)
from tests.recipes.test_recipe_flow import soup
from tests.support import API, Service

pytestmark = pytest.mark.anyio


def commands_url(device: Device) -> str:
    return f"{API}/appliances/{device.id}/commands"


async def result(svc: Service, device: Device, request_id: str, status: str,
                 reason: str | None = None) -> bool:
    async with svc.runtime.db.transaction() as session:
        return await record_command_result(session, uuid.UUID(device.id), request_id, status,
                                           reason)


async def test_a_command_is_sent_with_its_expiry(svc: Service, factory: Factory) -> None:
    cook = await user(svc, "test-commands-send@example.com")
    device, _ = await factory.paired(cook)
    reply = await svc.client.post(commands_url(device), json={"name": "identify",
                                                              "args": {"duration_s": 5}},
                                  headers=cook)
    assert reply.status_code == 202, reply.text
    body = reply.json()
    assert body["status"] == "sent"
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert timedelta(seconds=55) < expires_at - datetime.now(UTC) <= timedelta(seconds=60)
    [message] = await down_messages(svc, device.id, "cmd")
    assert message["expiry_s"] == 60 and message["retain"] is False
    assert message["payload"] == {"request_id": body["request_id"], "name": "identify",
                                  "args": {"duration_s": 5}, "expires_at": message["payload"][
                                      "expires_at"]}
    assert datetime.fromisoformat(message["payload"]["expires_at"]) == expires_at
    read = await svc.client.get(f"{commands_url(device)}/{body['request_id']}", headers=cook)
    assert read.status_code == 200
    assert (read.json()["name"], read.json()["status"]) == ("identify", "sent")
    assert "appliance.command" in await audit_actions(svc, device.id)


@pytest.mark.parametrize("name", ["heat", "motor.start", "session.start", "blade.spin",
                                  "SESSION.PREPARE", "", "identify "])
async def test_only_allowed_names(svc: Service, factory: Factory, name: str) -> None:
    cook = await user(svc, "test-commands-names@example.com")
    device, _ = await factory.paired(cook)
    reply = await svc.client.post(commands_url(device), json={"name": name, "args": {}},
                                  headers=cook)
    assert_problem(reply, 422, "command_not_allowed")
    assert await down_messages(svc, device.id, "cmd") == []


async def test_arguments_are_checked_per_command(svc: Service, factory: Factory) -> None:
    cook = await user(svc, "test-commands-args@example.com")
    device, _ = await factory.paired(cook)
    for body in ({"name": "session.prepare"}, {"name": "session.prepare",
                                               "args": {"recipe_id": "soup"}},
                 {"name": "session.prepare", "args": {"recipe_id": str(uuid.uuid4()),
                                                      "temperature_c": 120}},
                 {"name": "sync.now", "args": {"force": True}},
                 {"name": "identify", "args": {"duration_s": 500}},
                 {"name": "session.pause", "args": {"session_id": "x"}}):
        reply = await svc.client.post(commands_url(device), json=body, headers=cook)
        problem = assert_problem(reply, 422, "validation_failed")
        assert problem["errors"][0]["loc"][:2] == ["body", "args"]
    unknown = await svc.client.post(commands_url(device), json={
        "name": "session.prepare", "args": {"recipe_id": str(uuid.uuid4())}}, headers=cook)
    assert_problem(unknown, 404, "not_found")
    recipe = await svc.client.post(f"{API}/recipes", json=soup(), headers=cook)
    recipe_id = recipe.json()["id"]
    no_version = await svc.client.post(commands_url(device), json={
        "name": "session.prepare", "args": {"recipe_id": recipe_id, "recipe_version": 9}},
        headers=cook)
    assert_problem(no_version, 404, "not_found")
    prepared = await svc.client.post(commands_url(device), json={
        "name": "session.prepare", "args": {"recipe_id": recipe_id, "servings": 2}},
        headers=cook)
    assert prepared.status_code == 202, prepared.text
    [message] = await down_messages(svc, device.id, "cmd")
    # Pinned to the version current now, so the appliance loads exactly what was chosen.
    assert message["payload"]["args"] == {"recipe_id": recipe_id, "recipe_version": 1,
                                          "servings": 2}


async def test_offline_appliance_is_409(svc: Service, factory: Factory) -> None:
    cook = await user(svc, "test-commands-offline@example.com")
    device, _ = await factory.paired(cook, online=False)
    reply = await svc.client.post(commands_url(device), json={"name": "sync.now"}, headers=cook)
    assert_problem(reply, 409, "appliance_offline")
    await factory.online(device.id)
    with clock.frozen(datetime.now(UTC) + timedelta(seconds=91)):  # silent too long
        stale = await svc.client.post(commands_url(device), json={"name": "sync.now"},
                                      headers=cook)
        assert_problem(stale, 409, "appliance_offline")
    assert await down_messages(svc, device.id, "cmd") == []


async def test_results_move_forward_only(svc: Service, factory: Factory) -> None:
    cook = await user(svc, "test-commands-results@example.com")
    device, _ = await factory.paired(cook)
    other = await factory.device()
    sent = await svc.client.post(commands_url(device), json={"name": "ota.check"}, headers=cook)
    request_id = sent.json()["request_id"]
    url = f"{commands_url(device)}/{request_id}"
    # Another appliance cannot answer for it; unknown ids and statuses change nothing.
    assert not await result(svc, other, request_id, "done")
    assert not await result(svc, device, str(uuid.uuid4()), "done")
    assert not await result(svc, device, "not-a-uuid", "done")
    assert not await result(svc, device, request_id, "expired")
    assert not await result(svc, device, request_id, "sent")
    assert await result(svc, device, request_id, "accepted")
    assert not await result(svc, device, request_id, "accepted")  # a redelivery
    assert (await svc.client.get(url, headers=cook)).json()["status"] == "accepted"
    assert await result(svc, device, request_id, "failed", "no network " * 100)
    assert not await result(svc, device, request_id, "done")  # final: never changes
    assert not await result(svc, device, request_id, "accepted")
    final = (await svc.client.get(url, headers=cook)).json()
    assert final["status"] == "failed" and len(final["reason"]) == 500


async def test_expiry_on_read_and_by_the_sweep(svc: Service, factory: Factory) -> None:
    cook = await user(svc, "test-commands-expiry@example.com")
    device, _ = await factory.paired(cook)
    silent = (await svc.client.post(commands_url(device), json={"name": "config.reload"},
                                    headers=cook)).json()["request_id"]
    working = (await svc.client.post(commands_url(device), json={"name": "sync.now"},
                                     headers=cook)).json()["request_id"]
    assert await result(svc, device, working, "accepted")
    later = datetime.now(UTC) + timedelta(seconds=61)
    with clock.frozen(later):
        shown = await svc.client.get(f"{commands_url(device)}/{silent}", headers=cook)
        assert shown.json()["status"] == "expired"
        # Too late for an answer to a command never accepted; an accepted one may finish.
        assert not await result(svc, device, silent, "done")
        assert await result(svc, device, working, "done")
    async with svc.runtime.db.transaction() as session:
        assert await expire_commands(session, later) == 1
        assert await expire_commands(session, later) == 0
    async with svc.runtime.db.sessions() as session:
        statuses = dict((await session.execute(select(
            ApplianceCommand.request_id, ApplianceCommand.status).where(
                ApplianceCommand.appliance_id == uuid.UUID(device.id)))).all())
    assert statuses == {uuid.UUID(silent): "expired", uuid.UUID(working): "done"}


async def test_idempotency_key_sends_once(svc: Service, factory: Factory) -> None:
    cook = await user(svc, "test-commands-idempotent@example.com")
    device, _ = await factory.paired(cook)
    headers = {**cook, "Idempotency-Key": "identify-1"}
    first = await svc.client.post(commands_url(device), json={"name": "identify"},
                                  headers=headers)
    again = await svc.client.post(commands_url(device), json={"name": "identify"},
                                  headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["request_id"] == again.json()["request_id"]
    assert len(await down_messages(svc, device.id, "cmd")) == 1
    other_body = await svc.client.post(commands_url(device), json={"name": "sync.now"},
                                       headers=headers)
    assert other_body.status_code == 422


async def test_unpair_command_unpairs(svc: Service, factory: Factory) -> None:
    first = await user(svc, "test-commands-unpair-a@example.com")
    second = await user(svc, "test-commands-unpair-b@example.com")
    device, _ = await factory.paired(first)
    earlier = (await svc.client.post(commands_url(device), json={"name": "identify"},
                                     headers=first)).json()["request_id"]
    reply = await svc.client.post(commands_url(device), json={"name": "unpair"}, headers=first)
    assert reply.status_code == 202
    assert_problem(await svc.client.get(f"{API}/appliances/{device.id}", headers=first), 404,
                   "not_found")
    names = [m["payload"]["name"] for m in await down_messages(svc, device.id, "cmd")]
    assert names == ["identify", "unpair"]
    # The next owner sees nothing of the previous owner's commands.
    await factory.paired(second, device)
    assert_problem(await svc.client.get(f"{commands_url(device)}/{earlier}", headers=second),
                   404, "not_found")
