"""The `mqtt.publish` job (bridge/publisher.py): down/ messages reach the broker with QoS 1,
retained config and its clearing, MQTT 5 expiry from the command's own `expires_at`; an expired
command is never sent; without a broker the job succeeds without sending."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiomqtt
import orjson
import pytest
from sqlalchemy import select

from epicura.bridge.outbox import PUBLISH_JOB, down_topic, enqueue_down
from epicura.bridge.publisher import close_publisher, publish_down
from epicura.kit import clock, jobs
from epicura.kit.runtime import Runtime
from tests.brokers import PrivateBroker
from tests.support import Service

pytestmark = pytest.mark.anyio



@pytest.fixture
async def broker_rt(svc: Service, broker: PrivateBroker) -> AsyncIterator[Runtime]:
    """A runtime like the worker's, with MQTT_BROKER_URL set."""
    settings = svc.runtime.settings.model_copy(update={"mqtt_broker_url": broker.url})
    rt = Runtime.build(settings)
    try:
        yield rt
    finally:
        await close_publisher(rt)
        await rt.close()


def ctx_for(rt: Runtime) -> jobs.JobContext:
    return jobs.JobContext(db=rt.db, sealer=rt.sealer, extras={"runtime": rt})


async def receive(client: aiomqtt.Client, count: int) -> list[aiomqtt.Message]:
    got: list[aiomqtt.Message] = []
    async with asyncio.timeout(15):
        async for message in client.messages:
            got.append(message)
            if len(got) == count:
                return got
    return got


async def test_commands_config_and_clearing_reach_the_appliance(
    broker_rt: Runtime, broker: PrivateBroker
) -> None:
    device = uuid.uuid4()
    expires_at = (clock.utcnow() + timedelta(seconds=60)).isoformat()
    command = {"request_id": str(uuid.uuid4()), "name": "identify", "args": {},
               "expires_at": expires_at}
    async with aiomqtt.Client(broker.host, broker.port,
                              protocol=aiomqtt.ProtocolVersion.V5) as appliance:
        await appliance.subscribe(f"epicura/v1/{device}/down/#", qos=1)
        for payload in (
            {"topic": down_topic(device, "cmd"), "payload": command, "retain": False,
             "expiry_s": 60},
            {"topic": down_topic(device, "config"), "payload": {"version": 2, "settings": {}},
             "retain": True, "expiry_s": None},
        ):
            await publish_down(ctx_for(broker_rt), payload)
        cmd, config = await receive(appliance, 2)
    assert orjson.loads(bytes(cmd.payload)) == command
    expiry = getattr(cmd.properties, "MessageExpiryInterval", None)
    assert expiry is not None and 55 <= expiry <= 60
    assert str(config.topic).endswith("/down/config")
    # A new subscriber gets the retained config; after clearing it, nothing.
    async with aiomqtt.Client(broker.host, broker.port,
                              protocol=aiomqtt.ProtocolVersion.V5) as late:
        await late.subscribe(down_topic(device, "config"), qos=1)
        (retained,) = await receive(late, 1)
        assert retained.retain and orjson.loads(bytes(retained.payload))["version"] == 2
    await publish_down(ctx_for(broker_rt), {"topic": down_topic(device, "config"),
                                            "payload": None, "retain": True, "expiry_s": None})
    async with aiomqtt.Client(broker.host, broker.port,
                              protocol=aiomqtt.ProtocolVersion.V5) as later:
        await later.subscribe(down_topic(device, "config"), qos=1)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1):
                await anext(aiter(later.messages))


async def test_an_expired_command_is_never_sent(broker_rt: Runtime,
                                                broker: PrivateBroker) -> None:
    device = uuid.uuid4()
    stale = {"request_id": str(uuid.uuid4()), "name": "identify", "args": {},
             "expires_at": (clock.utcnow() - timedelta(seconds=1)).isoformat()}
    fresh = {**stale, "expires_at": (clock.utcnow() + timedelta(seconds=30)).isoformat()}
    async with aiomqtt.Client(broker.host, broker.port,
                              protocol=aiomqtt.ProtocolVersion.V5) as appliance:
        await appliance.subscribe(f"epicura/v1/{device}/down/#", qos=1)
        for body in (stale, fresh):
            await publish_down(ctx_for(broker_rt), {"topic": down_topic(device, "cmd"),
                                                    "payload": body, "retain": False,
                                                    "expiry_s": 60})
        (only,) = await receive(appliance, 1)
    assert orjson.loads(bytes(only.payload)) == fresh


async def test_without_mqtt_configured_the_job_succeeds_without_sending(svc: Service) -> None:
    rt = svc.runtime
    assert rt.settings.mqtt_broker_url is None
    async with rt.db.transaction() as session:
        enqueue_down(rt, session, uuid.uuid4(), "sync", {"reason": "library"})
    assert await svc.run_jobs() == 1
    async with rt.db.sessions() as session:
        states = (await session.scalars(
            select(jobs.Job.state).where(jobs.Job.kind == PUBLISH_JOB))).all()
    assert list(states) == [jobs.SUCCEEDED]


async def test_an_unreachable_mqtt_server_fails_the_job_for_a_retry(svc: Service) -> None:
    from tests.conftest import free_port

    settings = svc.runtime.settings.model_copy(
        update={"mqtt_broker_url": f"mqtt://127.0.0.1:{free_port()}"})
    rt = Runtime.build(settings)
    try:
        payload: dict[str, Any] = {"topic": down_topic(uuid.uuid4(), "sync"),
                                   "payload": {"reason": "x"}, "retain": False, "expiry_s": None}
        with pytest.raises(aiomqtt.MqttError):
            await publish_down(ctx_for(rt), payload)
    finally:
        await close_publisher(rt)
        await rt.close()
