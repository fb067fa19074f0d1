"""Ending login sessions (checklist T10) and revocation when Redis is down (T11).

Every way of ending sessions is checked the same way: refresh in the affected families is 401, their
access tokens are 401 on the next request (both on a route that reads the user row and on one that
only checks the session), and sessions that were not affected keep working. The WebSocket part of
T10 (closing live connections with 1008) belongs to the WebSocket module and is not tested here.

T11 runs the app against a private redis-server started and killed by the test, never the shared
one.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx2
import pytest
from redis.exceptions import RedisError

from epicura.auth.emails import TEMPLATES
from epicura.auth.service import create_admin
from epicura.config import Settings
from epicura.kit.errors import DependencyUnavailable
from tests.support import API, STRONG_PASSWORD, Mailbox, Service, bearer, running, token_in

pytestmark = pytest.mark.anyio

ADMIN_PASSWORD = "an admin's long passphrase 42"
NEW_PASSWORD = "a completely new passphrase"


# --- helpers -------------------------------------------------------------------------------------


def email(case: str) -> str:
    return f"test_revocation-{case}-{uuid.uuid4().hex[:8]}@example.com"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def sql(pg_database: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pg_database)
    try:
        yield conn
    finally:
        await conn.close()


async def refresh(svc: Service, tokens: dict[str, Any]) -> httpx2.Response:
    return await svc.client.post(f"{API}/auth/refresh",
                                 json={"refresh_token": tokens["refresh_token"]})


async def logout(svc: Service, tokens: dict[str, Any]) -> httpx2.Response:
    return await svc.client.post(f"{API}/auth/logout",
                                 json={"refresh_token": tokens["refresh_token"]})


async def access_status(svc: Service, tokens: dict[str, Any]) -> tuple[int, int]:
    """(GET /users/me, GET /users/me/sessions): the second checks only the token and its session."""
    me = await svc.client.get(f"{API}/users/me", headers=bearer(tokens))
    sessions = await svc.client.get(f"{API}/users/me/sessions", headers=bearer(tokens))
    return me.status_code, sessions.status_code


async def assert_ended(svc: Service, *families: dict[str, Any]) -> None:
    for tokens in families:
        assert await access_status(svc, tokens) == (401, 401)
        reply = await refresh(svc, tokens)
        assert reply.status_code == 401, reply.text
        assert reply.json()["code"] == "invalid_token"


async def assert_alive(svc: Service, tokens: dict[str, Any]) -> dict[str, Any]:
    """The session works (access and refresh); returns the rotated pair."""
    assert await access_status(svc, tokens) == (200, 200)
    reply = await refresh(svc, tokens)
    assert reply.status_code == 200, reply.text
    rotated: dict[str, Any] = reply.json()
    assert await access_status(svc, rotated) == (200, 200)
    return rotated


async def two_sessions(svc: Service, address: str) -> tuple[dict[str, Any], dict[str, Any]]:
    phone = await svc.signed_up(address)
    tablet = (await svc.login(address, session_name="tablet")).json()
    assert phone["session_id"] != tablet["session_id"]
    return phone, tablet


async def user_id(svc: Service, tokens: dict[str, Any]) -> str:
    reply = await svc.client.get(f"{API}/users/me", headers=bearer(tokens))
    assert reply.status_code == 200
    return str(reply.json()["id"])


async def new_admin(svc: Service, address: str) -> dict[str, Any]:
    async with svc.runtime.db.transaction() as session:
        await create_admin(svc.runtime, session, address, ADMIN_PASSWORD, "Admin")
    reply = await svc.login(address, ADMIN_PASSWORD, session_name="admin console")
    assert reply.status_code == 200, reply.text
    tokens: dict[str, Any] = reply.json()
    return tokens


async def session_revoked(
    sql: asyncpg.Connection, tokens: dict[str, Any]
) -> tuple[bool, str | None]:
    row = await sql.fetchrow("SELECT revoked_at, revoked_reason FROM login_sessions WHERE id = $1",
                             uuid.UUID(tokens["session_id"]))
    assert row is not None
    return row["revoked_at"] is not None, row["revoked_reason"]


# --- T10 logout and revocation paths -------------------------------------------------------------


async def test_t10a_logout_ends_only_this_session(svc: Service, sql: asyncpg.Connection) -> None:
    phone, tablet = await two_sessions(svc, email("t10a"))
    stranger = await svc.signed_up(email("t10a-other"))

    assert (await logout(svc, phone)).status_code == 204
    await assert_ended(svc, phone)
    assert await session_revoked(sql, phone) == (True, "logout")
    tablet = await assert_alive(svc, tablet)
    await assert_alive(svc, stranger)
    # Logging out again, or with a token nobody knows, changes nothing and says nothing.
    assert (await logout(svc, phone)).status_code == 204
    assert (await logout(svc, {"refresh_token": "not-a-token"})).status_code == 204
    listed = await svc.client.get(f"{API}/users/me/sessions", headers=bearer(tablet))
    assert [(s["id"], s["current"]) for s in listed.json()] == [(tablet["session_id"], True)]


async def test_t10b_logout_all_ends_every_session_of_the_user(
    svc: Service, sql: asyncpg.Connection
) -> None:
    phone, tablet = await two_sessions(svc, email("t10b"))
    stranger = await svc.signed_up(email("t10b-other"))
    assert (await svc.client.post(f"{API}/auth/logout-all")).status_code == 401

    reply = await svc.client.post(f"{API}/auth/logout-all", headers=bearer(tablet))
    assert reply.status_code == 204
    await assert_ended(svc, phone, tablet)
    assert await session_revoked(sql, phone) == (True, "logout_all")
    await assert_alive(svc, stranger)


async def test_t10c_password_change_ends_every_session(
    svc: Service, sql: asyncpg.Connection
) -> None:
    address = email("t10c-change")
    phone, tablet = await two_sessions(svc, address)
    stranger = await svc.signed_up(email("t10c-change-other"))

    reply = await svc.client.post(f"{API}/users/me/password", headers=bearer(phone), json={
        "current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD})
    assert reply.status_code == 204
    await assert_ended(svc, phone, tablet)
    assert await session_revoked(sql, tablet) == (True, "password_changed")
    await assert_alive(svc, stranger)
    assert (await svc.login(address, NEW_PASSWORD)).status_code == 200


async def test_t10c_password_reset_ends_every_session(
    svc: Service, sql: asyncpg.Connection
) -> None:
    address = email("t10c-reset")
    phone, tablet = await two_sessions(svc, address)
    stranger = await svc.signed_up(email("t10c-reset-other"))

    forgot = await svc.client.post(f"{API}/auth/password/forgot", json={"email": address})
    assert forgot.status_code == 202
    await svc.run_jobs()
    messages = await svc.mailbox.wait_for(address, count=2)  # verification + reset link
    [link] = [m for m in messages if m["Subject"] == TEMPLATES["reset_password"][0]]
    # Asking for a link ends nothing by itself.
    assert await access_status(svc, phone) == (200, 200)

    reset = await svc.client.post(f"{API}/auth/password/reset",
                                  json={"token": token_in(link), "new_password": NEW_PASSWORD})
    assert reset.status_code == 204
    await assert_ended(svc, phone, tablet)
    assert await session_revoked(sql, phone) == (True, "password_reset")
    await assert_alive(svc, stranger)
    assert (await svc.login(address, NEW_PASSWORD)).status_code == 200


async def test_t10d_admin_disabling_the_user_ends_every_session(
    svc: Service, sql: asyncpg.Connection
) -> None:
    address = email("t10d")
    phone, tablet = await two_sessions(svc, address)
    stranger = await svc.signed_up(email("t10d-other"))
    admin = await new_admin(svc, email("t10d-admin"))
    uid = await user_id(svc, phone)

    # A plain user cannot do it.
    forbidden = await svc.client.patch(f"{API}/admin/users/{uid}", headers=bearer(stranger),
                                       json={"is_active": False})
    assert forbidden.status_code == 403
    await assert_alive(svc, phone)
    phone = (await svc.login(address, session_name="phone")).json()

    reply = await svc.client.patch(f"{API}/admin/users/{uid}", headers=bearer(admin),
                                   json={"is_active": False})
    assert reply.status_code == 200, reply.text
    assert reply.json()["is_active"] is False
    await assert_ended(svc, phone, tablet)
    assert await session_revoked(sql, tablet) == (True, "user_disabled")
    assert (await svc.login(address)).status_code == 401
    await assert_alive(svc, admin)
    await assert_alive(svc, stranger)

    # Enabling the account again does not bring the ended sessions back.
    enabled = await svc.client.patch(f"{API}/admin/users/{uid}", headers=bearer(admin),
                                     json={"is_active": True})
    assert enabled.status_code == 200
    await assert_ended(svc, phone, tablet)
    assert (await svc.login(address)).status_code == 200


async def test_t10e_admin_revokes_the_users_sessions(svc: Service, sql: asyncpg.Connection) -> None:
    address = email("t10e-admin")
    phone, tablet = await two_sessions(svc, address)
    stranger = await svc.signed_up(email("t10e-admin-other"))
    admin = await new_admin(svc, email("t10e-admin-admin"))
    uid = await user_id(svc, phone)

    denied = await svc.client.post(f"{API}/admin/users/{uid}/revoke-sessions",
                                   headers=bearer(stranger))
    assert denied.status_code == 403
    missing = await svc.client.post(f"{API}/admin/users/{uuid.uuid4()}/revoke-sessions",
                                    headers=bearer(admin))
    assert missing.status_code == 404

    reply = await svc.client.post(f"{API}/admin/users/{uid}/revoke-sessions", headers=bearer(admin))
    assert reply.status_code == 204
    await assert_ended(svc, phone, tablet)
    assert await session_revoked(sql, phone) == (True, "revoked_by_admin")
    await assert_alive(svc, admin)
    await assert_alive(svc, stranger)
    # Unlike disabling, the user may sign in again.
    assert (await svc.login(address)).status_code == 200


async def test_t10e_user_lists_and_ends_one_of_their_sessions(
    svc: Service, sql: asyncpg.Connection
) -> None:
    phone, tablet = await two_sessions(svc, email("t10e-self"))
    stranger = await svc.signed_up(email("t10e-self-other"))

    listed = await svc.client.get(f"{API}/users/me/sessions", headers=bearer(phone))
    assert listed.status_code == 200
    rows = {s["id"]: s for s in listed.json()}
    assert set(rows) == {phone["session_id"], tablet["session_id"]}
    assert rows[phone["session_id"]]["current"] is True
    assert rows[tablet["session_id"]]["current"] is False
    assert rows[tablet["session_id"]]["name"] == "tablet"

    # Another user's session, or one that does not exist, is 404 and stays alive.
    for sid in (stranger["session_id"], str(uuid.uuid4())):
        reply = await svc.client.delete(f"{API}/users/me/sessions/{sid}", headers=bearer(phone))
        assert reply.status_code == 404
    stranger = await assert_alive(svc, stranger)

    reply = await svc.client.delete(f"{API}/users/me/sessions/{tablet['session_id']}",
                                    headers=bearer(phone))
    assert reply.status_code == 204
    await assert_ended(svc, tablet)
    assert await session_revoked(sql, tablet) == (True, "revoked_by_user")
    phone = await assert_alive(svc, phone)
    listed = await svc.client.get(f"{API}/users/me/sessions", headers=bearer(phone))
    assert [(s["id"], s["current"]) for s in listed.json()] == [(phone["session_id"], True)]
    # Ending an already ended session is 404; ending one's own current session ends it.
    again = await svc.client.delete(f"{API}/users/me/sessions/{tablet['session_id']}",
                                    headers=bearer(phone))
    assert again.status_code == 404
    own = await svc.client.delete(f"{API}/users/me/sessions/{phone['session_id']}",
                                  headers=bearer(phone))
    assert own.status_code == 204
    await assert_ended(svc, phone)
    await assert_alive(svc, stranger)


# --- T11 revocation with Redis down --------------------------------------------------------------


class PrivateRedis:
    """A redis-server of this test only, on a free port: started, stopped and restarted at will."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self.output: list[bytes] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        ready = asyncio.Event()
        self._reader = asyncio.create_task(self._read(ready))
        async with asyncio.timeout(30):
            await ready.wait()  # set by the "Ready to accept connections" log line, or at exit
        if self.proc.returncode is not None or not any(b"Ready to accept" in line
                                                       for line in self.output):
            raise RuntimeError(b"".join(self.output).decode(errors="replace"))

    async def _read(self, ready: asyncio.Event) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:  # keeps draining, so the server never blocks on it
            self.output.append(line)
            if b"Ready to accept connections" in line:
                ready.set()
        ready.set()

    async def stop(self) -> None:
        """`kill -TERM` and wait for the process to be gone."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader
        self.proc = self._reader = None


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    workdir = tmp_path / "private-redis"
    workdir.mkdir()
    server = PrivateRedis(workdir)
    try:
        yield server
    finally:
        await server.stop()


def on_private_redis(pg_settings: Settings, server: PrivateRedis) -> Settings:
    return pg_settings.model_copy(update={"redis_url": server.url})


async def assert_redis_down(app: Service) -> None:
    with pytest.raises(RedisError):
        await app.runtime.redis.ping()


async def test_t11_logged_out_token_stays_refused_when_redis_is_down(
    svc: Service, pg_settings: Settings, smtp: tuple[int, Mailbox], private_redis: PrivateRedis,
) -> None:
    await private_redis.start()
    async with running(on_private_redis(pg_settings, private_redis), smtp[1]) as app:
        address = email("t11-logout")
        gone, kept = await two_sessions(app, address)
        assert (await logout(app, gone)).status_code == 204
        # Redis took the revocation (so the later 401 cannot come from it once it is gone).
        revoked_key = app.runtime.keys("revoked", gone["session_id"])
        assert await app.runtime.redis.exists(revoked_key) == 1
        assert await access_status(app, gone) == (401, 401)

        await private_redis.stop()
        await assert_redis_down(app)
        assert await access_status(app, gone) == (401, 401)  # from PostgreSQL, never 200
        assert (await refresh(app, gone)).status_code == 401
        # Sessions that were not revoked keep working without Redis.
        kept = await assert_alive(app, kept)
        # A logout while Redis is down holds too.
        assert (await logout(app, kept)).status_code == 204
        await assert_ended(app, kept)


async def test_t11_user_disabled_while_redis_is_down(
    svc: Service, pg_settings: Settings, smtp: tuple[int, Mailbox], private_redis: PrivateRedis,
    sql: asyncpg.Connection,
) -> None:
    await private_redis.start()
    async with running(on_private_redis(pg_settings, private_redis), smtp[1]) as app:
        phone, tablet = await two_sessions(app, email("t11-disabled"))
        admin = await new_admin(app, email("t11-disabled-admin"))
        uid = await user_id(app, phone)
        assert await access_status(app, phone) == (200, 200)

        await private_redis.stop()
        await assert_redis_down(app)
        reply = await app.client.patch(f"{API}/admin/users/{uid}", headers=bearer(admin),
                                       json={"is_active": False})
        assert reply.status_code == 200, reply.text
        assert await session_revoked(sql, phone) == (True, "user_disabled")
        await assert_ended(app, phone, tablet)
        await assert_alive(app, admin)


class TcpProxy:
    """Forwards a local port to PostgreSQL; `cut()` closes it and every connection through it, so
    the database becomes unreachable for the app without touching the shared server."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.transports: list[asyncio.WriteTransport] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.transports += [writer.transport, up_writer.transport]
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer),
                             return_exceptions=True)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()

    async def cut(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for transport in self.transports:
            transport.abort()


@pytest.fixture
async def pg_proxy(pg_database: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    """A proxy to the test database and the database URL through it."""
    url = urlsplit(pg_database)
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 5432)
    await proxy.start()
    try:
        yield proxy, urlunsplit(url._replace(netloc=f"{url.username}@127.0.0.1:{proxy.port}"))
    finally:
        await proxy.cut()


async def test_t11_fails_closed_with_503_when_redis_and_the_database_are_down(
    svc: Service, pg_settings: Settings, smtp: tuple[int, Mailbox], private_redis: PrivateRedis,
    pg_proxy: tuple[TcpProxy, str],
) -> None:
    # Tokens signed with the same keys by the working instance: one live, one logged out.
    live, revoked = await two_sessions(svc, email("t11-down"))
    assert (await logout(svc, revoked)).status_code == 204
    proxy, database_url = pg_proxy
    await private_redis.start()
    settings = pg_settings.model_copy(update={"redis_url": private_redis.url,
                                              "database_url": database_url})
    async with running(settings, smtp[1]) as app:
        assert await access_status(app, live) == (200, 200)
        assert await access_status(app, revoked) == (401, 401)

        await private_redis.stop()
        await proxy.cut()
        await assert_redis_down(app)
        for tokens in (live, revoked):
            for path in ("/users/me", "/users/me/sessions"):
                reply = await app.client.get(f"{API}{path}", headers=bearer(tokens))
                assert reply.status_code == 503, reply.text
                assert reply.json()["code"] == DependencyUnavailable.code
                assert int(reply.headers["retry-after"]) > 0
        # Refresh needs the database: whatever it answers, it is never a new pair.
        for tokens in (live, revoked):
            reply = await refresh_unraised(app, tokens)
            assert reply.status_code >= 500 and "refresh_token" not in reply.text, reply.text
    # The working instance still tells them apart.
    assert await access_status(svc, live) == (200, 200)
    assert await access_status(svc, revoked) == (401, 401)


async def refresh_unraised(app: Service, tokens: dict[str, Any]) -> httpx2.Response:
    """POST /auth/refresh, answered the way a server would even if the app raises."""
    transport = httpx2.ASGITransport(app=app.app, raise_app_exceptions=False)
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.post(f"{API}/auth/refresh",
                                 json={"refresh_token": tokens["refresh_token"]})


async def test_t11_refresh_with_the_database_down_is_503(
    svc: Service, pg_settings: Settings, smtp: tuple[int, Mailbox],
    pg_proxy: tuple[TcpProxy, str],
) -> None:
    proxy, database_url = pg_proxy
    async with running(pg_settings.model_copy(update={"database_url": database_url}),
                       smtp[1]) as app:
        tokens = await app.signed_up(email("t11-refresh-db-down"))
        await proxy.cut()
        reply = await refresh_unraised(app, tokens)
        assert reply.status_code == 503, reply.text
        assert int(reply.headers["retry-after"]) > 0


async def test_t11_revocation_made_while_redis_was_down_holds_after_it_returns(
    svc: Service, pg_settings: Settings, smtp: tuple[int, Mailbox], private_redis: PrivateRedis,
) -> None:
    """Redis comes back with its data (persistence, or a network cut rather than a restart): the
    set it holds still says "complete" but lacks the session ended meanwhile."""
    await private_redis.start()
    async with running(on_private_redis(pg_settings, private_redis), smtp[1]) as app:
        gone, kept = await two_sessions(app, email("t11-return"))
        await app.runtime.redis.save()  # a snapshot, "complete" marker included
        await private_redis.stop()
        await assert_redis_down(app)

        assert (await logout(app, gone)).status_code == 204
        assert await access_status(app, gone) == (401, 401)
        await app.run_jobs()  # a worker runs what was queued, while Redis is still down

        await private_redis.start()  # back, with the snapshot
        ready_key = app.runtime.keys("revoked", "complete")
        assert await app.runtime.redis.exists(ready_key) == 1
        assert await access_status(app, gone) == (401, 401)
        assert (await refresh(app, gone)).status_code == 401
        await assert_alive(app, kept)


async def test_many_sessions_are_checked_at_once_from_redis_or_the_database(svc: Service) -> None:
    """The WebSocket gateway's sweep asks about all its sockets' sessions together."""
    from epicura.auth import service as auth_service

    phone, tablet = await two_sessions(svc, email("many"))
    assert (await logout(svc, phone)).status_code == 204
    unknown = uuid.uuid4()
    sids = {uuid.UUID(phone["session_id"]), uuid.UUID(tablet["session_id"]), unknown}
    revocations = auth_service.revocations(svc.runtime)
    one_by_one = {sid for sid in sids if await revocations.is_revoked(sid)}
    assert await revocations.revoked_among(sids) == one_by_one
    assert uuid.UUID(phone["session_id"]) in one_by_one
    assert uuid.UUID(tablet["session_id"]) not in one_by_one
    # Without the completeness marker (Redis restarted), PostgreSQL answers, as it does one by
    # one: the ended session and the one that never existed.
    await svc.runtime.redis.delete(revocations.ready_key)
    one_by_one = {sid for sid in sids if await revocations.is_revoked(sid)}
    assert one_by_one == {uuid.UUID(phone["session_id"]), unknown}
    assert await revocations.revoked_among(sids) == one_by_one
    assert await revocations.revoked_among(set()) == set()
