"""Processes and accounting of the ingest benchmark (bench/ingest.py): the private Mosquitto,
the `epicura bridge` under test, its metrics, and CPU seconds read from /proc."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
# BENCH_EPICURA: another `epicura` entry point (e.g. a script that patches something first).
EPICURA = os.environ.get("BENCH_EPICURA", str(ROOT / ".venv" / "bin" / "epicura"))
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = f"epicura_bench_ingest_{os.getpid()}"  # two runs at once must not share one
DB_URL = f"{PG_ADMIN.rsplit('/', 1)[0]}/{DB_NAME}"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def epicura_entry() -> list[str]:
    return [sys.executable, EPICURA] if EPICURA.endswith(".py") else [EPICURA]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# --- CPU accounting from /proc ----------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class CpuMeter:
    """CPU seconds of the bridge, Mosquitto, this process (the generator) and the PostgreSQL
    backends serving the bench database (the machine's other databases are not counted)."""

    pids: dict[str, int]
    backends: list[int] = field(default_factory=list)
    start: dict[str, float] = field(default_factory=dict)

    def sample(self) -> dict[str, float]:
        values = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        values["postgres"] = sum(cpu_seconds(pid) for pid in self.backends)
        values["generator"] = sum(os.times()[:2])
        return values

    async def begin(self, conn: asyncpg.Connection) -> None:
        self.backends = [row["pid"] for row in await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            DB_NAME)]
        self.start = self.sample()

    def percent(self, seconds: float) -> dict[str, float]:
        end = self.sample()
        return {name: 100 * (end[name] - self.start[name]) / seconds for name in end}


# --- processes --------------------------------------------------------------------------------

def service_env(mqtt_port: int | None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("EPICURA_", "DATABASE_", "REDIS_", "MQTT_"))}
    base.update(DATABASE_URL=DB_URL, REDIS_URL=REDIS_URL,
                REDIS_PREFIX=f"epicura-bench-ingest-{os.getpid()}:",
                EPICURA_ENV="development", LOG_LEVEL="WARNING")
    if mqtt_port is not None:
        base["MQTT_BROKER_URL"] = f"mqtt://127.0.0.1:{mqtt_port}"
    return base


def pinned(command: list[str], cpu: str | None) -> list[str]:
    return ["taskset", "-c", cpu, *command] if cpu is not None else command


def start_broker(folder: Path, cpu: str | None) -> tuple[subprocess.Popen[bytes], int]:
    from epicura.bridge.broker_config import write_config

    port = free_port()
    config = write_config(folder, port=port, dynsec=False, overwrite=True)
    process = subprocess.Popen(pinned([MOSQUITTO, "-c", str(config.conf_path)], cpu),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process, port
        time.sleep(0.05)
    process.kill()
    raise SystemExit("mosquitto did not start")


def start_bridge(port: int, metrics_port: int, cpu: str | None, log: Path,
                 extra: list[str], profile: Path | None) -> subprocess.Popen[bytes]:
    entry = epicura_entry()
    command = [*entry, "bridge", "--client-id", "bench-bridge", "--metrics-host", "127.0.0.1",
               "--metrics-port", str(metrics_port), "--no-presence-sweep", *extra]
    if profile is not None:  # cProfile writes its file when the bridge exits on SIGTERM
        script = log.with_name("run_epicura.py")
        script.write_text("from epicura.cli import main\nmain()\n")
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), str(script),
                   *command[len(entry):]]
    with log.open("wb") as handle:
        return subprocess.Popen(pinned(command, cpu), env=service_env(port), cwd=ROOT,
                                stdout=handle, stderr=subprocess.STDOUT)


def scrape(metrics_port: int) -> dict[str, float]:
    """The bridge's Prometheus counters (`name{labels}` → value)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            body = r.read().decode()
    except OSError:
        return {}
    values = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                continue
    return values


def bridge_figures(before: dict[str, float], after: dict[str, float]) -> str:
    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    batches = delta("epicura_ingest_batch_messages_count")
    if not batches:
        return "no bridge metrics"
    stored = delta('epicura_mqtt_messages_total{kind="telemetry",outcome="stored"}')
    size = delta("epicura_ingest_batch_messages_sum") / batches
    seconds = delta("epicura_ingest_batch_seconds_sum") / batches
    return (f"{batches:,.0f} batches of {size:.0f} messages on average, {1000 * seconds:.1f} ms "
            f"each; {stored:,.0f} stored; failures "
            f"{delta('epicura_ingest_store_failures_total'):.0f}")


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
