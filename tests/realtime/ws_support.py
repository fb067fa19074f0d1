"""The gateway over real sockets: the app served by uvicorn in this process on a free port, and a
WebSocket client (the `websockets` library) that reads frames with deadlines."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx2
import orjson
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from epicura.app import create_app
from epicura.appliances.models import Appliance
from epicura.config import Settings
from epicura.kit import clock
from epicura.kit.runtime import Runtime
from epicura.realtime.hub import Hub, hub_of
from epicura.realtime.protocol import UVICORN_WS_OPTIONS, Limits
from tests.bridge.ingest_support import make_appliances, wait_until
from tests.conftest import free_port
from tests.support import API, Mailbox, Service, bearer, startup_tasks_done

FRAME_WAIT_S = 10.0


@dataclass
class Served:
    """One app behind a real uvicorn; `svc` is the usual test Service (its client speaks HTTP to
    the real port)."""

    svc: Service
    url: str
    server: uvicorn.Server

    @property
    def runtime(self) -> Runtime:
        return self.svc.runtime

    @property
    def hub(self) -> Hub:
        return hub_of(self.svc.runtime)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + f"{API}/ws"

    def limit(self, **values: Any) -> None:
        """Shrink the gateway's limits for this test (sockets opened from now on)."""
        self.hub.limits = Limits(**values)

    async def user(self, tag: str) -> tuple[uuid.UUID, dict[str, Any]]:
        """A new user's id and token pair."""
        tokens = await self.svc.signed_up(f"ws.{tag}.{uuid.uuid4().hex[:8]}@example.com")
        me = await self.svc.client.get(f"{API}/users/me", headers=bearer(tokens))
        assert me.status_code == 200, me.text
        return uuid.UUID(me.json()["id"]), tokens

    async def appliance(self, owner_id: uuid.UUID | None) -> uuid.UUID:
        """A provisioned appliance, paired to `owner_id` (rows written directly)."""
        [appliance_id] = await make_appliances(self.runtime, 1, owner_id)
        if owner_id is not None:
            async with self.runtime.db.transaction() as session:
                appliance = await session.get(Appliance, appliance_id)
                assert appliance is not None
                appliance.paired_at = clock.utcnow() - timedelta(seconds=1)
        return appliance_id


@asynccontextmanager
async def serving(settings: Settings, mailbox: Mailbox, **ws_options: Any) -> AsyncIterator[Served]:
    """`create_app(settings)` on uvicorn at a free port of 127.0.0.1, with the WebSocket options
    `serve` uses (overridable), until the block ends."""
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on",
                            access_log=False, **{**UVICORN_WS_OPTIONS, **ws_options})
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: _started(server, task), 30, "uvicorn to start")
        url = f"http://127.0.0.1:{port}"
        async with httpx2.AsyncClient(base_url=url, timeout=30) as client:
            svc = Service(app=app, client=client, runtime=app.state.runtime, mailbox=mailbox)
            if settings.embedded:
                await startup_tasks_done(svc)
            await svc.runtime.bus.ready.wait()
            yield Served(svc, url, server)
    finally:
        server.should_exit = True
        await asyncio.wait([task], timeout=30)


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()
        raise AssertionError("uvicorn stopped before it started")
    return server.started


class Client:
    """One socket of the test, reading JSON frames with deadlines."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.refs = 0

    async def send(self, kind: str, data: dict[str, Any] | None = None,
                   ref: str | None = None) -> None:
        body: dict[str, Any] = {"type": kind, "data": data or {}}
        if ref is not None:
            body["ref"] = ref
        await self.ws.send(orjson.dumps(body).decode())

    async def frame(self, wait_s: float = FRAME_WAIT_S) -> dict[str, Any]:
        async with asyncio.timeout(wait_s):
            raw = await self.ws.recv()
        parsed: dict[str, Any] = orjson.loads(raw)
        return parsed

    async def until(self, match: Callable[[dict[str, Any]], bool],
                    wait_s: float = FRAME_WAIT_S) -> dict[str, Any]:
        """The first frame that matches, skipping others."""
        async with asyncio.timeout(wait_s):
            while True:
                found = await self.frame(wait_s)
                if match(found):
                    return found

    async def request(self, kind: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a frame with a fresh ref and return the frame that answers it."""
        self.refs += 1
        ref = f"r{self.refs}"
        await self.send(kind, data, ref)
        return await self.until(lambda f: f.get("ref") == ref)

    async def auth(self, tokens: dict[str, Any] | str) -> dict[str, Any]:
        token = tokens if isinstance(tokens, str) else tokens["access_token"]
        return await self.request("auth", {"token": token})

    async def subscribe(self, channel: str, since: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"channel": channel}
        if since is not None:
            data["since"] = since
        return await self.request("subscribe", data)

    async def close_code(self, wait_s: float = 20) -> int | None:
        """Read until the server closes the socket; its close code."""
        async with asyncio.timeout(wait_s):
            try:
                while True:
                    await self.ws.recv()
            except ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd is not None else None


@asynccontextmanager
async def socket(served: Served, **options: Any) -> AsyncIterator[Client]:
    async with connect(served.ws_url, open_timeout=10, **options) as ws:
        yield Client(ws)


@asynccontextmanager
async def authed(served: Served, tokens: dict[str, Any], **options: Any) -> AsyncIterator[Client]:
    async with socket(served, **options) as client:
        ok = await client.auth(tokens)
        assert ok["type"] == "auth.ok", ok
        yield client

