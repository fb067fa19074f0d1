"""Appliance credentials in Mosquitto, managed through its dynamic-security plugin.

Commands are JSON published to `$CONTROL/dynamic-security/v1`; the plugin answers the sending
client alone on `…/v1/response`, echoing each command's `correlationData`, by which an answer is
matched to its waiting caller. Every operation converges (re-running it is harmless):

- `upsert_appliance` gives the appliance its own client (username = client id = device id) and
  its own role `appliance-{id}` with exactly its topic rules: publish under `up/#`, subscribe to
  and receive `down/#`. Mosquitto 2.0.x does not expand `%c`/`%u` in these rules, hence one role
  per appliance. Updating an existing client (a new secret) disconnects its current session.
- `remove_appliance` deletes both; the plugin disconnects a connected session at once.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote, urlsplit

import aiomqtt
import structlog
from paho.mqtt.reasoncodes import ReasonCode

from epicura.bridge.broker_config import CONTROL_TOPIC, acl

log = structlog.get_logger("epicura.broker_admin")

RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
DEFAULT_TIMEOUT_S = 10.0
# The plugin's (2.0.x) error strings that mean "already in the wanted state".
CLIENT_EXISTS, ROLE_EXISTS = "Client already exists", "Role already exists"
CLIENT_NOT_FOUND, ROLE_NOT_FOUND = "Client not found", "Role not found"
FORBIDDEN_IN_ID = frozenset("/+#\0")


class BrokerAdminError(Exception):
    """The broker refused a command, could not be reached, or did not answer."""


class BrokerAdminTimeout(BrokerAdminError):
    pass


@dataclass(frozen=True)
class BrokerEndpoint:
    """Where and as whom the service connects, from `MQTT_BROKER_URL`
    (`mqtt://user:password@host:1883`, or `mqtts://…` for TLS on 8883)."""

    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool

    @classmethod
    def from_url(cls, url: str) -> BrokerEndpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError("MQTT_BROKER_URL must start with mqtt:// or mqtts://")
        tls = parts.scheme in ("mqtts", "ssl")
        if not parts.hostname:
            raise ValueError("MQTT_BROKER_URL has no host")
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            tls=tls,
        )

    def client(self, identifier: str, **options: Any) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.host, self.port, username=self.username, password=self.password,
            identifier=identifier, tls_context=ssl.create_default_context() if self.tls else None,
            **options,
        )


def role_name(device_id: str) -> str:
    return f"appliance-{device_id}"


def checked_device_id(device_id: uuid.UUID | str) -> str:
    """A device id is a topic level and a username: no separators or wildcards."""
    text = str(device_id)
    if not text or len(text) > 128 or FORBIDDEN_IN_ID & set(text):
        raise ValueError(f"not a usable device id: {text!r}")
    return text


def appliance_acls(device_id: str) -> list[dict[str, Any]]:
    """Its two topic rules: send under `up/#`; subscribe to (and be sent) `down/#`."""
    root = f"epicura/v1/{device_id}"
    return [
        acl("publishClientSend", f"{root}/up/#"),
        acl("subscribePattern", f"{root}/down/#"),
        acl("publishClientReceive", f"{root}/down/#"),
    ]


def suback_failed(granted: Sequence[int | ReasonCode]) -> bool:
    """Whether the broker refused a subscription (SUBACK code 0x80 or above)."""
    return any(code.is_failure if isinstance(code, ReasonCode) else code >= 0x80
               for code in granted)


def _settle(future: asyncio.Future[Any]) -> None:
    """An answer (or failure) nobody waits for any more: retrieve it, or asyncio complains."""
    if not future.done():
        future.cancel()
    elif not future.cancelled():
        future.exception()


def _acl_key(rule: Mapping[str, Any]) -> tuple[str, str, bool, int]:
    return (rule["acltype"], rule["topic"], bool(rule.get("allow")), int(rule.get("priority", 0)))


class BrokerAdmin:
    """One connection to the broker as the service, issuing dynamic-security commands.

        async with BrokerAdmin(BrokerEndpoint.from_url(url)) as admin:
            await admin.upsert_appliance(device_id, secret)
    """

    def __init__(self, endpoint: BrokerEndpoint, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def __aenter__(self) -> Self:
        client = self.endpoint.client(f"epicura-admin-{uuid.uuid4().hex[:12]}",
                                      protocol=aiomqtt.ProtocolVersion.V5,
                                      timeout=self.timeout_s)
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            raise BrokerAdminError(f"cannot connect to the broker at {self.endpoint.host}:"
                                   f"{self.endpoint.port} as {self.endpoint.username}: {exc}"
                                   ) from None
        self._client = client
        try:
            await self._subscribe_responses(client)
        except BaseException:
            await client.__aexit__(None, None, None)
            raise
        self._reader = asyncio.create_task(self._read(client))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        client, self._client, self._reader = self._client, None, None
        if client is not None:
            try:
                await client.__aexit__(exc_type, exc, tb)
            except aiomqtt.MqttError:
                # The commands were answered; a connection that ends badly changes nothing.
                log.info("broker_admin_disconnect_failed")

    async def _subscribe_responses(self, client: aiomqtt.Client) -> None:
        if suback_failed(await client.subscribe(RESPONSE_TOPIC, qos=1)):
            raise BrokerAdminError(f"{self.endpoint.username} may not subscribe to "
                                   f"{RESPONSE_TOPIC}: it cannot administer the broker")

    async def _read(self, client: aiomqtt.Client) -> None:
        try:
            async for message in client.messages:
                self._answer(message.payload)
        except aiomqtt.MqttError as exc:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(BrokerAdminError(f"broker connection lost: {exc}"))

    def _answer(self, payload: Any) -> None:
        try:
            responses = json.loads(payload)["responses"]
        except (TypeError, ValueError, KeyError):
            log.warning("dynsec_unreadable_response")
            return
        for response in responses:
            future = self._waiting.get(str(response.get("correlationData")))
            if future is not None and not future.done():
                future.set_result(response)

    async def command(self, name: str, tolerated: frozenset[str] = frozenset(),
                      **fields: Any) -> dict[str, Any] | None:
        """Run one command; its `data` (or `{}`), or None when it failed with a `tolerated`
        error. Any other error raises `BrokerAdminError`."""
        if self._client is None or self._reader is None:
            raise RuntimeError("BrokerAdmin is used outside `async with`")
        if self._reader.done():
            raise BrokerAdminError(f"{name} not sent: the broker connection was lost")
        correlation = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[correlation] = future
        body = {"commands": [{"command": name, **fields, "correlationData": correlation}]}
        try:
            await self._client.publish(CONTROL_TOPIC, json.dumps(body), qos=1)
            async with asyncio.timeout(self.timeout_s):
                response = await future
        except TimeoutError:
            raise BrokerAdminTimeout(
                f"no answer to {name} from the dynamic-security plugin within {self.timeout_s} s "
                f"(is the plugin loaded, and may {self.endpoint.username} publish to "
                f"{CONTROL_TOPIC}?)") from None
        except aiomqtt.MqttError as exc:
            raise BrokerAdminError(f"{name} could not be sent: {exc}") from None
        finally:
            self._waiting.pop(correlation, None)
            _settle(future)
        error = response.get("error")
        if error is None:
            data: dict[str, Any] = response.get("data") or {}
            return data
        if error in tolerated:
            return None
        raise BrokerAdminError(f"{name} refused by the broker: {error}")

    async def upsert_appliance(self, device_id: uuid.UUID | str, password: str) -> None:
        """Create the appliance's client and role, or bring them back to exactly what they
        should be with `password` as its secret."""
        name = checked_device_id(device_id)
        role = role_name(name)
        await self._ensure_role(role, appliance_acls(name))
        client: dict[str, Any] = {"username": name, "password": password, "clientid": name,
                                  "roles": [{"rolename": role}]}
        created = await self.command("createClient", frozenset({CLIENT_EXISTS}),
                                     textname="Epicura appliance", **client)
        if created is None:
            # An existing client: a new secret (re-provisioning), or a re-run. The plugin ends
            # the connected session, which must reconnect with the current secret.
            await self.command("modifyClient", groups=[], **client)
            await self.command("enableClient", username=name)
        log.info("broker_appliance_upserted", device_id=name, created=created is not None)

    async def _ensure_role(self, role: str, rules: list[dict[str, Any]]) -> None:
        if await self.command("createRole", frozenset({ROLE_EXISTS}), rolename=role,
                              acls=rules) is not None:
            return
        found = await self.command("getRole", rolename=role) or {}
        present = {_acl_key(rule): rule for rule in found.get("role", {}).get("acls", [])}
        wanted = {_acl_key(rule): rule for rule in rules}
        for key, rule in present.items():
            if key not in wanted:
                await self.command("removeRoleACL", rolename=role, acltype=rule["acltype"],
                                   topic=rule["topic"])
        for key, rule in wanted.items():
            if key not in present:
                await self.command("addRoleACL", rolename=role, **rule)

    async def remove_appliance(self, device_id: uuid.UUID | str) -> None:
        """Delete the appliance's client (ending its session) and its role; absent is fine."""
        name = checked_device_id(device_id)
        deleted = await self.command("deleteClient", frozenset({CLIENT_NOT_FOUND}), username=name)
        await self.command("deleteRole", frozenset({ROLE_NOT_FOUND}), rolename=role_name(name))
        log.info("broker_appliance_removed", device_id=name, existed=deleted is not None)
