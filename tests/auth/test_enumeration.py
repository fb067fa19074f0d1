"""T13: the replies never tell whether an e-mail is registered (login, forgot-password, register).

Only content is compared here; timing is measured by `bench/auth_timing.py` (never asserted in
tests)."""

from __future__ import annotations

import secrets

import httpx2
import pytest
from sqlalchemy import ColumnElement, func, select, update

from epicura.auth.models import EmailToken, User
from epicura.kit.jobs import Job
from tests.support import API, STRONG_PASSWORD, Service, body_of

pytestmark = pytest.mark.anyio

IGNORED_HEADERS = {"x-request-id"}


def _mail(tag: str) -> str:
    return f"test_enumeration-{tag}-{secrets.token_hex(4)}@example.com"


def _comparable(reply: httpx2.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = sorted((k.lower(), v) for k, v in reply.headers.items()
                     if k.lower() not in IGNORED_HEADERS)
    return reply.status_code, headers, reply.content


def assert_indistinguishable(known: httpx2.Response, unknown: httpx2.Response) -> None:
    assert known.headers["x-request-id"] != unknown.headers["x-request-id"]
    assert _comparable(known) == _comparable(unknown)


async def _count(svc: Service, model: type[User] | type[EmailToken] | type[Job],
                 *where: ColumnElement[bool]) -> int:
    async with svc.runtime.db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where))
                   or 0)


async def test_login_wrong_password_and_unknown_email_get_the_same_reply(svc: Service) -> None:
    known, unknown = _mail("login-k"), _mail("login-u")
    assert (await svc.register(known)).status_code == 202
    wrong = await svc.login(known, "definitely not it")
    nobody = await svc.login(unknown, "definitely not it")
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "invalid_credentials"
    assert_indistinguishable(wrong, nobody)
    # The case and surrounding spaces of the address change nothing either.
    shouted = await svc.login(f"  {known.upper()} ", "definitely not it")
    assert_indistinguishable(shouted, nobody)
    # The OAuth form of the docs page behaves the same.
    form_known = await svc.client.post(f"{API}/auth/token",
                                       data={"username": known, "password": "nope nope"})
    form_unknown = await svc.client.post(f"{API}/auth/token",
                                         data={"username": unknown, "password": "nope nope"})
    assert form_known.status_code == 401
    assert_indistinguishable(form_known, form_unknown)


async def test_a_disabled_account_with_its_right_password_looks_unknown(svc: Service) -> None:
    known, unknown = _mail("disabled-k"), _mail("disabled-u")
    assert (await svc.register(known)).status_code == 202
    async with svc.runtime.db.transaction() as session:
        await session.execute(update(User).where(User.email == known).values(is_active=False))
    right = await svc.login(known, STRONG_PASSWORD)
    nobody = await svc.login(unknown, STRONG_PASSWORD)
    assert right.status_code == 401
    assert_indistinguishable(right, nobody)


async def test_forgot_password_replies_the_same_for_known_and_unknown(svc: Service) -> None:
    known, unknown = _mail("forgot-k"), _mail("forgot-u")
    assert (await svc.register(known)).status_code == 202
    await svc.run_jobs()
    for_known = await svc.client.post(f"{API}/auth/password/forgot", json={"email": known})
    for_unknown = await svc.client.post(f"{API}/auth/password/forgot", json={"email": unknown})
    assert for_known.status_code == 202
    assert set(for_known.json()) == {"detail"}
    assert_indistinguishable(for_known, for_unknown)
    # Only the real owner receives anything.
    await svc.run_jobs()
    subjects = [m["Subject"] for m in await svc.mailbox.wait_for(known, count=2)]
    assert subjects.count("Reset your Epicura password") == 1
    assert svc.mailbox.to(unknown) == []


async def test_register_taken_and_new_reply_the_same_and_only_mail_the_owner(
    svc: Service,
) -> None:
    taken, fresh = _mail("reg-k"), _mail("reg-u")
    assert (await svc.register(taken, name="Original Owner")).status_code == 202
    await svc.run_jobs()
    [verification] = await svc.mailbox.wait_for(taken)
    async with svc.runtime.db.sessions() as session:
        owner = await session.scalar(select(User).where(User.email == taken))
    assert owner is not None
    users_before = await _count(svc, User)
    tokens_before = await _count(svc, EmailToken, EmailToken.user_id == owner.id)

    again = await svc.register(taken.upper(), "some other passphrase", name="Intruder")
    new = await svc.register(fresh, "some other passphrase", name="Intruder")
    assert again.status_code == 202
    assert set(again.json()) == {"detail"}
    assert_indistinguishable(again, new)

    # Exactly one new user (the fresh one); the taken account is untouched.
    assert await _count(svc, User) == users_before + 1
    assert await _count(svc, User, User.email == taken) == 1
    async with svc.runtime.db.sessions() as session:
        unchanged = await session.scalar(select(User).where(User.email == taken))
    assert unchanged is not None
    def state(user: User) -> tuple[object, ...]:
        return (user.id, user.display_name, user.password_hash, user.updated_at)

    assert state(unchanged) == state(owner)
    assert await _count(svc, EmailToken, EmailToken.user_id == owner.id) == tokens_before
    assert (await svc.login(taken, "some other passphrase")).status_code == 401
    assert (await svc.login(taken)).status_code == 200

    # The one side effect: the owner is told, with no link that acts on the account.
    await svc.run_jobs()
    owner_mail = await svc.mailbox.wait_for(taken, count=2)
    assert [m["Subject"] for m in owner_mail] == [
        verification["Subject"], "Someone tried to register with your e-mail"]
    text = body_of(owner_mail[1])
    assert "Original Owner" in text and "Intruder" not in text
    assert "https://app.epicura.test/forgot-password" in text and "token=" not in text
    assert "Confirm" in (await svc.mailbox.wait_for(fresh))[0]["Subject"]
