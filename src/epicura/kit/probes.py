"""A probe port for the processes that serve no API (the bridge, the worker): `/healthz`,
`/readyz` and `/metrics`.

A few lines of asyncio stand in for a web framework (and stay out of the process's signal
handling). `/readyz` runs the process's named checks in order; each answers "ok" or why not, and
any other answer makes it 503.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import orjson
from sqlalchemy import text

from epicura.kit import metrics
from epicura.kit.db import Database

Reply = tuple[int, str, bytes]
Route = Callable[[], Awaitable[Reply]]
Check = Callable[[], Awaitable[str]]  # "ok", or what is wrong
REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
PROBE_TIMEOUT_S = 2.0
REQUEST_TIMEOUT_S = 10.0


async def database_answers(db: Database) -> bool:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            async with db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


def database_check(db: Database) -> Check:
    async def check() -> str:
        return "ok" if await database_answers(db) else "down"

    return check


def json_reply(status: int, body: object) -> Reply:
    return status, "application/json", orjson.dumps(body)


async def readiness(checks: dict[str, Check]) -> Reply:
    results = {name: await check() for name, check in checks.items()}
    ready = all(value == "ok" for value in results.values())
    return json_reply(200 if ready else 503,
                      {"status": "ready" if ready else "unavailable", "checks": results})


def routes(checks: dict[str, Check]) -> dict[str, Route]:
    async def healthz() -> Reply:
        return json_reply(200, {"status": "ok"})

    async def readyz() -> Reply:
        return await readiness(checks)

    async def prometheus() -> Reply:
        body, content_type = metrics.render()
        return 200, content_type, body

    return {"/healthz": healthz, "/readyz": readyz, "/metrics": prometheus}


async def serve(table: dict[str, Route], host: str, port: int) -> asyncio.Server:
    """Answer GETs of `table`'s paths on host:port (HTTP/1.1, one request per connection)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                request = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                parts = request.decode("latin-1").split()
                method, path = (parts[0], parts[1].split("?")[0]) if len(parts) >= 2 else ("", "")
                handler = table.get(path)
                if handler is None:
                    status, content_type, body = json_reply(404, {"status": "not found"})
                elif method != "GET":
                    status, content_type, body = json_reply(405, {"status": "method not allowed"})
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
