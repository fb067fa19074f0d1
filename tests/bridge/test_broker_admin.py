"""Appliance credentials on a private Mosquitto with the dynamic-security plugin (BrokerAdmin):
each appliance reaches its own topics only; rotation and removal take effect at once.

"Nothing arrives" is shown without waiting: a marker is published after the forbidden message
by the same publisher, so once the marker is in, the forbidden message would have been too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import pytest
from aiomqtt.exceptions import MqttConnectError

from epicura.bridge.broker_admin import (
    BrokerAdmin,
    BrokerAdminError,
    BrokerAdminTimeout,
    BrokerEndpoint,
    appliance_acls,
    role_name,
    suback_failed,
)
from tests.brokers import PrivateBroker, private_broker

pytestmark = pytest.mark.anyio

DEADLINE_S = 10.0
NOT_AUTHORISED = {0x86, 0x87}  # bad user name or password, not authorised


def _device() -> str:
    return str(uuid.uuid4())


def _admin(broker: PrivateBroker, **options: float) -> BrokerAdmin:
    return BrokerAdmin(BrokerEndpoint.from_url(broker.url), **options)


def _up(device: str, name: str = "telemetry") -> str:
    return f"epicura/v1/{device}/up/{name}"


def _down(device: str, name: str = "cmd") -> str:
    return f"epicura/v1/{device}/down/{name}"


def appliance(broker: PrivateBroker, device: str, password: str) -> aiomqtt.Client:
    return aiomqtt.Client(broker.host, broker.port, username=device, password=password,
                          identifier=device, timeout=DEADLINE_S)


@asynccontextmanager
async def service(broker: PrivateBroker) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(broker.host, broker.port, username=broker.service_username,
                              password=broker.service_password,
                              identifier=f"test-service-{uuid.uuid4().hex[:8]}",
                              timeout=DEADLINE_S) as client:
        yield client


async def provisioned(broker: PrivateBroker, password: str | None = None) -> tuple[str, str]:
    password = password or uuid.uuid4().hex
    device = _device()
    async with _admin(broker) as admin:
        await admin.upsert_appliance(device, password)
    return device, password


async def next_message(client: aiomqtt.Client) -> aiomqtt.Message:
    async with asyncio.timeout(DEADLINE_S):
        async for message in client.messages:
            return message
    raise AssertionError("the connection ended without a message")


async def refusal(broker: PrivateBroker, device: str, password: str) -> int:
    """The CONNACK code with which the broker refuses this appliance's login."""
    with pytest.raises(MqttConnectError) as refused:
        async with appliance(broker, device, password):
            pass
    code = refused.value.rc
    assert code is not None
    return code if isinstance(code, int) else code.value


async def test_appliance_publishes_up_and_receives_down(dynsec_broker: PrivateBroker) -> None:
    device, password = await provisioned(dynsec_broker)
    async with service(dynsec_broker) as svc, appliance(dynsec_broker, device, password) as app:
        assert not suback_failed(await svc.subscribe(f"epicura/v1/{device}/up/#", qos=1))
        assert not suback_failed(await app.subscribe(f"epicura/v1/{device}/down/#", qos=1))
        await app.publish(_up(device), b'{"n": 1}', qos=1)
        got = await next_message(svc)
        assert (str(got.topic), got.payload) == (_up(device), b'{"n": 1}')
        await svc.publish(_down(device), b'{"cmd": 1}', qos=1)
        got = await next_message(app)
        assert (str(got.topic), got.payload) == (_down(device), b'{"cmd": 1}')


async def test_appliance_cannot_publish_as_another(dynsec_broker: PrivateBroker) -> None:
    a, a_password = await provisioned(dynsec_broker)
    b, _ = await provisioned(dynsec_broker)
    async with service(dynsec_broker) as svc, appliance(dynsec_broker, a, a_password) as app:
        assert not suback_failed(await svc.subscribe("epicura/v1/+/up/#", qos=1))
        await app.publish(_up(b), b"forged", qos=1)  # the broker drops it silently (3.1.1)
        await app.publish(f"epicura/v1/{b}/down/cmd", b"forged", qos=1)
        await app.publish("epicura/v1/elsewhere", b"forged", qos=1)
        await app.publish(_up(a, "marker"), b"marker", qos=1)
        got = await next_message(svc)
        assert (str(got.topic), got.payload) == (_up(a, "marker"), b"marker")


async def test_appliance_cannot_read_another_or_everything(dynsec_broker: PrivateBroker) -> None:
    a, a_password = await provisioned(dynsec_broker)
    b, _ = await provisioned(dynsec_broker)
    async with service(dynsec_broker) as svc, appliance(dynsec_broker, a, a_password) as app:
        for forbidden in ("#", f"epicura/v1/{b}/down/#", f"epicura/v1/{b}/down/cmd",
                          "epicura/v1/+/down/#", f"epicura/v1/{b}/up/#", "$CONTROL/#",
                          f"$share/epicura/epicura/v1/{a}/down/#"):
            assert suback_failed(await app.subscribe(forbidden, qos=1)), forbidden
        assert not suback_failed(await app.subscribe(f"epicura/v1/{a}/down/#", qos=1))
        await svc.publish(_down(b), b"for b", qos=1)
        await svc.publish(_down(a, "marker"), b"marker", qos=1)
        got = await next_message(app)
        assert (str(got.topic), got.payload) == (_down(a, "marker"), b"marker")


async def test_wrong_password_and_wrong_client_id_are_refused(
        dynsec_broker: PrivateBroker) -> None:
    device, password = await provisioned(dynsec_broker)
    assert await refusal(dynsec_broker, device, "not-the-secret") in NOT_AUTHORISED
    assert await refusal(dynsec_broker, _device(), password) in NOT_AUTHORISED
    with pytest.raises(MqttConnectError):  # its username with another client id
        async with aiomqtt.Client(dynsec_broker.host, dynsec_broker.port, username=device,
                                  password=password, identifier=f"{device}-x"):
            pass


async def test_rotation_refuses_the_old_secret_and_ends_its_session(
        dynsec_broker: PrivateBroker) -> None:
    device, old = await provisioned(dynsec_broker, "old-secret")
    async with appliance(dynsec_broker, device, old) as app:
        async with _admin(dynsec_broker) as admin:
            await admin.upsert_appliance(device, "new-secret")
        with pytest.raises(aiomqtt.MqttError):
            await next_message(app)
    assert await refusal(dynsec_broker, device, old) in NOT_AUTHORISED
    async with service(dynsec_broker) as svc, appliance(dynsec_broker, device, "new-secret") as app:
        await svc.subscribe(f"epicura/v1/{device}/up/#", qos=1)
        await app.publish(_up(device), b"after rotation", qos=1)
        assert (await next_message(svc)).payload == b"after rotation"


async def test_removal_disconnects_and_refuses(dynsec_broker: PrivateBroker) -> None:
    device, password = await provisioned(dynsec_broker)
    async with appliance(dynsec_broker, device, password) as app:
        async with _admin(dynsec_broker) as admin:
            await admin.remove_appliance(device)
            assert await admin.command("getRole", frozenset({"Role not found"}),
                                       rolename=role_name(device)) is None
        with pytest.raises(aiomqtt.MqttError):
            await next_message(app)
    assert await refusal(dynsec_broker, device, password) in NOT_AUTHORISED


async def test_operations_converge_when_repeated(dynsec_broker: PrivateBroker) -> None:
    device = _device()
    async with _admin(dynsec_broker) as admin:
        await admin.remove_appliance(device)  # never existed: fine
        await admin.upsert_appliance(device, "secret-a")
        await admin.upsert_appliance(device, "secret-a")
        # A role tampered with (an extra rule, a rule turned to deny) is put back exactly.
        await admin.command("addRoleACL", rolename=role_name(device), acltype="subscribePattern",
                            topic="#", priority=5, allow=True)
        await admin.command("removeRoleACL", rolename=role_name(device),
                            acltype="publishClientSend", topic=_up(device, "#"))
        await admin.command("addRoleACL", rolename=role_name(device),
                            acltype="publishClientSend", topic=_up(device, "#"), allow=False)
        await admin.upsert_appliance(device, "secret-b")
        role = await admin.command("getRole", rolename=role_name(device))
        assert role is not None
        assert sorted(role["role"]["acls"], key=str) == sorted(appliance_acls(device), key=str)
        client = await admin.command("getClient", username=device)
        assert client is not None
        assert client["client"]["clientid"] == device
        assert client["client"]["roles"] == [{"rolename": role_name(device)}]
        await admin.remove_appliance(device)
        await admin.remove_appliance(device)
        await admin.upsert_appliance(device, "secret-c")
    async with appliance(dynsec_broker, device, "secret-c"):
        pass


async def test_device_ids_that_would_widen_the_rules_are_refused(
        dynsec_broker: PrivateBroker) -> None:
    async with _admin(dynsec_broker) as admin:
        for bad in ("#", "+", "a/b", "", "x" * 200):
            with pytest.raises(ValueError):
                await admin.upsert_appliance(bad, "secret")


async def test_a_broker_without_the_plugin_times_out_clearly(plain_broker: PrivateBroker) -> None:
    async with _admin(plain_broker, timeout_s=0.5) as admin:
        with pytest.raises(BrokerAdminTimeout, match="dynamic-security plugin"):
            await admin.upsert_appliance(_device(), "secret")


async def test_wrong_service_credentials_fail_clearly(dynsec_broker: PrivateBroker) -> None:
    endpoint = BrokerEndpoint(dynsec_broker.host, dynsec_broker.port,
                              dynsec_broker.service_username, "wrong-password", tls=False)
    with pytest.raises(BrokerAdminError, match="cannot connect") as failed:
        async with BrokerAdmin(endpoint):
            pass
    assert "wrong-password" not in str(failed.value)


def test_broker_url_parsing() -> None:
    parsed = BrokerEndpoint.from_url("mqtt://epicura-service:p%40ss%3Aw@broker.local:1884")
    assert parsed == BrokerEndpoint("broker.local", 1884, "epicura-service", "p@ss:w", False)
    assert BrokerEndpoint.from_url("mqtts://u:p@h").port == 8883
    assert BrokerEndpoint.from_url("mqtt://h").username is None
    for bad in ("http://h", "mqtt://"):
        with pytest.raises(ValueError):
            BrokerEndpoint.from_url(bad)


async def test_a_lost_connection_fails_the_command(tmp_path: Path) -> None:
    with private_broker(tmp_path, dynsec=True) as broker:
        async with _admin(broker, timeout_s=1) as admin:
            broker.stop()
            with pytest.raises(BrokerAdminError):  # lost or timed out: a clear error, no hang
                await admin.upsert_appliance(_device(), "secret")
