"""The whole account flow, on PostgreSQL + Redis and on the embedded default."""

from __future__ import annotations

import pytest

from tests.support import API, STRONG_PASSWORD, Service, bearer, token_in

pytestmark = pytest.mark.anyio


async def _whole_flow(svc: Service, email_address: str, *, jobs_inline: bool) -> None:
    assert (await svc.register(email_address)).status_code == 202
    if jobs_inline:
        await svc.run_jobs()
    [verification] = await svc.mailbox.wait_for(email_address)
    assert "Confirm" in verification["Subject"]
    reply = await svc.client.post(
        f"{API}/auth/verify-email", json={"token": token_in(verification)}
    )
    assert reply.status_code == 204

    login = await svc.login(email_address)
    assert login.status_code == 200
    assert login.headers["cache-control"] == "no-store"
    tokens = login.json()
    me = await svc.client.get(f"{API}/users/me", headers=bearer(tokens))
    assert me.status_code == 200
    assert me.json()["email"] == email_address and me.json()["email_verified"] is True

    refreshed = await svc.client.post(
        f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200
    new = refreshed.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert new["session_id"] == tokens["session_id"]

    sessions = await svc.client.get(f"{API}/users/me/sessions", headers=bearer(new))
    assert [s["current"] for s in sessions.json()] == [True]

    logout = await svc.client.post(
        f"{API}/auth/logout", json={"refresh_token": new["refresh_token"]}
    )
    assert logout.status_code == 204
    after = await svc.client.get(f"{API}/users/me", headers=bearer(new))
    assert after.status_code == 401
    again = await svc.client.post(
        f"{API}/auth/refresh", json={"refresh_token": new["refresh_token"]}
    )
    assert again.status_code == 401


async def test_account_flow_on_postgres_and_redis(svc: Service) -> None:
    await _whole_flow(svc, "flow-pg@example.com", jobs_inline=True)


async def test_account_flow_on_the_embedded_default(embedded: Service) -> None:
    await _whole_flow(embedded, "flow-embedded@example.com", jobs_inline=False)


async def test_reuse_detection_on_the_embedded_default(embedded: Service) -> None:
    tokens = await embedded.signed_up("reuse-embedded@example.com")
    first = await embedded.client.post(
        f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert first.status_code == 200
    from datetime import timedelta

    from epicura.kit import clock

    with clock.frozen(clock.utcnow() + timedelta(seconds=11)):
        reused = await embedded.client.post(
            f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert reused.status_code == 401
        assert reused.json()["code"] == "token_reused"
        child = await embedded.client.post(
            f"{API}/auth/refresh", json={"refresh_token": first.json()["refresh_token"]}
        )
        assert child.status_code == 401
        me = await embedded.client.get(f"{API}/users/me", headers=bearer(first.json()))
        assert me.status_code == 401


async def test_password_change_ends_sessions_and_mails_the_owner(svc: Service) -> None:
    address = "change@example.com"
    tokens = await svc.signed_up(address)
    reply = await svc.client.post(
        f"{API}/users/me/password",
        headers=bearer(tokens),
        json={"current_password": STRONG_PASSWORD, "new_password": "a whole new passphrase"},
    )
    assert reply.status_code == 204
    assert (await svc.client.get(f"{API}/users/me", headers=bearer(tokens))).status_code == 401
    assert (await svc.login(address)).status_code == 401
    assert (await svc.login(address, "a whole new passphrase")).status_code == 200
    await svc.run_jobs()
    subjects = [m["Subject"] for m in await svc.mailbox.wait_for(address, count=2)]
    assert "Your Epicura password was changed" in subjects
