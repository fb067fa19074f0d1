"""The bridge against a real (private) Mosquitto and PostgreSQL: every kind stored, redelivered
messages stored once, two bridges splitting the shared subscription, 10,000 hostile payloads
mixed with valid ones, and the probe port."""

from __future__ import annotations

import random
import uuid
from typing import Any

import httpx2
import orjson
import pytest
from sqlalchemy import select

from epicura.appliances.models import Appliance, ApplianceAlert
from epicura.bridge.probes import serve_probes
from epicura.kit.metrics import registry
from epicura.kit.runtime import Runtime
from tests.bridge import ingest_support as s
from tests.bridge.bridge_support import running_bridge
from tests.brokers import PrivateBroker
from tests.conftest import free_port
from tests.support import Service

pytestmark = pytest.mark.anyio



def counter(name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def telemetry_stream(broker: PrivateBroker, devices: list[uuid.UUID],
                           per_device: int) -> list[dict[str, Any]]:
    bodies = []
    items = []
    for _ in range(per_device):
        for device in devices:
            body = s.telemetry(5)
            bodies.append(body)
            items.append((s.topic(device, "telemetry"), s.dumps(body)))
    await s.publish(broker.host, broker.port, items)
    return bodies


async def test_every_kind_is_stored_and_acknowledged(svc: Service, broker: PrivateBroker) -> None:
    rt = svc.runtime
    (device,) = await s.make_appliances(rt, 1)
    stored_before = counter("epicura_mqtt_messages_total", kind="telemetry", outcome="stored")
    async with running_bridge(rt, broker.url) as bridge:
        await s.publish(broker.host, broker.port, [
            (s.topic(device, "presence"), s.dumps(s.presence_online())),
            (s.topic(device, "state"), s.dumps(s.state())),
            (s.topic(device, "telemetry"), s.dumps(s.telemetry(5))),
            (s.topic(device, "telemetry/backlog"), s.dumps(s.telemetry(3))),
            (s.topic(device, "alert"), s.dumps(s.alert())),
            (s.topic(device, "session"), s.dumps(s.session_event(uuid.uuid4()))),
        ])
        await s.wait_until(lambda: _acked(bridge, 6), message="six acknowledged messages")
    assert await s.count_samples(rt) == 8
    assert len(await s.stored_message_ids(rt)) == 6
    async with rt.db.sessions() as session:
        appliance = await session.get(Appliance, device)
        assert appliance is not None and appliance.online and appliance.state is not None
        assert len((await session.scalars(select(ApplianceAlert))).all()) == 1
    assert counter("epicura_mqtt_messages_total", kind="telemetry",
                   outcome="stored") == stored_before + 1


async def _acked(bridge: Any, count: int) -> bool:
    return int(bridge.stats["acked"]) >= count


async def test_a_redelivered_message_is_stored_once(svc: Service, broker: PrivateBroker) -> None:
    rt = svc.runtime
    (device,) = await s.make_appliances(rt, 1)
    body = s.dumps(s.telemetry(5))
    async with running_bridge(rt, broker.url) as bridge:
        # The same message id three times (a device's retries, each a new MQTT packet).
        await s.publish(broker.host, broker.port, [(s.topic(device, "telemetry"), body)] * 3)
        await s.wait_until(lambda: _acked(bridge, 3), message="three acks")
    assert bridge.stats["stored"] == 1 and bridge.stats["duplicate"] == 2
    assert await s.count_samples(rt) == 5


async def test_two_bridges_split_the_stream(svc: Service, broker: PrivateBroker) -> None:
    rt = svc.runtime
    devices = await s.make_appliances(rt, 20)
    async with running_bridge(rt, broker.url) as one, running_bridge(rt, broker.url) as two:
        bodies = await telemetry_stream(broker, devices, 50)
        total = len(bodies)
        await s.wait_until(lambda: _stored_messages(rt, total), 120, "all messages stored")
    assert one.stats["stored"] > 0 and two.stats["stored"] > 0
    assert one.stats["stored"] + two.stats["stored"] == total == 1000
    assert await s.count_samples(rt) == total * 5
    assert await s.duplicated_samples(rt) == 0


async def _stored_messages(rt: Runtime, count: int) -> bool:
    return int(await s.scalar(rt, "SELECT count(*) FROM device_messages")) >= count


def hostile_payloads(device: uuid.UUID, other: uuid.UUID, count: int,
                     seed: int = 29) -> list[tuple[str, bytes, str]]:
    """(topic, payload, what it is) of `count` hostile messages of many shapes."""
    rng = random.Random(seed)
    telemetry_topic = s.topic(device, "telemetry")

    def tele(**changes: Any) -> dict[str, Any]:
        body = s.telemetry(2)
        body.update(changes)
        return body

    def sample_with(**fields: Any) -> dict[str, Any]:
        body = s.telemetry(1)
        body["samples"][0].update(fields)
        return body

    makers: list[tuple[str, Any]] = [
        ("invalid_json", lambda: b"{" + rng.randbytes(rng.randint(0, 64))),
        ("invalid_utf8", lambda: b'{"v":1,"id":"\xff\xfe"}'),
        ("not_an_object", lambda: orjson.dumps([1, 2, 3])),
        ("nan", lambda: b'{"v":1,"id":"%s","ts":1,"x":NaN}' % str(uuid.uuid4()).encode()),
        ("infinity", lambda: s.dumps(tele()).replace(b'"seq":1', b'"seq":Infinity')),
        ("huge_int", lambda: s.dumps(tele()).replace(b'"seq":1', b'"seq":' + b"9" * 40)),
        ("deep_nesting", lambda: b'{"v":1,"data":' + b"[" * 10_000 + b"]" * 10_000 + b"}"),
        ("wrong_version", lambda: s.dumps(tele(v=2))),
        ("wrong_type_ts", lambda: s.dumps(tele(ts="yesterday"))),
        ("wrong_type_sample", lambda: s.dumps(sample_with(bowl_temp_c="hot"))),
        ("missing_samples", lambda: s.dumps({k: v for k, v in tele().items()
                                             if k != "samples"})),
        ("huge_array", lambda: s.dumps(s.telemetry(301))),
        ("too_large", lambda: s.dumps(tele(note="x" * (300 * 1024)))),
        ("wrong_device", lambda: s.dumps(tele(device_id=str(other)))),
        ("nul", lambda: s.dumps(tele(boot_id="a\u0000b"))),
        ("bad_uuid", lambda: s.dumps(tele(id="1234"))),
        ("duplicate_keys", lambda: b'{"v":1,"v":"1","id":"%s","ts":1}' % str(
            uuid.uuid4()).encode()),
    ]
    out = []
    for index in range(count):
        name, make = makers[index % len(makers)]
        out.append((telemetry_topic, make(), name))
    # Topics outside the contract reach the shared subscription too.
    out[0] = ("epicura/v1/not-a-device/up/telemetry", s.dumps(s.telemetry(1)), "bad_topic")
    out[1] = (s.topic(device, "nonsense"), s.dumps(s.telemetry(1)), "bad_topic")
    return out


async def test_hostile_payloads_never_stop_the_consumer(svc: Service,
                                                        broker: PrivateBroker) -> None:
    rt = svc.runtime
    (device,) = await s.make_appliances(rt, 1)
    other = uuid.uuid4()
    hostile = hostile_payloads(device, other, 10_000)
    valid = [s.telemetry(2) for _ in range(2_000)]
    far_future = s.telemetry(2)
    for item in far_future["samples"]:
        item["t"] += 365 * 86400_000  # a year ahead: the samples are refused, not the message
    items = [(t, p) for t, p, _name in hostile]
    for index, body in enumerate([*valid, far_future]):
        items.insert(index * 5, (s.topic(device, "telemetry"), s.dumps(body)))
    rejected_before = sum(
        counter("epicura_mqtt_messages_total", kind=k, outcome="rejected")
        for k in ("telemetry", "unknown"))
    refused_before = counter("epicura_telemetry_samples_total", outcome="refused")
    async with running_bridge(rt, broker.url) as bridge:
        await s.publish(broker.host, broker.port, items)
        await s.wait_until(lambda: _acked(bridge, len(items)), 180, "every message acknowledged")
        assert not bridge.task.done() and bridge.stats["connections"] == 1  # type: ignore[attr-defined]
    assert bridge.stats["stored"] == len(valid) + 1
    assert bridge.stats["rejected"] == len(hostile)
    assert await s.count_samples(rt) == 2 * len(valid)
    stored = await s.stored_message_ids(rt)
    assert {uuid.UUID(b["id"]) for b in valid} <= stored
    rejected_after = sum(
        counter("epicura_mqtt_messages_total", kind=k, outcome="rejected")
        for k in ("telemetry", "unknown"))
    assert rejected_after - rejected_before == len(hostile)
    assert counter("epicura_telemetry_samples_total", outcome="refused") - refused_before == 2
    assert counter("epicura_ingest_rejected_total", transport="mqtt", reason="wrong_device") > 0


async def test_probe_port_reports_readiness_and_metrics(svc: Service,
                                                        broker: PrivateBroker) -> None:
    rt = svc.runtime
    port = free_port()
    async with running_bridge(rt, broker.url) as bridge:
        server = await serve_probes(rt, bridge.health, "127.0.0.1", port)
        try:
            async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                assert (await client.get("/healthz")).json() == {"status": "ok"}
                ready = await client.get("/readyz")
                assert ready.status_code == 200, ready.text
                text = (await client.get("/metrics")).text
                assert "epicura_bridge_mqtt_connected 1.0" in text
                assert (await client.get("/nope")).status_code == 404
                bridge.health.mqtt_connected = False
                down = await client.get("/readyz")
                assert down.status_code == 503 and down.json()["checks"]["mqtt"] == "down"
        finally:
            server.close()
