"""Bad input on the auth and account endpoints: every refusal is a problem-details error with a
stable code, never a 500, and changes nothing in the database (T04, T12, T19, T20)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx2
import jwt
import pytest
from sqlalchemy import text

from epicura.kit import clock
from epicura.kit.errors import PROBLEM_MEDIA_TYPE
from tests.support import API, STRONG_PASSWORD, Service, bearer

pytestmark = pytest.mark.anyio

TABLES = ("users", "login_sessions", "refresh_tokens", "email_tokens", "jobs", "audit_events")
JSON = {"Content-Type": "application/json"}
MIB = 1024 * 1024
# Each public JSON endpoint with a valid body, to be broken in various ways.
PUBLIC_BODIES: dict[str, dict[str, Any]] = {
    "/auth/register": {"email": "test-bad-input-x@example.com", "password": STRONG_PASSWORD,
                       "display_name": "X"},
    "/auth/login": {"email": "test-bad-input-x@example.com", "password": STRONG_PASSWORD},
    "/auth/refresh": {"refresh_token": "r" * 43},
    "/auth/logout": {"refresh_token": "r" * 43},
    "/auth/password/forgot": {"email": "test-bad-input-x@example.com"},
    "/auth/password/reset": {"token": "t" * 43, "new_password": STRONG_PASSWORD},
    "/auth/verify-email": {"token": "t" * 43},
}


async def row_counts(svc: Service) -> dict[str, int]:
    async with svc.runtime.db.engine.connect() as conn:
        return {table: (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()  # noqa: S608 - fixed names
                for table in TABLES}


@pytest.fixture
async def user(svc: Service) -> dict[str, Any]:
    """A signed-up user (tokens) whose row and sessions the bad requests must not touch."""
    tokens = await svc.signed_up("test-bad-input-owner@example.com")
    return tokens


@pytest.fixture
async def unchanged(svc: Service, user: dict[str, Any]) -> AsyncIterator[None]:
    """The database has the same rows after the test, and the user is intact."""
    before = await row_counts(svc)
    me_before = (await svc.client.get(f"{API}/users/me", headers=bearer(user))).json()
    yield
    assert await row_counts(svc) == before
    me_after = await svc.client.get(f"{API}/users/me", headers=bearer(user))
    assert me_after.status_code == 200  # its session was not ended either
    assert me_after.json() == me_before


def assert_problem(reply: httpx2.Response, status: int, code: str) -> dict[str, Any]:
    assert reply.status_code == status, (reply.request.url, reply.text)
    assert reply.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = reply.json()
    assert (body["status"], body["code"]) == (status, code)
    return body


@pytest.mark.usefixtures("unchanged")
async def test_malformed_json_is_400_malformed_body(svc: Service) -> None:
    broken = [b'{"email": ', b"not json", b'{"email": "a"}}', b"\x00", b"{'a': 1}",
              b"\xff\xfe{\x00", b"[" * 50_000]
    for path in PUBLIC_BODIES:
        for body in broken:
            reply = await svc.client.post(f"{API}{path}", content=body, headers=JSON)
            assert_problem(reply, 400, "malformed_body")


@pytest.mark.usefixtures("unchanged")
async def test_malformed_json_on_an_authenticated_route(svc: Service,
                                                        user: dict[str, Any]) -> None:
    reply = await svc.client.patch(f"{API}/users/me", content=b'{"display_name": ',
                                   headers={**JSON, **bearer(user)})
    assert_problem(reply, 400, "malformed_body")


@pytest.mark.usefixtures("unchanged")
async def test_wrong_types_and_shapes_are_422_validation_failed(svc: Service) -> None:
    for path, valid in PUBLIC_BODIES.items():
        bodies: tuple[object, ...] = (None, [], "x", 42, [valid], {})
        for body in bodies:
            reply = await svc.client.post(f"{API}{path}", json=body)
            assert_problem(reply, 422, "validation_failed")
        for field in valid:
            for wrong in (123, True, None, ["a"], {"a": "b"}):
                reply = await svc.client.post(f"{API}{path}", json={**valid, field: wrong})
                problem = assert_problem(reply, 422, "validation_failed")
                assert ["body", field] in [error["loc"][:2] for error in problem["errors"]]


@pytest.mark.usefixtures("unchanged")
async def test_unknown_fields_are_refused(svc: Service, user: dict[str, Any]) -> None:
    register = {**PUBLIC_BODIES["/auth/register"], "email": "test-bad-input-role@example.com"}
    for extra in ({"role": "admin"}, {"email_verified": True}, {"is_active": False},
                  {"id": str(uuid.uuid4())}):
        reply = await svc.client.post(f"{API}/auth/register", json={**register, **extra})
        problem = assert_problem(reply, 422, "validation_failed")
        [error] = problem["errors"]
        assert error["loc"] == ["body", next(iter(extra))]
        assert error["type"] == "extra_forbidden"
    reply = await svc.client.post(f"{API}/auth/login",
                                  json={**PUBLIC_BODIES["/auth/login"], "role": "admin"})
    assert_problem(reply, 422, "validation_failed")
    patches: tuple[dict[str, object], ...] = (
        {"role": "admin"}, {"email": "test-bad-input-other@example.com"},
        {"email_verified": True}, {"display_name": "Ok", "is_active": False})
    for patch in patches:
        reply = await svc.client.patch(f"{API}/users/me", json=patch, headers=bearer(user))
        assert_problem(reply, 422, "validation_failed")


async def test_the_same_registration_without_the_extra_field_works(svc: Service) -> None:
    """The refusals above are about the extra field, not the rest of the body."""
    register = {**PUBLIC_BODIES["/auth/register"], "email": "test-bad-input-role@example.com"}
    reply = await svc.client.post(f"{API}/auth/register", json=register)
    assert reply.status_code == 202
    async with svc.runtime.db.engine.connect() as conn:
        role = (await conn.execute(text("SELECT role FROM users WHERE email = :e"),
                                   {"e": register["email"]})).scalar_one()
    assert role == "user"


@pytest.mark.usefixtures("unchanged")
async def test_bodies_over_one_mib_are_413(svc: Service) -> None:
    padding = "x" * MIB
    too_big = json.dumps({**PUBLIC_BODIES["/auth/login"], "pad": padding}).encode()
    assert len(too_big) > MIB
    for path in PUBLIC_BODIES:
        reply = await svc.client.post(f"{API}{path}", content=too_big, headers=JSON)
        assert_problem(reply, 413, "body_too_large")

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(too_big), 64 * 1024):
                yield too_big[start:start + 64 * 1024]

        reply = await svc.client.post(f"{API}{path}", content=chunks(), headers=JSON)
        assert "content-length" not in reply.request.headers
        assert reply.request.headers["transfer-encoding"] == "chunked"
        assert_problem(reply, 413, "body_too_large")
    # Just under the cap is read and judged on its content.
    under = json.dumps({**PUBLIC_BODIES["/auth/login"], "pad": "x" * (MIB - 200)}).encode()
    assert len(under) <= MIB
    reply = await svc.client.post(f"{API}/auth/login", content=under, headers=JSON)
    assert_problem(reply, 422, "validation_failed")


@pytest.mark.usefixtures("unchanged")
async def test_wrong_content_type_is_415(svc: Service, user: dict[str, Any]) -> None:
    body = json.dumps(PUBLIC_BODIES["/auth/login"]).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x", "application/xml", None):
        headers = {"Content-Type": content_type} if content_type else {}
        for path in PUBLIC_BODIES:
            reply = await svc.client.post(f"{API}{path}", content=body, headers=headers)
            assert_problem(reply, 415, "unsupported_media_type")
        reply = await svc.client.patch(f"{API}/users/me", content=b'{"display_name": "Y"}',
                                       headers={**headers, **bearer(user)})
        assert_problem(reply, 415, "unsupported_media_type")
    # A charset parameter is still JSON (a request that changes nothing for an unknown token).
    logout = json.dumps(PUBLIC_BODIES["/auth/logout"]).encode()
    reply = await svc.client.post(f"{API}/auth/logout", content=logout,
                                  headers={"Content-Type": "application/json; charset=utf-8"})
    assert reply.status_code == 204


@pytest.mark.usefixtures("unchanged")
async def test_huge_and_hostile_emails_and_passwords(svc: Service) -> None:
    huge_email = "a" * 10_000 + "@example.com"
    long_password = "p" * 1025
    cases: list[tuple[str, dict[str, Any]]] = [
        ("/auth/register", {"email": huge_email}),
        ("/auth/register", {"email": "test-bad-input..dots@example.com"}),
        ("/auth/register", {"email": "test-bad-input-nul\x00@example.com"}),
        ("/auth/register", {"email": "no-at-sign.example.com"}),
        ("/auth/register", {"email": "test-bad-input@localhost"}),
        ("/auth/register", {"password": long_password}),
        ("/auth/register", {"password": "short"}),
        ("/auth/register", {"display_name": "n" * 101}),
        ("/auth/register", {"display_name": "   "}),
        ("/auth/register", {"display_name": "tab\there"}),
        ("/auth/register", {"timezone": "Mars/Olympus_Mons"}),
        ("/auth/register", {"locale": "x" * 1000}),
        ("/auth/login", {"email": huge_email}),
        ("/auth/login", {"email": "test-bad-input-nul\x00@example.com"}),
        ("/auth/login", {"password": long_password}),
        ("/auth/login", {"password": ""}),
        ("/auth/password/forgot", {"email": huge_email}),
        ("/auth/password/forgot", {"email": "nul\x00@example.com"}),
        ("/auth/password/reset", {"new_password": long_password}),
        ("/auth/refresh", {"refresh_token": "r" * 10_000}),
        ("/auth/verify-email", {"token": ""}),
    ]
    for path, change in cases:
        reply = await svc.client.post(f"{API}{path}", json={**PUBLIC_BODIES[path], **change})
        assert_problem(reply, 422, "validation_failed")
    # The OAuth form login refuses the same.
    reply = await svc.client.post(f"{API}/auth/token", data={"username": "nul\x00@example.com",
                                                             "password": "x"})
    assert_problem(reply, 422, "validation_failed")


async def test_non_ascii_addresses_and_passwords_round_trip(svc: Service) -> None:
    for address, password in (("test-bad-input-ch\u00e9f@ex\u00e4mple.com", STRONG_PASSWORD),
                              ("test-bad-input-unicode@example.com",
                               "p\u00e4ssw\u00f6rd mit \u00fcml\u00e4uten \U0001f372 \u4e2d\u6587"),
                              ("test-bad-input-longest@example.com", "q" * 1024)):
        assert (await svc.register(address, password)).status_code == 202
        reply = await svc.login(address, password)
        assert reply.status_code == 200, reply.text
        me = await svc.client.get(f"{API}/users/me", headers=bearer(reply.json()))
        assert me.json()["email"] == address.lower()
        wrong = await svc.login(address, password[:-1] + "x")
        assert_problem(wrong, 401, "invalid_credentials")


def _segments(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def bad_tokens(svc: Service, user: dict[str, Any]) -> dict[str, str]:
    access, refresh = user["access_token"], user["refresh_token"]
    header, claims = _segments(access)
    rt = svc.runtime
    now = clock.utcnow()
    past = int((now - timedelta(minutes=5)).timestamp())
    head, body, signature = access.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    elevated = _b64({**claims, "role": "admin"})
    return {
        "forged with another key": jwt.encode(claims, "not-the-server-secret-" + "z" * 32,
                                              algorithm="HS256", headers=header),
        "alg none": f"{_b64({**header, 'alg': 'none'})}.{body}.",
        "expired": rt.jwt.sign({**claims, "iat": past - 900, "exp": past}),
        "not yet valid": rt.jwt.sign({**claims, "nbf": int(now.timestamp()) + 3600}),
        "tampered signature": f"{head}.{body}.{flipped}",
        "tampered claims": f"{head}.{elevated}.{signature}",
        "wrong audience": rt.jwt.sign({**claims, "aud": "someone-else"}),
        "wrong issuer": rt.jwt.sign({**claims, "iss": "https://evil.example"}),
        "wrong typ claim": rt.jwt.sign({**claims, "typ": "refresh"}),
        "wrong typ header": rt.jwt.sign(claims, media_type="JWT"),
        "missing sid": rt.jwt.sign({k: v for k, v in claims.items() if k != "sid"}),
        "sid not a uuid": rt.jwt.sign({**claims, "sid": "../../etc/passwd"}),
        "refresh token as bearer": refresh,
        "garbage": "not.a.jwt",
        "empty segments": "..",
        "huge": "a" * 20_000,
        "non-ascii": "\u00e9\u00e9\u00e9",
    }


@pytest.mark.usefixtures("unchanged")
async def test_forged_expired_tampered_and_wrong_type_tokens_are_401(
    svc: Service, user: dict[str, Any],
) -> None:
    tokens = bad_tokens(svc, user)
    routes = [("GET", f"{API}/users/me", None), ("PATCH", f"{API}/users/me", {"display_name": "Z"}),
              ("POST", f"{API}/auth/logout-all", None),
              ("DELETE", f"{API}/users/me/sessions/{user['session_id']}", None),
              ("GET", f"{API}/admin/users", None)]
    for name, token in tokens.items():
        raw_header = f"Bearer {token}".encode()
        for method, path, body in routes:
            reply = await svc.client.request(method, path, json=body,
                                             headers=[(b"authorization", raw_header)])
            assert_problem(reply, 401, "unauthorized")
            assert reply.headers["www-authenticate"] == "Bearer", name
            assert set(reply.json()) == {"type", "title", "status", "code"}  # no reason leaked
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer ", user["access_token"],
                   f"Token {user['access_token']}"):
        reply = await svc.client.get(f"{API}/users/me", headers={"Authorization": header})
        assert_problem(reply, 401, "unauthorized")


@pytest.mark.usefixtures("unchanged")
async def test_an_access_token_is_not_a_refresh_token(svc: Service, user: dict[str, Any]) -> None:
    for token in (user["access_token"], bad_tokens(svc, user)["forged with another key"]):
        reply = await svc.client.post(f"{API}/auth/refresh", json={"refresh_token": token})
        assert_problem(reply, 401, "invalid_token")
        reply = await svc.client.post(f"{API}/auth/logout", json={"refresh_token": token})
        assert reply.status_code == 204  # an unknown token ends nothing
    reply = await svc.client.post(f"{API}/auth/verify-email",
                                  json={"token": user["refresh_token"]})
    assert_problem(reply, 410, "token_expired_or_used")
    reply = await svc.client.post(f"{API}/auth/password/reset",
                                  json={"token": user["access_token"][:512],
                                        "new_password": "a brand new passphrase"})
    assert_problem(reply, 410, "token_expired_or_used")
