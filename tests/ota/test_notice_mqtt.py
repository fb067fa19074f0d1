"""The retained `down/ota` notice on a real (private) Mosquitto: the `mqtt.publish` jobs a rollout
queues reach the broker, an appliance that subscribes later still finds its notice, and pausing
the rollout clears it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aiomqtt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from epicura.bridge.outbox import down_topic
from epicura.bridge.publisher import close_publisher, publish_down
from epicura.kit import jobs
from epicura.kit.runtime import Runtime
from tests.appliances.conftest import Device, down_messages
from tests.bridge.conftest import broker  # noqa: F401
from tests.brokers import PrivateBroker
from tests.ota.conftest import act, create_rollout, released
from tests.support import Service

pytestmark = pytest.mark.anyio
ALL = [{"percent": 100, "soak_s": 0, "success_threshold": 1, "failure_threshold": 1}]


@pytest.fixture
async def broker_rt(svc: Service, broker: PrivateBroker) -> AsyncIterator[Runtime]:  # noqa: F811
    """A runtime like the worker's, with MQTT_BROKER_URL set."""
    rt = Runtime.build(svc.runtime.settings.model_copy(update={"mqtt_broker_url": broker.url}))
    try:
        yield rt
    finally:
        await close_publisher(rt)
        await rt.close()


async def deliver(svc: Service, rt: Runtime, device: Device, already: int) -> int:
    """Run the device's queued `down/ota` publish jobs (as the worker would); returns how many
    there are now."""
    queued = await down_messages(svc, device.id, "ota")
    for payload in queued[already:]:
        await publish_down(jobs.JobContext(db=rt.db, sealer=rt.sealer, extras={"runtime": rt}),
                           payload)
    return len(queued)


async def retained(broker: PrivateBroker, device: Device) -> dict[str, str] | None:  # noqa: F811
    """What an appliance subscribing now finds on its `down/ota` (None: nothing retained)."""
    async with aiomqtt.Client(broker.host, broker.port, identifier=f"late-{uuid.uuid4().hex}",
                              protocol=aiomqtt.ProtocolVersion.V5) as late:
        await late.subscribe(down_topic(uuid.UUID(device.id), "ota"), qos=1)
        try:
            async with asyncio.timeout(1.5):
                message = await anext(aiter(late.messages))
        except TimeoutError:
            return None
    assert message.retain
    found: dict[str, str] = orjson.loads(bytes(message.payload))
    return found


async def test_the_notice_is_retained_for_the_appliance_and_cleared_on_pause(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey,
        fleet: list[Device], broker_rt: Runtime, broker: PrivateBroker) -> None:  # noqa: F811
    release = await released(svc, admin, release_key, "1.5.0")
    rollout = await create_rollout(svc, admin, release["id"], ALL)
    device = fleet[0]
    assert await retained(broker, device) is None
    await act(svc, admin, rollout["id"], "start")
    sent = await deliver(svc, broker_rt, device, 0)
    assert await retained(broker, device) == {"rollout_id": rollout["id"], "version": "1.5.0"}
    await act(svc, admin, rollout["id"], "pause")
    await deliver(svc, broker_rt, device, sent)
    assert await retained(broker, device) is None
