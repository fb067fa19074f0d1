"""The real `epicura` process: run its commands, start `serve`/`worker`, read their output.

Shared by tests/test_cli.py and tests/e2e/test_serve.py. Every process gets a controlled
environment (nothing inherited from the developer's shell or a `.env`) and runs in a temp folder;
every process started here is killed when its context ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import asyncpg
import httpx2
from anyio.abc import ByteReceiveStream, Process

from tests.conftest import PG_ADMIN_DSN, free_port

EPICURA = Path(sys.executable).with_name("epicura")


def is_empty(folder: Path) -> bool:
    return not any(folder.iterdir())


def process_env(**values: str) -> dict[str, str]:
    """Only what a process needs to run, plus `values`: no DATABASE_URL, REDIS_URL or secret of
    the calling shell leaks in."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(values)
    return env


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


async def run_cli(*args: str, cwd: Path, env: dict[str, str], stdin: str | None = None,
                  limit_s: float = 120) -> Result:
    """`epicura ARGS...` to completion (killed if it outlives `limit_s`)."""
    assert EPICURA.exists(), EPICURA
    with anyio.fail_after(limit_s):
        done = await anyio.run_process(
            [str(EPICURA), *args], input=None if stdin is None else stdin.encode(),
            cwd=cwd, env=env, check=False,
        )
    return Result(done.returncode, done.stdout.decode(), done.stderr.decode())


def pg_url(name: str, password: str | None = None) -> str:
    """The URL of database `name` on the test server, optionally with a password (the local
    server trusts 127.0.0.1, so any password is accepted: it is there to test masking)."""
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    if password is not None:
        scheme, _, rest = base.partition("://")
        credentials, _, host = rest.rpartition("@")
        if credentials and ":" not in credentials:
            base = f"{scheme}://{credentials}:{password}@{host}"
    return f"{base}/{name}"


@asynccontextmanager
async def fresh_pg_database(prefix: str) -> AsyncIterator[str]:
    """An empty PostgreSQL database named `<prefix><random>`, dropped at the end; yields its
    name."""
    name = f"{prefix}{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await admin(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with anyio.CancelScope(shield=True):
            await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Output:
    """The lines a process printed (stdout and stderr merged), awaited without sleeping."""

    lines: list[str] = field(default_factory=list)
    closed: bool = False
    _changed: anyio.Event = field(default_factory=anyio.Event)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def _notify(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def pump(self, stream: ByteReceiveStream) -> None:
        buffer = b""
        try:
            async for chunk in stream:
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                for line in complete:
                    self.lines.append(line.decode(errors="replace"))
                    self._notify()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
        finally:
            if buffer:
                self.lines.append(buffer.decode(errors="replace"))
            self.closed = True
            self._notify()

    async def changed_since(self, seen: int) -> None:
        """Return once there are more than `seen` lines or the output has ended."""
        while len(self.lines) <= seen and not self.closed:
            await self._changed.wait()

    async def wait_for(self, text: str, limit_s: float = 60) -> str:
        """The first line containing `text`, waiting for it to be printed."""
        seen = 0
        with anyio.fail_after(limit_s):
            while True:
                for line in self.lines[seen:]:
                    if text in line:
                        return line
                seen = len(self.lines)
                if self.closed:
                    raise AssertionError(f"the output ended without {text!r}:\n{self.text}")
                await self.changed_since(seen)


@dataclass
class Running:
    process: Process
    output: Output
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def exit_code(self, limit_s: float = 60) -> int:
        with anyio.fail_after(limit_s):
            return await self.process.wait()


@asynccontextmanager
async def started(*args: str, cwd: Path, env: dict[str, str]) -> AsyncIterator[Running]:
    """`epicura ARGS...` running in the background, its output collected; killed at the end."""
    assert EPICURA.exists(), EPICURA
    process = await anyio.open_process(
        [str(EPICURA), *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    running = Running(process, Output())
    try:
        async with anyio.create_task_group() as tasks:
            assert process.stdout is not None
            tasks.start_soon(running.output.pump, process.stdout)
            try:
                yield running
            finally:
                tasks.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.wait()
            await process.aclose()


async def wait_healthy(server: Running, limit_s: float = 60) -> None:
    """Poll /healthz until it answers 200; between attempts wait for the server to print
    something (it prints a line once it listens), not for a fixed time."""
    with anyio.fail_after(limit_s):
        async with httpx2.AsyncClient(base_url=server.url, timeout=10) as client:
            while True:
                seen = len(server.output.lines)
                try:
                    reply = await client.get("/healthz")
                except httpx2.ConnectError:
                    pass
                else:
                    assert reply.status_code == 200, reply.text
                    assert reply.json() == {"status": "ok"}
                    return
                if server.output.closed:
                    code = await server.process.wait()
                    raise AssertionError(f"the server exited ({code}):\n{server.output.text}")
                await server.output.changed_since(seen)


@asynccontextmanager
async def serving(cwd: Path, env: dict[str, str], *extra: str) -> AsyncIterator[Running]:
    """`epicura serve` on a free port of 127.0.0.1, yielded once /healthz answers."""
    port = free_port()
    async with started("serve", "--host", "127.0.0.1", "--port", str(port), *extra,
                       cwd=cwd, env=env) as server:
        server.port = port
        await wait_healthy(server)
        yield server
