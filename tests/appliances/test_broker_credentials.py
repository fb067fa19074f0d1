"""Provisioning, re-provisioning and decommissioning change the appliance's account on a real
(private) Mosquitto with dynamic security: the device secret is its MQTT password, a rotated
secret stops working, and a decommissioned appliance can no longer connect."""

from __future__ import annotations

from collections.abc import Iterator

import aiomqtt
import pytest

from epicura.config import Settings
from tests.appliances.conftest import Factory
from tests.brokers import PrivateBroker, private_broker
from tests.support import API, Service

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    with private_broker(tmp_path_factory.mktemp("appliance-broker"), dynsec=True) as started:
        yield started


@pytest.fixture
def pg_settings(pg_settings: Settings, broker: PrivateBroker) -> Settings:
    return pg_settings.model_copy(update={"mqtt_broker_url": broker.url})


async def connects(broker: PrivateBroker, device_id: str, secret: str) -> bool:
    try:
        async with aiomqtt.Client(broker.host, broker.port, identifier=device_id,
                                  username=device_id, password=secret, timeout=5):
            return True
    except aiomqtt.MqttError:
        return False


async def test_broker_account_follows_provisioning(svc: Service, factory: Factory,
                                                   broker: PrivateBroker) -> None:
    row = factory.row()
    await factory.import_rows([row])
    first = (await factory.provision(row)).json()
    assert first["mqtt"] == {"host": "127.0.0.1", "port": broker.port,
                             "username": first["device_id"], "client_id": first["device_id"]}
    device_id = first["device_id"]
    assert not await connects(broker, device_id, first["device_secret"])  # its job has not run yet
    await svc.run_jobs()
    assert await connects(broker, device_id, first["device_secret"])

    second = (await factory.provision(row)).json()
    await svc.run_jobs()
    assert not await connects(broker, device_id, first["device_secret"])
    assert await connects(broker, device_id, second["device_secret"])

    retired = await svc.client.post(f"{API}/admin/appliances/{device_id}/decommission",
                                    headers=factory.admin)
    assert retired.status_code == 200
    await svc.run_jobs()
    assert not await connects(broker, device_id, second["device_secret"])
