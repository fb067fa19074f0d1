"""`epicura serve` as a real process, spoken to over real HTTP: the embedded default, a
production-style start on PostgreSQL + Redis (with `epicura worker` sending the e-mails), the
production refusal, and a graceful shutdown on SIGTERM with a request in flight."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from redis.asyncio import Redis

from tests.conftest import (
    REDIS_URL,
    RUN_ID,
    TEST_JWT_SECRET,
    TEST_REFRESH_SECRET,
    delete_keys,
    free_port,
)
from tests.e2e import (
    Running,
    fresh_pg_database,
    is_empty,
    pg_url,
    process_env,
    run_cli,
    serving,
    started,
)
from tests.support import API, STRONG_PASSWORD, Mailbox, bearer, token_in

pytestmark = pytest.mark.anyio

AUTH_PATHS = {f"{API}/auth/{name}" for name in (
    "register", "login", "refresh", "logout", "logout-all", "verify-email",
    "password/forgot", "password/reset")} | {f"{API}/users/me"}


def _address(tag: str) -> str:
    return f"test_serve.{tag}.{uuid.uuid4().hex[:8]}@example.com"


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    folder = tmp_path / "cwd"
    folder.mkdir()
    return folder


def _started_event(server: Running) -> dict[str, Any]:
    for line in server.output.lines:
        if line.startswith("{") and (event := json.loads(line)).get("event") == "started":
            return dict(event)
    raise AssertionError(server.output.text)


async def _docs_and_schema(client: httpx2.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in docs.text.lower() and "/openapi.json" in docs.text
    schema = await client.get("/openapi.json")
    assert schema.status_code == 200
    paths = set(schema.json()["paths"])
    assert paths >= AUTH_PATHS, AUTH_PATHS - paths
    assert "post" in schema.json()["paths"][f"{API}/auth/login"]


async def _account_flow(client: httpx2.AsyncClient, mailbox: Mailbox, address: str,
                        *, diagnostics: Running) -> None:
    """register → e-mail → verify → login → refresh → reuse of the old refresh token refused
    (REFRESH_GRACE_S=0) → the session is gone: /users/me 401."""
    async def refresh(tokens: dict[str, Any]) -> httpx2.Response:
        return await client.post(f"{API}/auth/refresh",
                                 json={"refresh_token": tokens["refresh_token"]})

    register = await client.post(f"{API}/auth/register", json={
        "email": address, "password": STRONG_PASSWORD, "display_name": "E2E Cook"})
    assert register.status_code == 202, register.text
    try:
        [verification] = await mailbox.wait_for(address, timeout=60)
    except TimeoutError:
        raise AssertionError(f"no e-mail for {address}:\n{diagnostics.output.text}") from None
    verify = await client.post(f"{API}/auth/verify-email", json={"token": token_in(verification)})
    assert verify.status_code == 204, verify.text

    login = await client.post(f"{API}/auth/login", json={
        "email": address, "password": STRONG_PASSWORD, "session_name": "e2e"})
    assert login.status_code == 200, login.text
    first = login.json()
    me = await client.get(f"{API}/users/me", headers=bearer(first))
    assert me.status_code == 200
    assert me.json()["email"] == address and me.json()["email_verified"] is True

    rotated = await refresh(first)
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await client.get(f"{API}/users/me", headers=bearer(second))).status_code == 200

    reused = await refresh(first)
    assert reused.status_code == 401
    assert reused.json()["code"] == "token_reused"
    gone = await client.get(f"{API}/users/me", headers=bearer(second))
    assert gone.status_code == 401
    child = await refresh(second)
    assert child.status_code == 401


# --- the embedded default ------------------------------------------------------------------


async def test_serve_on_the_embedded_default(cwd: Path, smtp: tuple[int, Mailbox]) -> None:
    env = process_env(SMTP_URL=f"smtp://127.0.0.1:{smtp[0]}", REFRESH_GRACE_S="0")
    async with serving(cwd, env) as server:
        started_event = _started_event(server)
        assert started_event["embedded"] is True and started_event["env"] == "development"
        async with httpx2.AsyncClient(base_url=server.url, timeout=30) as client:
            await _docs_and_schema(client)
            await _account_flow(client, smtp[1], _address("embedded"), diagnostics=server)
        assert (cwd / "var" / "epicura.db").is_file()  # the SQLite file of the embedded default


# --- production-style: PostgreSQL, Redis, a separate worker --------------------------------


async def _keys_with(prefix: str) -> int:
    redis = Redis.from_url(REDIS_URL)
    try:
        return len([key async for key in redis.scan_iter(match=prefix + "*", count=500)])
    finally:
        await redis.aclose()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    prefix = f"epicura-test-{RUN_ID}-serve-{uuid.uuid4().hex[:8]}:"
    try:
        yield prefix
    finally:
        await delete_keys(prefix)


async def test_serve_production_style_on_postgres_and_redis(
    cwd: Path, smtp: tuple[int, Mailbox], redis_prefix: str
) -> None:
    async with fresh_pg_database("epicura_test_e2e_") as name:
        env = process_env(
            EPICURA_ENV="production", JWT_SECRET=TEST_JWT_SECRET,
            JWT_REFRESH_SECRET=TEST_REFRESH_SECRET, DATABASE_URL=pg_url(name),
            REDIS_URL=REDIS_URL, REDIS_PREFIX=redis_prefix,
            SMTP_URL=f"smtp://127.0.0.1:{smtp[0]}", PUBLIC_BASE_URL="https://app.epicura.test",
            REFRESH_GRACE_S="0",
        )
        check = await run_cli("config", "check", cwd=cwd, env=env)
        assert check.returncode == 0 and "ready for production" in check.stdout, check.output
        migrate = await run_cli("db", "upgrade", cwd=cwd, env=env)
        assert migrate.returncode == 0, migrate.output

        async with started("worker", cwd=cwd, env=env) as worker, serving(cwd, env) as server:
            started_event = _started_event(server)
            assert started_event["embedded"] is False and started_event["env"] == "production"
            async with httpx2.AsyncClient(base_url=server.url, timeout=30) as client:
                ready = await client.get("/readyz")
                assert ready.status_code == 200, ready.text
                assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
                assert "max-age" in ready.headers["strict-transport-security"]
                await _docs_and_schema(client)
                await _account_flow(client, smtp[1], _address("production"), diagnostics=worker)
            assert await _keys_with(redis_prefix) > 0  # rate limits and revocations live in Redis
            assert worker.process.returncode is None, worker.output.text
        assert is_empty(cwd)  # no SQLite file, no mail folder: everything went to the services


async def test_serve_refuses_production_with_defaults(cwd: Path) -> None:
    port = free_port()
    env = process_env(EPICURA_ENV="production")
    async with started("serve", "--host", "127.0.0.1", "--port", str(port),
                       cwd=cwd, env=env) as server:
        assert await server.exit_code() == 2
        await server.output.wait_for("refusing to start in production: JWT_SECRET")
        for problem in ("JWT_REFRESH_SECRET is the development default",
                        "DATABASE_URL must point at PostgreSQL", "REDIS_URL is not set"):
            assert problem in server.output.text
        async with httpx2.AsyncClient() as client:
            with pytest.raises(httpx2.ConnectError):
                await client.get(f"http://127.0.0.1:{port}/healthz")
    assert is_empty(cwd)


# --- graceful shutdown ---------------------------------------------------------------------


async def _wait_in_flight(server: Running, at_least: int) -> None:
    """Until the server counts `at_least` requests in progress (this /metrics call included),
    i.e. it has received the headers of the slow request."""
    async with httpx2.AsyncClient(base_url=server.url, timeout=10) as client:
        with anyio.fail_after(30):
            while True:
                metrics = (await client.get("/metrics")).text
                [gauge] = [line for line in metrics.splitlines()
                           if line.startswith("epicura_http_in_flight ")]
                if float(gauge.split()[1]) >= at_least:
                    return


async def test_sigterm_lets_the_request_in_flight_finish(cwd: Path,
                                                         smtp: tuple[int, Mailbox]) -> None:
    env = process_env(SMTP_URL=f"smtp://127.0.0.1:{smtp[0]}")
    address = _address("shutdown")
    first_chunk_sent = anyio.Event()
    send_the_rest = anyio.Event()
    replies: list[httpx2.Response] = []

    async def slow_body() -> AsyncIterator[bytes]:
        yield json.dumps({"email": address})[:-1].encode() + b", "
        first_chunk_sent.set()
        await send_the_rest.wait()
        yield b'"password": "not the password at all", "session_name": "e2e"}'

    async with serving(cwd, env) as server:
        async with httpx2.AsyncClient(base_url=server.url, timeout=60) as slow:

            async def login() -> None:
                replies.append(await slow.post(f"{API}/auth/login", content=slow_body(),
                                               headers={"Content-Type": "application/json"}))

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(login)
                with anyio.fail_after(30):
                    await first_chunk_sent.wait()
                await _wait_in_flight(server, at_least=2)

                server.process.send_signal(signal.SIGTERM)
                # Printed once the listener is closed and open connections were asked to finish.
                await server.output.wait_for("Waiting for connections to close")
                async with httpx2.AsyncClient(base_url=server.url, timeout=10) as fresh:
                    with pytest.raises(httpx2.ConnectError):
                        await fresh.get("/healthz")
                assert server.process.returncode is None  # still serving the request in flight
                send_the_rest.set()

        [reply] = replies
        assert reply.status_code == 401, reply.text
        assert reply.json()["code"] == "invalid_credentials"
        assert reply.headers["connection"] == "close"
        assert await server.exit_code() == 0, server.output.text
        await server.output.wait_for("Application shutdown complete")
        assert "Cancel" not in server.output.text  # nothing was cut off by the grace timeout
