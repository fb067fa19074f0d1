"""How a simulated appliance reaches the cloud: MQTT (one client per appliance, all on one
asyncio loop) or the HTTPS fallback of the Device API."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiomqtt
import orjson
import structlog

from epicura.simulator import messages
from epicura.simulator.cloud import CloudError

if TYPE_CHECKING:
    from epicura.simulator.device import Device

log = structlog.get_logger("epicura.simulator")
PUBLISH_TIMEOUT_S = 10.0
MAX_BACKOFF_S = 60.0


def parse_mqtt_url(url: str) -> tuple[str, int, bool]:
    """`mqtt://host:1883` or `mqtts://host:8883` → (host, port, tls)."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"not an MQTT URL: {url!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    return parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883), tls


class MqttLink:
    """`client_id` = `username` = the device id, the device secret as password; a retained last
    will says `offline/lost`; birth (presence, state) on every connection; `down/#` handled by
    the device; reconnects with backoff; a clean stop says `offline/shutdown`."""

    def __init__(self, device: Device, url: str, *, keepalive_s: int = 30) -> None:
        self.device = device
        self.host, self.port, self.tls = parse_mqtt_url(url)
        self.keepalive_s = keepalive_s
        self.up = asyncio.Event()
        self.connections = 0
        self._client: aiomqtt.Client | None = None
        self._restart = asyncio.Event()

    def _topic(self, name: str) -> str:
        return messages.up_topic(self.device.device_id, name)

    async def publish(self, name: str, payload: dict[str, Any], *, retain: bool = False) -> None:
        client = self._client
        if client is None or not self.up.is_set():
            raise ConnectionError("not connected")
        await client.publish(self._topic(name), orjson.dumps(payload), qos=1, retain=retain,
                             timeout=PUBLISH_TIMEOUT_S)

    def restart(self) -> None:
        """Say goodbye (`offline/shutdown`) and connect again, as a rebooting appliance."""
        self._restart.set()

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 1.0
        while not stop.is_set():
            try:
                await self._connected(stop)
                backoff = 1.0
            except aiomqtt.MqttError as exc:
                # Before the first connection this is usually the broker credentials job not
                # having run yet: expected, and one line per appliance per retry is noise.
                report = log.info if self.connections else log.debug
                report("simulator.mqtt_disconnected", device_id=self.device.device_id,
                       error=str(exc))
            if stop.is_set():
                return
            delay = backoff * self.device.rng.uniform(0.5, 1.5)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)

    def _client_for(self) -> aiomqtt.Client:
        identity = self.device.identity
        will = aiomqtt.Will(
            self._topic("presence"),
            orjson.dumps(messages.presence_offline(self.device.now_ms(), "lost")),
            qos=1, retain=True)
        return aiomqtt.Client(
            self.host, self.port, identifier=identity.device_id, username=identity.device_id,
            password=identity.device_secret, will=will, protocol=aiomqtt.ProtocolVersion.V5,
            keepalive=self.keepalive_s, timeout=PUBLISH_TIMEOUT_S,
            tls_context=ssl.create_default_context() if self.tls else None)

    async def _connected(self, stop: asyncio.Event) -> None:
        async with self._client_for() as client:
            self._client = client
            self.connections += 1
            self._restart.clear()
            try:
                for name, payload, retain in self.device.birth():
                    await client.publish(self._topic(name), orjson.dumps(payload), qos=1,
                                         retain=retain, timeout=PUBLISH_TIMEOUT_S)
                await client.subscribe(messages.down_filter(self.device.device_id), qos=1)
                self.up.set()
                await self._serve(client, stop)
            finally:
                self.up.clear()
                self._client = None

    async def _serve(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        receiver = asyncio.create_task(self._receive(client))
        stopper = asyncio.create_task(stop.wait())
        restarter = asyncio.create_task(self._restart.wait())
        try:
            done, _ = await asyncio.wait({receiver, stopper, restarter},
                                         return_when=asyncio.FIRST_COMPLETED)
            if receiver in done:
                receiver.result()  # the connection ended: raises its MqttError
                return
            self.up.clear()
            goodbye = messages.presence_offline(self.device.now_ms(), "shutdown")
            await client.publish(self._topic("presence"), orjson.dumps(goodbye), qos=1,
                                 retain=True, timeout=3.0)
        finally:
            for task in (receiver, stopper, restarter):
                task.cancel()

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            name = str(message.topic).rsplit("/down/", 1)[-1]
            raw = message.payload
            if not raw:
                self.device.on_down(name, None)
                continue
            try:
                payload = orjson.loads(raw if isinstance(raw, bytes | str) else bytes(raw))
            except (orjson.JSONDecodeError, TypeError):
                log.info("simulator.bad_down_message", device_id=self.device.device_id,
                         topic=str(message.topic))
                continue
            if isinstance(payload, dict):
                self.device.on_down(name, payload)


class HttpsLink:
    """The HTTPS fallback: telemetry to `POST /device/telemetry`, every other up/ message
    (presence, state, session events, alerts, command results, backlog, sync) to
    `POST /device/events` as `{events: [{topic, ...body}]}`. Nothing comes down this way but
    the desired config, read on start."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.up = asyncio.Event()
        self.rejected = 0

    def restart(self) -> None:
        """A reboot: `offline/shutdown`, then birth again (queued after what is pending)."""
        goodbye = messages.presence_offline(self.device.now_ms(), "shutdown")
        self.device.pending.extend([("presence", goodbye, True), *self.device.birth()])
        self.device.wake.set()

    async def publish(self, name: str, payload: dict[str, Any], *, retain: bool = False) -> None:
        if name == "telemetry":
            path, body = "/device/telemetry", payload
        else:
            path, body = "/device/events", {"events": [{"topic": name, **payload}]}
        reply = await self.device.cloud.device_post(await self.device.access_token(), path, body)
        if reply.status_code == 401:
            self.device.forget_token()
        if reply.status_code in (401, 408, 429) or reply.status_code >= 500:
            raise CloudError(f"POST {path}", reply)  # worth retrying
        refused = reply.status_code >= 400 or any(
            result.get("status") == "rejected" for result in reply.json().get("results", []))
        if refused:  # the service refuses this body: retrying will not help
            self.rejected += 1
            log.warning("simulator.https_rejected", device_id=self.device.device_id, path=path,
                        topic=name, status=reply.status_code, detail=reply.text[:300])

    async def run(self, stop: asyncio.Event) -> None:
        """Birth, the desired config, then wait; a clean stop says `offline/shutdown`."""
        from epicura.simulator.commands import apply_config

        for name, payload, retain in reversed(self.device.birth()):  # first in the queue
            self.device.pending.appendleft((name, payload, retain))
        self.up.set()
        try:
            reply = await self.device.cloud.device_get(await self.device.access_token(),
                                                       "/device/config")
            if reply.status_code == 200:
                apply_config(self.device, reply.json())
        except (CloudError, OSError) as exc:
            log.info("simulator.config_unavailable", device_id=self.device.device_id,
                     error=str(exc))
        await stop.wait()
        goodbye = messages.presence_offline(self.device.now_ms(), "shutdown")
        try:
            await self.publish("presence", goodbye)
        except (CloudError, OSError) as exc:
            log.info("simulator.goodbye_failed", device_id=self.device.device_id, error=str(exc))
        finally:
            self.up.clear()
