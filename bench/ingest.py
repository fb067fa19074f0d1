"""Benchmark of telemetry ingest: a load generator → Mosquitto → ONE `epicura bridge` →
PostgreSQL, all on this machine.

Set-up (every run): a fresh database `epicura_bench_ingest_<pid>` built by the migrations,
`--devices` provisioned appliances in it, a private Mosquitto on a free port (anonymous, with
the queue and in-flight limits of `epicura broker config`), and one `epicura bridge` process.
The generator (bench/mqtt_load.py, a hand-written asyncio MQTT client) publishes QoS 1
`up/telemetry` messages of 5 samples over `--connections` connections at each `--rate` for
`--duration` seconds.

Measured per rate: messages and samples sent and committed per second over the load window,
ingest lag publish → committed (p50/p95/max: every 50th message's id is looked up in
`device_messages` every 50 ms; its `ts` is its publish time), that nothing was lost or doubled
(rows == sent, once the bridge has drained), and the CPU each process used, with `uptime`.

    uv run python bench/ingest.py [--rate 5000 --rate 8000] [--duration 20] [--connections 4]
        [--devices 1000] [--pin] [--generator-only] [--keep]

`--pin` puts the bridge on CPU 1 and Mosquitto and the generator on CPU 0 (PostgreSQL unpinned).
`--generator-only` checks the generator alone against `mosquitto_sub` counts (no bridge).
Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_procs import (
    DB_NAME,
    DB_URL,
    PG_ADMIN,
    ROOT,
    CpuMeter,
    bridge_figures,
    epicura_entry,
    free_port,
    scrape,
    service_env,
    start_bridge,
    start_broker,
    stop,
    uptime,
)
from mqtt_load import SAMPLES_PER_MESSAGE, Connection, Probe, Totals, run_load

# --- database ---------------------------------------------------------------------------------

async def fresh_database(devices: int) -> list[str]:
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DB_NAME}"')
    finally:
        await admin.close()
    subprocess.run([*epicura_entry(), "db", "upgrade"], env=service_env(None), check=True,
                   cwd=ROOT, stdout=subprocess.DEVNULL)
    return await add_appliances(devices)


async def add_appliances(count: int) -> list[str]:
    """Provisioned appliances, through the ORM table so defaults match the service's."""
    from sqlalchemy import insert
    from sqlalchemy.ext.asyncio import create_async_engine

    from epicura.appliances.models import PROVISIONED, Appliance

    now = datetime.now(UTC)
    ids = [uuid.uuid4() for _ in range(count)]
    rows = [{"id": i, "serial": f"BENCH-{n:06d}", "model": "epicura-1", "hw_revision": "rev-a",
             "lifecycle": PROVISIONED, "factory_secret_hash": "0" * 64,
             "device_secret_hash": "0" * 64, "provisioned_at": now, "created_at": now,
             "updated_at": now} for n, i in enumerate(ids)]
    engine = create_async_engine(DB_URL.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(Appliance.__table__), rows)
    finally:
        await engine.dispose()
    return [str(i) for i in ids]


async def stored_messages(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM device_messages WHERE kind = 'telemetry'")
    return count


async def counts(conn: asyncpg.Connection) -> tuple[int, int, int]:
    """Messages stored, sample rows, distinct (message, time) rows: heavy, run between loads."""
    samples, distinct = await conn.fetchrow(
        "SELECT count(*), count(DISTINCT (message_id, t)) FROM telemetry_samples")
    return await stored_messages(conn), samples, distinct


async def wait_until_ingesting(port: int, devices: list[str], conn: asyncpg.Connection,
                               bridge: subprocess.Popen[bytes], timeout_s: float = 60) -> int:
    """Publish one message at a time until one is committed: the bridge is subscribed."""
    probe, totals = Probe(every=1), Totals()
    load = Connection("127.0.0.1", port, "bench-warmup", devices[:1], window=10, probe=probe,
                      totals=totals)
    await load.open()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if bridge.poll() is not None:
                raise SystemExit(f"the bridge exited with {bridge.returncode}")
            await load.publish_burst(1)
            for _ in range(20):
                found = await conn.fetchval(
                    "SELECT count(*) FROM device_messages WHERE id = ANY($1::uuid[])",
                    list(probe.published))
                if found:
                    return totals.sent
                await asyncio.sleep(0.1)
        raise SystemExit("the bridge stored nothing within a minute")
    finally:
        await load.close()


# --- one measured round -----------------------------------------------------------------------

@dataclass
class Round:
    rate: float
    took: float = 0.0
    sent: int = 0
    committed_in_window: int = 0
    lags: list[float] = field(default_factory=list)
    lost: int = 0
    doubled: int = 0
    drained_after: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    load: str = ""
    ack_ms: float = 0.0
    bridge: str = ""
    unseen_probes: int = 0


async def poll_probes(conn: asyncpg.Connection, probe: Probe, lags: list[float],
                      done: asyncio.Event) -> None:
    while not (done.is_set() and not probe.published):
        ids = list(probe.published)[:200]  # the oldest first: they commit first
        if ids:
            rows = await conn.fetch(
                "SELECT id FROM device_messages WHERE id = ANY($1::uuid[])", ids)
            seen = time.time()
            for row in rows:
                lags.append(seen - probe.published.pop(row["id"]))
        await asyncio.sleep(0.05)


async def measure(rate: float, args: argparse.Namespace, port: int, devices: list[str],
                  meter: CpuMeter, before: tuple[int, int, int], metrics_port: int) -> Round:
    result = Round(rate)
    metrics_before = await asyncio.to_thread(scrape, metrics_port)
    conn = await asyncpg.connect(DB_URL)
    # The probe lookups must stay index lookups: a fresh table's statistics say "tiny", and a
    # sequential scan 20 times a second would load PostgreSQL more than the bridge does.
    poller_conn = await asyncpg.connect(DB_URL, server_settings={"enable_seqscan": "off"})
    probe, totals, done = Probe(every=50), Totals(), asyncio.Event()
    poller = asyncio.create_task(poll_probes(poller_conn, probe, result.lags, done))
    try:
        await meter.begin(conn)
        result.took = await run_load("127.0.0.1", port, devices, rate=rate,
                                     duration_s=args.duration, connections=args.connections,
                                     window=args.window, probe=probe, totals=totals)
        result.cpu = meter.percent(result.took)
        result.load = uptime()
        result.committed_in_window = await stored_messages(conn) - before[0]
        result.sent = totals.sent
        result.ack_ms = 1000 * totals.ack_latency_sum / max(totals.acked, 1)
        drained = time.monotonic()
        deadline = drained + max(60.0, args.duration * 3)
        while True:
            stored = await stored_messages(conn) - before[0]
            if stored >= result.sent or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        result.drained_after = time.monotonic() - drained
        result.lost = result.sent - stored
        _, samples, distinct = await counts(conn)
        result.doubled = (samples - before[1]) - (distinct - before[2])
        done.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(poller, timeout=10)
        result.unseen_probes = len(probe.published)
        result.bridge = bridge_figures(metrics_before, await asyncio.to_thread(scrape,
                                                                               metrics_port))
    finally:
        poller.cancel()
        await conn.close()
        await poller_conn.close()
    return result


def report(rounds: list[Round], args: argparse.Namespace) -> None:
    print(f"\none bridge {' '.join(args.bridge_arg)}; {args.connections} connections, "
          f"window {args.window}, {args.devices} devices, {SAMPLES_PER_MESSAGE} samples/message,"
          f" {args.duration:.0f} s per rate{'; pinned' if args.pin else ''}\n")
    print("| target msg/s | sent msg/s | committed msg/s (in window) | samples/s | lag p50 | "
          "lag p95 | lag max | lost | doubled | drained after | CPU % bridge / mosquitto / "
          "postgres / generator |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rounds:
        lags = sorted(r.lags) or [float("nan")]
        p95 = lags[min(len(lags) - 1, int(0.95 * len(lags)))]
        cpu = " / ".join(f"{r.cpu.get(k, 0):.0f}" for k in
                         ("bridge", "mosquitto", "postgres", "generator"))
        print(f"| {r.rate:,.0f} | {r.sent / r.took:,.0f} | {r.committed_in_window / r.took:,.0f} "
              f"| {SAMPLES_PER_MESSAGE * r.committed_in_window / r.took:,.0f} "
              f"| {statistics.median(lags):.3f} s | {p95:.3f} s | {lags[-1]:.3f} s | {r.lost} "
              f"| {r.doubled} | {r.drained_after:.1f} s | {cpu} |")
    for r in rounds:
        print(f"  {r.rate:,.0f}/s: {r.load}; broker PUBACK mean {r.ack_ms:.1f} ms; bridge: "
              f"{r.bridge}" + (f"; {r.unseen_probes} probes never seen" if r.unseen_probes
                               else ""))


# --- modes ------------------------------------------------------------------------------------

async def bench_rounds(args: argparse.Namespace, port: int, devices: list[str],
                       bridge: subprocess.Popen[bytes], broker_pid: int,
                       metrics_port: int) -> list[Round]:
    conn = await asyncpg.connect(DB_URL)
    try:
        await wait_until_ingesting(port, devices, conn, bridge)
        meter = CpuMeter({"bridge": bridge.pid, "mosquitto": broker_pid})
        rounds = []
        for rate in args.rate:
            before = await counts(conn)
            rounds.append(await measure(rate, args, port, devices, meter, before,
                                        metrics_port))
            if bridge.poll() is not None:
                raise SystemExit(f"the bridge exited with {bridge.returncode}")
        return rounds
    finally:
        await conn.close()


def start_counter(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    """`mosquitto_sub` (a C subscriber) writing one line per message received."""
    with (workdir / "sub.txt").open("wb") as out:
        sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "1",
                                "-i", "bench-counter", "-t", "epicura/v1/+/up/#"], stdout=out)
    time.sleep(0.5)  # the subscription is in place (mosquitto_sub gives no other signal)
    return sub


async def generator_only(args: argparse.Namespace, port: int, workdir: Path) -> None:
    """The generator alone: every message it counts as acknowledged reaches a subscriber."""
    devices = [str(uuid.uuid4()) for _ in range(args.devices)]
    for rate in args.rate:
        before = (workdir / "sub.txt").read_bytes().count(b"\n")
        probe, totals = Probe(every=10**9), Totals()
        cpu_before = sum(os.times()[:2])
        took = await run_load("127.0.0.1", port, devices, rate=rate,
                              duration_s=args.duration, connections=args.connections,
                              window=args.window, probe=probe, totals=totals)
        deadline = time.monotonic() + 30
        while (got := (workdir / "sub.txt").read_bytes().count(b"\n") - before) \
                < totals.sent and time.monotonic() < deadline:  # noqa: ASYNC110 - a file
            await asyncio.sleep(0.2)
        print(f"target {rate:,.0f}/s: sent {totals.sent} in {took:.1f} s "
              f"({totals.sent / took:,.0f}/s, generator CPU "
              f"{100 * (sum(os.times()[:2]) - cpu_before) / took:.0f}%), mosquitto_sub got "
              f"{got}; {uptime()}")


async def drop_database() -> None:
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    finally:
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, action="append",
                        help="target messages/s (repeat for several rounds; default 5000)")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--window", type=int, default=1000,
                        help="unacknowledged messages per connection")
    parser.add_argument("--pin", action="store_true")
    parser.add_argument("--generator-only", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--bridge-profile", type=Path, default=None,
                        help="run the bridge under cProfile, write its stats there and print "
                             "the top functions (slows the bridge down)")
    parser.add_argument("--bridge-arg", action="append", default=[],
                        help="an option for `epicura bridge` (repeat), e.g. "
                             "--bridge-arg=--batch-size=2000")
    args = parser.parse_args()
    args.rate = args.rate or [5000.0]
    print(f"before: {uptime()}")
    if args.pin:
        os.sched_setaffinity(0, {0})
    workdir = Path(tempfile.mkdtemp(prefix="epicura-bench-ingest-"))
    broker, port = start_broker(workdir / "broker", "0" if args.pin else None)
    bridge: subprocess.Popen[bytes] | None = None
    try:
        if args.generator_only:
            counter = start_counter(port, workdir)
            try:
                asyncio.run(generator_only(args, port, workdir))
            finally:
                stop(counter)  # type: ignore[arg-type]
            return
        devices = asyncio.run(fresh_database(args.devices))
        metrics_port = free_port()
        bridge = start_bridge(port, metrics_port, "1" if args.pin else None,
                              workdir / "bridge.log", args.bridge_arg, args.bridge_profile)
        rounds = asyncio.run(bench_rounds(args, port, devices, bridge, broker.pid,
                                          metrics_port))
        report(rounds, args)
    finally:
        stop(bridge)
        stop(broker)
        if args.bridge_profile is not None and args.bridge_profile.exists():
            import pstats

            pstats.Stats(str(args.bridge_profile)).sort_stats("tottime").print_stats(25)
        if bridge is not None and (workdir / "bridge.log").stat().st_size:
            print(f"bridge log (tail):\n{(workdir / 'bridge.log').read_text()[-2000:]}")
        if not args.generator_only and not args.keep:
            asyncio.run(drop_database())
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
