"""Pairing: claim codes (format, 10 minutes, single use, superseded, hashed), redemption (one
answer for wrong/used/expired, throttled per user and per address, exactly one winner of 50
concurrent redemptions), at most one owner, unpair and pair again."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from epicura.appliances.models import Appliance, ClaimCode
from epicura.appliances.pairing import ALPHABET
from epicura.kit import clock
from tests.appliances.conftest import (
    Factory,
    assert_problem,
    audit_actions,
    down_messages,
    from_ip,
    user,
)
from tests.recipes.test_recipe_api import make_recipe
from tests.support import API, Service

pytestmark = pytest.mark.anyio

CLAIM = f"{API}/appliances/claim"


async def test_claim_code_shape_and_storage(svc: Service, factory: Factory) -> None:
    device = await factory.device()
    reply = await svc.client.post(f"{API}/device/claim-codes", headers=device.headers)
    assert reply.status_code == 201, reply.text
    body = reply.json()
    code = body["code"]
    assert len(code) == 8 and set(code) <= set(ALPHABET)  # 8 x 5 bits = 40 bits
    assert body["qr_payload"] == f"epicura://claim/{code}"
    expires_at = datetime.fromisoformat(body["expires_at"])
    remaining = expires_at - datetime.now(UTC)
    assert timedelta(minutes=9) < remaining <= timedelta(minutes=10)
    async with svc.runtime.db.sessions() as session:
        rows = (await session.scalars(select(ClaimCode).where(
            ClaimCode.appliance_id == uuid.UUID(device.id)))).all()
    assert len(rows) == 1
    assert code not in rows[0].code_hash and len(rows[0].code_hash) == 64


async def test_claim_makes_the_caller_owner(svc: Service, factory: Factory) -> None:
    cook = await user(svc, "test-pairing-owner@example.com")
    device = await factory.device()
    code = await factory.claim_code(device)
    # What a person types: lower case, a dash, O for 0 and I/L for 1 are forgiven.
    typed = (code[:4] + "-" + code[4:]).lower()
    reply = await svc.client.post(CLAIM, json={"claim_code": typed, "name": "Kitchen"},
                                  headers=cook)
    assert reply.status_code == 201, reply.text
    appliance = reply.json()
    assert appliance["id"] == device.id and appliance["name"] == "Kitchen"
    assert appliance["serial"] == device.serial and appliance["paired_at"]
    assert "ETag" in reply.headers
    listed = await svc.client.get(f"{API}/appliances", headers=cook)
    assert [a["id"] for a in listed.json()["items"]] == [device.id]
    assert "appliance.claim" in await audit_actions(svc, device.id)
    # Used: the same code again is the one generic answer.
    again = await svc.client.post(CLAIM, json={"claim_code": code}, headers=cook)
    assert_problem(again, 404, "claim_code_invalid")
    config = await svc.client.get(f"{API}/device/config", headers=device.headers)
    assert config.json()["paired"] is True


async def test_the_qr_payload_redeems_too(svc: Service, factory: Factory) -> None:
    cook = await user(svc, "test-pairing-qr@example.com")
    device = await factory.device()
    payload = (await svc.client.post(f"{API}/device/claim-codes",
                                     headers=device.headers)).json()["qr_payload"]
    reply = await svc.client.post(CLAIM, json={"claim_code": payload}, headers=cook)
    assert reply.status_code == 201, reply.text


async def test_wrong_used_expired_superseded_are_one_answer(svc: Service,
                                                            factory: Factory) -> None:
    cook = await user(svc, "test-pairing-invalid@example.com")
    device = await factory.device()
    superseded = await factory.claim_code(device)
    current = await factory.claim_code(device)  # supersedes the first
    answers = []
    for attempt in (superseded, "ZZZZZZZZ", "short", "IIIIIIIU"):
        reply = await svc.client.post(CLAIM, json={"claim_code": attempt}, headers=cook)
        answers.append(assert_problem(reply, 404, "claim_code_invalid"))
    with clock.frozen(datetime.now(UTC) + timedelta(minutes=10, seconds=1)):
        expired = await svc.client.post(CLAIM, json={"claim_code": current}, headers=cook)
        answers.append(assert_problem(expired, 404, "claim_code_invalid"))
    assert all(answer == answers[0] for answer in answers)
    async with svc.runtime.db.sessions() as session:
        owner = await session.scalar(select(Appliance.owner_id).where(
            Appliance.id == uuid.UUID(device.id)))
    assert owner is None


async def test_an_owned_appliance_cannot_be_taken(svc: Service, factory: Factory) -> None:
    first = await user(svc, "test-pairing-first@example.com")
    second = await user(svc, "test-pairing-second@example.com")
    device, _ = await factory.paired(first)
    # It gets no new code while it has an owner...
    refused = await svc.client.post(f"{API}/device/claim-codes", headers=device.headers)
    assert_problem(refused, 409, "appliance_already_paired")
    # ...and a code that outlived the pairing (a race) does not move it either.
    async with svc.runtime.db.transaction() as session:
        await session.execute(update(Appliance).where(Appliance.id == uuid.UUID(device.id))
                              .values(owner_id=None))
    code = await factory.claim_code(device)
    owner_id = (await svc.client.get(f"{API}/users/me", headers=first)).json()["id"]
    async with svc.runtime.db.transaction() as session:
        await session.execute(update(Appliance).where(Appliance.id == uuid.UUID(device.id))
                              .values(owner_id=uuid.UUID(owner_id)))
    stolen = await svc.client.post(CLAIM, json={"claim_code": code}, headers=second)
    assert_problem(stolen, 404, "claim_code_invalid")
    mine = await svc.client.get(f"{API}/appliances/{device.id}", headers=first)
    assert mine.status_code == 200
    assert_problem(await svc.client.get(f"{API}/appliances/{device.id}", headers=second),
                   404, "not_found")
    async with svc.runtime.db.sessions() as session:
        used = await session.scalar(select(ClaimCode.used_at).where(
            ClaimCode.appliance_id == uuid.UUID(device.id)).order_by(
                ClaimCode.created_at.desc()).limit(1))
    assert used is None  # the refused redemption changed nothing


async def test_unpair_then_another_user_pairs(svc: Service, factory: Factory) -> None:
    first = await user(svc, "test-pairing-unpair-a@example.com")
    second = await user(svc, "test-pairing-unpair-b@example.com")
    device, _ = await factory.paired(first)
    assert (await svc.client.delete(f"{API}/appliances/{device.id}",
                                    headers=first)).status_code == 204
    assert_problem(await svc.client.get(f"{API}/appliances/{device.id}", headers=first),
                   404, "not_found")
    _, appliance = await factory.paired(second, device)
    assert appliance["id"] == device.id
    assert appliance["name"] == "epicura-1"  # the model until its owner names it
    assert (await svc.client.get(f"{API}/appliances", headers=first)).json()["items"] == []


async def test_fifty_concurrent_redemptions_have_one_winner(svc: Service,
                                                            factory: Factory) -> None:
    users = [await user(svc, f"test-pairing-race-{n}@example.com", ip=f"10.50.0.{n + 1}")
             for n in range(50)]
    device = await factory.device()
    code = await factory.claim_code(device)

    async def redeem(n: int) -> int:
        reply = await svc.client.post(CLAIM, json={"claim_code": code},
                                      headers={**users[n], **from_ip(f"10.50.0.{n + 1}")})
        assert reply.status_code in (201, 404), reply.text
        return reply.status_code

    statuses = await asyncio.gather(*(redeem(n) for n in range(50)))
    assert statuses.count(201) == 1 and statuses.count(404) == 49
    winner = statuses.index(201)
    owners = [(await svc.client.get(f"{API}/appliances", headers=u)).json()["items"]
              for u in users]
    assert [len(items) for items in owners].count(1) == 1 and len(owners[winner]) == 1


async def test_redemption_is_throttled_per_user_and_per_address(svc: Service,
                                                                factory: Factory) -> None:
    cooks = [await user(svc, f"test-pairing-throttle-{n}@example.com", ip=f"10.60.0.{n + 1}")
             for n in range(5)]
    for _attempt in range(10):
        reply = await svc.client.post(CLAIM, json={"claim_code": "ZZZZZZZZ"},
                                      headers={**cooks[0], **from_ip("10.61.0.1")})
        assert_problem(reply, 404, "claim_code_invalid")
    limited = await svc.client.post(CLAIM, json={"claim_code": "ZZZZZZZZ"},
                                    headers={**cooks[0], **from_ip("10.61.0.2")})
    assert_problem(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    # Another user on another address is not affected...
    device = await factory.device()
    code = await factory.claim_code(device)
    ok = await svc.client.post(CLAIM, json={"claim_code": code},
                               headers={**cooks[1], **from_ip("10.61.0.3")})
    assert ok.status_code == 201
    # ...but one address is limited across users (30 attempts per 10 minutes).
    shared = from_ip("10.61.0.9")
    for cook in cooks[2:]:
        for _attempt in range(10):
            reply = await svc.client.post(CLAIM, json={"claim_code": "ZZZZZZZZ"},
                                          headers={**cook, **shared})
            assert_problem(reply, 404, "claim_code_invalid")
    over = await svc.client.post(CLAIM, json={"claim_code": "ZZZZZZZZ"},
                                 headers={**cooks[1], **shared})
    assert_problem(over, 429, "rate_limited")


async def test_claim_honours_idempotency_key(svc: Service, factory: Factory) -> None:
    cook = await user(svc, "test-pairing-idempotent@example.com")
    device = await factory.device()
    code = await factory.claim_code(device)
    headers = {**cook, "Idempotency-Key": "claim-1"}
    first = await svc.client.post(CLAIM, json={"claim_code": code}, headers=headers)
    repeat = await svc.client.post(CLAIM, json={"claim_code": code}, headers=headers)
    assert first.status_code == repeat.status_code == 201
    assert first.json() == repeat.json()
    fresh = await svc.client.post(CLAIM, json={"claim_code": code}, headers=cook)
    assert_problem(fresh, 404, "claim_code_invalid")


async def test_no_claim_by_static_identifier(svc: Service, factory: Factory) -> None:
    cook = await user(svc, "test-pairing-static@example.com")
    device = await factory.device()
    for body in ({"device_id": device.id}, {"serial": device.serial},
                 {"claim_code": "ZZZZZZZZ", "device_id": device.id}):
        reply = await svc.client.post(CLAIM, json=body, headers=cook)
        assert_problem(reply, 422, "validation_failed")
    serial_as_code = await svc.client.post(CLAIM, json={"claim_code": device.serial},
                                           headers=cook)
    assert_problem(serial_as_code, 404, "claim_code_invalid")


async def test_claim_and_unpair_move_the_device_library_at_once(
    svc: Service, factory: Factory
) -> None:
    """The appliance is nudged to sync when its owner changes, so the new owner's favourites
    arrive (and the old owner's leave) without waiting for the appliance's next poll."""
    cook = await user(svc, "test-pairing-library@example.com")
    recipe_id = str((await make_recipe(svc, cook, "public", title="Risotto"))["id"])
    favourite = await svc.client.put(f"{API}/recipes/{recipe_id}/favorite", headers=cook)
    assert favourite.status_code == 204, favourite.text
    device, _ = await factory.paired(cook)

    assert [m["payload"] for m in await down_messages(svc, device.id, "sync")] == [
        {"reason": "owner_changed"}]
    first = await svc.client.get(f"{API}/device/sync", headers=device.headers)
    assert [c["recipe_id"] for c in first.json()["changes"]] == [recipe_id]

    unpaired = await svc.client.delete(f"{API}/appliances/{device.id}", headers=cook)
    assert unpaired.status_code == 204, unpaired.text
    assert len(await down_messages(svc, device.id, "sync")) == 2
    after = await svc.client.get(f"{API}/device/sync", headers=device.headers,
                                 params={"cursor": first.json()["cursor"]})
    assert after.json()["deleted"] == [recipe_id]
