"""The `mqtt.publish` job: delivers what `outbox.enqueue_down` queued to the broker.

One long-lived MQTT 5 connection per process (opened on first use, opened again after a
failure), QoS 1: the job succeeds once the broker has acknowledged the message, and a failure
raises so the job queue retries with backoff. A command whose `expires_at` has passed is not
sent at all (never delivered late), and its MQTT 5 message expiry is what remains of its
lifetime. With no broker configured (the embedded default, where appliances use HTTPS) the job
succeeds without sending: there is nobody on MQTT to tell.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from datetime import datetime
from typing import Any

import aiomqtt
import orjson
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from epicura.bridge import metrics
from epicura.bridge.broker_admin import BrokerEndpoint
from epicura.bridge.outbox import PUBLISH_JOB
from epicura.kit import clock, jobs
from epicura.kit.runtime import Runtime

log = structlog.get_logger("epicura.bridge.publisher")

PUBLISH_TIMEOUT_S = 10.0
EXTRAS_KEY = "mqtt_publisher"


class Publisher:
    def __init__(self, endpoint: BrokerEndpoint) -> None:
        self.endpoint = endpoint
        self.client_id = f"epicura-pub-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._client: aiomqtt.Client | None = None
        self._lock = asyncio.Lock()

    async def _connected(self) -> aiomqtt.Client:
        if self._client is None:
            client = self.endpoint.client(self.client_id, protocol=aiomqtt.ProtocolVersion.V5,
                                          timeout=PUBLISH_TIMEOUT_S)
            await client.__aenter__()
            self._client = client
        return self._client

    async def publish(self, topic: str, payload: bytes, *, retain: bool,
                      expiry_s: int | None) -> None:
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        if expiry_s is not None:
            properties.MessageExpiryInterval = max(1, expiry_s)
        async with self._lock:
            for attempt in (1, 2):  # a connection that died while idle: reopen once, at once
                try:
                    client = await self._connected()
                    await client.publish(topic, payload, qos=1, retain=retain,
                                         properties=properties, timeout=PUBLISH_TIMEOUT_S)
                    return
                except aiomqtt.MqttError:
                    await self._drop()
                    if attempt == 2:
                        raise

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)

    async def close(self) -> None:
        async with self._lock:
            await self._drop()


def publisher_for(rt: Runtime) -> Publisher | None:
    """The process's publisher, or None without a broker."""
    url = rt.settings.mqtt_broker_url
    if url is None:
        return None
    publisher = rt.extras.get(EXTRAS_KEY)
    if publisher is None:
        publisher = rt.extras[EXTRAS_KEY] = Publisher(BrokerEndpoint.from_url(url))
    assert isinstance(publisher, Publisher)
    return publisher


async def close_publisher(rt: Runtime) -> None:
    publisher = rt.extras.pop(EXTRAS_KEY, None)
    if isinstance(publisher, Publisher):
        await publisher.close()


def remaining_s(message: dict[str, Any] | None, now: datetime) -> float | None:
    """Seconds left before the message's own `expires_at`, if it has one."""
    if not isinstance(message, dict) or not isinstance(message.get("expires_at"), str):
        return None
    try:
        expires_at = datetime.fromisoformat(message["expires_at"])
    except ValueError:
        return None
    if expires_at.tzinfo is None:
        return None
    return (expires_at - now).total_seconds()


@jobs.handler(PUBLISH_JOB)
async def publish_down(ctx: jobs.JobContext, payload: dict[str, Any]) -> None:
    rt: Runtime = ctx.extras["runtime"]
    topic, message = payload["topic"], payload.get("payload")
    publisher = publisher_for(rt)
    if publisher is None:
        metrics.mqtt_published.labels("no_broker").inc()
        log.info("mqtt_publish_skipped_no_broker", topic=topic)
        return
    expiry_s = payload.get("expiry_s")
    left = remaining_s(message, clock.utcnow())
    if left is not None:
        if left <= 0:
            metrics.mqtt_published.labels("expired").inc()
            log.info("mqtt_publish_skipped_expired", topic=topic)
            return
        expiry_s = int(min(expiry_s or left, left)) or 1
    body = b"" if message is None else orjson.dumps(message)
    try:
        await publisher.publish(topic, body, retain=bool(payload.get("retain")),
                                expiry_s=expiry_s)
    except aiomqtt.MqttError:
        metrics.mqtt_published.labels("failed").inc()
        raise
    metrics.mqtt_published.labels("sent").inc()
