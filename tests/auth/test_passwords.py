"""T12: password hashing (Argon2id, rehash on login) and the password policy (8–1,024 chars, no
truncation, the 10,000 most common passwords refused, no composition rules)."""

from __future__ import annotations

import base64
import secrets
import string
from collections.abc import AsyncIterator
from typing import Any

import pytest
from argon2 import PasswordHasher as Argon2Verifier
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import func, select, update

from epicura.auth.models import User
from epicura.config import Settings
from epicura.kit.security import PasswordHasher, common_passwords
from tests.support import API, STRONG_PASSWORD, Service, bearer, running

pytestmark = pytest.mark.anyio

CURRENT_PREFIX = "$argon2id$v=19$m=19456,t=2,p=1$"


def _mail(tag: str) -> str:
    return f"test_passwords-{tag}-{secrets.token_hex(4)}@example.com"


def _random_password(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


async def _stored_hash(svc: Service, address: str) -> str | None:
    async with svc.runtime.db.sessions() as session:
        value: str | None = await session.scalar(
            select(User.password_hash).where(User.email == address))
        return value


async def _set_hash(svc: Service, address: str, password_hash: str) -> None:
    async with svc.runtime.db.transaction() as session:
        await session.execute(
            update(User).where(User.email == address).values(password_hash=password_hash))


def _argon2_parts(encoded: str) -> dict[str, Any]:
    """`$argon2id$v=19$m=..,t=..,p=..$salt$digest` → its pieces."""
    _, variant, version, params, salt, digest = encoded.split("$")
    values = dict(item.split("=") for item in params.split(","))
    padded = salt + "=" * (-len(salt) % 4)
    return {"variant": variant, "version": version, "m": int(values["m"]),
            "t": int(values["t"]), "p": int(values["p"]),
            "salt": base64.b64decode(padded), "digest": digest}


def _variant_settings(settings: Settings, **overrides: object) -> Settings:
    values = settings.model_dump()
    values.update(overrides)
    return Settings(_env_file=None, **values)


class CountingHasher:
    """The real hasher, counting how often Argon2 work is asked for."""

    def __init__(self, inner: PasswordHasher) -> None:
        self.inner = inner
        self.calls = 0

    async def hash(self, password: str) -> str:
        self.calls += 1
        return await self.inner.hash(password)

    async def verify(self, password: str, stored: str | None) -> tuple[bool, str | None]:
        self.calls += 1
        return await self.inner.verify(password, stored)


@pytest.fixture
async def counted(svc: Service) -> AsyncIterator[CountingHasher]:
    real = svc.runtime.hasher
    spy = CountingHasher(real)
    svc.runtime.hasher = spy  # type: ignore[assignment]
    try:
        yield spy
    finally:
        svc.runtime.hasher = real


# --- hashing ---------------------------------------------------------------------------------


async def test_stored_hash_is_argon2id_at_least_owasp_parameters_with_unique_salts(
    svc: Service,
) -> None:
    first, second = _mail("same-a"), _mail("same-b")
    assert (await svc.register(first)).status_code == 202
    assert (await svc.register(second)).status_code == 202
    hash_a, hash_b = await _stored_hash(svc, first), await _stored_hash(svc, second)
    assert hash_a is not None and hash_b is not None
    for encoded in (hash_a, hash_b):
        parts = _argon2_parts(encoded)
        assert parts["variant"] == "argon2id" and parts["version"] == "v=19"
        assert parts["m"] >= 19456 and parts["t"] >= 2 and parts["p"] >= 1
        assert encoded.startswith(CURRENT_PREFIX)  # the configured defaults
        assert len(parts["salt"]) == 16
        assert STRONG_PASSWORD not in encoded
        Argon2Verifier().verify(encoded, STRONG_PASSWORD)
    assert hash_a != hash_b
    assert _argon2_parts(hash_a)["salt"] != _argon2_parts(hash_b)["salt"]


async def test_a_weaker_hash_is_upgraded_on_the_next_successful_login_only(svc: Service) -> None:
    address = _mail("weak")
    assert (await svc.register(address)).status_code == 202
    weak = Argon2Hasher(memory_cost=8192, time_cost=1, parallelism=1).hash(STRONG_PASSWORD)
    assert weak.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    await _set_hash(svc, address, weak)

    assert (await svc.login(address, "not the password at all")).status_code == 401
    assert await _stored_hash(svc, address) == weak  # a failed login changes nothing

    assert (await svc.login(address)).status_code == 200
    upgraded = await _stored_hash(svc, address)
    assert upgraded is not None and upgraded != weak
    assert upgraded.startswith(CURRENT_PREFIX)
    Argon2Verifier().verify(upgraded, STRONG_PASSWORD)

    assert (await svc.login(address)).status_code == 200
    assert await _stored_hash(svc, address) == upgraded  # current hashes are left alone


async def test_hashes_are_upgraded_when_the_configured_parameters_rise(
    svc: Service, pg_settings: Settings,
) -> None:
    address = _mail("rise")
    assert (await svc.register(address)).status_code == 202
    before = await _stored_hash(svc, address)
    assert before is not None and before.startswith(CURRENT_PREFIX)

    stronger = _variant_settings(pg_settings, argon2_memory_kib=32768, argon2_time_cost=3)
    async with running(stronger, svc.mailbox, client_ip="192.0.2.12") as upgraded_svc:
        assert (await upgraded_svc.login(address)).status_code == 200
        after = await _stored_hash(svc, address)
        assert after is not None and after.startswith("$argon2id$v=19$m=32768,t=3,p=1$")
        assert (await upgraded_svc.login(address)).status_code == 200
        assert await _stored_hash(svc, address) == after


def test_settings_refuse_parameters_under_the_owasp_minimum() -> None:
    for weak in ({"argon2_memory_kib": 19455}, {"argon2_time_cost": 1},
                 {"argon2_parallelism": 0}):
        with pytest.raises(ValueError, match="greater than or equal"):
            Settings(_env_file=None, **weak)  # type: ignore[arg-type]


# --- length: no truncation, a hard cap before any hashing -------------------------------------


@pytest.mark.parametrize("length", [64, 1000, 1024])
async def test_long_passwords_work_and_every_character_counts(svc: Service, length: int) -> None:
    address = _mail(f"long{length}")
    password = _random_password(length)
    assert (await svc.register(address, password)).status_code == 202
    assert (await svc.login(address, password)).status_code == 200

    def changed_at(position: int) -> str:  # 1-based position
        index = position - 1
        other = "x" if password[index] != "x" else "y"
        return password[:index] + other + password[index + 1:]

    if length > 72:  # bcrypt would ignore everything after byte 72
        assert (await svc.login(address, changed_at(73))).status_code == 401
        assert (await svc.login(address, password[:72])).status_code == 401
    assert (await svc.login(address, changed_at(length))).status_code == 401
    if length < 1024:
        assert (await svc.login(address, password + "x")).status_code == 401
    assert (await svc.login(address, password)).status_code == 200


async def test_non_ascii_passwords_at_the_cap_are_accepted(svc: Service) -> None:
    address = _mail("unicode")
    password = ("ü" + "密" + "🍲" + "ß") * 256  # 1,024 characters, 2.5 KiB of UTF-8
    assert len(password) == 1024
    assert (await svc.register(address, password)).status_code == 202
    assert (await svc.login(address, password)).status_code == 200
    assert (await svc.login(address, password[:-1] + "x")).status_code == 401


async def test_over_long_passwords_are_refused_before_any_hashing(
    svc: Service, counted: CountingHasher,
) -> None:
    address = _mail("cap")
    tokens = await svc.signed_up(address)
    baseline = counted.calls
    for length in (1025, 4097, 100_000):
        too_long = "a" * length
        replies = [
            await svc.register(_mail("cap-new"), too_long),
            await svc.login(address, too_long),
            await svc.client.post(f"{API}/auth/password/reset",
                                  json={"token": "x" * 43, "new_password": too_long}),
            await svc.client.post(f"{API}/users/me/password", headers=bearer(tokens), json={
                "current_password": STRONG_PASSWORD, "new_password": too_long}),
            await svc.client.post(f"{API}/users/me/password", headers=bearer(tokens), json={
                "current_password": too_long, "new_password": "another fine passphrase"}),
            await svc.client.post(f"{API}/auth/token",
                                  data={"username": address, "password": too_long}),
        ]
        for reply in replies:
            assert reply.status_code == 422, reply.text
            assert reply.json()["code"] == "validation_failed"
            assert reply.headers["content-type"].startswith("application/problem+json")
    assert counted.calls == baseline  # no Argon2 work was spent on any of them
    async with svc.runtime.db.sessions() as session:
        assert await session.scalar(
            select(func.count()).select_from(User).where(User.email.like("test_passwords-cap-new%"))
        ) == 0
    # The cap itself is not an error for the same routes.
    assert (await svc.login(address, "a" * 1024)).status_code == 401
    assert counted.calls == baseline + 1


# --- policy ----------------------------------------------------------------------------------


async def test_passwords_under_eight_characters_are_refused(svc: Service) -> None:
    address = _mail("short")
    for short in ("", "a", "Tr0ub4!", "ab cd e"):
        reply = await svc.register(address, short)
        assert reply.status_code == 422, short
        assert reply.json()["code"] == "validation_failed"
        assert reply.json()["errors"][0]["loc"] == ["body", "password"]
    async with svc.runtime.db.sessions() as session:
        assert await session.scalar(select(User.id).where(User.email == address)) is None
    assert (await svc.register(address, "x7#kq!pz")).status_code == 202  # exactly 8 is enough


def _common_of_min_length(count: int) -> list[str]:
    """`count` entries of the refused list that pass the length rule, spread over the list."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    top = [p for p in FREQUENCY_LISTS["passwords"][:10_000] if len(p) >= 8]
    step = max(1, len(top) // count)
    return [top[0], *top[step::step][: count - 2], top[-1]]


async def test_common_passwords_are_refused_everywhere_a_password_is_set(svc: Service) -> None:
    address = _mail("common")
    tokens = await svc.signed_up(address)
    samples = _common_of_min_length(8)
    assert "password" in samples  # the most common one that is 8 characters long
    variants = [*samples, "PASSWORD", "Baseball", "FOOTBALL"]
    for common in variants:
        reply = await svc.register(_mail("common-new"), common)
        assert reply.status_code == 422, common
        assert reply.json()["code"] == "password_too_common"
    for common in ("password", samples[-1]):
        change = await svc.client.post(f"{API}/users/me/password", headers=bearer(tokens), json={
            "current_password": STRONG_PASSWORD, "new_password": common})
        assert change.status_code == 422
        assert change.json()["code"] == "password_too_common"
    # The refused password was not set: the old one still works, the session is still alive.
    assert (await svc.client.get(f"{API}/users/me", headers=bearer(tokens))).status_code == 200
    assert (await svc.login(address)).status_code == 200
    async with svc.runtime.db.sessions() as session:
        assert await session.scalar(
            select(func.count()).select_from(User)
            .where(User.email.like("test_passwords-common-new%"))) == 0


async def test_only_the_ten_thousand_most_common_are_refused_and_no_composition_rules(
    svc: Service,
) -> None:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    refused = common_passwords()
    assert len(refused) == 10_000
    beyond = [p for p in FREQUENCY_LISTS["passwords"][10_000:10_200]
              if len(p) >= 8 and p not in refused]
    lowercase_only = "".join(secrets.choice(string.ascii_lowercase) for _ in range(12))
    digits_only = "".join(secrets.choice(string.digits) for _ in range(12))
    with_spaces = "a cook in my kitchen"
    candidates = [beyond[0], lowercase_only, digits_only, with_spaces]
    for password in candidates:
        assert password.lower() not in refused
        address = _mail("nocomp")
        assert (await svc.register(address, password)).status_code == 202, password
        assert (await svc.login(address, password)).status_code == 200, password
