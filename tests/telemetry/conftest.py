"""Telemetry test fixtures: the service on PostgreSQL or embedded, the clock frozen at T0 (with
PostgreSQL partitions made around it, as the worker would), users and their appliances, and
helpers that write raw samples and rollup rows directly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from epicura.appliances.models import PROVISIONED, Appliance
from epicura.auth import service as auth_service
from epicura.kit import clock
from epicura.kit.db import Database
from epicura.telemetry import retention
from epicura.telemetry.models import METRICS, TelemetryLatest, TelemetrySample
from tests.support import API, STRONG_PASSWORD, Service, bearer

# A fixed "now" for every telemetry test: partitions, buckets and default windows are exact.
T0 = datetime(2021, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["postgres", "embedded"])
def service(request: pytest.FixtureRequest) -> Service:
    found: Service = request.getfixturevalue("svc" if request.param == "postgres" else "embedded")
    return found


@pytest.fixture
def frozen() -> Iterator[None]:
    with clock.frozen(T0):
        yield


@pytest.fixture
async def at_t0(service: Service, frozen: None) -> Service:
    """The service with the clock at T0 and, on PostgreSQL, partitions around T0."""
    await retention.maintain_partitions(service.runtime.db)
    return service


@dataclass
class Person:
    id: uuid.UUID
    headers: dict[str, str]


async def person(svc: Service, email: str) -> Person:
    tokens = await svc.signed_up(email)
    me = (await svc.client.get(f"{API}/users/me", headers=bearer(tokens))).json()
    return Person(uuid.UUID(me["id"]), bearer(tokens))


async def admin(svc: Service, email: str) -> Person:
    async with svc.runtime.db.transaction() as session:
        user = await auth_service.create_admin(svc.runtime, session, email, STRONG_PASSWORD,
                                               "Fleet Admin")
        user_id = user.id
    reply = await svc.login(email)
    assert reply.status_code == 200, reply.text
    return Person(user_id, bearer(reply.json()))


async def appliance(svc: Service, owner: uuid.UUID | None) -> uuid.UUID:
    now = clock.utcnow()
    async with svc.runtime.db.transaction() as session:
        row = Appliance(
            serial=f"TEST-{uuid.uuid4().hex[:12]}", model="EP1", hw_revision="r2",
            lifecycle=PROVISIONED, factory_secret_hash="0" * 64, owner_id=owner,
            channel="stable", tags=[], online=True, settings={}, config_version=0,
            created_at=now, updated_at=now,
        )
        session.add(row)
        await session.flush()
        return row.id


def sample(appliance_id: uuid.UUID, t: datetime, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {m: None for m in METRICS}
    row.update(values)
    return {"appliance_id": appliance_id, "t": t, "message_id": uuid.uuid4(), "session_id": None,
            **row}


async def store(db: Database, rows: list[dict[str, Any]]) -> None:
    """Raw samples written as ingest writes them (`received_at` left to the database)."""
    async with db.transaction() as session:
        await session.execute(insert(TelemetrySample), rows)


async def store_latest(db: Database, appliance_id: uuid.UUID, t: datetime,
                       values: dict[str, Any]) -> None:
    async with db.transaction() as session:
        session.add(TelemetryLatest(appliance_id=appliance_id, t=t, session_id=None,
                                    sample=values))


def ms(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1))
