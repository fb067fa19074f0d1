"""`Idempotency-Key` on POST (kit/idempotency.py): a repeat replays the first answer and the
handler runs once; another body under the same key is refused; keys belong to one caller."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, select

from epicura.auth import service as auth_service
from epicura.kit.audit import AuditEvent
from epicura.kit.errors import PROBLEM_MEDIA_TYPE
from tests.support import API, STRONG_PASSWORD, Service, bearer

pytestmark = pytest.mark.anyio

THINGS = f"{API}/test-only/things"


@dataclass
class Things:
    """A test-only POST route that creates numbered things; counts how often it really ran."""

    created: list[dict[str, Any]] = field(default_factory=list)
    gate: asyncio.Event | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    fail_next: bool = False

    async def create(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("the first attempt failed")
        self.created.append(body)
        number = len(self.created)
        return JSONResponse({"id": number, "name": body.get("name")}, status_code=201,
                            headers={"Location": f"{THINGS}/{number}"})


@pytest.fixture
async def things(svc: Service) -> Things:
    route = Things()
    svc.app.add_api_route(THINGS, route.create, methods=["POST"])
    return route


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"test-idempotency-{uuid.uuid4()}"}


def assert_problem(reply: httpx2.Response, status: int, code: str) -> None:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert reply.json()["code"] == code


async def test_a_repeat_replays_the_first_answer_and_runs_once(svc: Service,
                                                               things: Things) -> None:
    headers = key()
    first = await svc.client.post(THINGS, json={"name": "pan"}, headers=headers)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    for _ in range(3):
        again = await svc.client.post(THINGS, json={"name": "pan"}, headers=headers)
        assert again.status_code == 201
        assert again.headers["idempotent-replayed"] == "true"
        assert again.content == first.content
        assert again.headers["location"] == first.headers["location"]
        assert again.headers["x-request-id"] != first.headers["x-request-id"]
    assert things.created == [{"name": "pan"}]
    # Without a key every POST runs.
    await svc.client.post(THINGS, json={"name": "pan"})
    await svc.client.post(THINGS, json={"name": "pan"})
    assert len(things.created) == 3


async def test_the_same_key_with_another_body_is_refused(svc: Service, things: Things) -> None:
    headers = key()
    assert (await svc.client.post(THINGS, json={"name": "pot"}, headers=headers)).status_code == 201
    reply = await svc.client.post(THINGS, json={"name": "wok"}, headers=headers)
    assert_problem(reply, 422, "idempotency_key_reused")
    assert things.created == [{"name": "pot"}]
    # The original request under that key still replays.
    replay = await svc.client.post(THINGS, json={"name": "pot"}, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == {"id": 1, "name": "pot"}


async def test_keys_are_scoped_per_caller(svc: Service, things: Things) -> None:
    alice = await svc.signed_up("test-idempotency-alice@example.com")
    bob = await svc.signed_up("test-idempotency-bob@example.com")
    headers = key()
    replies = [
        await svc.client.post(THINGS, json={"name": "lid"}, headers={**headers, **bearer(who)})
        for who in (alice, bob)
    ]
    assert [reply.json()["id"] for reply in replies] == [1, 2]
    assert all("idempotent-replayed" not in reply.headers for reply in replies)
    # Anonymous callers are told apart by address.
    transport = httpx2.ASGITransport(app=svc.app, client=("192.0.2.7", 40000))
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as other:
        elsewhere = await other.post(THINGS, json={"name": "lid"}, headers=headers)
    here = await svc.client.post(THINGS, json={"name": "lid"}, headers=headers)
    assert [elsewhere.json()["id"], here.json()["id"]] == [3, 4]
    # ...and each caller's own repeat is a replay.
    again = await svc.client.post(THINGS, json={"name": "lid"}, headers={**headers, **bearer(bob)})
    assert again.headers["idempotent-replayed"] == "true" and again.json()["id"] == 2
    assert len(things.created) == 4


async def test_a_repeat_while_the_first_runs_is_409(svc: Service, things: Things) -> None:
    things.gate = asyncio.Event()
    headers = key()
    first = asyncio.create_task(svc.client.post(THINGS, json={"name": "jar"}, headers=headers))
    async with asyncio.timeout(10):
        await things.entered.wait()
    reply = await svc.client.post(THINGS, json={"name": "jar"}, headers=headers)
    assert_problem(reply, 409, "idempotency_in_progress")
    things.gate.set()
    assert (await first).status_code == 201
    replay = await svc.client.post(THINGS, json={"name": "jar"}, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    assert len(things.created) == 1


async def test_a_failed_first_attempt_is_not_replayed(svc: Service, things: Things) -> None:
    things.fail_next = True
    headers = key()
    transport = httpx2.ASGITransport(app=svc.app, raise_app_exceptions=False)
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
        failed = await client.post(THINGS, json={"name": "cup"}, headers=headers)
    assert_problem(failed, 500, "internal_error")
    retried = await svc.client.post(THINGS, json={"name": "cup"}, headers=headers)
    assert retried.status_code == 201 and "idempotent-replayed" not in retried.headers
    assert things.created == [{"name": "cup"}]


async def test_an_invalid_key_is_refused(svc: Service, things: Things) -> None:
    reply = await svc.client.post(THINGS, json={"name": "x"},
                                  headers={"Idempotency-Key": "k" * 256})
    assert_problem(reply, 400, "invalid_idempotency_key")
    assert things.created == []


async def test_token_endpoints_are_never_replayed(svc: Service) -> None:
    """Their answers carry fresh secrets, which are not kept for replay."""
    address = "test-idempotency-login@example.com"
    assert (await svc.register(address)).status_code == 202
    headers = key()
    body = {"email": address, "password": STRONG_PASSWORD}
    first = await svc.client.post(f"{API}/auth/login", json=body, headers=headers)
    second = await svc.client.post(f"{API}/auth/login", json=body, headers=headers)
    assert first.status_code == second.status_code == 200
    assert "idempotent-replayed" not in second.headers
    assert first.json()["refresh_token"] != second.json()["refresh_token"]


@pytest.fixture
async def admin(svc: Service) -> AsyncIterator[dict[str, Any]]:
    async with svc.runtime.db.transaction() as session:
        await auth_service.create_admin(svc.runtime, session, "test-idempotency-admin@example.com",
                                        STRONG_PASSWORD, "Idempotency Admin")
    reply = await svc.login("test-idempotency-admin@example.com")
    assert reply.status_code == 200
    yield reply.json()


async def test_a_real_admin_action_runs_once(svc: Service, admin: dict[str, Any]) -> None:
    user = await svc.signed_up("test-idempotency-target@example.com")
    me = (await svc.client.get(f"{API}/users/me", headers=bearer(user))).json()
    path = f"{API}/admin/users/{me['id']}/revoke-sessions"
    headers = {**key(), **bearer(admin)}
    first = await svc.client.post(path, headers=headers)
    assert first.status_code == 204
    # The user logs in again; a retried revoke must not end the new session.
    fresh = (await svc.login("test-idempotency-target@example.com")).json()
    again = await svc.client.post(path, headers=headers)
    assert again.status_code == 204 and again.headers["idempotent-replayed"] == "true"
    assert (await svc.client.get(f"{API}/users/me", headers=bearer(fresh))).status_code == 200
    async with svc.runtime.db.sessions() as session:
        revocations = await session.scalar(
            select(func.count()).select_from(AuditEvent).where(
                AuditEvent.action == "auth.sessions_revoked.revoked_by_admin",
                AuditEvent.target_id == me["id"]))
    assert revocations == 1
    # Without the key the same call does run again.
    assert (await svc.client.post(path, headers=bearer(admin))).status_code == 204
    assert (await svc.client.get(f"{API}/users/me", headers=bearer(fresh))).status_code == 401
