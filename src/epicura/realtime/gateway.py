"""`GET /api/v1/ws`: the live channel to the apps (websocket-events.md).

Each socket runs two tasks: a reader that handles the client's frames one at a time (so replies
keep their order) and a writer that drains the socket's bounded send queue. Anything that ends
the socket (the client, a close the server decides, a failure) sets the connection's `done`;
the socket then stops both tasks and, when the server decided, sends its close frame.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import APIRouter, WebSocket
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from epicura.kit.errors import DependencyUnavailable, ProblemError
from epicura.kit.net import client_ip
from epicura.kit.runtime import Runtime
from epicura.realtime import access, channels, metrics
from epicura.realtime.connection import Connection, Subscription
from epicura.realtime.hub import Hub, hub_of
from epicura.realtime.protocol import (
    AUTH_REQUIRED,
    CLOSE_INTERNAL,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_TOO_MANY_SOCKETS,
    CLOSE_UNAUTHORIZED,
    INVALID_FRAME,
    INVALID_SINCE,
    NOT_FOUND,
    RATE_LIMITED,
    TOO_MANY_SUBSCRIPTIONS,
    UNAVAILABLE,
    ClientFrame,
    FrameError,
    TokenBucket,
    error_frame,
    frame,
    parse_channel,
    parse_frame,
)

log = structlog.get_logger("epicura.realtime.gateway")
router = APIRouter(tags=["realtime"])
RATE_ERROR_EVERY_S = 1.0


@router.websocket("/ws")
async def websocket_gateway(websocket: WebSocket) -> None:
    """Live events: authenticate with the first frame, subscribe to channels, send commands."""
    rt: Runtime = websocket.app.state.runtime
    await Socket(rt, hub_of(rt), websocket).run()


class Socket:
    def __init__(self, rt: Runtime, hub: Hub, websocket: WebSocket) -> None:
        self.rt = rt
        self.hub = hub
        self.websocket = websocket
        limits = hub.limits
        self.limits = limits
        self.connection = Connection(websocket, limits)
        self.frames = TokenBucket(limits.frames_per_s, limits.frame_burst)
        self.refusals = TokenBucket(limits.refusals_per_s, limits.refusals_burst)
        self.rate_error_at = 0.0
        self.client_code: int | None = None
        self.ip = client_ip(websocket, rt.settings.trusted_proxy_networks)

    async def run(self) -> None:
        connection = self.connection
        try:
            await self.websocket.accept()
        except OSError:  # the client left during the handshake
            return
        self.hub.register(connection)
        metrics.websocket_connections.inc()
        loop = asyncio.get_running_loop()
        deadline = loop.call_later(self.limits.auth_timeout_s, self._auth_deadline)
        tasks = [asyncio.create_task(self._guarded(self._read_loop(), reader=True)),
                 asyncio.create_task(self._guarded(connection.write_loop(), reader=False))]
        try:
            await connection.done.wait()
        finally:
            deadline.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.hub.unregister(connection)
            metrics.websocket_connections.dec()
            await self._closed()

    async def _closed(self) -> None:
        code = self.connection.close_code
        if code is None:
            metrics.closes.labels(str(self.client_code or 1006)).inc()
            return
        metrics.closes.labels(str(code)).inc()
        # A client that does not read may never take the close frame: do not wait for ever.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.limits.close_timeout_s):
                await self.websocket.close(code, self.connection.close_reason[:120])

    async def _guarded(self, work: Coroutine[Any, Any, None], *, reader: bool) -> None:
        """Run the reader or the writer; whatever ends it ends the socket. The writer fails
        when the client is gone; the reader only by a fault here (closed with 1011)."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            if reader and not self.connection.done.is_set():
                log.exception("socket_reader_failed")
                self.connection.close(CLOSE_INTERNAL, "internal error")
        finally:
            self.connection.peer_closed()

    def _auth_deadline(self) -> None:
        if not self.connection.authenticated:
            self.connection.close(CLOSE_UNAUTHORIZED, "authenticate within 5 s")

    # --- reading -------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        connection = self.connection
        while not connection.done.is_set():
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                self.client_code = message.get("code")
                return
            text, raw = message.get("text"), message.get("bytes")
            size = len(text.encode()) if text is not None else len(raw or b"")
            if size > self.limits.max_frame_bytes:
                connection.close(CLOSE_TOO_BIG, "frame too large")
                return
            if not self.frames.take():
                if not self.refusals.take():
                    connection.close(CLOSE_POLICY, "too many frames")
                    return
                self._rate_limited()
                continue
            try:
                if text is None:
                    raise FrameError(INVALID_FRAME, "frames are JSON text, not binary")
                await self._handle(parse_frame(text))
            except FrameError as exc:
                self._refuse(exc)

    def _refuse(self, exc: FrameError) -> None:
        metrics.frames_refused.labels(exc.code).inc()
        self.connection.send("error", error_frame(exc.code, exc.message, ref=exc.ref,
                                                  channel=exc.channel))

    def _rate_limited(self) -> None:
        """One `error` a second at most while frames are dropped."""
        metrics.frames_refused.labels(RATE_LIMITED).inc()
        now = asyncio.get_running_loop().time()
        if now - self.rate_error_at >= RATE_ERROR_EVERY_S:
            self.rate_error_at = now
            self.connection.send("error", error_frame(
                RATE_LIMITED, f"at most {self.limits.frames_per_s:g} frames a second; "
                "frames were dropped"))

    async def _handle(self, incoming: ClientFrame) -> None:
        if incoming.type == "ping":
            self._reply("pong", {}, incoming)
        elif incoming.type == "auth":
            await self._auth(incoming)
        elif not self.connection.authenticated:
            raise FrameError(AUTH_REQUIRED, "send an `auth` frame first", incoming.ref)
        else:
            try:
                if incoming.type == "subscribe":
                    await self._subscribe(incoming)
                elif incoming.type == "unsubscribe":
                    self._unsubscribe(incoming)
                else:
                    await self._command(incoming)
            except (SQLAlchemyError, RedisError, OSError, DependencyUnavailable) as exc:
                log.warning("socket_frame_failed", type=incoming.type,
                            error=type(exc).__name__)
                raise FrameError(UNAVAILABLE, "a dependency is unavailable; try again",
                                 incoming.ref) from exc

    def _reply(self, kind: str, data: dict[str, object], incoming: ClientFrame,
               channel: str | None = None) -> None:
        self.connection.send(kind, frame(kind, data, ref=incoming.ref, channel=channel))

    # --- the frames ----------------------------------------------------------------------------

    async def _auth(self, incoming: ClientFrame) -> None:
        connection = self.connection
        try:
            identity = await access.authenticate(self.rt, incoming.data.get("token"))
        except access.TokenRefused:
            connection.close(CLOSE_UNAUTHORIZED, "authentication failed")
            return
        except (DependencyUnavailable, RedisError, SQLAlchemyError, OSError):
            raise FrameError(UNAVAILABLE, "cannot check the token now; try again",
                             incoming.ref) from None
        if connection.user_id is None:
            if not self.hub.admit(connection, identity.user_id):
                connection.close(CLOSE_TOO_MANY_SOCKETS, "too many sockets for this user")
                return
            connection.user_id = identity.user_id
        elif identity.user_id != connection.user_id:
            connection.close(CLOSE_UNAUTHORIZED, "a token of another user")
            return
        connection.session_id = identity.session_id
        connection.expires_at = datetime.fromtimestamp(identity.exp, UTC)
        self._reply("auth.ok", {
            "user_id": str(identity.user_id),
            "expires_at": connection.expires_at.isoformat(),
        }, incoming)

    async def _subscribe(self, incoming: ClientFrame) -> None:
        connection, ref = self.connection, incoming.ref
        assert connection.user_id is not None
        channel = parse_channel(incoming.data.get("channel"), ref)
        existing = connection.subscriptions.get(channel.name)
        if existing is not None:  # subscribing again replaces it (an error leaves none)
            self.hub.unsubscribe(connection, existing)
        since = incoming.data.get("since")
        if since is not None:
            try:
                channels.parse_id(since)
            except ValueError:
                raise FrameError(INVALID_SINCE, "`since` is an event id such as "
                                 "'1732700000000-0'", ref, channel.name) from None
        if len(connection.subscriptions) >= self.limits.max_subscriptions:
            raise FrameError(TOO_MANY_SUBSCRIPTIONS, f"at most {self.limits.max_subscriptions} "
                             "subscriptions per socket", ref, channel.name)
        if not await access.may_subscribe(self.rt, connection.user_id, channel):
            raise FrameError(NOT_FOUND, "no such channel", ref, channel.name)
        subscription = Subscription(channel, channel.bus_name(connection.user_id))
        self.hub.subscribe(connection, subscription)  # live events buffer from here on

        def announce(last_id: str) -> None:
            self._reply("subscribed", {"channel": channel.name, "last_id": last_id}, incoming,
                        channel.name)

        try:
            await self.hub.resume(connection, subscription, since, announce)
        except ValueError:
            self.hub.unsubscribe(connection, subscription)
            raise FrameError(INVALID_SINCE, "that event id cannot be one of this channel's",
                             ref, channel.name) from None
        except BaseException:
            self.hub.unsubscribe(connection, subscription)
            raise

    def _unsubscribe(self, incoming: ClientFrame) -> None:
        channel = parse_channel(incoming.data.get("channel"), incoming.ref)
        existing = self.connection.subscriptions.get(channel.name)
        if existing is not None:
            self.hub.unsubscribe(self.connection, existing)
        self._reply("unsubscribed", {"channel": channel.name}, incoming, channel.name)

    async def _command(self, incoming: ClientFrame) -> None:
        assert self.connection.user_id is not None
        try:
            reply = await access.send_command(self.rt, self.connection.user_id, incoming.data,
                                              self.ip)
        except ProblemError as exc:
            raise FrameError(exc.code, exc.detail or exc.title, incoming.ref) from None
        self._reply("command.sent", reply, incoming)
