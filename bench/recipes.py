"""Benchmark of the recipe hot paths: list, search and by-id, cold and warm caches.

Method (as research/performance-anchors.md): one `epicura serve` process pinned to CPU 0,
`wrk -t1 -c64` pinned to CPU 1, PostgreSQL and Redis unpinned; a 3 s warm-up, then 10 s
measured, the median of 3 rounds. "cold" runs the server with RECIPE_CACHE_ENABLED=false (every
request reads PostgreSQL), "warm" with the caches on. Needs `wrk` (apt-get install wrk).

    uv run python bench/recipes.py [--recipes 10000] [--rounds 3] [--duration 10]
    uv run python bench/recipes.py --in-process [--requests 3000]

`--in-process` calls the ASGI app directly, one request at a time, and prints the Python CPU
time per request (PostgreSQL's share not included). It is far less sensitive to other load on
the machine than wrk's requests/s, so use it to compare changes.

After seeding, the tables are vacuumed and analysed (what autovacuum would do shortly after a bulk
load): freshly seeded rows leave a dead version each and the GIN indexes a pending list, and with
no statistics the planner chose sequential scans. Prints a table with the load average before and
after; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx2

ROOT = Path(__file__).resolve().parent.parent
EPICURA = str(ROOT / ".venv" / "bin" / "epicura")
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = "epicura_bench"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BY_ID_LUA = """
local ids = {}
for line in io.lines("%s") do ids[#ids + 1] = line end
local i = 0
request = function()
  i = i %% #ids + 1
  return wrk.format("GET", "/api/v1/recipes/" .. ids[i])
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env(cache: bool) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("EPICURA_", "DATABASE_"))}
    base.update(
        DATABASE_URL=f"{PG_ADMIN.rsplit('/', 1)[0]}/{DB_NAME}",
        REDIS_URL=REDIS_URL,
        REDIS_PREFIX="epicura-bench:",
        EPICURA_ENV="development",
        LOG_LEVEL="WARNING",
        RECIPE_CACHE_ENABLED="true" if cache else "false",
    )
    return base


async def prepare(count: int) -> tuple[list[str], str]:
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DB_NAME):
            await admin.execute(f'CREATE DATABASE "{DB_NAME}"')
    finally:
        await admin.close()
    subprocess.run([EPICURA, "db", "upgrade"], env=env(True), check=True, cwd=ROOT)
    conn = await asyncpg.connect(env(True)["DATABASE_URL"])
    try:
        have = await conn.fetchval(
            "SELECT count(*) FROM recipes WHERE status = 'published' AND visibility = 'public'"
        )
        if have < count:
            print(f"seeding {count - have} recipes …", flush=True)
            subprocess.run(
                [EPICURA, "seed", "--recipes", str(count - have)],
                env=env(True),
                check=True,
                cwd=ROOT,
            )
        await conn.execute("VACUUM ANALYZE recipes, recipe_versions")
        ids = [
            str(r["id"])
            for r in await conn.fetch(
                "SELECT id FROM recipes WHERE status = 'published' AND visibility = 'public' "
                "ORDER BY random() LIMIT 1000"
            )
        ]
        words = await conn.fetch(
            "SELECT lower(w) AS w, count(*) AS n FROM recipes, "
            "regexp_split_to_table(title, '\\s+') AS w WHERE length(w) > 4 "
            "GROUP BY 1 ORDER BY 2 DESC LIMIT 20"
        )
        word = random.Random(7).choice([r["w"] for r in words[5:]] or ["soup"])
    finally:
        await conn.close()
    return ids, re.sub(r"\W", "", word)


def start_server(port: int, cache: bool) -> subprocess.Popen[bytes]:
    command = ["taskset", "-c", "0", EPICURA, "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        command, env=env(cache), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx2.TransportError:
            if server.poll() is not None:
                raise SystemExit(server.stderr.read().decode() if server.stderr else "died")
        time.sleep(0.1)
    server.kill()
    raise SystemExit("server did not start")


def wrk(url: str, seconds: int, script: str | None = None) -> tuple[float, float, int]:
    command = ["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{seconds}s", "--latency"]
    if script:
        command += ["-s", script]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99 is not None
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, float(p99.group(1)) * scale, int(errors.group(1)) if errors else 0


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def _asgi_get(app: Any, path: str, query: bytes = b"") -> int:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query,
        "root_path": "", "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000), "state": {},
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        status = message.get("status", status)

    await app(scope, receive, send)
    return status


async def in_process(ids: list[str], word: str, requests: int) -> None:
    """Python CPU per request through the whole ASGI stack, one request at a time."""
    from epicura.app import create_app
    from epicura.config import Settings
    from epicura.kit.logging import configure

    print("| endpoint | cache | µs CPU per request | µs wall per request |\n|---|---|---|---|")
    for mode in ("cold", "warm"):
        os.environ.update(env(cache=mode == "warm"))
        settings = Settings()
        configure(settings.log_level)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            for name, path, query in (
                ("GET /api/v1/recipes?limit=20", "/api/v1/recipes", b"limit=20"),
                (f"GET /api/v1/recipes?q={word}&limit=20", "/api/v1/recipes",
                 f"q={word}&limit=20".encode()),
                ("GET /api/v1/recipes/{id}", None, b""),
            ):
                count = requests if "q=" not in name or mode == "warm" else requests // 20
                for i in range(len(ids)):  # every id read once: the warm by-id cache is full
                    assert await _asgi_get(app, path or f"/api/v1/recipes/{ids[i]}", query) == 200
                cpu, wall = time.process_time(), time.perf_counter()
                for i in range(count):
                    await _asgi_get(app, path or f"/api/v1/recipes/{ids[i % len(ids)]}", query)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                print(f"| `{name}` | {mode} | {cpu / count * 1e6:,.0f} | "
                      f"{wall / count * 1e6:,.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipes", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--in-process", action="store_true")
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    ids, word = asyncio.run(prepare(args.recipes))
    print(f"load average before: {load_average()}")
    if args.in_process:
        asyncio.run(in_process(ids, word, args.requests))
        print(f"load average after: {load_average()}")
        return
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="epicura-bench-"))
    (workdir / "ids.txt").write_text("\n".join(ids) + "\n")
    script = workdir / "by_id.lua"
    script.write_text(BY_ID_LUA % (workdir / "ids.txt"))
    endpoints = [
        ("GET /api/v1/recipes?limit=20", "/api/v1/recipes?limit=20", None),
        (f"GET /api/v1/recipes?q={word}&limit=20", f"/api/v1/recipes?q={word}&limit=20", None),
        ("GET /api/v1/recipes/{id}", "/", str(script)),
    ]
    results: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
    for mode in ("cold", "warm"):
        port = free_port()
        server = start_server(port, cache=mode == "warm")
        try:
            for _ in range(args.rounds):
                for name, path, lua in endpoints:
                    url = f"http://127.0.0.1:{port}{path}"
                    wrk(url, 3, lua)
                    results.setdefault((mode, name), []).append(wrk(url, args.duration, lua))
        finally:
            server.terminate()
            server.wait(timeout=40)
    print(
        f"\n{args.recipes} recipes; 1 server process on CPU 0, wrk -t1 -c64 on CPU 1; "
        f"median of {args.rounds} × {args.duration} s\n"
    )
    print("| endpoint | cache | requests/s | p99 ms | non-2xx |\n|---|---|---|---|---|")
    for (mode, name), runs in results.items():
        rps = statistics.median(r[0] for r in runs)
        p99 = statistics.median(r[1] for r in runs)
        print(f"| `{name}` | {mode} | {rps:,.0f} | {p99:.1f} | {sum(r[2] for r in runs)} |")
    print(f"load average after: {load_average()}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
