"""Faults with the real broker and database: the `epicura bridge` process killed with SIGKILL
mid-stream and restarted, and PostgreSQL unreachable for ~10 s (through a proxy the test cuts).
Either way every QoS 1 message ends up stored exactly once."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2
import pytest

from epicura.bridge.probes import serve_probes
from epicura.config import Settings
from epicura.kit.runtime import Runtime
from tests.bridge import ingest_support as s
from tests.bridge.bridge_support import running_bridge
from tests.bridge.tcp_proxy import TcpProxy
from tests.brokers import PrivateBroker
from tests.conftest import REDIS_URL, base_settings, free_port
from tests.e2e import Running, process_env, started
from tests.support import Mailbox, Service

pytestmark = pytest.mark.anyio



def stream(devices: list[uuid.UUID], count: int) -> list[tuple[str, bytes]]:
    return [(s.topic(devices[i % len(devices)], "telemetry"), s.dumps(s.telemetry(5)))
            for i in range(count)]


async def stored(rt: Runtime) -> int:
    return int(await s.scalar(rt, "SELECT count(*) FROM device_messages"))


async def at_least(rt: Runtime, count: int) -> bool:
    return await stored(rt) >= count


async def in_transaction(rt: Runtime) -> bool:
    """Someone else (the bridge) is inside a transaction on the test database right now."""
    return bool(await s.scalar(rt, """
        SELECT count(*) > 0 FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()
          AND xact_start IS NOT NULL AND state <> 'idle'"""))


async def ready_status(port: int) -> int:
    try:
        async with httpx2.AsyncClient(timeout=5) as client:
            return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code
    except httpx2.HTTPError:
        return 0


async def wait_ready(bridge: Running, port: int) -> None:
    async def ready() -> bool:
        if bridge.output.closed:
            raise AssertionError(f"the bridge exited:\n{bridge.output.text}")
        return await ready_status(port) == 200

    await s.wait_until(ready, 60, "the bridge to be ready")


async def test_sigkill_mid_stream_then_restart_stores_every_message_once(
    svc: Service, pg_settings: Settings, broker: PrivateBroker, tmp_path: Path,
) -> None:
    rt = svc.runtime
    devices = await s.make_appliances(rt, 10)
    items = stream(devices, 6000)
    port = free_port()
    env = process_env(
        DATABASE_URL=str(pg_settings.database_url), REDIS_URL=REDIS_URL,
        REDIS_PREFIX=pg_settings.redis_prefix, MQTT_BROKER_URL=broker.url,
        EPICURA_ENV="test", LOG_LEVEL="INFO", BRIDGE_CLIENT_ID=f"killed-{uuid.uuid4().hex[:6]}",
        BRIDGE_METRICS_PORT=str(port), BRIDGE_METRICS_HOST="127.0.0.1",
    )
    publishing: asyncio.Task[None] | None = None
    async with started("bridge", cwd=tmp_path, env=env) as first:
        await wait_ready(first, port)
        publishing = asyncio.create_task(s.publish(broker.host, broker.port, items))
        await s.wait_until(lambda: at_least(rt, 1000), 120, "a first part stored")
        # Kill inside a batch's transaction: received, maybe validated, not yet committed.
        await s.wait_until(lambda: in_transaction(rt), 60, "a batch being stored", poll_s=0.002)
        first.process.kill()  # SIGKILL: no DISCONNECT, a batch half-stored, acks unsent
        assert await first.exit_code() == -9
    killed_at = await stored(rt)
    assert killed_at < len(items), "the kill came too late to test anything"
    await publishing  # the rest was published while no bridge ran (the broker queued it)
    async with started("bridge", cwd=tmp_path, env=env) as second:
        await wait_ready(second, port)
        await s.wait_until(lambda: at_least(rt, len(items)), 180, "every message stored")
    assert await stored(rt) == len(items)
    assert await s.count_samples(rt) == len(items) * 5
    assert await s.duplicated_samples(rt) == 0


async def test_database_outage_stops_acks_then_nothing_lost_or_doubled(
    svc: Service, pg_settings: Settings, broker: PrivateBroker, tmp_path: Path,
    smtp: tuple[int, Mailbox],
) -> None:
    rt = svc.runtime
    devices = await s.make_appliances(rt, 10)
    assert pg_settings.database_url is not None
    host_port = pg_settings.database_url.split("@", 1)[1].split("/", 1)[0]
    host, _, pg_port = host_port.partition(":")
    proxy = TcpProxy(host, int(pg_port or 5432))
    await proxy.start()
    proxied = pg_settings.database_url.replace(host_port, f"127.0.0.1:{proxy.port}")
    settings = base_settings(tmp_path, smtp[0], database_url=proxied, redis_url=REDIS_URL,
                             redis_prefix=pg_settings.redis_prefix)
    bridge_rt = Runtime.build(settings)
    port = free_port()
    try:
        async with running_bridge(bridge_rt, broker.url) as bridge:
            probes = await serve_probes(bridge_rt, bridge.health, "127.0.0.1", port)
            try:
                await s.publish(broker.host, broker.port, stream(devices, 500))
                await s.wait_until(lambda: at_least(rt, 500), 60, "the first 500 stored")
                await _outage(rt, proxy, bridge, port, broker, devices)
                await s.wait_until(lambda: at_least(rt, 1500), 120, "the backlog stored")
                await s.wait_until(lambda: _is(ready_status(port), 200), 30, "ready again")
            finally:
                probes.close()
    finally:
        await bridge_rt.close()
        await proxy.close()
    assert await stored(rt) == 1500
    assert await s.count_samples(rt) == 1500 * 5
    assert await s.duplicated_samples(rt) == 0


async def _is(status: Any, expected: int) -> bool:
    return bool(await status == expected)


async def _outage(rt: Runtime, proxy: TcpProxy, bridge: Any, port: int, broker: PrivateBroker,
                  devices: list[uuid.UUID]) -> None:
    """~10 s without the database while 1,000 more messages arrive: nothing acknowledged,
    nothing stored, /readyz 503; then the database comes back."""
    await proxy.cut()
    cut_at = time.monotonic()
    acked = bridge.stats["acked"]
    await s.publish(broker.host, broker.port, stream(devices, 1000))

    async def down_long_enough() -> bool:
        failing = not bridge.health.storing and await ready_status(port) == 503
        return failing and time.monotonic() - cut_at >= 10

    await s.wait_until(down_long_enough, 60, "ten seconds of failing stores")
    assert bridge.stats["acked"] == acked, "acknowledged messages it could not store"
    assert await stored(rt) == 500
    await proxy.restore()
