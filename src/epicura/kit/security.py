"""Passwords, opaque tokens and signed JWTs: the primitives, with no business rules.

Argon2id work runs off the event loop and at most one hash per core at a time, so a login flood
cannot starve every other request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import anyio
import jwt
import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

JWT_ALGORITHM = "HS256"
ACCESS_TOKEN_MEDIA_TYPE = "at+jwt"  # RFC 9068 `typ` header


class PasswordHasher:
    def __init__(self, *, memory_kib: int, time_cost: int, parallelism: int) -> None:
        self._params = (memory_kib, time_cost, parallelism)
        self._hash = PasswordHash(
            (Argon2Hasher(memory_cost=memory_kib, time_cost=time_cost, parallelism=parallelism),)
        )
        self._limiter = anyio.CapacityLimiter(max(1, os.cpu_count() or 1))
        # Verified against when the account does not exist, so both paths cost the same.
        self._dummy = self._hash.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._hash.hash, password, limiter=self._limiter)

    async def verify(self, password: str, stored: str | None) -> tuple[bool, str | None]:
        """(matches, new hash when the stored one uses weaker parameters)."""
        target = stored or self._dummy
        matches, updated = await anyio.to_thread.run_sync(
            self._hash.verify_and_update, password, target, limiter=self._limiter
        )
        if stored is None:
            return False, None
        if updated is not None and not self._weaker_than_configured(stored):
            updated = None  # a hash made stronger than today's settings is kept as it is
        return bool(matches), updated

    def _weaker_than_configured(self, stored: str) -> bool:
        found = re.search(r"\$m=(\d+),t=(\d+),p=(\d+)\$", stored)
        if found is None or not stored.startswith("$argon2id$"):
            return True  # another algorithm or variant: always upgrade
        memory, time_cost, parallelism = (int(part) for part in found.groups())
        want_memory, want_time, want_parallelism = self._params
        return memory < want_memory or time_cost < want_time or parallelism < want_parallelism


def new_opaque_token(nbytes: int = 32) -> str:
    """URL-safe random token; 32 bytes = 256 bits."""
    return secrets.token_urlsafe(nbytes)


def token_digest(token: str, key: bytes) -> str:
    """Keyed hash of an opaque token for storage: a leaked table gives nothing usable."""
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def key_id(secret: bytes) -> str:
    return hashlib.sha256(b"epicura-kid:" + secret).hexdigest()[:16]


@dataclass(frozen=True)
class JwtKeys:
    """The signing key and the keys still accepted for verification, by `kid`."""

    current_kid: str
    by_kid: dict[str, bytes]

    @classmethod
    def from_secrets(cls, current: bytes, previous: bytes | None = None) -> JwtKeys:
        keys = {key_id(current): current}
        if previous:
            keys[key_id(previous)] = previous
        return cls(current_kid=key_id(current), by_kid=keys)

    def sign(self, claims: dict[str, Any], *, media_type: str = ACCESS_TOKEN_MEDIA_TYPE) -> str:
        headers = {"kid": self.current_kid, "typ": media_type}
        return jwt.encode(
            claims, self.by_kid[self.current_kid], algorithm=JWT_ALGORITHM, headers=headers
        )

    def verify(
        self,
        token: str,
        *,
        issuer: str,
        audience: str,
        leeway_s: int,
        now: datetime,
        required: tuple[str, ...],
        media_type: str = ACCESS_TOKEN_MEDIA_TYPE,
    ) -> dict[str, Any]:
        """Claims of a valid token, else `jwt.InvalidTokenError`. Only HS256 with a known `kid`;
        key material in the header (jwk, jku, x5u, x5c) is never used."""
        if len(token) > 8192:
            raise jwt.InvalidTokenError("token too long")
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        if not isinstance(kid, str) or kid not in self.by_kid:
            raise jwt.InvalidTokenError("unknown kid")
        if header.get("typ") != media_type or header.get("alg") != JWT_ALGORITHM:
            raise jwt.InvalidTokenError("wrong token type or algorithm")
        claims: dict[str, Any] = jwt.decode(
            token,
            self.by_kid[kid],
            algorithms=[JWT_ALGORITHM],
            issuer=issuer,
            audience=audience,
            leeway=leeway_s,
            # Times are checked below against our clock, which tests can freeze.
            options={
                "require": list(required),
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
        exp, iat = claims["exp"], claims["iat"]
        if not isinstance(exp, int | float) or not isinstance(iat, int | float):
            raise jwt.InvalidTokenError("bad time claims")
        ts = now.timestamp()
        if exp < ts - leeway_s or iat > ts + leeway_s:
            raise jwt.InvalidTokenError("expired or issued in the future")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and nbf > ts + leeway_s:
            raise jwt.InvalidTokenError("not yet valid")
        return claims


def timestamp(moment: datetime) -> int:
    return int(moment.timestamp())


def expires(now: datetime, seconds: int) -> datetime:
    return now + timedelta(seconds=seconds)


class Sealer:
    """Authenticated encryption for secrets that must wait somewhere (a job's e-mail link)."""

    def __init__(self, secret: bytes) -> None:
        self._aead = AESGCM(hashlib.sha256(b"epicura-seal:" + secret).digest())

    def seal(self, value: dict[str, Any]) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, orjson.dumps(value), None)
        return base64.urlsafe_b64encode(nonce + sealed).decode()

    def unseal(self, sealed: str) -> dict[str, Any]:
        raw = base64.urlsafe_b64decode(sealed.encode())
        opened: dict[str, Any] = orjson.loads(self._aead.decrypt(raw[:12], raw[12:], None))
        return opened


@cache
def common_passwords() -> frozenset[str]:
    """The 10,000 most common passwords (zxcvbn's frequency list, most common first)."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"][:10_000])
