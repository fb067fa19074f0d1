"""Refresh-token rotation, reuse detection, the grace window, concurrent refreshes and expiry
(checklist T05–T09), on PostgreSQL and Redis.

Binding rules (spec): every refresh rotates the token; presenting an already rotated token outside
the grace window (`refresh_grace_s`, default 5 s, at most 10 s) for the immediately previous one
revokes the whole login session (401 `token_reused`); every other bad refresh token is 401
`invalid_token`. The database is read with plain SQL on a separate connection.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, contextmanager
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx2
import pytest
from pydantic import ValidationError

from epicura.auth.emails import TEMPLATES
from epicura.config import Settings
from epicura.kit import clock
from tests.support import API, Mailbox, Service, bearer, body_of, running

pytestmark = pytest.mark.anyio

REFRESH = f"{API}/auth/refresh"
GRACE_DEFAULT_S = 5.0
IDLE = timedelta(days=30)
ABSOLUTE = timedelta(days=90)
ACTIVE_PER_FAMILY = (
    "SELECT session_id, count(*) AS n FROM refresh_tokens WHERE state = 'active' "
    "GROUP BY session_id HAVING count(*) > 1"
)


# --- helpers -------------------------------------------------------------------------------------


@pytest.fixture
async def sql(pg_database: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the test database, independent of the app's engine."""
    conn = await asyncpg.connect(pg_database)
    try:
        yield conn
    finally:
        await conn.close()


@contextmanager
def frozen_now() -> Iterator[datetime]:
    start = clock.utcnow()
    with clock.frozen(start):
        yield start


def email(case: str) -> str:
    return f"test_refresh-{case}-{uuid.uuid4().hex[:8]}@example.com"


async def refresh(svc: Service, raw: str) -> httpx2.Response:
    return await svc.client.post(REFRESH, json={"refresh_token": raw})


def digest(svc: Service, raw: str) -> str:
    """HMAC-SHA256 of the token under the refresh secret, computed here independently."""
    key = svc.runtime.settings.jwt_refresh_secret.get_secret_value().encode()
    return hmac.new(key, raw.encode(), hashlib.sha256).hexdigest()


async def token_row(sql: asyncpg.Connection, svc: Service, raw: str) -> asyncpg.Record:
    row = await sql.fetchrow("SELECT * FROM refresh_tokens WHERE token_hash = $1", digest(svc, raw))
    assert row is not None, "no row for this token"
    return row


async def family_rows(sql: asyncpg.Connection, sid: str) -> list[asyncpg.Record]:
    return await sql.fetch(
        "SELECT * FROM refresh_tokens WHERE session_id = $1 ORDER BY created_at, id", uuid.UUID(sid)
    )


async def active_rows(sql: asyncpg.Connection, sid: str) -> list[asyncpg.Record]:
    return [row for row in await family_rows(sql, sid) if row["state"] == "active"]


async def session_row(sql: asyncpg.Connection, sid: str) -> asyncpg.Record:
    row = await sql.fetchrow("SELECT * FROM login_sessions WHERE id = $1", uuid.UUID(sid))
    assert row is not None
    return row


async def assert_family_invariant(sql: asyncpg.Connection) -> None:
    """At most one active refresh token per family, over the whole database."""
    assert await sql.fetch(ACTIVE_PER_FAMILY) == []


async def access_status(svc: Service, tokens: dict[str, Any]) -> tuple[int, int]:
    """(GET /users/me, GET /users/me/sessions): the second needs only a valid, unrevoked session."""
    me = await svc.client.get(f"{API}/users/me", headers=bearer(tokens))
    sessions = await svc.client.get(f"{API}/users/me/sessions", headers=bearer(tokens))
    return me.status_code, sessions.status_code


def assert_problem(reply: httpx2.Response, status: int, code: str) -> None:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert reply.json()["code"] == code, reply.text


def entropy_bytes(raw: str) -> int:
    assert re.fullmatch(r"[A-Za-z0-9_-]+", raw), "refresh tokens are base64url"
    return len(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))


# --- T05 rotation, happy path --------------------------------------------------------------------


async def test_t05_refresh_rotates_and_stores_only_a_hash(
    svc: Service, sql: asyncpg.Connection
) -> None:
    first = await svc.signed_up(email("t05"))
    r1, sid = first["refresh_token"], first["session_id"]

    reply = await refresh(svc, r1)
    assert reply.status_code == 200, reply.text
    assert reply.headers["cache-control"] == "no-store"
    second = reply.json()
    r2 = second["refresh_token"]
    assert r2 != r1 and second["access_token"] != first["access_token"]
    assert second["session_id"] == sid and second["token_type"] == "Bearer"
    assert entropy_bytes(r1) >= 32 and entropy_bytes(r2) >= 32  # ≥ 256 bits

    # The database holds only the keyed hash of each token, in one family linked by parent_id.
    rows = await family_rows(sql, sid)
    assert len(rows) == 2
    row1, row2 = await token_row(sql, svc, r1), await token_row(sql, svc, r2)
    assert [row["id"] for row in rows] == [row1["id"], row2["id"]]
    assert row1["token_hash"] != r1 and row2["token_hash"] != r2
    assert re.fullmatch(r"[0-9a-f]{64}", row2["token_hash"])
    assert row2["session_id"] == row1["session_id"] == uuid.UUID(sid)
    assert row2["parent_id"] == row1["id"] and row1["parent_id"] is None
    assert row1["state"] == "rotated" and row1["rotated_at"] is not None
    assert row2["state"] == "active" and row2["rotated_at"] is None
    assert row2["expires_at"] - row2["created_at"] == IDLE
    # No table anywhere holds either token in clear.
    tables = await sql.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    for table in (row["tablename"] for row in tables):
        for raw in (r1, r2):
            hits = await sql.fetchval(
                # The alias must not be a column name (telemetry has a column `t`).
                f'SELECT count(*) FROM "{table}" AS whole_row '  # noqa: S608 - from pg_tables
                "WHERE strpos(row_to_json(whole_row)::text, $1) > 0", raw,
            )
            assert hits == 0, f"{table} holds a refresh token in clear"

    # The new access token works and belongs to the same login session.
    assert await access_status(svc, second) == (200, 200)
    listed = await svc.client.get(f"{API}/users/me/sessions", headers=bearer(second))
    assert [(s["id"], s["current"]) for s in listed.json()] == [(sid, True)]
    await assert_family_invariant(sql)


# --- T06 reuse detection -------------------------------------------------------------------------


async def test_t06_reuse_after_the_grace_window_revokes_the_family(
    svc: Service, sql: asyncpg.Connection
) -> None:
    address = email("t06")
    with frozen_now():
        first = await svc.signed_up(address)
        bystander = (await svc.login(address, session_name="kitchen tablet")).json()
        reply = await refresh(svc, first["refresh_token"])
        assert reply.status_code == 200
        second = reply.json()
        sid = first["session_id"]
        assert await access_status(svc, second) == (200, 200)

        clock.advance(timedelta(seconds=svc.runtime.settings.refresh_grace_s, milliseconds=1))
        reused = await refresh(svc, first["refresh_token"])
        assert_problem(reused, 401, "token_reused")

        # Every token of the family is dead, the newest included, and so are its access tokens.
        assert_problem(await refresh(svc, second["refresh_token"]), 401, "invalid_token")
        assert await access_status(svc, second) == (401, 401)
        assert await access_status(svc, first) == (401, 401)
        assert await active_rows(sql, sid) == []
        row = await session_row(sql, sid)
        assert row["revoked_at"] is not None and row["revoked_reason"] == "token_reused"
        # The user's other login session is untouched.
        assert await access_status(svc, bystander) == (200, 200)
        assert (await refresh(svc, bystander["refresh_token"])).status_code == 200

        events = await sql.fetch(
            "SELECT actor_id, target_type FROM audit_events "
            "WHERE action = 'auth.refresh.reuse_detected' AND target_id = $1", sid,
        )
        assert len(events) == 1 and events[0]["target_type"] == "login_session"
        assert events[0]["actor_id"] == row["user_id"]
        await svc.run_jobs()
    messages = await svc.mailbox.wait_for(address, count=2)  # verification + security notice
    notices = [m for m in messages if m["Subject"] == TEMPLATES["token_reuse"][0]]
    assert len(notices) == 1
    assert "pytest" in body_of(notices[0])  # names the login session that was ended
    await assert_family_invariant(sql)


async def test_unknown_or_malformed_refresh_tokens_are_invalid_token(svc: Service) -> None:
    tokens = await svc.signed_up(email("unknown"))
    for raw in ("x" * 43, tokens["access_token"][:500], tokens["refresh_token"][:-1] + "A"):
        if raw == tokens["refresh_token"]:
            continue
        assert_problem(await refresh(svc, raw), 401, "invalid_token")
    # Refusals of unknown tokens end nothing.
    assert (await refresh(svc, tokens["refresh_token"])).status_code == 200


# --- T07 grace window ----------------------------------------------------------------------------


async def test_t07a_retry_within_grace_before_the_successor_is_used(
    svc: Service, sql: asyncpg.Connection
) -> None:
    with frozen_now():
        first = await svc.signed_up(email("t07a"))
        sid, r1 = first["session_id"], first["refresh_token"]
        clock.advance(timedelta(seconds=1))
        lost = await refresh(svc, r1)  # the reply the client never received
        assert lost.status_code == 200
        r2 = lost.json()["refresh_token"]

        clock.advance(timedelta(seconds=GRACE_DEFAULT_S - 0.5))  # within G of R1's rotation
        retry = await refresh(svc, r1)
        assert retry.status_code == 200, retry.text
        assert retry.headers["cache-control"] == "no-store"
        fresh = retry.json()
        assert fresh["session_id"] == sid
        assert fresh["refresh_token"] not in (r1, r2)

        # The family is alive with exactly one active token: the fresh one, a child of R1.
        assert (await session_row(sql, sid))["revoked_at"] is None
        [active] = await active_rows(sql, sid)
        assert active["token_hash"] == digest(svc, fresh["refresh_token"])
        assert active["parent_id"] == (await token_row(sql, svc, r1))["id"]
        assert (await token_row(sql, svc, r2))["state"] == "superseded"
        assert await access_status(svc, fresh) == (200, 200)

        # The unused successor that was replaced is refused, without ending the family.
        assert_problem(await refresh(svc, r2), 401, "invalid_token")
        assert (await session_row(sql, sid))["revoked_at"] is None
        onward = await refresh(svc, fresh["refresh_token"])
        assert onward.status_code == 200
        assert await access_status(svc, onward.json()) == (200, 200)
    await assert_family_invariant(sql)


@pytest.mark.parametrize(
    ("second_rotation_s", "replay_s"),
    [(4.0, 2.0), (1.0, 1.0)],
    ids=["R1-outside-its-own-grace", "R1-inside-its-own-grace"],
)
async def test_t07b_two_generations_old_within_grace_of_r3(
    svc: Service, sql: asyncpg.Connection, second_rotation_s: float, replay_s: float
) -> None:
    """After R1→R2→R3, R1 presented within G of R3's issue is reuse (DOT #1617 regression)."""
    with frozen_now():
        first = await svc.signed_up(email("t07b"))
        sid = first["session_id"]
        r2 = (await refresh(svc, first["refresh_token"])).json()
        clock.advance(timedelta(seconds=second_rotation_s))
        third = await refresh(svc, r2["refresh_token"])
        assert third.status_code == 200
        r3 = third.json()
        clock.advance(timedelta(seconds=replay_s))
        assert replay_s <= GRACE_DEFAULT_S  # within G of R3's issue

        assert_problem(await refresh(svc, first["refresh_token"]), 401, "token_reused")
        assert (await session_row(sql, sid))["revoked_at"] is not None
        assert await active_rows(sql, sid) == []
        assert_problem(await refresh(svc, r3["refresh_token"]), 401, "invalid_token")
        assert await access_status(svc, r3) == (401, 401)


async def test_t07b_many_generations_old_is_reuse(svc: Service, sql: asyncpg.Connection) -> None:
    with frozen_now():
        tokens = [await svc.signed_up(email("t07b-many"))]
        for _ in range(4):
            reply = await refresh(svc, tokens[-1]["refresh_token"])
            assert reply.status_code == 200
            tokens.append(reply.json())
        # R2 is three generations old, all within the grace window of its rotation.
        assert_problem(await refresh(svc, tokens[1]["refresh_token"]), 401, "token_reused")
        assert (await session_row(sql, tokens[0]["session_id"]))["revoked_at"] is not None
        assert await access_status(svc, tokens[-1]) == (401, 401)
        assert_problem(await refresh(svc, tokens[-1]["refresh_token"]), 401, "invalid_token")


async def test_t07c_within_grace_but_after_the_successor_was_used(
    svc: Service, sql: asyncpg.Connection
) -> None:
    with frozen_now():
        first = await svc.signed_up(email("t07c"))
        sid = first["session_id"]
        r2 = (await refresh(svc, first["refresh_token"])).json()
        clock.advance(timedelta(seconds=1))
        used = await refresh(svc, r2["refresh_token"])  # R2 has been used
        assert used.status_code == 200
        r3 = used.json()
        clock.advance(timedelta(seconds=1))  # still within G of R1's rotation

        assert_problem(await refresh(svc, first["refresh_token"]), 401, "token_reused")
        assert (await session_row(sql, sid))["revoked_at"] is not None
        assert await active_rows(sql, sid) == []
        assert_problem(await refresh(svc, r3["refresh_token"]), 401, "invalid_token")
        assert await access_status(svc, r3) == (401, 401)
        assert await access_status(svc, r2) == (401, 401)


async def test_t07c_grace_retry_then_use_then_replay_is_reuse(
    svc: Service, sql: asyncpg.Connection
) -> None:
    """A grace retry does not reopen the window for good: once its result is used, R1 is reuse."""
    with frozen_now():
        first = await svc.signed_up(email("t07c-retry"))
        sid = first["session_id"]
        assert (await refresh(svc, first["refresh_token"])).status_code == 200
        clock.advance(timedelta(seconds=1))
        retried = await refresh(svc, first["refresh_token"])
        assert retried.status_code == 200
        clock.advance(timedelta(seconds=1))
        assert (await refresh(svc, retried.json()["refresh_token"])).status_code == 200
        clock.advance(timedelta(seconds=1))
        assert_problem(await refresh(svc, first["refresh_token"]), 401, "token_reused")
        assert (await session_row(sql, sid))["revoked_at"] is not None
        assert await active_rows(sql, sid) == []


def test_grace_setting_defaults_to_5_s_and_is_capped_at_10_s() -> None:
    assert Settings.model_fields["refresh_grace_s"].default == GRACE_DEFAULT_S
    assert Settings(_env_file=None, refresh_grace_s=10).refresh_grace_s == 10
    assert Settings(_env_file=None, refresh_grace_s=0).refresh_grace_s == 0
    for bad in (10.001, 11, 60, -1):
        with pytest.raises(ValidationError):
            Settings(_env_file=None, refresh_grace_s=bad)


@pytest.mark.parametrize("grace_s", [0.0, 2.5, 10.0])
async def test_grace_window_follows_the_setting(
    svc: Service, pg_settings: Settings, smtp: tuple[int, Mailbox], sql: asyncpg.Connection,
    grace_s: float,
) -> None:
    settings = pg_settings.model_copy(update={"refresh_grace_s": grace_s})
    async with running(settings, smtp[1]) as app:
        address = email(f"grace-{grace_s}")
        await app.signed_up(address)
        inside = (await app.login(address, session_name="inside")).json()
        outside = (await app.login(address, session_name="outside")).json()
        with frozen_now():
            assert (await refresh(app, inside["refresh_token"])).status_code == 200
            assert (await refresh(app, outside["refresh_token"])).status_code == 200
            if grace_s > 0:
                clock.advance(timedelta(seconds=grace_s - 0.1))
                assert (await refresh(app, inside["refresh_token"])).status_code == 200
                assert (await session_row(sql, inside["session_id"]))["revoked_at"] is None
                clock.advance(timedelta(seconds=0.1, milliseconds=1))
            # Past the window (or with no window at all) the same replay is reuse.
            assert_problem(await refresh(app, outside["refresh_token"]), 401, "token_reused")
            assert (await session_row(sql, outside["session_id"]))["revoked_at"] is not None
    await assert_family_invariant(sql)


# --- T08 concurrent refreshes --------------------------------------------------------------------


async def _race(clients: list[Service], raw: str, n: int = 20) -> list[httpx2.Response]:
    return list(await asyncio.gather(
        *(refresh(clients[i % len(clients)], raw) for i in range(n))
    ))


@pytest.mark.parametrize("freeze", [True, False], ids=["frozen-clock", "real-clock"])
async def test_t08_concurrent_refresh_with_grace_0_on_two_instances(
    svc: Service, pg_settings: Settings, smtp: tuple[int, Mailbox], sql: asyncpg.Connection,
    freeze: bool,
) -> None:
    settings = pg_settings.model_copy(update={"refresh_grace_s": 0.0})
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(running(settings, smtp[1]))
        two = await stack.enter_async_context(running(settings, smtp[1]))
        tokens = await one.signed_up(email("t08-grace0"))
        sid = tokens["session_id"]
        if freeze:
            stack.enter_context(frozen_now())
        replies = await _race([one, two], tokens["refresh_token"])

        statuses = [r.status_code for r in replies]
        assert all(s in (200, 401) for s in statuses), statuses  # no 500s
        winners = [r for r in replies if r.status_code == 200]
        assert len(winners) == 1, statuses
        codes = sorted(r.json()["code"] for r in replies if r.status_code == 401)
        assert codes.count("token_reused") >= 1
        assert set(codes) <= {"token_reused", "invalid_token"}

        # The replays were reuse: the family is revoked, the winner's tokens with it.
        await assert_family_invariant(sql)
        assert (await session_row(sql, sid))["revoked_at"] is not None
        assert await active_rows(sql, sid) == []
        won = winners[0].json()
        assert_problem(await refresh(two, won["refresh_token"]), 401, "invalid_token")
        assert await access_status(one, won) == (401, 401)
        assert await access_status(two, won) == (401, 401)


async def test_t08_concurrent_refresh_with_grace_on_two_instances(
    svc: Service, pg_settings: Settings, smtp: tuple[int, Mailbox], sql: asyncpg.Connection,
) -> None:
    assert svc.runtime.settings.refresh_grace_s > 0
    async with running(pg_settings, smtp[1]) as two:  # a second worker: same database and Redis
        tokens = await svc.signed_up(email("t08-grace"))
        sid = tokens["session_id"]
        with frozen_now():  # all twenty arrive within the grace window
            replies = await _race([svc, two], tokens["refresh_token"])

            # No 500s, no reuse: each is a retry of R1 within the window while its successor is
            # unused, so each gets a fresh pair that supersedes the previous one.
            statuses = [r.status_code for r in replies]
            assert statuses == [200] * len(replies), [r.text for r in replies]

            # No revocation, and exactly one active token: a child of R1 handed to one caller.
            await assert_family_invariant(sql)
            assert (await session_row(sql, sid))["revoked_at"] is None
            [active] = await active_rows(sql, sid)
            assert active["parent_id"] == (await token_row(sql, svc, tokens["refresh_token"]))["id"]
            issued = [r.json() for r in replies if r.status_code == 200]
            holders = [t for t in issued if digest(svc, t["refresh_token"]) == active["token_hash"]]
            assert len(holders) == 1
            onward = await refresh(two, holders[0]["refresh_token"])
            assert onward.status_code == 200
            assert await access_status(svc, onward.json()) == (200, 200)
            await assert_family_invariant(sql)


# --- T09 expiry ----------------------------------------------------------------------------------


async def test_t09_idle_expiry_after_30_days_without_use(
    svc: Service, sql: asyncpg.Connection
) -> None:
    address = email("t09-idle")
    with frozen_now():
        idle = await svc.signed_up(address)
        busy = (await svc.login(address, session_name="busy")).json()

        clock.advance(IDLE - timedelta(seconds=1))
        still = await refresh(svc, busy["refresh_token"])  # 30 d − 1 s: still valid
        assert still.status_code == 200

        clock.advance(timedelta(seconds=2))  # the idle token is now 30 d + 1 s old
        assert_problem(await refresh(svc, idle["refresh_token"]), 401, "invalid_token")
        assert_problem(await refresh(svc, idle["refresh_token"]), 401, "invalid_token")
        # Using a token resets the idle clock: the one issued 2 s ago works.
        assert (await refresh(svc, still.json()["refresh_token"])).status_code == 200
        # The user signs in again.
        again = await svc.login(address)
        assert again.status_code == 200
        assert (await refresh(svc, again.json()["refresh_token"])).status_code == 200
    await assert_family_invariant(sql)


async def test_t09_absolute_expiry_after_90_days_even_with_a_fresh_token(
    svc: Service, sql: asyncpg.Connection
) -> None:
    address = email("t09-absolute")
    with frozen_now() as start:
        tokens = await svc.signed_up(address)
        sid = tokens["session_id"]
        for _ in range(3):  # used every 29 days: never idle
            clock.advance(timedelta(days=29))
            reply = await refresh(svc, tokens["refresh_token"])
            assert reply.status_code == 200, reply.text
            tokens = reply.json()
        # At 87 d the token's idle lifetime would reach past the family's cap: the cap is reported.
        cap = datetime.fromisoformat(tokens["refresh_expires_at"])
        assert cap == start + ABSOLUTE
        assert (await session_row(sql, sid))["expires_at"] == start + ABSOLUTE

        clock.advance(timedelta(days=3, seconds=1))  # family 90 d + 1 s old, token 3 d old
        assert_problem(await refresh(svc, tokens["refresh_token"]), 401, "invalid_token")
        again = await svc.login(address)
        assert again.status_code == 200
        assert again.json()["session_id"] != sid
        fresh = await refresh(svc, again.json()["refresh_token"])
        assert fresh.status_code == 200
    await assert_family_invariant(sql)
