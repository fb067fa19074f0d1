"""Running bridges in the test's process, against a private Mosquitto."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from epicura.bridge.broker_admin import BrokerEndpoint
from epicura.bridge.consumer import Bridge, BridgeOptions
from epicura.bridge.mqtt_session import SessionOptions
from epicura.kit.runtime import Runtime
from tests.bridge.ingest_support import wait_until


def options(client_id: str | None = None, **values: Any) -> BridgeOptions:
    session = SessionOptions(client_id=client_id or f"test-bridge-{uuid.uuid4().hex[:8]}",
                             keepalive_s=10)
    return BridgeOptions(session=session, **values)


@asynccontextmanager
async def running_bridge(rt: Runtime, url: str, opts: BridgeOptions | None = None,
                         *, connected: bool = True) -> AsyncIterator[Bridge]:
    """A bridge consuming in a task; cancelled (a clean disconnect) at the end."""
    bridge = Bridge(rt, BrokerEndpoint.from_url(url), opts or options())
    task = asyncio.create_task(bridge.run())
    try:
        if connected:
            await wait_until(_connected(bridge, task), 30, "the bridge to connect")
        bridge.task = task  # type: ignore[attr-defined]
        yield bridge
    finally:
        task.cancel()
        await asyncio.wait([task], timeout=10)
        await bridge.drain()


def _connected(bridge: Bridge, task: asyncio.Task[None]) -> Any:
    async def check() -> bool:
        if task.done():
            task.result()  # raises what stopped it
            raise AssertionError("the bridge stopped")
        return bridge.health.mqtt_connected

    return check
