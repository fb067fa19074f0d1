"""`epicura watch`: follow a user's live events from a terminal, as an app would.

Logs in over REST, opens `/api/v1/ws`, subscribes to `user` and the given appliances and cooking
sessions, and prints one line per frame: `time channel type id data`. The access token is
refreshed before it expires (and sent as a new `auth` frame); a dropped socket is reopened with
backoff and every channel resumed with `since` the last event id it printed, so nothing is missed
or printed twice while the events are still held.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

import click
import httpx2
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from epicura.realtime.protocol import CLOSE_UNAUTHORIZED

API = "/api/v1"
REFRESH_MARGIN_S = 60
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0


class LoginFailed(click.ClickException):
    pass


@dataclass
class Watcher:
    url: str
    email: str
    password: str
    channels: list[str]
    tokens: dict[str, Any] = field(default_factory=dict)
    last_ids: dict[str, str] = field(default_factory=dict)  # resume points, by channel
    subscribed_at: dict[str, str] = field(default_factory=dict)

    @property
    def ws_url(self) -> str:
        scheme, _, rest = self.url.rstrip("/").partition("://")
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{API}/ws"

    async def login(self, http: httpx2.AsyncClient) -> None:
        reply = await http.post(f"{API}/auth/login", json={
            "email": self.email, "password": self.password, "session_name": "epicura watch"})
        if reply.status_code != 200:
            raise LoginFailed(f"login failed: {reply.status_code} {reply.text}")
        self.tokens = reply.json()

    async def refresh(self, http: httpx2.AsyncClient) -> None:
        """A new token pair; logs in again when the refresh token is no longer good."""
        reply = await http.post(f"{API}/auth/refresh",
                                json={"refresh_token": self.tokens.get("refresh_token")})
        if reply.status_code == 200:
            self.tokens = reply.json()
        else:
            await self.login(http)

    async def run(self) -> None:
        async with httpx2.AsyncClient(base_url=self.url, timeout=30) as http:
            await self.login(http)
            delay = BACKOFF_FIRST_S
            while True:
                try:
                    async with connect(self.ws_url, open_timeout=10) as ws:
                        delay = BACKOFF_FIRST_S
                        code = await self._session(http, ws)
                except ConnectionClosed as closed:
                    code = closed.rcvd.code if closed.rcvd is not None else 1006
                except (OSError, InvalidHandshake, TimeoutError) as exc:
                    _note(f"cannot connect ({type(exc).__name__}); retrying in {delay:g} s")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, BACKOFF_MAX_S)
                    continue
                _note(f"disconnected ({code}); reconnecting")
                if code == CLOSE_UNAUTHORIZED:
                    await self.refresh(http)
                await asyncio.sleep(BACKOFF_FIRST_S)

    async def _session(self, http: httpx2.AsyncClient, ws: ClientConnection) -> int:
        """Authenticate, subscribe (resuming), print until the socket closes; its close code."""
        await _send(ws, "auth", {"token": self.tokens["access_token"]})
        for channel in self.channels:
            data = {"channel": channel}
            if channel in self.last_ids:
                data["since"] = self.last_ids[channel]
            await _send(ws, "subscribe", data)
        refresher = asyncio.create_task(self._keep_fresh(http, ws))
        try:
            async for raw in ws:
                self._show(orjson.loads(raw))
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
        return ws.close_code or 1006

    async def _keep_fresh(self, http: httpx2.AsyncClient, ws: ClientConnection) -> None:
        while True:
            lifetime = int(self.tokens.get("expires_in", 900))
            await asyncio.sleep(max(5, lifetime - REFRESH_MARGIN_S))
            await self.refresh(http)
            await _send(ws, "auth", {"token": self.tokens["access_token"]})

    def _show(self, received: dict[str, Any]) -> None:
        kind = received.get("type")
        if kind in ("auth.ok", "pong"):
            return
        channel = received.get("channel") or "-"
        data = received.get("data") or {}
        if kind == "subscribed":
            self.subscribed_at[channel] = data["last_id"]
            self.last_ids.setdefault(channel, data["last_id"])
        elif kind == "resync.required" and channel in self.subscribed_at:
            self.last_ids[channel] = self.subscribed_at[channel]  # the gap is lost; go on
        if received.get("id"):
            self.last_ids[channel] = received["id"]
        line = (f"{_now()} {channel} {kind} {received.get('id') or '-'} "
                f"{orjson.dumps(data).decode()}")
        click.echo(line)
        sys.stdout.flush()


async def _send(ws: ClientConnection, kind: str, data: dict[str, Any]) -> None:
    await ws.send(orjson.dumps({"type": kind, "data": data}).decode())


def _now() -> str:
    from epicura.kit import clock

    return clock.utcnow().isoformat(timespec="milliseconds")


def _note(text: str) -> None:
    click.echo(f"# {text}", err=True)


@click.command()
@click.option("--url", default="http://localhost:3000", show_default=True,
              help="The service's base URL.")
@click.option("--email", required=True, help="The account to log in as.")
@click.option("--password", envvar="EPICURA_PASSWORD", prompt=True, hide_input=True,
              help="Its password (or EPICURA_PASSWORD; asked when neither is given).")
@click.option("--appliance", "appliances", multiple=True, type=click.UUID,
              help="Also follow this appliance (repeatable).")
@click.option("--session", "sessions", multiple=True, type=click.UUID,
              help="Also follow this cooking session (repeatable).")
def watch(url: str, email: str, password: str, appliances: tuple[uuid.UUID, ...],
          sessions: tuple[uuid.UUID, ...]) -> None:
    """Print a user's live events (WebSocket), one line each, resuming after a drop."""
    channels = ["user", *(f"appliance:{a}" for a in appliances),
                *(f"session:{s}" for s in sessions)]
    watcher = Watcher(url, email, password, channels)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(watcher.run())
