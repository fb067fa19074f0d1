"""Live events of the bridge (bridge/live_events.py): telemetry conflated per channel to one
event a second, newest kept; other events always delivered."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from epicura.bridge.live_events import LiveEvents
from tests.bridge import ingest_support as s
from tests.support import Service

pytestmark = pytest.mark.anyio


def telemetry(channel: str, n: int) -> tuple[str, dict[str, Any]]:
    return channel, {"type": "telemetry", "data": {"n": n}}


async def test_telemetry_is_conflated_newest_kept_and_alerts_all_go(svc: Service) -> None:
    rt = svc.runtime
    await rt.bus.ready.wait()
    channel = f"appliance:{uuid.uuid4()}"
    seen: list[dict[str, Any]] = []
    rt.bus.subscribe(channel, seen.append)
    live = LiveEvents(rt, interval_s=1.0)
    flusher = asyncio.create_task(live.run_flusher())
    try:
        live.offer([telemetry(channel, 1)])
        await s.wait_until(lambda: _count(seen, 1), 10, "the first telemetry event")
        await live.drain()
        live.offer([telemetry(channel, 2), (channel, {"type": "alert", "data": {"a": 1}})])
        live.offer([telemetry(channel, 3), (channel, {"type": "alert", "data": {"a": 2}})])
        await s.wait_until(lambda: _count(seen, 4), 10, "the alerts and the held telemetry")
    finally:
        flusher.cancel()
        await live.drain()
    telemetry_seen = [e["data"]["n"] for e in seen if e["type"] == "telemetry"]
    assert telemetry_seen == [1, 3]  # 2 was superseded within the second
    assert [e["data"]["a"] for e in seen if e["type"] == "alert"] == [1, 2]


async def _count(seen: list[dict[str, Any]], count: int) -> bool:
    return len(seen) >= count
