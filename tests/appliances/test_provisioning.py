"""Factory import (JSON and CSV, per-row results), provisioning with the factory secret (one
generic refusal, secret rotation, broker credential jobs) and device tokens."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from sqlalchemy import select

from epicura.appliances.models import Appliance
from epicura.bridge.broker_tasks import REMOVE_JOB, UPSERT_JOB
from tests.appliances.conftest import (
    Factory,
    assert_problem,
    audit_actions,
    jobs_of,
    user,
)
from tests.support import API, Service

pytestmark = pytest.mark.anyio

IMPORT = f"{API}/admin/appliances/import"


async def stored(svc: Service, serial: str) -> Appliance:
    async with svc.runtime.db.sessions() as session:
        row = await session.scalar(select(Appliance).where(Appliance.serial == serial))
        assert row is not None
        return row


async def test_json_import_reports_every_row(svc: Service, factory: Factory) -> None:
    good, other = factory.row(), factory.row(model="Epicura-1 ", serial="tst-lower-case-1")
    first = await factory.import_rows([good])
    assert (first["created"], first["skipped"], first["invalid"]) == (1, 0, 0)
    rows = [
        good,                                                       # already imported
        other,                                                      # normalised, created
        {**factory.row(), "factory_secret": "too-short"},           # secret < 16
        {**factory.row(), "serial": "bad serial!"},
        {**factory.row(), "hw_revision": "rev/a"},                  # not a profile part
        {"serial": "TST-MISSING", "model": "epicura-1"},
        {**factory.row(), "owner_id": str(uuid.uuid4())},           # unknown field
        "not an object",
        other,                                                      # twice in one upload
    ]
    result = await factory.import_rows(rows)
    assert (result["created"], result["skipped"], result["invalid"]) == (1, 2, 6)
    outcome = [(r["row"], r["result"]) for r in result["rows"]]
    assert outcome == [(1, "skipped"), (2, "created"), (3, "invalid"), (4, "invalid"),
                       (5, "invalid"), (6, "invalid"), (7, "invalid"), (8, "invalid"),
                       (9, "skipped")]
    reasons = {r["row"]: r["reason"] for r in result["rows"]}
    assert reasons[1] == "already imported"
    assert "factory_secret" in reasons[3]
    assert "hw_revision" in reasons[5] and "factory_secret" in reasons[6]
    assert "owner_id" in reasons[7]
    row = await stored(svc, "TST-LOWER-CASE-1")
    assert (row.model, row.lifecycle) == ("epicura-1", "imported")
    # Only the SHA-256 of the factory secret is kept.
    assert row.factory_secret_hash == hashlib.sha256(other["factory_secret"].encode()).hexdigest()
    assert "appliance.import" in await _audit_import_actions(svc)


async def _audit_import_actions(svc: Service) -> list[str]:
    from epicura.kit.audit import AuditEvent

    async with svc.runtime.db.sessions() as session:
        return list(await session.scalars(
            select(AuditEvent.action).where(AuditEvent.action == "appliance.import")))


async def test_csv_import(svc: Service, factory: Factory) -> None:
    rows = [factory.row() for _ in range(3)]
    lines = ["Serial,Model,HW_Revision,Factory_Secret"] + [
        f"{r['serial']},{r['model']},{r['hw_revision']},{r['factory_secret']}" for r in rows]
    lines.append("TST-CSV-BAD,epicura-1,rev-a,short")
    reply = await svc.client.post(IMPORT, content="\r\n".join(lines).encode(),
                                  headers={**factory.admin, "Content-Type": "text/csv"})
    assert reply.status_code == 200, reply.text
    result = reply.json()
    assert (result["created"], result["skipped"], result["invalid"]) == (3, 0, 1)
    assert all(r["id"] for r in result["rows"][:3])
    bad_header = await svc.client.post(IMPORT, content=b"serial,model\nA,B\n",
                                       headers={**factory.admin, "Content-Type": "text/csv"})
    assert_problem(bad_header, 422, "validation_failed")
    xml = await svc.client.post(IMPORT, content=b"<rows/>",
                                headers={**factory.admin, "Content-Type": "application/xml"})
    assert_problem(xml, 415, "unsupported_media_type")
    not_a_list = await svc.client.post(IMPORT, json={"serial": "X"}, headers=factory.admin)
    assert_problem(not_a_list, 422, "validation_failed")


async def test_import_is_for_admins_only(svc: Service, factory: Factory) -> None:
    cook = await user(svc, "test-appliances-import-cook@example.com")
    reply = await svc.client.post(IMPORT, json=[factory.row()], headers=cook)
    assert_problem(reply, 403, "forbidden")
    anonymous = await svc.client.post(IMPORT, json=[factory.row()])
    assert_problem(anonymous, 401, "unauthorized")


async def test_provision_then_token_then_reprovision_rotates(svc: Service,
                                                              factory: Factory) -> None:
    row = factory.row()
    await factory.import_rows([row])
    first = await factory.provision(row)
    assert first.status_code == 201, first.text
    body = first.json()
    assert first.headers["cache-control"] == "no-store"
    assert len(body["device_secret"]) >= 43  # 256 bits, URL-safe base64
    assert body["mqtt"] is None  # no broker configured: HTTPS only
    appliance = await stored(svc, row["serial"])
    assert str(appliance.id) == body["device_id"]
    assert appliance.lifecycle == "provisioned" and appliance.firmware_version == "1.4.2"
    assert appliance.device_secret_hash == hashlib.sha256(
        body["device_secret"].encode()).hexdigest()

    token = await factory.token(body["device_id"], body["device_secret"])
    assert token.status_code == 200
    assert token.json()["expires_in"] == 3600
    old_access = token.json()["access_token"]
    config = await svc.client.get(f"{API}/device/config",
                                  headers={"Authorization": f"Bearer {old_access}"})
    assert config.status_code == 200
    assert config.json() == {"version": 0, "settings": {}, "paired": False}

    again = await factory.provision(row, firmware_version="1.5.0")
    assert again.status_code == 201
    assert again.json()["device_id"] == body["device_id"]
    assert again.json()["device_secret"] != body["device_secret"]
    # The old secret and every token issued with it are refused; the new secret works.
    assert_problem(await factory.token(body["device_id"], body["device_secret"]), 401,
                   "invalid_credentials")
    stale = await svc.client.get(f"{API}/device/config",
                                 headers={"Authorization": f"Bearer {old_access}"})
    assert_problem(stale, 401, "unauthorized")
    renewed = await factory.token(body["device_id"], again.json()["device_secret"])
    assert renewed.status_code == 200
    # Each provisioning queued broker credentials with that provisioning's secret.
    upserts = await jobs_of(svc, UPSERT_JOB, body["device_id"])
    assert len(upserts) == 2
    sealed = [svc.runtime.sealer.unseal(job.payload["_sealed"])["password"] for job in upserts]
    assert sealed == [body["device_secret"], again.json()["device_secret"]]
    assert (await stored(svc, row["serial"])).firmware_version == "1.5.0"
    assert (await audit_actions(svc, body["device_id"])).count("device.provision") == 2


async def test_every_refusal_is_the_same_403(svc: Service, factory: Factory) -> None:
    row, decommissioned = factory.row(), factory.row()
    await factory.import_rows([row, decommissioned])
    provisioned = await factory.provision(decommissioned)
    device_id = provisioned.json()["device_id"]
    retired = await svc.client.post(f"{API}/admin/appliances/{device_id}/decommission",
                                    headers=factory.admin)
    assert retired.status_code == 200
    attempts = [
        {**factory.row()},                                      # never imported
        {**row, "factory_secret": row["factory_secret"] + "x"},  # wrong secret
        {**row, "hw_revision": "rev-b"},                        # not the imported hardware
        {**row, "model": "epicura-2"},
        decommissioned,                                         # decommissioned
    ]
    bodies = []
    for attempt in attempts:
        reply = await factory.provision(attempt)
        bodies.append(assert_problem(reply, 403, "provision_refused"))
    assert all(body == bodies[0] for body in bodies)  # nothing tells which part failed
    assert (await stored(svc, row["serial"])).lifecycle == "imported"
    # The right secret with the imported model (in any case) still provisions.
    assert (await factory.provision({**row, "model": "EPICURA-1"})).status_code == 201
    assert await audit_actions(svc, device_id) == [
        "device.provision", "appliance.decommission", "device.provision_refused"]
    removed = await jobs_of(svc, REMOVE_JOB, device_id)
    assert len(removed) == 1


async def test_token_refusals_are_generic(svc: Service, factory: Factory) -> None:
    device = await factory.device()
    for device_id, secret in ((device.id, "x" * 43), (str(uuid.uuid4()), device.secret),
                              ("not-a-uuid", device.secret), (device.id, "")):
        reply = await factory.token(device_id, secret)
        assert_problem(reply, 401, "invalid_credentials")
    imported_only = factory.row()
    await factory.import_rows([imported_only])
    async_row = await stored(svc, imported_only["serial"])
    assert_problem(await factory.token(str(async_row.id), "anything"), 401, "invalid_credentials")


async def test_provisioning_is_rate_limited(svc: Service, factory: Factory) -> None:
    row = factory.row()
    await factory.import_rows([row])
    statuses = [(await factory.provision({**row, "factory_secret": "w" * 20})).status_code
                for _ in range(11)]
    assert statuses[:10] == [403] * 10
    assert statuses[10] == 429
    # Per serial: another serial from the same address is still answered.
    other = factory.row()
    await factory.import_rows([other])
    assert (await factory.provision(other)).status_code == 201
    limited = await factory.provision(row)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


async def test_mqtt_address_comes_from_settings(svc: Service, factory: Factory) -> None:
    svc.runtime.settings.mqtt_broker_url = "mqtts://svc:pw@broker.internal:8883"
    try:
        device_row = factory.row()
        await factory.import_rows([device_row])
        body = (await factory.provision(device_row)).json()
        assert body["mqtt"] == {"host": "broker.internal", "port": 8883,
                                "username": body["device_id"], "client_id": body["device_id"]}
        svc.runtime.settings.mqtt_public_host = "mqtt.epicura.test"
        svc.runtime.settings.mqtt_public_port = 443
        body = (await factory.provision(device_row)).json()
        assert body["mqtt"]["host"] == "mqtt.epicura.test" and body["mqtt"]["port"] == 443
    finally:
        svc.runtime.settings.mqtt_broker_url = None
        svc.runtime.settings.mqtt_public_host = None
        svc.runtime.settings.mqtt_public_port = None
