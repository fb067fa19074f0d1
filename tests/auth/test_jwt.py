"""Access-token verification (checklist T01-T04): a negative corpus of crafted tokens.

Every crafted token carries the claims of a real, signed-in user, so a verifier that wrongly
accepted one would answer 200 with that user. The forging helper is checked against a positive
control (the same helper with the real key and untouched header/claims gets 200), so each
negative case differs from an accepted token by exactly its one mutation.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import jwt
import orjson
import pytest
from pydantic import SecretStr
from sqlalchemy import text

from epicura.auth.tokens import ACCESS_CLAIMS, verify_access_token
from epicura.config import DEV_JWT_SECRET, Settings
from epicura.kit import clock
from epicura.kit.runtime import Runtime
from epicura.kit.security import JwtKeys, key_id
from tests.conftest import TEST_JWT_SECRET, TEST_REFRESH_SECRET, base_settings
from tests.support import API, Mailbox, Service, bearer, running, token_in

pytestmark = pytest.mark.anyio

SECRET = TEST_JWT_SECRET.encode()
KID = key_id(SECRET)
ME = f"{API}/users/me"
GENERIC_401 = {
    "type": "about:blank", "title": "Authentication required", "status": 401,
    "code": "unauthorized",
}
# A fixed, whole-second instant: the boundary cases (now-29 s, now-31 s) are exact.
FROZEN_AT = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
LEEWAY = 30
_DROP = object()  # a header/claim value meaning "leave this member out"


# --- forging ---------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Any) -> str:
    return b64(orjson.dumps(value))


def forge(
    header: dict[str, Any],
    claims: Any,
    key: bytes | None = SECRET,
    digest: Callable[..., Any] = hashlib.sha256,
) -> str:
    """A compact JWS over exactly this header and payload; HMAC with `key`, or no signature."""
    signing_input = f"{segment(header)}.{segment(claims)}"
    signature = "" if key is None else b64(hmac.new(key, signing_input.encode(), digest).digest())
    return f"{signing_input}.{signature}"


def with_changes(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **changes}
    return {k: v for k, v in merged.items() if v is not _DROP}


def std_header(**changes: Any) -> dict[str, Any]:
    return with_changes({"alg": "HS256", "typ": "at+jwt", "kid": KID}, changes)


def flip(token: str, index: int) -> str:
    """The token with one bit of one signature byte flipped."""
    head, body, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[index] ^= 0x01
    return f"{head}.{body}.{b64(bytes(raw))}"


@dataclass
class Victim:
    """A signed-in user whose real claims the crafted tokens carry."""

    email: str
    tokens: dict[str, Any]
    base_claims: dict[str, Any]

    @property
    def user_id(self) -> uuid.UUID:
        return uuid.UUID(self.base_claims["sub"])

    @property
    def session_id(self) -> uuid.UUID:
        return uuid.UUID(self.base_claims["sid"])

    def claims(self, now: datetime, **changes: Any) -> dict[str, Any]:
        ts = int(now.timestamp())
        fresh = {**self.base_claims, "iat": ts, "exp": ts + 600}
        fresh.pop("nbf", None)
        return with_changes(fresh, changes)


async def signed_in(svc: Service, address: str) -> Victim:
    tokens = await svc.signed_up(address)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["typ"] == "access" and claims["email"] == address
    assert jwt.get_unverified_header(tokens["access_token"])["kid"] == KID
    return Victim(email=address, tokens=tokens, base_claims=claims)


# --- the corpus ----------------------------------------------------------------------------


def positive_control(victim: Victim, now: datetime) -> str:
    return forge(std_header(), victim.claims(now))


def accepted_at_the_edges(victim: Victim, now: datetime) -> dict[str, str]:
    """Within the 30 s leeway: these must be accepted."""
    ts = int(now.timestamp())
    return {
        "exp now-29s": forge(std_header(), victim.claims(now, exp=ts - 29)),
        "exp now-30s": forge(std_header(), victim.claims(now, exp=ts - 30)),
        "nbf now+29s": forge(std_header(), victim.claims(now, nbf=ts + 29)),
        "iat now+29s": forge(std_header(), victim.claims(now, iat=ts + 29)),
        "signed with JwtKeys": JwtKeys.from_secrets(SECRET).sign(victim.claims(now)),
    }


def negative_corpus(victim: Victim, now: datetime, canary: str) -> dict[str, str]:
    """Crafted tokens that must all be refused with the generic 401."""
    ts = int(now.timestamp())
    claims = victim.claims(now)
    valid = forge(std_header(), claims)
    head, body, sig = valid.split(".")
    attacker = b"attacker-controlled-key-0123456789abcdef"
    attacker_jwk = {"kty": "oct", "k": b64(attacker), "kid": KID}
    other_secret = b"some-other-deployment-secret-0123456789abcdef"
    corpus: dict[str, str] = {
        # T01 (a): alg none, whatever the spelling, with or without a signature
        "alg none": forge(std_header(alg="none"), claims, key=None),
        "alg None": forge(std_header(alg="None"), claims, key=None),
        "alg NONE": forge(std_header(alg="NONE"), claims, key=None),
        "alg nOnE": forge(std_header(alg="nOnE"), claims, key=None),
        "alg none, bare header": forge({"alg": "none"}, claims, key=None),
        "alg none, real signature kept": forge(std_header(alg="none"), claims, key=None) + sig,
        "alg missing": forge(std_header(alg=_DROP), claims),
        "alg null": forge(std_header(alg=None), claims),
        # T01 (c): empty or guessable secrets, or the wrong one of our own secrets
        "HS256 empty secret": forge(std_header(), claims, key=b""),
        "HS256 'secret'": forge(std_header(), claims, key=b"secret"),
        "HS256 'password'": forge(std_header(), claims, key=b"password"),
        "HS256 'epicura'": forge(std_header(), claims, key=b"epicura"),
        "HS256 kid as key": forge(std_header(), claims, key=KID.encode()),
        "HS256 dev default secret": forge(std_header(), claims, key=DEV_JWT_SECRET.encode()),
        "HS256 refresh secret": forge(std_header(), claims, key=TEST_REFRESH_SECRET.encode()),
        # T01 (d): tampering
        "signature first byte flipped": flip(valid, 0),
        "signature last byte flipped": flip(valid, -1),
        "signature stripped": f"{head}.{body}.",
        "signature truncated": f"{head}.{body}.{sig[:-4]}",
        "payload role=admin, old signature": (
            f"{head}.{segment({**claims, 'role': 'admin'})}.{sig}"
        ),
        "payload other sub, old signature": (
            f"{head}.{segment({**claims, 'sub': str(uuid.uuid4())})}.{sig}"
        ),
        # T01 (e): alg switched within the family (and across it), real key
        "HS384 real key": forge(std_header(alg="HS384"), claims, digest=hashlib.sha384),
        "HS512 real key": forge(std_header(alg="HS512"), claims, digest=hashlib.sha512),
        "header HS384, HS256 signature": forge(std_header(alg="HS384"), claims),
        "header RS256, HS256 signature": forge(std_header(alg="RS256"), claims),
        "header ES256, HS256 signature": forge(std_header(alg="ES256"), claims),
        "header hs256 lower case": forge(std_header(alg="hs256"), claims),
        # T02: key material in the header, hostile kid values
        "jwk attacker key": forge(std_header(jwk=attacker_jwk), claims, key=attacker),
        "jwk attacker key, no kid": forge(std_header(jwk=attacker_jwk, kid=_DROP), claims,
                                          key=attacker),
        "jku canary": forge(std_header(jku=f"{canary}/jwks.json"), claims, key=attacker),
        "jku canary, no kid": forge(std_header(jku=f"{canary}/jwks.json", kid=_DROP), claims,
                                    key=attacker),
        "x5u canary": forge(std_header(x5u=f"{canary}/cert.pem"), claims, key=attacker),
        "x5c attacker chain": forge(std_header(x5c=[b64(b"not-a-real-certificate" * 8)]),
                                    claims, key=attacker),
        "kid is the canary url": forge(std_header(kid=f"{canary}/key"), claims, key=attacker),
        "kid ../../x": forge(std_header(kid="../../x"), claims, key=b""),
        "kid ../../../../dev/null": forge(std_header(kid="../../../../dev/null"), claims, key=b""),
        "kid SQL injection": forge(std_header(kid="' OR 1=1--"), claims, key=b""),
        "kid SQL injection, real key": forge(std_header(kid="' OR 1=1--"), claims),
        "kid 10 KiB": forge(std_header(kid="k" * 10240), claims),
        "kid missing": forge(std_header(kid=_DROP), claims),
        "kid an integer": forge(std_header(kid=12345), claims),
        "kid a list": forge(std_header(kid=[KID]), claims),
        "kid unknown (other secret)": forge(std_header(kid=key_id(other_secret)), claims,
                                            key=other_secret),
        "unknown crit extension": forge(std_header(crit=["x-epicura"], **{"x-epicura": 1}),
                                        claims),
        # T03: required claims, times, issuer and audience
        **{
            f"claim {name} missing": forge(std_header(), victim.claims(now, **{name: _DROP}))
            for name in ACCESS_CLAIMS
        },
        "exp now-31s": forge(std_header(), victim.claims(now, exp=ts - 31)),
        "exp an hour ago": forge(std_header(), victim.claims(now, iat=ts - 4200, exp=ts - 3600)),
        "exp a string": forge(std_header(), victim.claims(now, exp=str(ts + 600))),
        "exp null": forge(std_header(), victim.claims(now, exp=None)),
        "nbf now+31s": forge(std_header(), victim.claims(now, nbf=ts + 31)),
        "iat now+31s": forge(std_header(), victim.claims(now, iat=ts + 31)),
        "iat far future": forge(std_header(), victim.claims(now, iat=ts + 365 * 86400,
                                                            exp=ts + 366 * 86400)),
        "iss wrong": forge(std_header(), victim.claims(now, iss="https://evil.example")),
        "iss empty": forge(std_header(), victim.claims(now, iss="")),
        "aud wrong": forge(std_header(), victim.claims(now, aud="other-app")),
        "aud list without ours": forge(std_header(), victim.claims(now, aud=["other-app"])),
        "header typ JWT": forge(std_header(typ="JWT"), claims),
        "header typ missing": forge(std_header(typ=_DROP), claims),
        "header typ refresh+jwt": forge(std_header(typ="refresh+jwt"), claims),
        # T04: claim typ must be "access"
        "claim typ refresh": forge(std_header(), victim.claims(now, typ="refresh")),
        "claim typ device": forge(std_header(), victim.claims(now, typ="device")),
        "claim typ ws": forge(std_header(), victim.claims(now, typ="ws")),
        "refresh token as bearer": victim.tokens["refresh_token"],
        # structure
        "payload a JSON list": forge(std_header(), [claims]),
        "header a JSON list": f"{segment([std_header()])}.{body}.{sig}",
        "header not base64": f"!!!.{body}.{sig}",
        "two segments": f"{head}.{body}",
        "four segments": f"{valid}.{sig}",
        "over 8 KiB": forge(std_header(), victim.claims(now, pad="p" * 9000)),
        "sub not a uuid": forge(std_header(), victim.claims(now, sub="admin")),
        "sid not a uuid": forge(std_header(), victim.claims(now, sid="' OR 1=1--")),
    }
    assert len(corpus) >= 40
    assert len(set(corpus.values())) == len(corpus), "two cases forged the same token"
    return corpus


# --- unit level: the verifier with a frozen clock ---------------------------------------------


PREVIOUS_SECRET = b"previous-jwt-secret-" + b"p" * 32
UNIT_BASE_CLAIMS = {
    "sub": str(uuid.UUID(int=1)), "email": "unit@example.com", "role": "user",
    "sid": str(uuid.UUID(int=2)), "jti": "j" * 32,
}


def unit_runtime(tmp_path: Path) -> Runtime:
    """What `verify_access_token` reads of the runtime (settings and keys), built as the app
    builds them, without starting any service."""
    settings = base_settings(tmp_path, 1, jwt_previous_secret=PREVIOUS_SECRET.decode())
    keys = JwtKeys.from_secrets(settings.jwt_secret.get_secret_value().encode(),
                                PREVIOUS_SECRET)
    return cast(Runtime, SimpleNamespace(settings=settings, jwt=keys))


def unit_claims(settings: Settings, **changes: Any) -> dict[str, Any]:
    ts = int(FROZEN_AT.timestamp())
    base = {**UNIT_BASE_CLAIMS, "iat": ts, "exp": ts + 900, "iss": settings.jwt_issuer,
            "aud": settings.jwt_audience, "typ": "access"}
    return with_changes(base, changes)


UNIT_ACCEPTED: dict[str, tuple[dict[str, Any], dict[str, Any], bytes]] = {
    "valid": ({}, {}, SECRET),
    "exp now-29s": ({}, {"exp": -29}, SECRET),
    "exp now-30s": ({}, {"exp": -30}, SECRET),
    "nbf now+29s": ({}, {"nbf": 29}, SECRET),
    "iat now+30s": ({}, {"iat": 30}, SECRET),
    "previous key, its kid": ({"kid": key_id(PREVIOUS_SECRET)}, {}, PREVIOUS_SECRET),
}
UNIT_REFUSED: dict[str, tuple[dict[str, Any], dict[str, Any], bytes | None]] = {
    **{f"no {name}": ({}, {name: _DROP}, SECRET) for name in ACCESS_CLAIMS},
    "exp now-31s": ({}, {"exp": -31}, SECRET),
    "nbf now+31s": ({}, {"nbf": 31}, SECRET),
    "iat now+31s": ({}, {"iat": 31}, SECRET),
    "iat far future": ({}, {"iat": 10 * 365 * 86400, "exp": 10 * 365 * 86400 + 900}, SECRET),
    "iss wrong": ({}, {"iss": "https://evil.example"}, SECRET),
    "aud wrong": ({}, {"aud": "other-app"}, SECRET),
    "typ header JWT": ({"typ": "JWT"}, {}, SECRET),
    "typ header missing": ({"typ": _DROP}, {}, SECRET),
    "typ claim refresh": ({}, {"typ": "refresh"}, SECRET),
    "alg none": ({"alg": "none"}, {}, None),
    "HS512": ({"alg": "HS512"}, {}, SECRET),
    "empty secret": ({}, {}, b""),
    "previous key, current kid": ({}, {}, PREVIOUS_SECRET),
    "current key, previous kid": ({"kid": key_id(PREVIOUS_SECRET)}, {}, SECRET),
    "unknown kid": ({"kid": key_id(b"unknown" * 8)}, {}, b"unknown" * 8),
    "jwk in header": ({"jwk": {"kty": "oct", "k": b64(b"a" * 32)}}, {}, b"a" * 32),
}


def _unit_token(settings: Settings, header: dict[str, Any], relative: dict[str, Any],
                key: bytes | None) -> str:
    ts = int(FROZEN_AT.timestamp())
    changes = {k: (ts + v if isinstance(v, int) and k in ("exp", "nbf", "iat") else v)
               for k, v in relative.items()}
    digest = hashlib.sha512 if header.get("alg") == "HS512" else hashlib.sha256
    return forge(std_header(**header), unit_claims(settings, **changes), key=key, digest=digest)


@pytest.mark.parametrize("case", UNIT_ACCEPTED)
def test_verifier_accepts_within_the_leeway(tmp_path: Path, case: str) -> None:
    rt = unit_runtime(tmp_path)
    assert rt.settings.jwt_leeway_s == LEEWAY
    header, relative, key = UNIT_ACCEPTED[case]
    token = _unit_token(rt.settings, header, relative, key)
    with clock.frozen(FROZEN_AT):
        claims = verify_access_token(rt, token)
    assert claims["sub"] == UNIT_BASE_CLAIMS["sub"] and claims["typ"] == "access"


@pytest.mark.parametrize("case", UNIT_REFUSED)
def test_verifier_refuses(tmp_path: Path, case: str) -> None:
    rt = unit_runtime(tmp_path)
    header, relative, key = UNIT_REFUSED[case]
    token = _unit_token(rt.settings, header, relative, key)
    with clock.frozen(FROZEN_AT), pytest.raises(jwt.InvalidTokenError):
        verify_access_token(rt, token)


def test_verifier_follows_the_clock(tmp_path: Path) -> None:
    """The same token is valid until exp + 30 s on the frozen clock, and refused one second on."""
    rt = unit_runtime(tmp_path)
    token = _unit_token(rt.settings, {}, {"exp": 60}, SECRET)
    with clock.frozen(FROZEN_AT):
        clock.advance(timedelta(seconds=60 + LEEWAY))
        assert verify_access_token(rt, token)["exp"] == int(FROZEN_AT.timestamp()) + 60
        clock.advance(timedelta(seconds=1))
        with pytest.raises(jwt.InvalidTokenError):
            verify_access_token(rt, token)


# --- HTTP level ------------------------------------------------------------------------------


class Canary:
    """A TCP listener on 127.0.0.1 that counts connections (key URLs in headers point here)."""

    def __init__(self) -> None:
        self.connections = 0
        self.connected = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def _on_connect(self, _reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.connected.set()
        writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"


@pytest.fixture
async def canary() -> AsyncIterator[Canary]:
    listener = Canary()
    listener.server = await asyncio.start_server(listener._on_connect, "127.0.0.1", 0)
    try:
        yield listener
    finally:
        listener.server.close()
        await listener.server.wait_closed()


async def snapshot(svc: Service, victim: Victim) -> dict[str, Any]:
    """Everything a request could change about the victim: rows, audit events, jobs, Redis."""
    uid = victim.user_id
    async with svc.runtime.db.sessions() as session:
        user = (await session.execute(text(
            "SELECT email, display_name, role, locale, timezone, is_active, email_verified, "
            "password_hash, updated_at FROM users WHERE id = :uid"), {"uid": uid})).all()
        families = (await session.execute(text(
            "SELECT id, revoked_at, revoked_reason, last_used_at FROM login_sessions "
            "WHERE user_id = :uid ORDER BY id"), {"uid": uid})).all()
        refresh = (await session.execute(text(
            "SELECT t.id, t.state, t.rotated_at FROM refresh_tokens t JOIN login_sessions s "
            "ON s.id = t.session_id WHERE s.user_id = :uid ORDER BY t.id"), {"uid": uid})).all()
        audits = (await session.execute(text(
            "SELECT count(*) FROM audit_events WHERE actor_id = :uid OR target_id = :tid"),
            {"uid": uid, "tid": str(uid)})).scalar_one()
        job_count = (await session.execute(text("SELECT count(*) FROM jobs"))).scalar_one()
    revoked = await svc.runtime.redis.exists(svc.runtime.keys("revoked", victim.session_id))
    return {"user": user, "families": families, "refresh": refresh, "audits": audits,
            "jobs": job_count, "revoked_in_redis": revoked}


async def assert_refused(svc: Service, token: str, case: str) -> None:
    """The generic 401 on a read, a write and a session-ending route."""
    for method, path, body in (
        ("GET", ME, None),
        ("PATCH", ME, {"display_name": "pwned"}),
        ("POST", f"{API}/auth/logout-all", None),
        ("GET", f"{ME}/sessions", None),
    ):
        reply = await svc.client.request(method, path, json=body, headers=bearer(token))
        assert reply.status_code == 401, f"{case}: {method} {path} -> {reply.status_code}"
        assert reply.headers["content-type"] == "application/problem+json", case
        assert reply.headers["www-authenticate"] == "Bearer", case
        assert reply.json() == GENERIC_401, f"{case}: {reply.text}"


async def test_generic_401_baseline(svc: Service) -> None:
    """No token and a garbage token get the very same body the corpus is held to."""
    no_token = await svc.client.get(ME)
    garbage = await svc.client.get(ME, headers=bearer("garbage"))
    for reply in (no_token, garbage):
        assert reply.status_code == 401
        assert reply.json() == GENERIC_401
        assert reply.headers["www-authenticate"] == "Bearer"


async def test_negative_corpus_is_refused_and_changes_nothing(
    svc: Service, canary: Canary
) -> None:
    victim = await signed_in(svc, "test_jwt-corpus@example.com")
    with clock.frozen(FROZEN_AT):
        control = await svc.client.get(ME, headers=bearer(positive_control(victim, FROZEN_AT)))
        assert control.status_code == 200, control.text
        assert control.json()["email"] == victim.email

        before = await snapshot(svc, victim)
        corpus = negative_corpus(victim, FROZEN_AT, canary.url)
        for case, token in corpus.items():
            await assert_refused(svc, token, case)
        assert await snapshot(svc, victim) == before

        for case, token in accepted_at_the_edges(victim, FROZEN_AT).items():
            reply = await svc.client.get(ME, headers=bearer(token))
            assert reply.status_code == 200, f"{case}: {reply.text}"
            assert reply.json()["email"] == victim.email

    # T02: no key was fetched from a header URL. The canary itself works (so 0 means 0).
    assert canary.connections == 0
    _reader, writer = await asyncio.open_connection("127.0.0.1", int(canary.url.rsplit(":", 1)[1]))
    writer.close()
    await writer.wait_closed()
    await asyncio.wait_for(canary.connected.wait(), timeout=10)
    assert canary.connections == 1

    # The victim's real session is intact: the profile unchanged, the refresh token usable.
    me = await svc.client.get(ME, headers=bearer(victim.tokens))
    assert me.status_code == 200 and me.json()["display_name"] != "pwned"
    refreshed = await svc.client.post(f"{API}/auth/refresh",
                                      json={"refresh_token": victim.tokens["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text


async def test_hostile_kid_causes_no_error_in_the_app(svc: Service) -> None:
    """T02: a path, SQL or oversized kid is refused like any bad token, not as a server error."""
    victim = await signed_in(svc, "test_jwt-kid@example.com")
    now = clock.utcnow()
    for kid in ("../../x", "' OR 1=1--", "k" * 10240, "\x00", "%00", "${jndi:ldap://x}"):
        for key in (b"", SECRET):
            token = forge(std_header(kid=kid), victim.claims(now), key=key)
            await assert_refused(svc, token, f"kid {kid[:20]!r}")


async def test_expiry_leeway_over_http(svc: Service) -> None:
    """T03 over HTTP: exp 29 s ago passes, 31 s ago fails; the clock, not the token, decides."""
    victim = await signed_in(svc, "test_jwt-leeway@example.com")
    ts = int(FROZEN_AT.timestamp())
    token = forge(std_header(), victim.claims(FROZEN_AT, iat=ts - 600, exp=ts))
    with clock.frozen(FROZEN_AT):
        clock.advance(timedelta(seconds=29))
        assert (await svc.client.get(ME, headers=bearer(token))).status_code == 200
        clock.advance(timedelta(seconds=2))  # now exp + 31 s
        await assert_refused(svc, token, "exp now-31s")


async def test_access_token_is_not_a_refresh_token(svc: Service) -> None:
    """T04: an access token sent to /auth/refresh is 401 invalid_token, and nothing changes."""
    victim = await signed_in(svc, "test_jwt-refresh@example.com")
    before = await snapshot(svc, victim)
    for presented in (victim.tokens["access_token"],
                      positive_control(victim, clock.utcnow()),
                      victim.tokens["refresh_token"] + "x"):
        reply = await svc.client.post(f"{API}/auth/refresh", json={"refresh_token": presented})
        assert reply.status_code == 401, reply.text
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.json()["code"] == "invalid_token"
        assert presented not in reply.text
    assert await snapshot(svc, victim) == before
    # The real refresh token was not touched (not rotated, family not revoked).
    ok = await svc.client.post(f"{API}/auth/refresh",
                               json={"refresh_token": victim.tokens["refresh_token"]})
    assert ok.status_code == 200
    assert ok.json()["session_id"] == victim.tokens["session_id"]


async def test_email_tokens_are_not_bearer_tokens(svc: Service) -> None:
    """T04: the verification and reset tokens are refused as bearer tokens and stay usable."""
    victim = await signed_in(svc, "test_jwt-email-tokens@example.com")
    assert (await svc.client.post(f"{API}/auth/password/forgot",
                                  json={"email": victim.email})).status_code == 202
    await svc.run_jobs()
    mails = await svc.mailbox.wait_for(victim.email, count=2)
    by_subject = {m["Subject"]: token_in(m) for m in mails}
    verify_token = by_subject["Confirm your Epicura e-mail address"]
    reset_token = by_subject["Reset your Epicura password"]

    before = await snapshot(svc, victim)
    await assert_refused(svc, verify_token, "verification token as bearer")
    await assert_refused(svc, reset_token, "reset token as bearer")
    assert await snapshot(svc, victim) == before

    verified = await svc.client.post(f"{API}/auth/verify-email", json={"token": verify_token})
    assert verified.status_code == 204
    reset = await svc.client.post(f"{API}/auth/password/reset", json={
        "token": reset_token, "new_password": "test_jwt renewed passphrase"})
    assert reset.status_code == 204


@pytest.fixture
async def rotated(svc: Service, pg_settings: Settings, smtp: tuple[int, Mailbox]
                  ) -> AsyncIterator[Service]:
    """A second instance after a key rotation: a new JWT_SECRET, the old one as
    JWT_PREVIOUS_SECRET; same database and Redis as `svc` (which cleans them up)."""
    settings = pg_settings.model_copy(update={
        "jwt_secret": SecretStr("rotated-jwt-secret-" + "r" * 32),
        "jwt_previous_secret": SecretStr(TEST_JWT_SECRET),
    })
    async with running(settings, smtp[1]) as service:
        yield service


async def test_previous_key_still_verifies_unknown_kid_does_not(
    svc: Service, rotated: Service
) -> None:
    victim = await signed_in(svc, "test_jwt-rotation@example.com")
    new_secret = b"rotated-jwt-secret-" + b"r" * 32
    now = clock.utcnow()
    claims = victim.claims(now)

    # Signed by the previous key (the one `svc` signs with): still accepted after rotation.
    old = await rotated.client.get(ME, headers=bearer(victim.tokens))
    assert old.status_code == 200 and old.json()["email"] == victim.email
    forged_old = forge(std_header(kid=key_id(SECRET)), claims, key=SECRET)
    assert (await rotated.client.get(ME, headers=bearer(forged_old))).status_code == 200

    # New tokens are signed with the new key, under its kid.
    refreshed = await rotated.client.post(
        f"{API}/auth/refresh", json={"refresh_token": victim.tokens["refresh_token"]})
    assert refreshed.status_code == 200
    new_access = refreshed.json()["access_token"]
    assert jwt.get_unverified_header(new_access)["kid"] == key_id(new_secret)
    assert (await rotated.client.get(ME, headers=bearer(new_access))).status_code == 200

    # Unknown kid (a third key), and the two keys swapped under each other's kid: refused.
    third = b"a-third-never-configured-secret-" + b"t" * 16
    refused = {
        "unknown kid": forge(std_header(kid=key_id(third)), claims, key=third),
        "unknown kid, current key": forge(std_header(kid=key_id(third)), claims, key=new_secret),
        "previous key under current kid": forge(std_header(kid=key_id(new_secret)), claims,
                                                key=SECRET),
        "current key under previous kid": forge(std_header(kid=key_id(SECRET)), claims,
                                                key=new_secret),
    }
    for case, token in refused.items():
        await assert_refused(rotated, token, case)
    # The instance without the new key does not accept tokens signed with it.
    await assert_refused(svc, new_access, "new key on an instance that does not know it")
