"""Two `epicura serve` processes behind no balancer, one bridge on a private Mosquitto: an event an
appliance publishes reaches the sockets of its owner on both instances, and a socket that
reconnects to the other instance resumes with `since`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from epicura.config import Settings
from tests.bridge import ingest_support as s
from tests.bridge.bridge_support import running_bridge
from tests.brokers import private_broker
from tests.conftest import REDIS_URL, TEST_JWT_SECRET, TEST_REFRESH_SECRET
from tests.e2e import Running, process_env, serving
from tests.realtime.ws_support import Client
from tests.support import API, Mailbox, Service, bearer

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def subscribed(server: Running, tokens: dict[str, Any], channel: str,
                     since: str | None = None) -> AsyncIterator[Client]:
    url = server.url.replace("http://", "ws://") + f"{API}/ws"
    async with connect(url, open_timeout=10) as ws:
        client = Client(ws)
        assert (await client.auth(tokens))["type"] == "auth.ok"
        assert (await client.subscribe(channel, since))["type"] == "subscribed"
        yield client


def _alert(state: str) -> Any:
    return lambda f: f["type"] == "alert" and f["data"]["state"] == state


async def test_events_reach_both_instances_and_resume_on_the_other(
        svc: Service, pg_settings: Settings, smtp: tuple[int, Mailbox], tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = process_env(
        EPICURA_ENV="test", JWT_SECRET=TEST_JWT_SECRET, JWT_REFRESH_SECRET=TEST_REFRESH_SECRET,
        DATABASE_URL=str(pg_settings.database_url), REDIS_URL=REDIS_URL,
        REDIS_PREFIX=pg_settings.redis_prefix, SMTP_URL=f"smtp://127.0.0.1:{smtp[0]}")
    tokens = await svc.signed_up(f"ws.instances.{uuid.uuid4().hex[:8]}@example.com")
    me = await svc.client.get(f"{API}/users/me", headers=bearer(tokens))
    [device] = await s.make_appliances(svc.runtime, 1, uuid.UUID(me.json()["id"]))
    channel = f"appliance:{device}"

    async def send(kind: str, body: dict[str, Any]) -> None:
        await s.publish(broker.host, broker.port, [(s.topic(device, kind), s.dumps(body))])

    with private_broker(tmp_path / "broker", dynsec=False) as broker:
        async with (serving(cwd, env) as one, serving(cwd, env) as two,
                    running_bridge(svc.runtime, broker.url)):
            async with subscribed(one, tokens, channel) as on_one:
                async with subscribed(two, tokens, channel) as on_two:
                    await send("presence", s.presence_online())
                    await send("alert", s.alert("a-1", "raised"))
                    for client in (on_one, on_two):
                        presence = await client.until(lambda f: f["type"] ==
                                                      "appliance.presence")
                        assert presence["data"]["online"] is True
                        raised = await client.until(_alert("raised"))
                        assert raised["data"]["code"] == "overtemp"
                    last_seen = raised["id"]
                # The socket on `two` is gone; the alert clears meanwhile.
                await send("alert", s.alert("a-1", "cleared"))
                cleared = await on_one.until(_alert("cleared"))
            async with subscribed(two, tokens, channel, since=last_seen) as back:
                resumed = await back.frame()
    assert resumed == cleared
