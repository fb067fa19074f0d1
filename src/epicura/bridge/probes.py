"""The bridge's own probe port: `/healthz`, `/readyz` and `/metrics`.

A bridge serves no API, so a few lines of asyncio stand in for a web framework (and stay out of
the process's signal handling). `/readyz` is 503 while the MQTT session is down, while batches
fail to store, or when the database does not answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import orjson
from sqlalchemy import text

from epicura.bridge.consumer import Health
from epicura.kit import metrics
from epicura.kit.runtime import Runtime

Reply = tuple[int, str, bytes]
REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
PROBE_TIMEOUT_S = 2.0


async def _database_answers(rt: Runtime) -> bool:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            async with rt.db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


def _json(status: int, body: object) -> Reply:
    return status, "application/json", orjson.dumps(body)


async def readiness(rt: Runtime, health: Health) -> Reply:
    checks = {
        "mqtt": "ok" if health.mqtt_connected else "down",
        "storing": "ok" if health.storing else f"failing: {health.last_error}",
        "database": "ok" if await _database_answers(rt) else "down",
    }
    ready = all(value == "ok" for value in checks.values())
    return _json(200 if ready else 503,
                 {"status": "ready" if ready else "unavailable", "checks": checks})


def routes(rt: Runtime, health: Health) -> dict[str, Callable[[], Awaitable[Reply]]]:
    async def healthz() -> Reply:
        return _json(200, {"status": "ok"})

    async def readyz() -> Reply:
        return await readiness(rt, health)

    async def prometheus() -> Reply:
        body, content_type = metrics.render()
        return 200, content_type, body

    return {"/healthz": healthz, "/readyz": readyz, "/metrics": prometheus}


async def serve_probes(rt: Runtime, health: Health, host: str, port: int) -> asyncio.Server:
    table = routes(rt, health)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                request = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                parts = request.decode("latin-1").split()
                method, path = (parts[0], parts[1].split("?")[0]) if len(parts) >= 2 else ("", "")
                handler = table.get(path)
                if handler is None:
                    status, content_type, body = _json(404, {"status": "not found"})
                elif method != "GET":
                    status, content_type, body = _json(405, {"status": "method not allowed"})
                else:
                    status, content_type, body = await handler()
                head = (f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\n"
                        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                        "Connection: close\r\n\r\n")
                writer.write(head.encode("latin-1") + body)
                await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    return await asyncio.start_server(handle, host, port)
