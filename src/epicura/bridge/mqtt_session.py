"""One MQTT 5 connection of the bridge: paho-mqtt driven by the asyncio loop, with manual acks.

Why paho directly and not aiomqtt: the bridge must acknowledge a QoS 1 message only once it is
stored, and aiomqtt 2.5 has no manual-ack API (its paho client is private). paho 2.x has
`manual_ack=True` and `ack(mid, qos)`, and documents `loop_read`/`loop_write`/`loop_misc` plus
the socket callbacks for running it on an external event loop, which is all this class does.
It also avoids aiomqtt's per-message conversion and task, which matters at thousands of
messages per second.

The connection is persistent (clean start off, a session expiry): messages published while the
bridge is away are queued by the broker and delivered when it returns, and those delivered but
not acknowledged are sent again. `Receive Maximum` bounds how many unacknowledged messages the
broker sends at once (Mosquitto otherwise allows only 20, far too few for batching).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from epicura.bridge.broker_admin import BrokerEndpoint

READS_PER_WAKEUP = 256


class MqttUnavailable(Exception):
    """The broker could not be reached, refused us, or dropped the connection."""


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes | bytearray
    mid: int
    qos: int


@dataclass(frozen=True)
class SessionOptions:
    client_id: str
    session_expiry_s: int = 3600
    receive_maximum: int = 4000
    keepalive_s: int = 30
    connect_timeout_s: float = 10.0


class MqttSession:
    """Connect, subscribe, receive into `inbox`, acknowledge; `lost` completes when it ends."""

    def __init__(self, endpoint: BrokerEndpoint, options: SessionOptions,
                 on_receive: Callable[[], None]) -> None:
        self.endpoint = endpoint
        self.options = options
        self.inbox: list[Received] = []
        self._on_receive = on_receive
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.lost: asyncio.Future[str] = self._loop.create_future()
        self._connack: asyncio.Future[None] = self._loop.create_future()
        self._subacks: dict[int, asyncio.Future[list[ReasonCode]]] = {}
        self._misc: asyncio.Task[None] | None = None
        self._session_present = False
        self.client = self._make_client()

    def _make_client(self) -> paho.Client:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.options.client_id,
                             protocol=paho.MQTTv5, manual_ack=True, reconnect_on_failure=False)
        if self.endpoint.username is not None:
            client.username_pw_set(self.endpoint.username, self.endpoint.password)
        if self.endpoint.tls:
            client.tls_set()
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        return client

    # --- lifecycle ---------------------------------------------------------------------------

    async def connect(self) -> bool:
        """Open the session; returns whether the broker still had it (session present)."""
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self.options.session_expiry_s
        properties.ReceiveMaximum = self.options.receive_maximum
        try:
            async with asyncio.timeout(self.options.connect_timeout_s):
                # connect() resolves and opens the socket, blocking: off the loop.
                await self._loop.run_in_executor(None, self._blocking_connect, properties)
                await self._connack
        except (OSError, TimeoutError, ValueError, paho.WebsocketConnectionError) as exc:
            self.abort()
            raise MqttUnavailable(f"connect: {type(exc).__name__}: {exc}") from None
        return self._session_present

    def _blocking_connect(self, properties: Properties) -> None:
        self.client.connect(self.endpoint.host, self.endpoint.port, self.options.keepalive_s,
                            clean_start=False, properties=properties)

    async def subscribe(self, topic: str, qos: int = 1) -> None:
        result, mid = self.client.subscribe(topic, options=SubscribeOptions(qos=qos))
        if result != paho.MQTT_ERR_SUCCESS or mid is None:
            raise MqttUnavailable(f"subscribe: {result}")
        waiter = self._subacks[mid] = self._loop.create_future()
        async with asyncio.timeout(self.options.connect_timeout_s):
            await asyncio.wait({waiter, self.lost}, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            raise MqttUnavailable("connection lost while subscribing")
        granted = waiter.result()
        if any(code.is_failure for code in granted):
            raise MqttUnavailable(f"subscription refused: {[str(c) for c in granted]}")

    def ack(self, mid: int) -> None:
        self.client.ack(mid, 1)

    @property
    def alive(self) -> bool:
        return not self.lost.done()

    async def close(self) -> None:
        """A clean DISCONNECT (the broker keeps the session for `session_expiry_s`)."""
        if self.alive and self.client.is_connected():
            self.client.disconnect()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await asyncio.shield(self.lost)
        self.abort()

    def abort(self) -> None:
        """Drop the connection without a DISCONNECT."""
        if self._misc is not None:
            self._misc.cancel()
        sock = self.client.socket()
        if sock is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(sock.fileno())
                self._loop.remove_writer(sock.fileno())
            with contextlib.suppress(OSError):
                sock.close()
        self._set_lost("aborted")

    def _set_lost(self, reason: str) -> None:
        if not self.lost.done():
            self.lost.set_result(reason)
        if not self._connack.done():
            self._connack.set_exception(OSError(reason))

    # --- paho callbacks (on the loop's thread, except socket-open during connect) --------------

    def _on_connect(self, _client: paho.Client, _userdata: Any, flags: paho.ConnectFlags,
                    reason: ReasonCode, _properties: Properties | None) -> None:
        self._session_present = bool(flags.session_present)
        if self._connack.done():
            return
        if reason.is_failure:
            self._connack.set_exception(OSError(f"connection refused: {reason}"))
        else:
            self._connack.set_result(None)

    def _on_disconnect(self, _client: paho.Client, _userdata: Any, _flags: Any,
                       reason: ReasonCode, _properties: Properties | None) -> None:
        self._set_lost(str(reason))

    def _on_subscribe(self, _client: paho.Client, _userdata: Any, mid: int,
                      codes: list[ReasonCode], _properties: Properties | None) -> None:
        waiter = self._subacks.pop(mid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(codes)

    def _on_message(self, _client: paho.Client, _userdata: Any,
                    message: paho.MQTTMessage) -> None:
        self.inbox.append(Received(message.topic, message.payload, message.mid, message.qos))

    def _in_loop(self, fn: Callable[[], None]) -> None:
        if threading.get_ident() == self._loop_thread:
            fn()
        else:
            self._loop.call_soon_threadsafe(fn)

    def _on_socket_open(self, client: paho.Client, _userdata: Any, sock: Any) -> None:
        def register() -> None:
            self._loop.add_reader(sock, self._readable)
            self._misc = self._loop.create_task(self._misc_loop())

        self._in_loop(register)

    def _on_socket_close(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        def unregister() -> None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(sock)
                self._loop.remove_writer(sock)
            if self._misc is not None:
                self._misc.cancel()
            self._set_lost("socket closed")

        self._in_loop(unregister)

    def _on_register_write(self, client: paho.Client, _userdata: Any, sock: Any) -> None:
        self._in_loop(lambda: self._loop.add_writer(sock, self._writable))

    def _on_unregister_write(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        def unregister() -> None:
            with contextlib.suppress(Exception):
                self._loop.remove_writer(sock)

        self._in_loop(unregister)

    def _readable(self) -> None:
        # paho reads one packet per call: read on while packets keep arriving, then let the
        # rest of the loop run.
        before = -1
        try:
            for _ in range(READS_PER_WAKEUP):
                count = len(self.inbox)
                if count == before:
                    break
                before = count
                if self.client.loop_read() != paho.MQTT_ERR_SUCCESS:
                    self._set_lost("read failed")
                    break
        except Exception as exc:
            self._set_lost(f"read failed: {type(exc).__name__}")
        if self.inbox:
            self._on_receive()

    def _writable(self) -> None:
        try:
            if self.client.loop_write() != paho.MQTT_ERR_SUCCESS:
                self._set_lost("write failed")
        except Exception as exc:
            self._set_lost(f"write failed: {type(exc).__name__}")

    async def _misc_loop(self) -> None:
        # paho's keepalive (PINGREQ, and giving up on a silent broker) runs off a 1 s tick.
        while self.client.loop_misc() == paho.MQTT_ERR_SUCCESS:  # noqa: ASYNC110
            await asyncio.sleep(1)
        self._set_lost("keepalive")
