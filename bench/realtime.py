"""Benchmark of live delivery: appliance publish → Mosquitto → ONE `epicura bridge` → Redis →
ONE `epicura serve` (the WebSocket gateway) → N sockets, all on this machine.

Set-up (every run): a fresh database built by the migrations, one user per socket each owning
one provisioned appliance (rows written directly; their access tokens minted with the service's
own settings), a private Mosquitto on a free port, one bridge and one serve process.

For each `--sockets` N: N sockets connect, authenticate and subscribe to their appliance's
channel; then for `--duration` seconds every appliance publishes `up/telemetry` every 2 s (its
newest sample's `t` is the publish time) and, every `--alert-every` seconds, raises an alert
whose id carries its publish time (alerts travel through the event outbox). Measured: delivery
latency publish → socket for both (p50/p95/p99/max), events delivered against expected, and the
serve process's memory per socket (RSS growth over the N connections / N).

    uv run python bench/realtime.py [--sockets 100 --sockets 1000] [--duration 20] [--pin]
        [--alert-every 10]

`--pin` puts serve on CPU 1 and everything else (bridge, broker, publisher, sockets) on CPU 0
(PostgreSQL and Redis unpinned). Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import fresh_database
from ingest_procs import (
    DB_URL,
    ROOT,
    cpu_seconds,
    epicura_entry,
    free_port,
    pinned,
    service_env,
    start_bridge,
    start_broker,
    stop,
    uptime,
)

TELEMETRY_EVERY_S = 2.0

# --- set-up -----------------------------------------------------------------------------------


async def owners_and_tokens(appliances: list[str], mqtt_port: int) -> list[str]:
    """One user per appliance, owner of it, with a login session and an access token."""
    os.environ.update(service_env(mqtt_port))
    from sqlalchemy import insert, update
    from sqlalchemy.ext.asyncio import create_async_engine

    from epicura.appliances.models import Appliance
    from epicura.auth.models import LoginSession, User
    from epicura.auth.tokens import issue_access_token
    from epicura.config import Settings
    from epicura.kit.runtime import Runtime

    now = datetime.now(UTC)
    users = [User(id=uuid.uuid4(), email=f"bench{n}@example.com", display_name=f"Bench {n}",
                  role="user", locale="en", timezone="UTC", email_verified=True,
                  is_active=True, password_hash=None, created_at=now, updated_at=now)
             for n in range(len(appliances))]
    login_ids = [uuid.uuid4() for _ in users]
    logins = [{"id": login_id, "user_id": u.id, "name": "bench", "ip": "127.0.0.1",
               "created_at": now, "last_used_at": now,
               "expires_at": datetime(2100, 1, 1, tzinfo=UTC)}
              for u, login_id in zip(users, login_ids, strict=True)]
    engine = create_async_engine(DB_URL.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(User), [
                {c.key: getattr(u, c.key) for c in User.__mapper__.column_attrs} for u in users])
            await conn.execute(insert(LoginSession), logins)
            for user, appliance in zip(users, appliances, strict=True):
                await conn.execute(update(Appliance).where(Appliance.id == uuid.UUID(appliance))
                                   .values(owner_id=user.id, paired_at=now))
    finally:
        await engine.dispose()
    rt = Runtime.build(Settings())
    try:
        return [issue_access_token(rt, u, login_id, now)
                for u, login_id in zip(users, login_ids, strict=True)]
    finally:
        await rt.close()


def start_serve(port: int, mqtt_port: int, cpu: str | None, log: Path) -> subprocess.Popen[bytes]:
    command = [*epicura_entry(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as handle:
        return subprocess.Popen(pinned(command, cpu), env=service_env(mqtt_port), cwd=ROOT,
                                stdout=handle, stderr=subprocess.STDOUT)


async def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    import httpx2

    async with httpx2.AsyncClient() as client:
        for _ in range(600):
            if process.poll() is not None:
                raise SystemExit(f"serve exited with {process.returncode}")
            with contextlib.suppress(httpx2.HTTPError):
                if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise SystemExit("serve did not come up")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# --- sockets ----------------------------------------------------------------------------------


@dataclass
class Latencies:
    telemetry: list[float] = field(default_factory=list)
    alert: list[float] = field(default_factory=list)
    other: int = 0
    errors: list[str] = field(default_factory=list)


class Socket:
    def __init__(self, url: str, token: str, appliance: str, seen: Latencies) -> None:
        self.url, self.token, self.appliance, self.seen = url, token, appliance, seen
        self.ws: ClientConnection | None = None
        self.task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.ws = await connect(self.url, max_size=2**20, ping_interval=None)
        await self.ws.send(orjson.dumps({"type": "auth", "data": {"token": self.token}}).decode())
        await self._expect("auth.ok")
        await self.ws.send(orjson.dumps({"type": "subscribe", "ref": "s",
                                         "data": {"channel": f"appliance:{self.appliance}"}})
                           .decode())
        await self._expect("subscribed")
        self.task = asyncio.create_task(self._read())

    async def _expect(self, kind: str) -> None:
        assert self.ws is not None
        async with asyncio.timeout(30):
            while True:
                frame = orjson.loads(await self.ws.recv())
                if frame["type"] == kind:
                    return
                if frame["type"] == "error":
                    raise SystemExit(f"gateway error: {frame}")

    async def _read(self) -> None:
        assert self.ws is not None
        async for raw in self.ws:
            now_ms = time.time() * 1000
            frame = orjson.loads(raw)
            kind, data = frame.get("type"), frame.get("data") or {}
            if kind == "telemetry":
                self.seen.telemetry.append(now_ms - data["samples"][-1]["t"])
            elif kind == "alert" and str(data.get("alert_id", "")).startswith("bench-"):
                self.seen.alert.append(now_ms - int(data["alert_id"].split("-")[1]) / 1e6)
            elif kind == "error":
                self.seen.errors.append(str(data))
            else:
                self.seen.other += 1

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.ws is not None:
            await self.ws.close()


# --- load -------------------------------------------------------------------------------------


def sample(t: int, n: int) -> dict[str, Any]:
    return {"t": t, "bowl_temp_c": 60.0 + n % 40, "target_temp_c": 100.0, "speed": 1,
            "direction": "forward", "weight_g": 812.4, "heater_w": 640.0, "motor_rpm": 101,
            "lid": "locked"}


def telemetry(now_ms: int, seq: int) -> bytes:
    samples = [sample(now_ms - (1 - i) * 1000, seq) for i in range(2)]
    return orjson.dumps({"v": 1, "id": str(uuid.uuid4()), "ts": now_ms, "seq": seq,
                         "boot_id": "bench", "samples": samples})


def alert() -> bytes:
    return orjson.dumps({"v": 1, "id": str(uuid.uuid4()), "ts": int(time.time() * 1000),
                         "alert_id": f"bench-{time.time_ns()}", "code": "overtemp",
                         "severity": "warning", "state": "raised"})


async def publish_load(mqtt_port: int, appliances: list[str], duration_s: float,
                       alert_every_s: float) -> tuple[int, int]:
    """Each appliance: telemetry every 2 s, an alert every `alert_every_s`, spread evenly."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-devices",
                         protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", mqtt_port)
    client.loop_start()
    sent_telemetry = sent_alerts = 0
    try:
        start = time.monotonic()
        n = len(appliances)
        step = TELEMETRY_EVERY_S / n
        alert_stride = max(1, round(alert_every_s / TELEMETRY_EVERY_S))  # ticks per alert
        tick = 0
        while time.monotonic() - start < duration_s:
            device = appliances[tick % n]
            now_ms = int(time.time() * 1000)
            client.publish(f"epicura/v1/{device}/up/telemetry", telemetry(now_ms, tick), qos=1)
            sent_telemetry += 1
            if tick % alert_stride == 0:
                client.publish(f"epicura/v1/{device}/up/alert", alert(), qos=1)
                sent_alerts += 1
            tick += 1
            delay = start + tick * step - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
    finally:
        await asyncio.sleep(2.0)  # let the last ones arrive before the sockets close
        client.loop_stop()
        client.disconnect()
    return sent_telemetry, sent_alerts


# --- one round --------------------------------------------------------------------------------


def quantiles(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a"
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return f"{cuts[49]:7.1f} {cuts[94]:7.1f} {cuts[98]:7.1f} {max(values):8.1f}"


def cpu_now(pids: dict[str, int]) -> dict[str, float]:
    found = {name: cpu_seconds(pid) for name, pid in pids.items()}
    found["bench"] = sum(os.times()[:2])
    return found


async def round_of(count: int, port: int, mqtt_port: int, pids: dict[str, int],
                   tokens: list[str], appliances: list[str], args: argparse.Namespace) -> None:
    serve_pid = pids["serve"]
    seen = Latencies()
    url = f"ws://127.0.0.1:{port}/api/v1/ws"
    before = rss_kib(serve_pid)
    sockets = [Socket(url, tokens[i], appliances[i], seen) for i in range(count)]
    for start in range(0, count, 50):
        await asyncio.gather(*(s.open() for s in sockets[start:start + 50]))
    after = rss_kib(serve_pid)
    cpu_before, started = cpu_now(pids), time.monotonic()
    try:
        sent_t, sent_a = await publish_load(mqtt_port, appliances[:count], args.duration,
                                            args.alert_every)
        cpu_after, elapsed = cpu_now(pids), time.monotonic() - started
    finally:
        await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)
    cpu = "  ".join(f"{name} {100 * (cpu_after[name] - cpu_before[name]) / elapsed:.0f}%"
                    for name in cpu_after)
    print(f"{count:>7} sockets  memory {(after - before) / count:6.1f} KiB/socket "
          f"(serve RSS {before / 1024:.0f} → {after / 1024:.0f} MiB)")
    print(f"        telemetry  sent {sent_t:6d} got {len(seen.telemetry):6d}   "
          f"ms p50/p95/p99/max {quantiles(seen.telemetry)}")
    print(f"        alerts     sent {sent_a:6d} got {len(seen.alert):6d}   "
          f"ms p50/p95/p99/max {quantiles(seen.alert)}")
    print(f"        CPU over the load: {cpu}")
    if seen.errors:
        print(f"        errors: {seen.errors[:3]}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, action="append")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--alert-every", type=float, default=10.0)
    parser.add_argument("--pin", action="store_true")
    args = parser.parse_args()
    counts = args.sockets or [100, 1000]
    appliances = await fresh_database(max(counts))
    folder = Path(tempfile.mkdtemp(prefix="epicura-bench-realtime-"))
    broker = bridge = serve = None
    try:
        broker, mqtt_port = start_broker(folder, "0" if args.pin else None)
        tokens = await owners_and_tokens(appliances, mqtt_port)
        bridge = start_bridge(mqtt_port, free_port(), "0" if args.pin else None,
                              folder / "bridge.log", [], None)
        port = free_port()
        serve = start_serve(port, mqtt_port, "1" if args.pin else None, folder / "serve.log")
        await wait_ready(port, serve)
        if args.pin:
            os.sched_setaffinity(0, {0})
        print(f"# bench/realtime  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  load {uptime()}")
        print(f"# telemetry every {TELEMETRY_EVERY_S:g} s per appliance, "
              f"{args.duration:g} s per round, pinned={args.pin}")
        for count in counts:
            await round_of(count, port, mqtt_port,
                           {"serve": serve.pid, "bridge": bridge.pid, "broker": broker.pid},
                           tokens, appliances, args)
    finally:
        stop(serve)
        stop(bridge)
        stop(broker)
        print(f"# logs in {folder}")


if __name__ == "__main__":
    asyncio.run(main())
