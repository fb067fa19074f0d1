"""`epicura broker config` as an operator runs it: the broker started with the printed command
accepts the printed MQTT_BROKER_URL, whose account can manage appliances and read their `up/`
topics through the shared subscription, and nothing else."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import stat
import uuid
from pathlib import Path

import aiomqtt
import pytest

from epicura.bridge.broker_admin import BrokerAdmin, BrokerEndpoint, suback_failed
from epicura.bridge.broker_config import WrittenConfig, hash_password
from tests.brokers import MOSQUITTO, PrivateBroker
from tests.conftest import free_port
from tests.e2e import process_env, run_cli

pytestmark = pytest.mark.anyio


def _printed(output: str) -> tuple[str, str]:
    command = re.search(r"^\s+(mosquitto -c \S+)$", output, re.M)
    url = re.search(r"^\s+MQTT_BROKER_URL=(\S+)$", output, re.M)
    assert command and url, output
    return command.group(1), url.group(1)


async def test_the_printed_command_starts_a_broker_for_the_service(tmp_path: Path) -> None:
    folder, port = tmp_path / "broker", free_port()
    result = await run_cli("broker", "config", "--dir", str(folder), "--port", str(port),
                           cwd=tmp_path, env=process_env())
    assert result.returncode == 0, result.output
    command, url = _printed(result.stdout)
    conf = folder / "mosquitto.conf"
    assert command == f"mosquitto -c {conf}"
    assert stat.S_IMODE((folder / "dynamic-security.json").stat().st_mode) == 0o600
    text = conf.read_text()
    for line in ("allow_anonymous false", "per_listener_settings false", f"listener {port} ",
                 "max_queued_messages 1000000", f"persistence_location {folder}/"):
        assert line in text

    endpoint = BrokerEndpoint.from_url(url)
    assert endpoint.port == port
    broker = PrivateBroker(folder, WrittenConfig(conf, folder / "dynamic-security.json", port,
                                                 endpoint.username, endpoint.password))
    broker.start()  # runs `MOSQUITTO -c conf`, the printed command
    try:
        assert Path(MOSQUITTO).name == "mosquitto"
        await _service_manages_and_reads(broker, endpoint)
    finally:
        broker.stop()


async def _service_manages_and_reads(broker: PrivateBroker, endpoint: BrokerEndpoint) -> None:
    device, secret = str(uuid.uuid4()), uuid.uuid4().hex
    async with BrokerAdmin(endpoint) as admin:
        await admin.upsert_appliance(device, secret)
    async with endpoint.client(f"bridge-{uuid.uuid4().hex[:6]}", timeout=10) as svc:
        assert not suback_failed(await svc.subscribe("$share/epicura/epicura/v1/+/up/#", qos=1))
        assert suback_failed(await svc.subscribe("#", qos=1))  # the service reads up/ only
        async with aiomqtt.Client(broker.host, broker.port, username=device, password=secret,
                                  identifier=device) as app:
            await app.publish(f"epicura/v1/{device}/up/presence", b'{"state":"online"}', qos=1)
        async with asyncio.timeout(10):
            message = await anext(aiter(svc.messages))
        assert str(message.topic) == f"epicura/v1/{device}/up/presence"


async def test_an_existing_configuration_is_kept_unless_forced(tmp_path: Path) -> None:
    folder = tmp_path / "broker"
    args = ("broker", "config", "--dir", str(folder), "--service-password", "p" * 16)
    first = await run_cli(*args, cwd=tmp_path, env=process_env())
    assert first.returncode == 0, first.output
    kept = (folder / "dynamic-security.json").read_text()
    again = await run_cli(*args, cwd=tmp_path, env=process_env())
    assert again.returncode != 0 and "--force" in again.output
    assert (folder / "dynamic-security.json").read_text() == kept
    forced = await run_cli(*args, "--force", cwd=tmp_path, env=process_env())
    assert forced.returncode == 0, forced.output
    assert (folder / "dynamic-security.json").read_text() != kept  # a new salt
    short = await run_cli("broker", "config", "--dir", str(tmp_path / "other"),
                          "--service-password", "short", cwd=tmp_path, env=process_env())
    assert short.returncode != 0 and not (tmp_path / "other").exists()


def test_password_hash_is_the_plugins() -> None:
    """PBKDF2-HMAC-SHA512 over a 12-byte salt, both base64, as `mosquitto_ctrl dynsec init`
    writes them (checked against a file it wrote: salt `OQKU+Tyn/Rkk0YtD`, 101 iterations)."""
    salt = base64.b64decode("OQKU+Tyn/Rkk0YtD")
    fields = hash_password("adminpw", iterations=101, salt=salt)
    assert fields == {
        "password": "Zg2EDgfeP9ANqeplGLHiaFCqg6aYkty9BnO3DQk4/S95kJSnzEQKg+cBDnfnM30q8UBSKW73z/"
                    "KXADbGYn9CXQ==",
        "salt": "OQKU+Tyn/Rkk0YtD",
        "iterations": 101,
    }
    fresh = hash_password("x")
    raw = base64.b64decode(fresh["salt"])
    assert len(raw) == 12
    digest = hashlib.pbkdf2_hmac("sha512", b"x", raw, fresh["iterations"])
    assert json.dumps(fresh["password"]) == json.dumps(base64.b64encode(digest).decode())
