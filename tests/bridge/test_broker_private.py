"""The private brokers of tests/brokers.py: they start, accept the service account (and nobody
else when dynamic security is on), relay messages, and restart on the same port."""

from __future__ import annotations

import uuid
from pathlib import Path

import aiomqtt
import pytest

from tests.brokers import PrivateBroker, private_broker

pytestmark = pytest.mark.anyio


async def _roundtrip(broker: PrivateBroker, topic: str) -> bytes:
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe(topic, qos=1)
        await client.publish(topic, b"ping", qos=1)
        async for message in client.messages:
            return bytes(message.payload)
    raise AssertionError("no message")


async def test_plain_broker_relays_anonymous_clients(plain_broker: PrivateBroker) -> None:
    topic = f"test/{uuid.uuid4().hex}/x"
    assert await _roundtrip(plain_broker, topic) == b"ping"


async def test_dynsec_broker_accepts_only_the_service(dynsec_broker: PrivateBroker) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(dynsec_broker.host, dynsec_broker.port):
            pass
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(dynsec_broker.host, dynsec_broker.port,
                                  username=dynsec_broker.service_username, password="wrong"):
            pass
    async with aiomqtt.Client(dynsec_broker.host, dynsec_broker.port,
                              username=dynsec_broker.service_username,
                              password=dynsec_broker.service_password):
        pass


async def test_restart_keeps_port_and_accounts(tmp_path: Path) -> None:
    with private_broker(tmp_path, dynsec=True) as broker:
        port = broker.port
        broker.stop()
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(broker.host, port):
                pass
        broker.start()
        assert broker.port == port
        async with aiomqtt.Client(broker.host, port, username=broker.service_username,
                                  password=broker.service_password):
            pass
    assert broker.process is not None and broker.process.poll() is not None
