"""A light MQTT 3.1.1 QoS 1 publisher for the ingest benchmark (bench/ingest.py).

Hand-written on asyncio streams so that the generator costs little CPU next to the bridge it
measures (a paho client tops out near 10k QoS 1 messages/s on this machine, and would take a
core doing it): PUBLISH packets are encoded by hand, many written per syscall, PUBACKs matched
by packet id, at most `window` unacknowledged per connection, paced to a target rate.

Each message is a valid `up/telemetry` payload (mqtt-topics.md) with 5 samples; `ts` is the
wall-clock publish time in ms, so the lag publish → committed can be measured from it.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

SAMPLES_PER_MESSAGE = 5
PUBACK, CONNACK, PINGRESP = 0x40, 0x20, 0xD0


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        digit, n = n % 128, n // 128
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(raw)) + raw


def connect_packet(client_id: str, keepalive: int = 60) -> bytes:
    # Clean session: the generator keeps nothing between runs.
    variable = _string("MQTT") + bytes([4, 0x02]) + struct.pack("!H", keepalive)
    body = variable + _string(client_id)
    return bytes([0x10]) + _varint(len(body)) + body


def publish_packet(topic: bytes, packet_id: int, payload: bytes) -> bytes:
    body_len = 2 + len(topic) + 2 + len(payload)
    return b"".join((b"\x32", _varint(body_len), struct.pack("!H", len(topic)), topic,
                     struct.pack("!H", packet_id), payload))


@dataclass
class Probe:
    """Every `every`-th message's id and publish time, to find when it became visible."""

    every: int = 50
    published: dict[uuid.UUID, float] = field(default_factory=dict)


@dataclass
class Totals:
    sent: int = 0
    acked: int = 0
    ack_latency_sum: float = 0.0


def telemetry_payload(message_id: uuid.UUID, now_ms: int, seq: int) -> bytes:
    """One valid telemetry message: 5 one-second samples ending now."""
    samples = [{
        "t": now_ms - (SAMPLES_PER_MESSAGE - 1 - i) * 1000,
        "bowl_temp_c": 60.0 + (seq % 40) + i * 0.1, "target_temp_c": 100.0, "speed": 1.0,
        "direction": "forward", "weight_g": 812.4, "heater_w": 640.0, "motor_rpm": 101.0,
        "lid": "locked",
    } for i in range(SAMPLES_PER_MESSAGE)]
    return orjson.dumps({"v": 1, "id": str(message_id), "ts": now_ms, "seq": seq,
                         "boot_id": "bench", "samples": samples})


class Connection:
    """One MQTT connection publishing for a slice of the devices."""

    def __init__(self, host: str, port: int, client_id: str, devices: list[str], *,
                 window: int, probe: Probe, totals: Totals) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        self.topics = [f"epicura/v1/{d}/up/telemetry".encode() for d in devices]
        self.seqs = [0] * len(devices)
        self.window = asyncio.Semaphore(window)
        self.inflight: dict[int, float] = {}
        self.next_id = 0
        self.probe, self.totals = probe, totals
        self.acked = asyncio.Event()

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(connect_packet(self.client_id))
        header = await self.reader.readexactly(4)
        if header[0] != CONNACK or header[3] != 0:
            raise ConnectionError(f"CONNACK refused: {header.hex()}")
        self.reader_task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        read = self.reader.readexactly
        while True:
            head = await read(2)
            kind, length = head[0] & 0xF0, head[1]
            if length & 0x80:  # PUBACKs are short; anything else is read and ignored
                length = (length & 0x7F) + 128 * (await read(1))[0]
            body = await read(length) if length else b""
            if kind == PUBACK:
                sent_at = self.inflight.pop(struct.unpack("!H", body[:2])[0], None)
                if sent_at is not None:
                    self.totals.acked += 1
                    self.totals.ack_latency_sum += time.perf_counter() - sent_at
                    self.window.release()
                    if not self.inflight:
                        self.acked.set()

    def _packet_id(self) -> int:
        while True:
            self.next_id = self.next_id % 65535 + 1
            if self.next_id not in self.inflight:
                return self.next_id

    async def publish_burst(self, count: int) -> None:
        """Write `count` messages (waiting for the window when it is full), one flush."""
        chunks = []
        now_ms = int(time.time() * 1000)
        for _ in range(count):
            if self.window.locked():  # send what we have, wait, and stamp the later time
                if chunks:
                    self.writer.write(b"".join(chunks))
                    chunks = []
                await self.window.acquire()
                now_ms = int(time.time() * 1000)
            else:
                await self.window.acquire()
            index = self.totals.sent % len(self.topics)
            self.seqs[index] += 1
            message_id = uuid.UUID(bytes=os.urandom(16), version=4)
            packet_id = self._packet_id()
            self.inflight[packet_id] = time.perf_counter()
            chunks.append(publish_packet(self.topics[index], packet_id,
                                         telemetry_payload(message_id, now_ms,
                                                           self.seqs[index])))
            if self.totals.sent % self.probe.every == 0:
                self.probe.published[message_id] = now_ms / 1000
            self.totals.sent += 1
        if chunks:
            self.writer.write(b"".join(chunks))
        await self.writer.drain()

    async def close(self, timeout_s: float = 30.0) -> None:
        """Wait for the last PUBACKs, then DISCONNECT."""
        deadline = time.monotonic() + timeout_s
        while self.inflight and time.monotonic() < deadline:
            self.acked.clear()
            try:
                await asyncio.wait_for(self.acked.wait(), timeout=deadline - time.monotonic())
            except TimeoutError:
                break
        self.writer.write(b"\xe0\x00")
        await self.writer.drain()
        self.reader_task.cancel()
        self.writer.close()


async def run_load(host: str, port: int, devices: list[str], *, rate: float, duration_s: float,
                   connections: int, window: int, probe: Probe, totals: Totals,
                   tick_s: float = 0.01,
                   on_second: Callable[[float], None] | None = None) -> float:
    """Publish at `rate` messages/s for `duration_s`; returns the seconds it really took."""
    conns = [Connection(host, port, f"bench-load-{os.getpid()}-{i}", devices[i::connections],
                        window=window, probe=probe, totals=totals) for i in range(connections)]
    for conn in conns:
        await conn.open()
    started = time.perf_counter()
    per_conn = rate / connections
    sent_by = [0] * connections
    next_report = 1.0
    while (elapsed := time.perf_counter() - started) < duration_s:
        due = int(per_conn * elapsed)
        await asyncio.gather(*(conn.publish_burst(due - sent_by[i])
                               for i, conn in enumerate(conns) if due > sent_by[i]))
        sent_by = [max(s, due) for s in sent_by]
        if on_second is not None and elapsed >= next_report:
            on_second(elapsed)
            next_report += 1.0
        await asyncio.sleep(tick_s)
    took = time.perf_counter() - started
    await asyncio.gather(*(conn.close() for conn in conns))
    return took
