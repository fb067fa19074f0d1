"""Who a socket is: the `auth` frame first and within the deadline, a refreshed token of the same
user only, and sockets closed (4401) once their token expired or their login session ended."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from epicura.config import Settings
from tests.bridge.ingest_support import wait_until
from tests.realtime.ws_support import Served, authed, serving, socket
from tests.support import API, Mailbox, bearer

pytestmark = pytest.mark.anyio


async def test_no_auth_frame_within_the_deadline_closes_4401(served: Served) -> None:
    served.limit(auth_timeout_s=0.5)
    async with socket(served) as client:
        assert await client.close_code() == 4401


async def test_frames_before_auth_are_refused_then_the_deadline_closes(served: Served) -> None:
    served.limit(auth_timeout_s=1.0)
    async with socket(served) as client:
        refused = await client.request("subscribe", {"channel": "user"})
        assert refused["type"] == "error" and refused["data"]["code"] == "auth_required"
        assert (await client.request("ping"))["type"] == "pong"  # ping needs no token
        assert await client.close_code() == 4401


@pytest.mark.parametrize("token", ["", "not-a-jwt", 42, None])
async def test_a_bad_token_closes_4401(pg_served: Served, token: object) -> None:
    async with socket(pg_served) as client:
        await client.send("auth", {"token": token})
        assert await client.close_code() == 4401


async def test_reauth_with_a_fresh_token_of_the_same_user_only(pg_served: Served) -> None:
    svc = pg_served.svc
    user_id, tokens = await pg_served.user("reauth")
    _, other = await pg_served.user("reauth-other")
    async with authed(pg_served, tokens) as client:
        await client.subscribe("user")
        refreshed = await svc.client.post(f"{API}/auth/refresh",
                                          json={"refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 200, refreshed.text
        again = await client.auth(refreshed.json())
        assert again["type"] == "auth.ok" and again["data"]["user_id"] == str(user_id)
        assert (await client.request("ping"))["type"] == "pong"  # still open, still subscribed
        await client.send("auth", {"token": other["access_token"]})
        assert await client.close_code() == 4401


async def test_a_revoked_login_session_closes_its_sockets(served: Served) -> None:
    svc = served.svc
    _, tokens = await served.user("revoked")
    _, bystander = await served.user("bystander")
    async with authed(served, tokens) as client, authed(served, bystander) as other:
        gone = await svc.client.post(f"{API}/auth/logout",
                                     json={"refresh_token": tokens["refresh_token"]})
        assert gone.status_code == 204, gone.text
        assert await client.close_code(wait_s=15) == 4401
        assert (await other.request("ping"))["type"] == "pong"


async def test_logout_all_closes_every_socket_of_the_user(pg_served: Served) -> None:
    svc = pg_served.svc
    _, tokens = await pg_served.user("logoutall")
    me = await svc.client.get(f"{API}/users/me", headers=bearer(tokens))
    second = await svc.login(me.json()["email"])
    assert second.status_code == 200, second.text
    async with authed(pg_served, tokens) as one, authed(pg_served, second.json()) as two:
        done = await svc.client.post(f"{API}/auth/logout-all", headers=bearer(tokens))
        assert done.status_code == 204, done.text
        assert await one.close_code(wait_s=15) == 4401
        assert await two.close_code(wait_s=15) == 4401


@pytest.fixture
async def short_tokens(pg_settings: Settings, smtp: tuple[int, Mailbox]) -> AsyncIterator[Served]:
    """Access tokens that live 2 s (the JWT leeway, for clock skew between services, does not
    keep a socket open past its token's expiry)."""
    settings = pg_settings.model_copy(update={"access_token_ttl_s": 2})
    async with serving(settings, smtp[1]) as served:
        yield served


async def test_an_expired_token_without_reauth_closes_4401(short_tokens: Served) -> None:
    _, tokens = await short_tokens.user("expiry")
    async with authed(short_tokens, tokens) as client:
        await client.subscribe("user")
        assert await client.close_code(wait_s=15) == 4401


async def test_too_many_sockets_of_one_user(served: Served) -> None:
    served.limit(sockets_per_user=2)
    _, tokens = await served.user("many")
    async with authed(served, tokens), authed(served, tokens), socket(served) as third:
        await third.send("auth", {"token": tokens["access_token"]})
        assert await third.close_code() == 4429
    await wait_until(lambda: _no_sockets(served), 20, "the sockets to be closed")
    async with authed(served, tokens) as again:  # closed sockets no longer count
        assert (await again.request("ping"))["type"] == "pong"



async def _no_sockets(served: Served) -> bool:
    return not served.hub.connections
