"""Benchmark of live delivery: appliance publish → Mosquitto → ONE `epicura bridge` → Redis →
ONE `epicura serve` (the WebSocket gateway) → N sockets, all on this machine.

Set-up (every run): a fresh database built by the migrations, one user per socket each owning
one provisioned appliance (rows written directly; their access tokens minted with the service's
own settings), a private Mosquitto on a free port, one bridge and one serve process.

For each `--sockets` N: N sockets connect, authenticate and subscribe to their appliance's
channel; then for `--duration` seconds every appliance publishes `up/telemetry` every 2 s (its
newest sample's `t` is the publish time), cooks one session of a public recipe (`up/session`
`started`, then a `step_started` every `--step-every` seconds, each answered by a
`session.updated` on the appliance's channel) and, with `--alert-every`, raises alerts whose id
carries their publish time (they travel through the event outbox and make notifications).
Measured: delivery latency publish → socket per kind (p50/p95/p99/max), events delivered against
expected, the CPU of each process, and the serve process's memory per socket (RSS growth over the
N connections / N).

    uv run python bench/realtime.py [--sockets 100 --sockets 1000] [--duration 20] [--pin]
        [--step-every 10] [--alert-every 0]

`--pin` puts serve on CPU 1 and everything else (bridge, broker, publisher, sockets) on CPU 0
(PostgreSQL and Redis unpinned). The database and the run's Redis keys are dropped at the end.
Prints a table; nothing is asserted.
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
from ingest import drop_database, fresh_database
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


async def a_public_recipe(mqtt_port: int) -> Cook:
    """One synthetic public recipe (the appliances' owners may cook it) and its step count."""
    import asyncpg

    subprocess.run([*epicura_entry(), "seed", "--recipes", "1"], env=service_env(mqtt_port),
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    conn = await asyncpg.connect(DB_URL)
    try:
        row = await conn.fetchrow(
            "SELECT r.id, jsonb_array_length(v.content->'steps') AS steps FROM recipes r "
            "JOIN recipe_versions v ON v.recipe_id = r.id AND v.version = 1 LIMIT 1")
    finally:
        await conn.close()
    return Cook(str(row["id"]), int(row["steps"]))


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
    session: list[float] = field(default_factory=list)
    alert: list[float] = field(default_factory=list)
    other: int = 0
    started: int = 0  # session.updated of a session's start (step_index still null)
    sockets: int = 0
    all_started: asyncio.Event = field(default_factory=asyncio.Event)
    errors: list[str] = field(default_factory=list)
    steps_sent: dict[tuple[str, int], float] = field(default_factory=dict)  # → publish time ms


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
            elif kind == "session.updated" and data.get("step_index") is None:
                self.seen.started += 1
                if self.seen.started >= self.seen.sockets:
                    self.seen.all_started.set()
            elif kind == "session.updated":
                sent = self.seen.steps_sent.get((data["session_id"], data["step_index"]))
                if sent is not None:
                    self.seen.session.append(now_ms - sent)
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


@dataclass
class Cook:
    """What the appliances cook: one public recipe, its number of steps."""

    recipe_id: str
    steps: int
    sessions: dict[str, str] = field(default_factory=dict)  # appliance → its session id
    seq: dict[str, int] = field(default_factory=dict)

    def next_event(self, device: str, seen: Latencies) -> bytes:
        session_id = self.sessions.setdefault(device, str(uuid.uuid4()))
        seq = self.seq[device] = self.seq.get(device, 0) + 1
        body: dict[str, Any] = {"v": 1, "id": str(uuid.uuid4()), "ts": int(time.time() * 1000),
                                "session_id": session_id, "seq": seq}
        if seq == 1:
            body.update(type="started", recipe_id=self.recipe_id, recipe_version=1)
        else:
            step = (seq - 2) % self.steps
            body.update(type="step_started", step_index=step)
            seen.steps_sent[(session_id, step)] = time.time() * 1000
        return orjson.dumps(body)


def mqtt_client(mqtt_port: int, client_id: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", mqtt_port)
    client.loop_start()
    return client


async def start_sessions(mqtt_port: int, appliances: list[str], cook: Cook, seen: Latencies,
                         rate: float = 200.0) -> float:
    """Every appliance starts its session (paced, before the measured window: a fleet does not
    start a thousand cooks in one second); seconds until all their starts reached the sockets."""
    client = mqtt_client(mqtt_port, "bench-devices-start")
    began = time.monotonic()
    try:
        for n, device in enumerate(appliances):
            client.publish(f"epicura/v1/{device}/up/session", cook.next_event(device, seen), qos=1)
            delay = began + (n + 1) / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(120):
                await seen.all_started.wait()
    finally:
        client.loop_stop()
        client.disconnect()
    return time.monotonic() - began


async def publish_load(mqtt_port: int, appliances: list[str], args: argparse.Namespace,
                       cook: Cook, seen: Latencies) -> tuple[int, int, int]:
    """Each appliance: telemetry every 2 s, a session event every `--step-every` s and an alert
    every `--alert-every` s (0: none), spread evenly."""
    duration_s, alert_every_s = args.duration, args.alert_every
    client = mqtt_client(mqtt_port, "bench-devices")
    sent_telemetry = sent_steps = sent_alerts = 0
    try:
        start = time.monotonic()
        n = len(appliances)
        step = TELEMETRY_EVERY_S / n
        # Per appliance, every k-th of its telemetry ticks also carries the other kinds; the
        # appliances take turns (offset by their index), so the fleet's rate is even.
        step_stride = max(1, round(args.step_every / TELEMETRY_EVERY_S))
        alert_stride = max(1, round(alert_every_s / TELEMETRY_EVERY_S)) if alert_every_s else 0
        tick = 0
        while time.monotonic() - start < duration_s:
            device, round_no = appliances[tick % n], tick // n + tick % n
            now_ms = int(time.time() * 1000)
            client.publish(f"epicura/v1/{device}/up/telemetry", telemetry(now_ms, tick), qos=1)
            sent_telemetry += 1
            if round_no % step_stride == step_stride - 1:
                client.publish(f"epicura/v1/{device}/up/session", cook.next_event(device, seen),
                               qos=1)
                sent_steps += 1
            if alert_stride and round_no % alert_stride == 1 % alert_stride:
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
    return sent_telemetry, sent_steps, sent_alerts


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
                   tokens: list[str], appliances: list[str], cook: Cook,
                   args: argparse.Namespace) -> None:
    serve_pid = pids["serve"]
    seen = Latencies(sockets=count)
    url = f"ws://127.0.0.1:{port}/api/v1/ws"
    before = rss_kib(serve_pid)
    sockets = [Socket(url, tokens[i], appliances[i], seen) for i in range(count)]
    for start in range(0, count, 50):
        await asyncio.gather(*(s.open() for s in sockets[start:start + 50]))
    after = rss_kib(serve_pid)
    warm_s = await start_sessions(mqtt_port, appliances[:count], cook, seen)
    cpu_before, started = cpu_now(pids), time.monotonic()
    try:
        sent_t, sent_s, sent_a = await publish_load(mqtt_port, appliances[:count], args, cook,
                                                    seen)
        cpu_after, elapsed = cpu_now(pids), time.monotonic() - started
    finally:
        await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)
    cpu = "  ".join(f"{name} {100 * (cpu_after[name] - cpu_before[name]) / elapsed:.0f}%"
                    for name in cpu_after)
    print(f"{count:>7} sockets  memory {(after - before) / count:6.1f} KiB/socket "
          f"(serve RSS {before / 1024:.0f} → {after / 1024:.0f} MiB)")
    print(f"        telemetry  sent {sent_t:6d} got {len(seen.telemetry):6d}   "
          f"ms p50/p95/p99/max {quantiles(seen.telemetry)}")
    print(f"        steps      sent {sent_s:6d} got {len(seen.session):6d}   "
          f"ms p50/p95/p99/max {quantiles(seen.session)}  "
          f"(after {seen.started} sessions started in {warm_s:.1f} s)")
    print(f"        alerts     sent {sent_a:6d} got {len(seen.alert):6d}   "
          f"ms p50/p95/p99/max {quantiles(seen.alert)}")
    print(f"        CPU over the load: {cpu}")
    if seen.errors:
        print(f"        errors: {seen.errors[:3]}")


async def delete_redis_keys(prefix: str) -> None:
    """The run's Redis keys (held channels, rate limits, the revocation set)."""
    from redis.asyncio import Redis

    redis = Redis.from_url(service_env(None)["REDIS_URL"])
    try:
        async for key in redis.scan_iter(match=prefix + "*", count=1000):
            await redis.delete(key)
    finally:
        await redis.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, action="append")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--step-every", type=float, default=10.0)
    parser.add_argument("--alert-every", type=float, default=0.0)
    parser.add_argument("--pin", action="store_true")
    args = parser.parse_args()
    counts = args.sockets or [100, 1000]
    appliances = await fresh_database(max(counts))
    folder = Path(tempfile.mkdtemp(prefix="epicura-bench-realtime-"))
    broker = bridge = serve = None
    try:
        broker, mqtt_port = start_broker(folder, "0" if args.pin else None)
        tokens = await owners_and_tokens(appliances, mqtt_port)
        cook = await a_public_recipe(mqtt_port)
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
                           tokens, appliances, Cook(cook.recipe_id, cook.steps), args)
    finally:
        stop(serve)
        stop(bridge)
        stop(broker)
        await drop_database()
        await delete_redis_keys(service_env(None)["REDIS_PREFIX"])
        print(f"# logs in {folder}")


if __name__ == "__main__":
    asyncio.run(main())
