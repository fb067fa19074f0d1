"""Helpers of the ingest tests: appliances in the database, valid messages of every kind,
publishing over real MQTT, counting what got stored, waiting for conditions."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select, text

from epicura.appliances.models import PROVISIONED, Appliance
from epicura.kit import clock
from epicura.kit.runtime import Runtime


def now_ms() -> int:
    return int(time.time() * 1000)


async def make_appliances(rt: Runtime, count: int,
                          owner_id: uuid.UUID | None = None) -> list[uuid.UUID]:
    """`count` provisioned appliances (rows written directly: provisioning is tested elsewhere)."""
    now = clock.utcnow()
    ids = [uuid.uuid4() for _ in range(count)]
    async with rt.db.transaction() as session:
        for appliance_id in ids:
            session.add(Appliance(
                id=appliance_id, serial=f"T-{appliance_id.hex[:16]}", model="epicura-1",
                hw_revision="rev-a", lifecycle=PROVISIONED, factory_secret_hash="0" * 64,
                device_secret_hash="1" * 64, owner_id=owner_id, channel="stable", tags=[],
                online=False, settings={}, config_version=0, provisioned_at=now,
                created_at=now, updated_at=now,
            ))
    return ids


def envelope(**fields: Any) -> dict[str, Any]:
    return {"v": 1, "id": str(uuid.uuid4()), "ts": now_ms(), **fields}


def sample(t: int | None = None, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "t": now_ms() if t is None else t, "bowl_temp_c": 62.5, "target_temp_c": 90.0,
        "speed": 2, "direction": "forward", "weight_g": 850.0, "heater_w": 700.0,
        "motor_rpm": 240, "lid": "locked",
    }
    base.update(fields)
    return base


def telemetry(count: int = 5, **fields: Any) -> dict[str, Any]:
    start = now_ms() - count * 1000
    return envelope(seq=1, boot_id="boot-1",
                    samples=[sample(start + i * 1000) for i in range(count)], **fields)


def presence_online() -> dict[str, Any]:
    return envelope(state="online", firmware_version="1.4.2", boot_id="boot-1")


def presence_offline(reason: str = "lost") -> dict[str, Any]:
    return envelope(state="offline", reason=reason)


def state(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "firmware_version": "1.4.2", "hw_revision": "rev-a", "channel": "beta",
        "capabilities": {"reverse": True}, "settings": {"units": "metric"},
        "storage_free_mb": 512, "wifi_rssi": -61}
    body.update(fields)
    return envelope(**body)


def alert(alert_id: str = "a-1", state_: str = "raised") -> dict[str, Any]:
    return envelope(alert_id=alert_id, code="overtemp", severity="critical", state=state_)


def session_event(session_id: uuid.UUID, seq: int = 1) -> dict[str, Any]:
    return envelope(session_id=str(session_id), seq=seq, type="started",
                    recipe_id=str(uuid.uuid4()), recipe_version=1)


def topic(device_id: uuid.UUID | str, kind: str) -> str:
    return f"epicura/v1/{device_id}/up/{kind}"


def dumps(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)


class Publisher:
    """A plain paho client (as an appliance fleet would be) publishing QoS 1 on a thread."""

    def __init__(self, host: str, port: int) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5,
                                  client_id=f"test-pub-{uuid.uuid4().hex[:8]}")
        self.client.max_inflight_messages_set(500)
        self.client.max_queued_messages_set(0)
        self.client.connect(host, port)
        self.client.loop_start()
        self._lock = threading.Lock()

    def publish(self, items: list[tuple[str, bytes]], qos: int = 1,
                timeout_s: float = 120) -> None:
        infos = [self.client.publish(t, p, qos=qos) for t, p in items]
        deadline = time.monotonic() + timeout_s
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            assert info.is_published(), "the broker did not acknowledge a publish in time"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def publish(host: str, port: int, items: list[tuple[str, bytes]], qos: int = 1) -> None:
    def run() -> None:
        publisher = Publisher(host, port)
        try:
            publisher.publish(items, qos)
        finally:
            publisher.close()

    await asyncio.to_thread(run)


async def wait_until(condition: Callable[[], Awaitable[bool]], timeout_s: float = 60,
                     message: str = "condition", poll_s: float = 0.05) -> None:
    """Poll `condition` until true; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        await asyncio.sleep(poll_s)


async def scalar(rt: Runtime, sql: str, **params: Any) -> Any:
    async with rt.db.engine.connect() as conn:
        return await conn.scalar(text(sql), params)


async def count_samples(rt: Runtime, appliance_ids: list[uuid.UUID] | None = None) -> int:
    from epicura.telemetry.models import TelemetrySample

    query = select(func.count()).select_from(TelemetrySample)
    if appliance_ids is not None:
        query = query.where(TelemetrySample.appliance_id.in_(appliance_ids))
    async with rt.db.sessions() as session:
        return int(await session.scalar(query) or 0)


async def stored_message_ids(rt: Runtime) -> set[uuid.UUID]:
    from epicura.appliances.models import DeviceMessage

    async with rt.db.sessions() as session:
        return set((await session.scalars(select(DeviceMessage.id))).all())


async def duplicated_samples(rt: Runtime) -> int:
    """Rows stored twice (same message and time): must always be 0."""
    return int(await scalar(rt, """
        SELECT count(*) FROM (SELECT message_id, t, count(*) AS n FROM telemetry_samples
                              GROUP BY message_id, t HAVING count(*) > 1) AS d"""))
