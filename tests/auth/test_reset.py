"""T15: the password-reset link: single use, 30 minutes, superseded by a newer one, stored only as
a hash, ends every login session without logging in, built from the configured base URL, and
silently not sent past 3 an hour per account or 10 an hour per client address."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

import httpx2
import pytest
from sqlalchemy import select

from epicura.auth.models import PURPOSE_RESET_PASSWORD, EmailToken, LoginSession, User
from epicura.config import Settings
from epicura.kit import clock, metrics
from epicura.kit.jobs import Job
from tests.support import API, STRONG_PASSWORD, Service, bearer, body_of, running, token_in

pytestmark = pytest.mark.anyio

RESET_SUBJECT = "Reset your Epicura password"
LINK_PREFIX = "https://app.epicura.test/reset-password?token="
NEW_PASSWORD = "fresh kitchen passphrase"

Variant = Callable[..., AbstractAsyncContextManager[Service]]


def _mail(tag: str) -> str:
    return f"test_reset-{tag}-{secrets.token_hex(4)}@example.com"


@pytest.fixture
def variant(svc: Service, pg_settings: Settings) -> Variant:
    """Another app on the same database and Redis prefix (cleaned up with `svc`)."""

    def start(client_ip: str = "127.0.0.1", **overrides: object) -> AbstractAsyncContextManager[
            Service]:
        values = pg_settings.model_dump()
        values.update(overrides)
        settings = Settings(_env_file=None, **values)
        return running(settings, svc.mailbox, client_ip=client_ip)

    return start


def reset_mails(svc: Service, address: str) -> list[Message]:
    return [m for m in svc.mailbox.to(address) if m["Subject"] == RESET_SUBJECT]


async def forgot(svc: Service, address: str, **headers: str) -> httpx2.Response:
    reply = await svc.client.post(f"{API}/auth/password/forgot", json={"email": address},
                                  headers=headers)
    assert reply.status_code == 202
    return reply


async def new_link(svc: Service, address: str) -> str:
    """Ask for a reset, run the e-mail job, return the token of the newest reset e-mail."""
    before, total = len(reset_mails(svc, address)), len(svc.mailbox.to(address))
    await forgot(svc, address)
    await svc.run_jobs()
    await svc.mailbox.wait_for(address, count=total + 1)
    mails = reset_mails(svc, address)
    assert len(mails) == before + 1
    return token_in(mails[-1])


async def reset(svc: Service, token: str, password: str = NEW_PASSWORD) -> httpx2.Response:
    return await svc.client.post(f"{API}/auth/password/reset",
                                 json={"token": token, "new_password": password})


def assert_gone(reply: httpx2.Response) -> None:
    assert reply.status_code == 410, reply.text
    assert reply.json()["code"] == "token_expired_or_used"
    assert reply.headers["content-type"].startswith("application/problem+json")


async def _user(svc: Service, address: str) -> User:
    async with svc.runtime.db.sessions() as session:
        user = await session.scalar(select(User).where(User.email == address))
    assert user is not None
    return user


def _suppressed() -> float:
    value = metrics.registry.get_sample_value(
        "epicura_auth_events_total", {"event": "reset_suppressed"})
    return value or 0.0


# --- the link --------------------------------------------------------------------------------


async def test_the_link_is_single_use_and_ends_every_session_without_logging_in(
    svc: Service,
) -> None:
    address = _mail("once")
    first = await svc.signed_up(address)
    second = (await svc.login(address, session_name="Tablet")).json()
    rotated = await svc.client.post(f"{API}/auth/refresh",
                                    json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200
    first = rotated.json()

    token = await new_link(svc, address)
    used = await reset(svc, token)
    assert used.status_code == 204
    assert used.content == b""  # nothing to sign in with
    assert "set-cookie" not in used.headers

    # Every login session ended: access tokens refused, refresh tokens dead.
    for pair in (first, second):
        assert (await svc.client.get(f"{API}/users/me", headers=bearer(pair))).status_code == 401
        refreshed = await svc.client.post(f"{API}/auth/refresh",
                                          json={"refresh_token": pair["refresh_token"]})
        assert refreshed.status_code == 401
    user = await _user(svc, address)
    async with svc.runtime.db.sessions() as session:
        families = (await session.scalars(
            select(LoginSession).where(LoginSession.user_id == user.id))).all()
    assert len(families) == 2
    assert all(f.revoked_at is not None and f.revoked_reason == "password_reset"
               for f in families)

    # The link is spent: a second use changes nothing.
    assert_gone(await reset(svc, token, "yet another passphrase"))
    assert (await svc.login(address, "yet another passphrase")).status_code == 401
    assert (await svc.login(address, STRONG_PASSWORD)).status_code == 401
    fresh = await svc.login(address, NEW_PASSWORD)
    assert fresh.status_code == 200
    sessions = await svc.client.get(f"{API}/users/me/sessions", headers=bearer(fresh.json()))
    assert [s["current"] for s in sessions.json()] == [True]
    me = await svc.client.get(f"{API}/users/me", headers=bearer(fresh.json()))
    assert me.json()["email_verified"] is True  # the link proved the address


async def test_the_token_is_long_random_and_only_its_hash_is_stored(svc: Service) -> None:
    address = _mail("hash")
    assert (await svc.register(address)).status_code == 202
    await svc.run_jobs()
    await forgot(svc, address)
    async with svc.runtime.db.sessions() as session:  # the queued e-mail, before it is sent
        queued = [str(j.payload) for j in (await session.scalars(
            select(Job).where(Job.state == "queued"))).all()]
    await svc.run_jobs()
    [mail] = [m for m in await svc.mailbox.wait_for(address, count=2)
              if m["Subject"] == RESET_SUBJECT]
    text = body_of(mail)
    token = token_in(mail)
    assert LINK_PREFIX + token in text
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert len(raw) * 8 >= 128

    user = await _user(svc, address)
    async with svc.runtime.db.sessions() as session:
        rows = (await session.scalars(select(EmailToken).where(
            EmailToken.user_id == user.id, EmailToken.purpose == PURPOSE_RESET_PASSWORD))).all()
        stored_jobs = [str(j.payload) for j in (await session.scalars(select(Job))).all()]
    [row] = rows
    columns: dict[str, Any] = {c.key: getattr(row, c.key) for c in EmailToken.__table__.columns}
    assert all(token not in str(value) for value in columns.values())
    assert len(row.token_hash) == 64 and int(row.token_hash, 16) >= 0
    assert row.expires_at - row.created_at == timedelta(minutes=30)
    assert len(queued) >= 1
    assert all(token not in payload for payload in queued + stored_jobs)  # sealed in the queue


async def test_the_link_expires_after_thirty_minutes(svc: Service) -> None:
    address = _mail("expiry")
    assert (await svc.register(address)).status_code == 202
    await svc.run_jobs()
    with clock.frozen(datetime.now(UTC)):
        late = await new_link(svc, address)
        clock.advance(timedelta(minutes=30, seconds=1))
        assert_gone(await reset(svc, late))
        assert (await svc.login(address)).status_code == 200  # the password is unchanged

        in_time = await new_link(svc, address)
        clock.advance(timedelta(minutes=29, seconds=59))
        assert (await reset(svc, in_time)).status_code == 204
        assert (await svc.login(address, NEW_PASSWORD)).status_code == 200


async def test_a_newer_link_supersedes_the_older_one(svc: Service) -> None:
    address = _mail("newer")
    assert (await svc.register(address)).status_code == 202
    await svc.run_jobs()
    older = await new_link(svc, address)
    newer = await new_link(svc, address)
    assert older != newer
    assert_gone(await reset(svc, older))
    assert (await svc.login(address)).status_code == 200
    assert (await reset(svc, newer)).status_code == 204
    assert_gone(await reset(svc, older))
    assert_gone(await reset(svc, newer))


async def test_a_refused_new_password_does_not_spend_the_link(svc: Service) -> None:
    address = _mail("policy")
    assert (await svc.register(address)).status_code == 202
    await svc.run_jobs()
    token = await new_link(svc, address)
    common = await reset(svc, token, "baseball")
    assert common.status_code == 422 and common.json()["code"] == "password_too_common"
    short = await reset(svc, token, "short")
    assert short.status_code == 422 and short.json()["code"] == "validation_failed"
    assert (await svc.login(address)).status_code == 200
    assert (await reset(svc, token)).status_code == 204


async def test_unknown_or_verification_tokens_are_refused(svc: Service) -> None:
    address = _mail("purpose")
    assert (await svc.register(address)).status_code == 202
    await svc.run_jobs()
    [verification] = await svc.mailbox.wait_for(address)
    assert_gone(await reset(svc, token_in(verification)))  # a link for another purpose
    assert_gone(await reset(svc, secrets.token_urlsafe(32)))
    assert (await svc.login(address)).status_code == 200


async def test_the_link_uses_the_configured_base_url_whatever_the_host_header(
    svc: Service,
) -> None:
    address = _mail("host")
    assert (await svc.register(address)).status_code == 202
    await forgot(svc, address, Host="evil.example", **{
        "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http",
        "Origin": "https://evil.example", "Forwarded": "host=evil.example;proto=http"})
    await svc.run_jobs()
    [mail] = [m for m in await svc.mailbox.wait_for(address, count=2)
              if m["Subject"] == RESET_SUBJECT]
    text = body_of(mail)
    assert LINK_PREFIX + token_in(mail) in text
    assert "evil.example" not in text


# --- how often ---------------------------------------------------------------------------------


async def test_over_three_an_hour_per_account_reply_202_but_send_nothing(
    svc: Service, variant: Variant,
) -> None:
    address = _mail("per-account")
    assert (await svc.register(address)).status_code == 202
    await svc.run_jobs()
    suppressed_before = _suppressed()
    replies = [await forgot(svc, address) for _ in range(4)]
    assert len({r.content for r in replies}) == 1  # the suppressed one looks the same
    async with variant(client_ip="198.51.100.33") as elsewhere:  # another address, same account
        assert (await forgot(elsewhere, address)).content == replies[0].content
    assert _suppressed() == suppressed_before + 2
    await svc.run_jobs()
    await svc.mailbox.wait_for(address, count=4)
    assert len(reset_mails(svc, address)) == 3
    assert await svc.run_jobs() == 0
    user = await _user(svc, address)
    async with svc.runtime.db.sessions() as session:
        issued = (await session.scalars(select(EmailToken).where(
            EmailToken.user_id == user.id, EmailToken.purpose == PURPOSE_RESET_PASSWORD))).all()
    assert len(issued) == 3
    # The newest sent link is the one that works.
    assert (await reset(svc, token_in(reset_mails(svc, address)[-1]))).status_code == 204


async def test_over_ten_an_hour_per_address_reply_202_but_send_nothing(
    svc: Service, variant: Variant,
) -> None:
    a, b, c, d = (_mail(f"per-ip-{n}") for n in "abcd")
    for address in (a, b, c, d):
        assert (await svc.register(address)).status_code == 202
    await svc.run_jobs()
    suppressed_before = _suppressed()
    for address in (a, a, a, b, b, b, c, c, c, d):  # 10 from this address, ≤3 per account
        await forgot(svc, address)
    assert _suppressed() == suppressed_before
    eleventh = await forgot(svc, d)  # d has had one: only the address limit applies
    assert _suppressed() == suppressed_before + 1
    unknown = await forgot(svc, _mail("per-ip-nobody"))
    assert eleventh.content == unknown.content
    await svc.run_jobs()
    assert [len(reset_mails(svc, x)) for x in (a, b, c, d)] == [3, 3, 3, 1]
    # The same account from another address is still served.
    async with variant(client_ip="198.51.100.44") as elsewhere:
        await forgot(elsewhere, d)
    await svc.run_jobs()
    await svc.mailbox.wait_for(d, count=3)
    assert len(reset_mails(svc, d)) == 2
