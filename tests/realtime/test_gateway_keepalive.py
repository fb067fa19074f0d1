"""The server pings (protocol level) and closes a socket that stays silent: a raw TCP client
completes the handshake and then never answers. The intervals are shortened for the test; `serve`
uses 20 s and 40 s (closed after 60 s of silence)."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import AsyncIterator

import pytest

from epicura.config import Settings
from tests.realtime.ws_support import Served, authed, serving
from tests.support import API, Mailbox

pytestmark = pytest.mark.anyio


@pytest.fixture
async def fast_pings(pg_settings: Settings, smtp: tuple[int, Mailbox]) -> AsyncIterator[Served]:
    async with serving(pg_settings, smtp[1], ws_ping_interval=0.3, ws_ping_timeout=0.6) as served:
        served.limit(auth_timeout_s=60)  # the keepalive, not the auth deadline, must close it
        yield served


async def test_a_silent_socket_is_closed_1011(fast_pings: Served) -> None:
    host, port = fast_pings.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET {API}/ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    await writer.drain()
    try:
        async with asyncio.timeout(20):
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101"), head
            opcodes, close_code = await _frames_until_eof(reader)
    finally:
        writer.close()
    assert 0x9 in opcodes  # pinged
    assert close_code == 1011


async def _frames_until_eof(reader: asyncio.StreamReader) -> tuple[list[int], int | None]:
    """The opcodes of the (unmasked, short) server frames, and the close code if one came."""
    opcodes: list[int] = []
    close_code = None
    while header := await reader.read(2):
        if len(header) < 2:
            header += await reader.readexactly(1)
        opcode, length = header[0] & 0x0F, header[1] & 0x7F
        payload = await reader.readexactly(length)
        opcodes.append(opcode)
        if opcode == 0x8 and length >= 2:
            (close_code,) = struct.unpack("!H", payload[:2])
    return opcodes, close_code


async def test_a_client_that_answers_pings_stays(fast_pings: Served) -> None:
    _, tokens = await fast_pings.user("alive")
    async with authed(fast_pings, tokens) as client:
        # Silent at the application level for several ping timeouts: the client library
        # answers the server's pings, so the socket stays (the duration is what is tested).
        await asyncio.sleep(2.0)
        assert (await client.request("ping"))["type"] == "pong"
