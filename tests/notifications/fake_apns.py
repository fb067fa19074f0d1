"""A local APNs on a real socket: HTTP/2 over TLS, offered as ALPN "h2" only (a client that
cannot speak HTTP/2 is hung up on, as Apple does), written on asyncio and the sans-IO `h2` state
machine (no web framework underneath, so the protocol on the wire is exactly HTTP/2).

It checks a request the way Apple documents: `:method` POST (405 `MethodNotAllowed`), `:path`
`/3/device/{token}` (404 `BadPath`), each `apns-*` header at most once (`DuplicateHeaders`), the
ES256 provider token in `authorization: bearer` verified against the test key (`kid`, `iss`, age
under an hour, not renewed more often than every 20 minutes), `apns-topic`, `apns-push-type`,
`apns-priority`, `apns-expiration`, `apns-id`, `apns-collapse-id` (64 bytes at most), the device
token, and a JSON payload with `aps` of 4096 bytes at most (413 `PayloadTooLarge`). It answers 200
with `apns-id`, or Apple's `{"reason"}` body (410 `Unregistered` with its `timestamp`); tests
script answers per device token and count the connections and provider tokens it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, DataReceived, RequestReceived, StreamEnded, StreamReset
from h2.exceptions import ProtocolError

from tests.notifications.fakes import Received, Scripted

MAX_PAYLOAD_BYTES = 4096
PROVIDER_TOKEN_MAX_AGE_S = 3600
PROVIDER_TOKEN_MIN_RENEWAL_S = 20 * 60
PUSH_TYPES = ("alert", "background", "voip", "complication", "fileprovider", "mdm",
              "liveactivity", "pushtotalk", "location", "widgets")
SINGLE_HEADERS = ("authorization", "apns-topic", "apns-push-type", "apns-priority",
                  "apns-expiration", "apns-collapse-id", "apns-id")


def reason(status: int, why: str, **extra: Any) -> Scripted:
    return status, {}, orjson.dumps({"reason": why, **extra})


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass
class FakeApns:
    team_id: str = "TEAM123456"
    key_id: str = "KEY1234567"
    topic: str = "cloud.epicura.app"
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    base_url: str = ""
    sent: list[Received] = field(default_factory=list)
    unregistered: set[str] = field(default_factory=set)
    script: dict[str, list[Scripted]] = field(default_factory=dict)
    provider_tokens: list[tuple[str, float]] = field(default_factory=list)  # (jwt, first seen)
    connections: int = 0  # HTTP/2 connections accepted
    refused_connections: int = 0  # TLS connections that did not negotiate "h2"

    def sent_to(self, token: str) -> list[Received]:
        return [r for r in self.sent if r.token == token]

    def _check_provider_token(self, auth: str) -> Scripted | None:
        if not auth.startswith("bearer "):
            return reason(403, "MissingProviderToken")
        encoded = auth.removeprefix("bearer ")
        try:
            header = jwt.get_unverified_header(encoded)
            claims = jwt.decode(encoded, self.key.public_key(), algorithms=["ES256"],
                                options={"require": ["iss", "iat"]})
        except jwt.PyJWTError:
            return reason(403, "InvalidProviderToken")
        if header.get("kid") != self.key_id or claims["iss"] != self.team_id:
            return reason(403, "InvalidProviderToken")
        if time.time() - claims["iat"] > PROVIDER_TOKEN_MAX_AGE_S:
            return reason(403, "ExpiredProviderToken")
        if not any(seen == encoded for seen, _ in self.provider_tokens):
            if self.provider_tokens and \
                    time.time() - self.provider_tokens[-1][1] < PROVIDER_TOKEN_MIN_RENEWAL_S:
                return reason(429, "TooManyProviderTokenUpdates")
            self.provider_tokens.append((encoded, time.time()))
        return None

    def answer(self, method: str, path: str, fields: list[tuple[str, str]],
               raw: bytes) -> Scripted:
        """Apple's answer to one request (its pseudo-headers, its other headers, its body)."""
        if method != "POST":
            return reason(405, "MethodNotAllowed")
        found = re.fullmatch(r"/3/device/([^/?]*)", path)
        if found is None:
            return reason(404, "BadPath")
        token = found.group(1)
        counts = Counter(name for name, _ in fields)
        if any(counts[name] > 1 for name in SINGLE_HEADERS):
            return reason(400, "DuplicateHeaders")
        h = dict(fields)
        refused = self._check_provider_token(h.get("authorization", ""))
        if refused is not None:
            return refused
        if "apns-topic" not in h:
            return reason(400, "MissingTopic")
        if h["apns-topic"] != self.topic:
            return reason(400, "TopicDisallowed")
        if h.get("apns-push-type") not in PUSH_TYPES:
            return reason(400, "InvalidPushType")
        if h.get("apns-priority", "10") not in ("1", "5", "10"):
            return reason(400, "BadPriority")
        if len(h.get("apns-collapse-id", "").encode()) > 64:
            return reason(400, "BadCollapseId")
        if not h.get("apns-expiration", "0").isdigit():
            return reason(400, "BadExpirationDate")
        try:
            apns_id = str(uuid.UUID(h.get("apns-id", str(uuid.uuid4()))))
        except ValueError:
            return reason(400, "BadMessageId")
        if not token:
            return reason(400, "MissingDeviceToken")
        if not re.fullmatch(r"[0-9a-f]{64}", token):
            return reason(400, "BadDeviceToken")
        if len(raw) > MAX_PAYLOAD_BYTES:
            return reason(413, "PayloadTooLarge")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return reason(400, "PayloadEmpty")
        if not isinstance(body, dict) or "aps" not in body:
            return reason(400, "PayloadEmpty")
        if self.script.get(token):
            return self.script[token].pop(0)
        if token in self.unregistered:
            return reason(410, "Unregistered", timestamp=int(time.time() * 1000))
        self.sent.append(Received(token, h, body, "2"))
        return 200, {"apns-id": apns_id}, b""

    def respond(self, conn: H2Connection, stream_id: int, fields: list[tuple[str, str]],
                raw: bytes) -> None:
        pseudo = {name: value for name, value in fields if name.startswith(":")}
        status, headers, body = self.answer(
            pseudo.get(":method", ""), pseudo.get(":path", ""),
            [(name, value) for name, value in fields if not name.startswith(":")], raw)
        out = [(":status", str(status)), *((k.lower(), v) for k, v in headers.items())]
        if body:
            out += [("content-type", "application/json"), ("content-length", str(len(body)))]
        conn.send_headers(stream_id, out, end_stream=not body)
        if body:  # Apple's bodies are a few bytes: well inside one frame and the window
            conn.send_data(stream_id, body, end_stream=True)

    async def connection(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        tls: ssl.SSLObject | None = writer.get_extra_info("ssl_object")
        if tls is None or tls.selected_alpn_protocol() != "h2":
            self.refused_connections += 1
            return
        self.connections += 1
        conn = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        streams: dict[int, tuple[list[tuple[str, str]], bytearray]] = {}
        while data := await reader.read(65536):
            try:
                events = conn.receive_data(data)
            except ProtocolError:
                writer.write(conn.data_to_send())  # the GOAWAY h2 queued
                return
            for event in events:
                if isinstance(event, RequestReceived) and event.stream_id is not None:
                    streams[event.stream_id] = (
                        [(_text(n), _text(v)) for n, v in event.headers or []], bytearray())
                elif isinstance(event, DataReceived) and event.stream_id is not None:
                    if event.stream_id in streams:
                        streams[event.stream_id][1].extend(event.data or b"")
                    conn.acknowledge_received_data(event.flow_controlled_length or 0,
                                                   event.stream_id)
                elif isinstance(event, StreamEnded) and event.stream_id in streams:
                    fields, raw = streams.pop(event.stream_id)
                    self.respond(conn, event.stream_id, fields, bytes(raw))
                elif isinstance(event, StreamReset) and event.stream_id is not None:
                    streams.pop(event.stream_id, None)
                elif isinstance(event, ConnectionTerminated):
                    writer.write(conn.data_to_send())
                    return
            writer.write(conn.data_to_send())
            await writer.drain()


def tls_context(tls: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(tls[0]), str(tls[1]))
    context.set_alpn_protocols(["h2"])
    return context


@contextlib.asynccontextmanager
async def serving_apns(fake: FakeApns, tls: tuple[Path, Path]) -> AsyncIterator[str]:
    """Serve `fake` over HTTP/2 + TLS on a free local port in this event loop; yields its URL."""
    handlers: set[asyncio.Task[Any]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await fake.connection(reader, writer)
        except (ConnectionError, ssl.SSLError):
            pass  # the client went away mid-frame
        finally:
            handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, family=socket.AF_INET,
                                        ssl=tls_context(tls))
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()
