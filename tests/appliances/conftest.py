"""Fixtures of the appliance tests: an admin, a factory that imports and provisions appliances,
and readers of what the service queued for appliances (the `down/` outbox, broker jobs)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from sqlalchemy import select

from epicura.appliances import reported
from epicura.auth import service as auth_service
from epicura.bridge.outbox import PUBLISH_JOB, down_topic
from epicura.config import Settings
from epicura.kit import clock
from epicura.kit.audit import AuditEvent
from epicura.kit.errors import PROBLEM_MEDIA_TYPE
from epicura.kit.jobs import Job
from tests.support import API, STRONG_PASSWORD, Service, bearer

ADMIN_EMAIL = "test-appliances-admin@example.com"


def assert_problem(reply: httpx2.Response, status: int, code: str) -> dict[str, Any]:
    assert reply.status_code == status, (reply.request.method, reply.request.url, reply.text)
    assert reply.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = reply.json()
    assert body["code"] == code, body
    return body


@pytest.fixture
async def admin(svc: Service) -> dict[str, str]:
    async with svc.runtime.db.transaction() as session:
        await auth_service.create_admin(svc.runtime, session, ADMIN_EMAIL, STRONG_PASSWORD,
                                        "Fleet Admin")
    reply = await svc.login(ADMIN_EMAIL)
    assert reply.status_code == 200, reply.text
    return bearer(reply.json())


@dataclass
class Device:
    serial: str
    factory_secret: str
    id: str
    secret: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


@dataclass
class Factory:
    """Imports serials as an admin and provisions them as their appliances would."""

    svc: Service
    admin: dict[str, str]
    made: int = field(default=0)

    def row(self, **overrides: str) -> dict[str, str]:
        self.made += 1
        row = {"serial": f"TST-{uuid.uuid4().hex[:10].upper()}", "model": "epicura-1",
               "hw_revision": "rev-a", "factory_secret": secrets.token_urlsafe(18)}
        row.update(overrides)
        return row

    async def import_rows(self, rows: list[Any]) -> dict[str, Any]:
        reply = await self.svc.client.post(f"{API}/admin/appliances/import", json=rows,
                                           headers=self.admin)
        assert reply.status_code == 200, reply.text
        result: dict[str, Any] = reply.json()
        return result

    async def provision(self, row: dict[str, str], **overrides: str) -> httpx2.Response:
        body = {**row, "firmware_version": "1.4.2", **overrides}
        return await self.svc.client.post(f"{API}/device/provision", json=body)

    async def token(self, device_id: str, secret: str) -> httpx2.Response:
        return await self.svc.client.post(f"{API}/device/token",
                                          json={"device_id": device_id, "device_secret": secret})

    async def device(self, **overrides: str) -> Device:
        row = self.row(**overrides)
        await self.import_rows([row])
        provisioned = await self.provision(row)
        assert provisioned.status_code == 201, provisioned.text
        body = provisioned.json()
        token = await self.token(body["device_id"], body["device_secret"])
        assert token.status_code == 200, token.text
        return Device(row["serial"], row["factory_secret"], body["device_id"],
                      body["device_secret"], token.json()["access_token"])

    async def claim_code(self, device: Device) -> str:
        reply = await self.svc.client.post(f"{API}/device/claim-codes", headers=device.headers)
        assert reply.status_code == 201, reply.text
        code: str = reply.json()["code"]
        return code

    async def paired(self, user: dict[str, str], device: Device | None = None,
                     *, online: bool = True) -> tuple[Device, dict[str, Any]]:
        device = device or await self.device()
        code = await self.claim_code(device)
        reply = await self.svc.client.post(f"{API}/appliances/claim",
                                           json={"claim_code": code}, headers=user)
        assert reply.status_code == 201, reply.text
        if online:
            await self.online(device.id)
        appliance: dict[str, Any] = reply.json()
        return device, appliance

    async def online(self, device_id: str) -> None:
        """What the bridge does on a birth message."""
        async with self.svc.runtime.db.transaction() as session:
            await reported.apply_presence(
                session, uuid.UUID(device_id),
                {"state": "online", "firmware_version": "1.4.2", "boot_id": "boot-1"},
                clock.utcnow())


@pytest.fixture
async def factory(svc: Service, admin: dict[str, str]) -> Factory:
    return Factory(svc, admin)


@pytest.fixture
def pg_settings(pg_settings: Settings) -> Settings:
    """The test client may say which address it calls from (`X-Forwarded-For`), so tests can
    act as many users on many addresses without tripping per-address limits."""
    return pg_settings.model_copy(update={"trusted_proxies": ["127.0.0.1/32"]})


def from_ip(ip: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip}


async def user(svc: Service, address: str, ip: str | None = None) -> dict[str, str]:
    """A signed-up user's bearer header (registering from `ip` when given)."""
    if ip is None:
        return bearer(await svc.signed_up(address))
    registered = await svc.client.post(f"{API}/auth/register", headers=from_ip(ip), json={
        "email": address, "password": STRONG_PASSWORD, "display_name": "Cook"})
    assert registered.status_code == 202, registered.text
    login = await svc.client.post(f"{API}/auth/login", headers=from_ip(ip), json={
        "email": address, "password": STRONG_PASSWORD, "session_name": "pytest"})
    assert login.status_code == 200, login.text
    return bearer(login.json())


async def down_messages(svc: Service, device_id: str, name: str) -> list[dict[str, Any]]:
    """The `down/<name>` messages queued for the appliance, oldest first."""
    topic = down_topic(uuid.UUID(device_id), name)
    async with svc.runtime.db.sessions() as session:
        jobs = (await session.scalars(
            select(Job).where(Job.kind == PUBLISH_JOB).order_by(Job.created_at))).all()
    return [job.payload for job in jobs if job.payload.get("topic") == topic]


async def jobs_of(svc: Service, kind: str, device_id: str) -> list[Job]:
    async with svc.runtime.db.sessions() as session:
        jobs = (await session.scalars(
            select(Job).where(Job.kind == kind).order_by(Job.created_at))).all()
    return [job for job in jobs if job.payload.get("device_id") == device_id]


async def audit_actions(svc: Service, target_id: str) -> list[str]:
    async with svc.runtime.db.sessions() as session:
        rows = await session.scalars(select(AuditEvent.action).where(
            AuditEvent.target_id == target_id).order_by(AuditEvent.at))
        return list(rows)
