"""T14: login throttling per identifier (growing delays, lock after 100) and per client address
(20 a minute), identical for unknown identifiers, never a lockout that a reset cannot lift, and
`X-Forwarded-For` honoured only from trusted proxies.

The per-identifier delays run on `epicura.kit.clock`, frozen here; the per-address limit runs on
Redis's real time window and is only ever filled, never waited out."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta

import httpx2
import pytest

from epicura.config import Settings
from epicura.kit import clock
from tests.support import API, STRONG_PASSWORD, Service, bearer, running, token_in

pytestmark = pytest.mark.anyio

WRONG = "not the right password"
NEW_PASSWORD = "a brand new kitchen passphrase"
EXPECTED_DELAYS = [15, 30, 60, 120, 240, 480, 900, 900, 900]

Variant = Callable[..., AbstractAsyncContextManager[Service]]


def _mail(tag: str) -> str:
    return f"test_throttling-{tag}-{secrets.token_hex(4)}@example.com"


def _whole_second_now() -> datetime:
    """Frozen start on a whole second, so `Retry-After` values are exact."""
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def variant(svc: Service, pg_settings: Settings) -> Variant:
    """Another app on the same database and Redis prefix (cleaned up with `svc`), with its own
    settings and client address."""

    def start(client_ip: str = "127.0.0.1", **overrides: object) -> AbstractAsyncContextManager[
            Service]:
        values = pg_settings.model_dump()
        values.update(overrides)
        settings = Settings(_env_file=None, **values)
        return running(settings, svc.mailbox, client_ip=client_ip)

    return start


@pytest.fixture
async def roomy(variant: Variant) -> AsyncIterator[Service]:
    """Per-address limit out of the way, to look at the per-identifier throttle alone."""
    async with variant(client_ip="192.0.2.10", login_ip_per_minute=100_000) as app:
        yield app


def _outcome(reply: httpx2.Response) -> tuple[int, str | None, str | None, bytes]:
    return (reply.status_code, reply.headers.get("retry-after"),
            reply.json().get("code"), reply.content)


async def _reset_via_mail(app: Service, address: str, new_password: str) -> httpx2.Response:
    forgot = await app.client.post(f"{API}/auth/password/forgot", json={"email": address})
    assert forgot.status_code == 202
    await app.run_jobs()
    mails = [m for m in await app.mailbox.wait_for(address, count=2)
             if m["Subject"] == "Reset your Epicura password"]
    assert len(mails) == 1
    return await app.client.post(f"{API}/auth/password/reset",
                                 json={"token": token_in(mails[-1]), "new_password": new_password})


# --- per identifier --------------------------------------------------------------------------


async def test_backoff_grows_and_unknown_identifiers_behave_identically(roomy: Service) -> None:
    account, nobody = _mail("backoff-a"), _mail("backoff-n")
    assert (await roomy.register(account)).status_code == 202
    history: dict[str, list[tuple[int, str | None, str | None, bytes]]] = {account: [], nobody: []}

    async def both(password_for_account: str, password_for_nobody: str) -> None:
        for address, password in ((account, password_for_account), (nobody, password_for_nobody)):
            history[address].append(_outcome(await roomy.login(address, password)))

    with clock.frozen(_whole_second_now()):
        for _ in range(5):
            await both(WRONG, WRONG)
        for delay in EXPECTED_DELAYS:
            await both(WRONG, WRONG)  # throttled: waits `delay`
            await both(STRONG_PASSWORD, STRONG_PASSWORD)  # even the right password waits
            clock.advance(timedelta(seconds=delay - 1))
            await both(STRONG_PASSWORD, STRONG_PASSWORD)  # one second left
            clock.advance(timedelta(seconds=1))
            await both(WRONG, WRONG)  # allowed again, and fails once more

    assert history[account] == history[nobody]  # status, Retry-After, code and bytes alike
    replies = history[account]
    assert [r[0] for r in replies[:5]] == [401] * 5
    throttled = [r for r in replies if r[0] == 429]
    assert len(throttled) == 3 * len(EXPECTED_DELAYS)
    expected_waits = [str(w) for d in EXPECTED_DELAYS for w in (d, d, 1)]
    assert [r[1] for r in throttled] == expected_waits
    assert {r[2] for r in throttled} == {"rate_limited"}
    assert [r[0] for r in replies[5:]] == [429, 429, 429, 401] * len(EXPECTED_DELAYS)


async def test_a_correct_login_after_the_wait_resets_the_counter(roomy: Service) -> None:
    address = _mail("clear")
    assert (await roomy.register(address)).status_code == 202
    with clock.frozen(_whole_second_now()):
        for _ in range(5):
            assert (await roomy.login(address, WRONG)).status_code == 401
        assert (await roomy.login(address)).status_code == 429
        clock.advance(timedelta(seconds=15))
        assert (await roomy.login(address)).status_code == 200
        # Five free failures again, then the first delay (not a longer one).
        for _ in range(5):
            assert (await roomy.login(address, WRONG)).status_code == 401
        again = await roomy.login(address, WRONG)
        assert again.status_code == 429 and again.headers["retry-after"] == "15"


async def test_one_hundred_failures_lock_until_a_password_reset(roomy: Service) -> None:
    account, nobody = _mail("lock-a"), _mail("lock-n")
    assert (await roomy.register(account)).status_code == 202
    await roomy.run_jobs()
    with clock.frozen(_whole_second_now()):
        for attempt in range(100):
            for address in (account, nobody):
                reply = await roomy.login(address, WRONG)
                assert reply.status_code == 401, (attempt, reply.text)
            clock.advance(timedelta(seconds=901))  # past the longest delay
        locked_a = await roomy.login(account, STRONG_PASSWORD)
        locked_n = await roomy.login(nobody, STRONG_PASSWORD)
        assert locked_a.status_code == 429 and locked_a.headers["retry-after"] == "900"
        assert _outcome(locked_a) == _outcome(locked_n)
        clock.advance(timedelta(days=3))  # waiting does not unlock it
        assert (await roomy.login(account, STRONG_PASSWORD)).status_code == 429
        assert (await roomy.login(nobody, STRONG_PASSWORD)).status_code == 429

        assert (await _reset_via_mail(roomy, account, NEW_PASSWORD)).status_code == 204
        assert (await roomy.login(account, STRONG_PASSWORD)).status_code == 401
        assert (await roomy.login(account, NEW_PASSWORD)).status_code == 200
        assert (await roomy.login(nobody, STRONG_PASSWORD)).status_code == 429


async def test_password_reset_works_while_the_account_is_throttled(roomy: Service) -> None:
    address = _mail("reset")
    tokens = await roomy.signed_up(address)
    await roomy.run_jobs()
    with clock.frozen(_whole_second_now()):
        for _ in range(5):
            assert (await roomy.login(address, WRONG)).status_code == 401
        throttled = await roomy.login(address)
        assert throttled.status_code == 429
        # The attacker's failures neither block the reset nor the owner's existing session.
        assert (await roomy.client.get(f"{API}/users/me", headers=bearer(tokens))).status_code \
            == 200
        assert (await _reset_via_mail(roomy, address, NEW_PASSWORD)).status_code == 204
        # No waiting needed: the reset cleared the throttle.
        assert (await roomy.login(address, NEW_PASSWORD)).status_code == 200


# --- per client address -------------------------------------------------------------------------


async def test_more_than_twenty_attempts_a_minute_from_one_address_get_429(
    svc: Service, variant: Variant,
) -> None:
    account = _mail("ip-account")
    assert (await svc.register(account)).status_code == 202
    for _ in range(20):
        reply = await svc.login(_mail("ip-spray"), WRONG)
        assert reply.status_code == 401
    blocked = await svc.login(account, STRONG_PASSWORD)  # a different, valid account
    assert blocked.status_code == 429
    assert blocked.json()["code"] == "rate_limited"
    assert 1 <= int(blocked.headers["retry-after"]) <= 60
    assert (await svc.login(_mail("ip-spray"), WRONG)).status_code == 429
    # Another address is not affected.
    async with variant(client_ip="198.51.100.77") as elsewhere:
        assert (await elsewhere.login(account, STRONG_PASSWORD)).status_code == 200


async def test_forwarded_for_is_ignored_without_a_trusted_proxy(svc: Service) -> None:
    assert svc.runtime.settings.trusted_proxies == []
    for n in range(20):
        reply = await svc.login(_mail("xff"), WRONG) if n == 0 else await svc.client.post(
            f"{API}/auth/login", json={"email": _mail("xff"), "password": WRONG},
            headers={"X-Forwarded-For": f"203.0.113.{n}"})
        assert reply.status_code == 401
    spoofed = await svc.client.post(
        f"{API}/auth/login", json={"email": _mail("xff"), "password": WRONG},
        headers={"X-Forwarded-For": "198.51.100.200"})
    assert spoofed.status_code == 429


async def test_forwarded_for_is_ignored_from_a_peer_that_is_not_a_trusted_proxy(
    variant: Variant,
) -> None:
    async with variant(client_ip="203.0.113.50", trusted_proxies=["10.0.0.0/8"]) as app:
        for n in range(20):
            reply = await app.client.post(
                f"{API}/auth/login", json={"email": _mail("xff-peer"), "password": WRONG},
                headers={"X-Forwarded-For": f"10.1.2.{n}, 198.51.100.{n}"})
            assert reply.status_code == 401
        spoofed = await app.client.post(
            f"{API}/auth/login", json={"email": _mail("xff-peer"), "password": WRONG},
            headers={"X-Forwarded-For": "198.51.100.250"})
        assert spoofed.status_code == 429


async def test_forwarded_for_from_a_trusted_proxy_keys_on_the_real_client(
    variant: Variant,
) -> None:
    async with variant(client_ip="10.0.0.2", trusted_proxies=["10.0.0.0/8"]) as proxy:

        async def via_proxy(forwarded: str | None) -> int:
            headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
            reply = await proxy.client.post(
                f"{API}/auth/login", json={"email": _mail("xff-proxy"), "password": WRONG},
                headers=headers)
            return reply.status_code

        for _ in range(20):
            assert await via_proxy("198.51.100.1") == 401
        assert await via_proxy("198.51.100.1") == 429
        # The client cannot escape its bucket by prepending addresses of its own choosing:
        # the proxy appends the real one, and that right-most untrusted hop is the key.
        assert await via_proxy("192.0.2.99, 198.51.100.1") == 429
        assert await via_proxy("198.51.100.1, 10.0.0.7") == 429  # through a second proxy
        # Other clients behind the same proxy keep their own budget.
        assert await via_proxy("198.51.100.2") == 401
        assert await via_proxy("198.51.100.1, 198.51.100.2") == 401
        # Without the header the proxy itself is the client.
        assert await via_proxy(None) == 401


async def test_concurrent_failures_on_two_instances_are_all_counted(
    roomy: Service, variant: Variant,
) -> None:
    """A credential-stuffing burst must not slip failures past the counter (lost updates)."""
    address = _mail("burst")
    async with variant(client_ip="192.0.2.11", login_ip_per_minute=100_000) as second:
        with clock.frozen(_whole_second_now()):
            replies = await asyncio.gather(
                *[(roomy if n % 2 else second).login(address, WRONG) for n in range(12)])
            assert [r.status_code for r in replies] == [401] * 12
            counter = await roomy.runtime.redis.hgetall(
                roomy.runtime.keys("login-fail", hashlib.sha256(address.encode()).hexdigest()[:32]))
            assert int(counter[b"count"]) == 12
            after = await roomy.login(address, WRONG)
            assert after.status_code == 429
            # 12 failures: 15 s · 2^(12-5), capped at 15 min.
            assert after.headers["retry-after"] == "900"
