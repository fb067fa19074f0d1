"""The HTTPS fallback (`POST /device/telemetry`, `POST /device/events`): the same validation and
pipeline as MQTT, so a message is stored once whichever way (or both ways) it came."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from epicura.appliances.access import issue_device_token
from epicura.appliances.models import Appliance, ApplianceAlert
from epicura.kit.runtime import Runtime
from tests.bridge import ingest_support as s
from tests.bridge.bridge_support import running_bridge
from tests.brokers import PrivateBroker
from tests.support import API, Service

pytestmark = pytest.mark.anyio



async def device_headers(rt: Runtime, device_id: uuid.UUID) -> dict[str, str]:
    async with rt.db.sessions() as session:
        appliance = await session.get(Appliance, device_id)
        assert appliance is not None
        token, _ttl = issue_device_token(rt, appliance)
    return {"Authorization": f"Bearer {token}"}


async def test_telemetry_over_https_is_stored_once(svc: Service) -> None:
    rt = svc.runtime
    (device,) = await s.make_appliances(rt, 1)
    headers = await device_headers(rt, device)
    body = s.telemetry(5)
    body["samples"][4]["t"] += 3600_000  # an hour ahead: refused alone
    first = await svc.client.post(f"{API}/device/telemetry", json=body, headers=headers)
    assert first.status_code == 202, first.text
    assert first.json() == {"id": body["id"], "duplicate": False, "samples_stored": 4,
                            "samples_refused": 1}
    again = await svc.client.post(f"{API}/device/telemetry", json=body, headers=headers)
    assert again.status_code == 202 and again.json()["duplicate"] is True
    assert await s.count_samples(rt) == 4
    async with rt.db.sessions() as session:
        appliance = await session.get(Appliance, device)
        assert appliance is not None and appliance.online and appliance.last_seen_at


async def test_bad_telemetry_is_refused_with_a_reason(svc: Service) -> None:
    rt = svc.runtime
    (device,) = await s.make_appliances(rt, 1)
    headers = await device_headers(rt, device)
    url = f"{API}/device/telemetry"
    wrong = await svc.client.post(url, json={**s.telemetry(), "device_id": str(uuid.uuid4())},
                                  headers=headers)
    assert wrong.status_code == 422 and wrong.json()["code"] == "invalid_device_message"
    assert wrong.json()["errors"][0]["type"] == "wrong_device"
    typed = await svc.client.post(url, json={**s.telemetry(), "seq": "one"}, headers=headers)
    assert typed.status_code == 422 and typed.json()["errors"][0]["type"] == "bad_field"
    huge = await svc.client.post(url, json={**s.telemetry(), "pad": "x" * 300_000},
                                 headers=headers)
    assert huge.status_code == 413
    anonymous = await svc.client.post(url, json=s.telemetry())
    assert anonymous.status_code == 401
    assert await s.count_samples(rt) == 0


async def test_events_batch_stores_valid_items_and_reports_the_rest(svc: Service) -> None:
    rt = svc.runtime
    (device,) = await s.make_appliances(rt, 1)
    headers = await device_headers(rt, device)
    alert = s.alert("a-9")
    events = [
        {"topic": "alert", **alert},
        {"topic": "session", **s.session_event(uuid.uuid4())},
        {"topic": "alert", **{**s.alert(), "severity": "apocalyptic"}},
        {"topic": "telemetry", **s.telemetry()},
        {"topic": "alert", **alert},
    ]
    reply = await svc.client.post(f"{API}/device/events", json={"events": events},
                                  headers=headers)
    assert reply.status_code == 202, reply.text
    assert [(r["index"], r["status"], r["code"]) for r in reply.json()["results"]] == [
        (0, "stored", None), (1, "stored", None), (2, "rejected", "bad_field"),
        (3, "rejected", "bad_event"), (4, "duplicate", None)]
    async with rt.db.sessions() as session:
        alerts = (await session.scalars(select(ApplianceAlert))).all()
    assert [a.alert_id for a in alerts] == ["a-9"]
    empty = await svc.client.post(f"{API}/device/events", json={"events": []}, headers=headers)
    assert empty.status_code == 422


async def test_a_message_sent_over_mqtt_then_https_is_stored_once(
    svc: Service, broker: PrivateBroker
) -> None:
    rt = svc.runtime
    (device,) = await s.make_appliances(rt, 1)
    body = s.telemetry(5)
    async with running_bridge(rt, broker.url) as bridge:
        await s.publish(broker.host, broker.port, [(s.topic(device, "telemetry"), s.dumps(body))])
        await s.wait_until(lambda: _acked(bridge), message="the MQTT copy stored")
    reply = await svc.client.post(f"{API}/device/telemetry", json=body,
                                  headers=await device_headers(rt, device))
    assert reply.status_code == 202 and reply.json()["duplicate"] is True
    assert await s.count_samples(rt) == 5


async def _acked(bridge: object) -> bool:
    return bool(getattr(bridge, "stats")["acked"] >= 1)  # noqa: B009


async def test_embedded_default_takes_https_telemetry(embedded: Service) -> None:
    rt = embedded.runtime
    (device,) = await s.make_appliances(rt, 1)
    reply = await embedded.client.post(f"{API}/device/telemetry", json=s.telemetry(3),
                                       headers=await device_headers(rt, device))
    assert reply.status_code == 202, reply.text
    assert await s.count_samples(rt) == 3
