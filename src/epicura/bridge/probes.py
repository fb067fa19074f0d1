"""The bridge's own probe port (kit/probes.py): `/healthz`, `/readyz` and `/metrics`.

`/readyz` is 503 while the MQTT session is down, while batches fail to store, or when the
database does not answer.
"""

from __future__ import annotations

import asyncio

from epicura.bridge.consumer import Health
from epicura.kit import probes
from epicura.kit.runtime import Runtime


def checks(rt: Runtime, health: Health) -> dict[str, probes.Check]:
    async def mqtt() -> str:
        return "ok" if health.mqtt_connected else "down"

    async def storing() -> str:
        return "ok" if health.storing else f"failing: {health.last_error}"

    return {"mqtt": mqtt, "storing": storing, "database": probes.database_check(rt.db)}


async def serve_probes(rt: Runtime, health: Health, host: str, port: int) -> asyncio.Server:
    return await probes.serve(probes.routes(checks(rt, health)), host, port)
