"""The notifications tests run the service with both push providers pointed at local fakes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from epicura.auth.models import User
from epicura.config import Settings
from epicura.kit import jobs
from epicura.notifications.apns import ApnsClient
from epicura.notifications.models import Notification
from epicura.realtime import outbox
from tests.bridge.ingest_support import wait_until
from tests.notifications.fake_apns import FakeApns, serving_apns
from tests.notifications.fakes import FakeFcm, pem_private, self_signed, serving, trust
from tests.support import API, Service, bearer

APNS_TOKEN = "ab" * 32
FCM_TOKEN = "fcm-" + "x" * 40 + ":APA91b" + "y" * 100


@dataclass
class Fakes:
    fcm: FakeFcm
    apns: FakeApns
    ca_file: Path


@pytest.fixture
async def fakes(tmp_path: Path) -> AsyncIterator[Fakes]:
    fcm, apns = FakeFcm(), FakeApns()
    tls = self_signed(tmp_path)
    async with serving(fcm.app()) as fcm_url, serving_apns(apns, tls) as apns_url:
        fcm.base_url, apns.base_url = fcm_url, apns_url
        yield Fakes(fcm, apns, tls[0])


def apns_client(fakes: Fakes) -> ApnsClient:
    """An APNs client of its own (not the service's) on the local APNs."""
    return ApnsClient(team_id=fakes.apns.team_id, key_id=fakes.apns.key_id,
                      private_key_pem=pem_private(fakes.apns.key), topic=fakes.apns.topic,
                      base_url=fakes.apns.base_url, verify=trust(fakes.ca_file))


def push_settings(settings: Settings, fakes: Fakes) -> Settings:
    return settings.model_copy(update={
        "fcm_service_account": SecretStr(fakes.fcm.service_account()),
        "fcm_base_url": fakes.fcm.base_url,
        "apns_key_id": fakes.apns.key_id,
        "apns_team_id": fakes.apns.team_id,
        "apns_private_key": SecretStr(pem_private(fakes.apns.key)),
        "apns_topic": fakes.apns.topic,
        "apns_base_url": fakes.apns.base_url,
        "apns_ca_file": fakes.ca_file,
    })


@pytest.fixture
def pg_settings(pg_settings: Settings, fakes: Fakes) -> Settings:
    return push_settings(pg_settings, fakes)


@dataclass
class Cook:
    id: uuid.UUID
    headers: dict[str, str]
    email: str


async def cook(svc: Service, email: str, *, locale: str | None = None,
               timezone: str | None = None) -> Cook:
    headers = bearer(await svc.signed_up(email))
    changes: dict[str, Any] = {}
    if locale:
        changes["locale"] = locale
    if timezone:
        changes["timezone"] = timezone
    if changes:
        reply = await svc.client.patch(f"{API}/users/me", headers=headers, json=changes)
        assert reply.status_code == 200, reply.text
    me = (await svc.client.get(f"{API}/users/me", headers=headers)).json()
    await svc.run_jobs()  # the verification e-mail: the tests count push jobs
    return Cook(uuid.UUID(me["id"]), headers, email)


async def add_token(svc: Service, who: Cook, platform: str, token: str,
                    **extra: str) -> dict[str, Any]:
    reply = await svc.client.post(f"{API}/push/tokens", headers=who.headers,
                                  json={"platform": platform, "token": token, **extra})
    assert reply.status_code in (200, 201), reply.text
    body: dict[str, Any] = reply.json()
    return body


async def record_events(svc: Service, *events: tuple[str, str, dict[str, Any]]) -> None:
    """Outbox rows as another module writes them (in its own transaction)."""
    async with svc.runtime.db.transaction() as session:
        for channel, event_type, data in events:
            outbox.record(session, channel, event_type, data)


async def relay(svc: Service) -> None:
    """Relay until nothing is pending, the relay's own follow-up rows included (the service's
    background relay may take some of the rows: one relay works at a time)."""

    async def settled() -> bool:
        await outbox.relay_once(svc.runtime)
        return await outbox.pending(svc.runtime) == 0

    await wait_until(settled, timeout_s=30, message="the outbox to be relayed")


async def inbox_rows(svc: Service, user_id: uuid.UUID) -> list[Notification]:
    async with svc.runtime.db.sessions() as session:
        return list((await session.scalars(
            select(Notification).where(Notification.user_id == user_id)
            .order_by(Notification.created_at))).all())


async def push_jobs(svc: Service, state: str | None = None) -> list[jobs.Job]:
    async with svc.runtime.db.sessions() as session:
        query = select(jobs.Job).where(jobs.Job.kind == "notifications.push")
        if state:
            query = query.where(jobs.Job.state == state)
        return list((await session.scalars(query)).all())


async def user_row(svc: Service, user_id: uuid.UUID) -> User:
    async with svc.runtime.db.sessions() as session:
        found = await session.get(User, user_id)
        assert found is not None
        return found


# The private brokers of the bridge tests (the end-to-end session test).
from tests.bridge.conftest import broker  # noqa: E402, F401
