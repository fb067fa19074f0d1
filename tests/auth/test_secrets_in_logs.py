"""Secrets never reach a log line or an error body (checklist T16).

The app's production logging (`epicura.kit.logging.configure`, as `epicura serve` sets it up) is
switched on at DEBUG for the test and its output captured; a whole account flow then runs, and
every raw secret the test created is looked for in the logs and in every error response.
"""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
import pytest
import structlog

from epicura.kit import clock
from epicura.kit.logging import configure
from tests.conftest import TEST_JWT_SECRET, TEST_REFRESH_SECRET
from tests.support import API, Service, bearer, token_in

pytestmark = pytest.mark.anyio

PREFIX = "test_secrets_in_logs"


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The app's JSON logging at DEBUG, written to a buffer; everything restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    named = {name: logging.getLogger(name)
             for name in ("uvicorn", "uvicorn.error", "uvicorn.access")}
    saved_named = {name: (list(lg.handlers), lg.propagate, lg.disabled)
                   for name, lg in named.items()}
    saved_structlog = structlog.get_config()
    configure("DEBUG")
    # Not caching loggers keeps the configuration from outliving this test.
    structlog.configure(cache_logger_on_first_use=False)
    [handler] = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        structlog.configure(**saved_structlog)
        root.handlers = saved_handlers
        root.setLevel(saved_level)
        for name, (handlers, propagate, disabled) in saved_named.items():
            named[name].handlers, named[name].propagate = handlers, propagate
            named[name].disabled = disabled


@dataclass
class Recorder:
    """Calls the API and keeps every error response, and every secret the test made."""

    svc: Service
    secrets: dict[str, str] = field(default_factory=dict)
    errors: list[tuple[str, Any]] = field(default_factory=list)

    def secret(self, name: str, value: str) -> str:
        assert len(value) >= 7, name  # short values could match by accident
        self.secrets[name] = value
        return value

    async def call(self, method: str, path: str, expect: int, **kwargs: Any) -> Any:
        reply = await self.svc.client.request(method, f"{API}{path}", **kwargs)
        assert reply.status_code == expect, f"{method} {path}: {reply.status_code} {reply.text}"
        if reply.status_code >= 400:
            self.errors.append((f"{method} {path}", reply))
        return reply


def log_events(buffer: io.StringIO) -> list[dict[str, Any]]:
    lines = [line for line in buffer.getvalue().splitlines() if line.strip()]
    events = [orjson.loads(line) for line in lines]  # every line is one JSON object
    assert all(isinstance(event, dict) for event in events)
    return events


# aiosmtpd, the test's stand-in for the mail provider, logs the messages it receives at DEBUG:
# e-mailed links must carry their token, so its lines are not the app's to answer for.
TEST_MAIL_SERVER_LOGGER = "mail.log"


def app_log_text(buffer: io.StringIO) -> str:
    """The captured lines, as written, but for the test mail server's."""
    lines = [line for line in buffer.getvalue().splitlines() if line.strip()]
    kept = [line for line in lines if orjson.loads(line).get("logger") != TEST_MAIL_SERVER_LOGGER]
    return "\n".join(kept)


async def test_no_secret_in_logs_or_error_bodies(json_logs: io.StringIO, svc: Service) -> None:
    run = Recorder(svc)
    address = f"{PREFIX}-flow@example.com"
    password = run.secret("password", f"first passphrase {uuid.uuid4().hex}")
    run.secret("jwt secret", TEST_JWT_SECRET)
    run.secret("refresh secret", TEST_REFRESH_SECRET)

    # register, verify the e-mail, log in
    await run.call("POST", "/auth/register", 202, json={
        "email": address, "password": password, "display_name": "Secret Keeper"})
    await svc.run_jobs()
    [verification] = await svc.mailbox.wait_for(address)
    verify_token = run.secret("verification token", token_in(verification))
    await run.call("POST", "/auth/verify-email", 204, json={"token": verify_token})
    await run.call("POST", "/auth/verify-email", 410, json={"token": verify_token})
    login = (await run.call("POST", "/auth/login", 200, json={
        "email": address, "password": password})).json()
    access1 = run.secret("access token 1", login["access_token"])
    refresh1 = run.secret("refresh token 1", login["refresh_token"])
    await run.call("GET", "/users/me", 200, headers=bearer(access1))

    # refresh, then reuse of the rotated token (after the grace window) ends the family
    pair = (await run.call("POST", "/auth/refresh", 200,
                           json={"refresh_token": refresh1})).json()
    access2 = run.secret("access token 2", pair["access_token"])
    refresh2 = run.secret("refresh token 2", pair["refresh_token"])
    with clock.frozen(clock.utcnow() + timedelta(seconds=11)):
        reused = await run.call("POST", "/auth/refresh", 401, json={"refresh_token": refresh1})
        assert reused.json()["code"] == "token_reused"
        await run.call("POST", "/auth/refresh", 401, json={"refresh_token": refresh2})
        await run.call("GET", "/users/me", 401, headers=bearer(access2))

    # forgot + reset password
    await run.call("POST", "/auth/password/forgot", 202, json={"email": address})
    await svc.run_jobs()
    reset_mail = next(m for m in await svc.mailbox.wait_for(address, count=2)
                      if m["Subject"] == "Reset your Epicura password")
    reset_token = run.secret("reset token", token_in(reset_mail))
    password2 = run.secret("password 2", f"second passphrase {uuid.uuid4().hex}")
    await run.call("POST", "/auth/password/reset", 204,
                   json={"token": reset_token, "new_password": password2})
    await run.call("POST", "/auth/password/reset", 410,
                   json={"token": reset_token, "new_password": password2})

    # change the password, then log out
    login = (await run.call("POST", "/auth/login", 200, json={
        "email": address, "password": password2})).json()
    access3 = run.secret("access token 3", login["access_token"])
    run.secret("refresh token 3", login["refresh_token"])
    password3 = run.secret("password 3", f"third passphrase {uuid.uuid4().hex}")
    wrong = run.secret("wrong password", f"not my passphrase {uuid.uuid4().hex}")
    await run.call("POST", "/users/me/password", 403, headers=bearer(access3),
                   json={"current_password": wrong, "new_password": password3})
    await run.call("POST", "/users/me/password", 204, headers=bearer(access3),
                   json={"current_password": password2, "new_password": password3})
    await run.call("GET", "/users/me", 401, headers=bearer(access3))
    login = (await run.call("POST", "/auth/login", 200, json={
        "email": address, "password": password3})).json()
    access4 = run.secret("access token 4", login["access_token"])
    refresh4 = run.secret("refresh token 4", login["refresh_token"])
    await run.call("POST", "/auth/logout", 204, json={"refresh_token": refresh4})
    await run.call("POST", "/auth/refresh", 401, json={"refresh_token": refresh4})
    await run.call("GET", "/users/me", 401, headers=bearer(access4))

    # failures that carry a secret in the request
    await run.call("POST", "/auth/login", 401, json={"email": address, "password": wrong})
    await run.call("POST", "/auth/login", 401, json={
        "email": f"{PREFIX}-nobody@example.com", "password": password3})
    short = run.secret("too short password", "Zq7#xK2")
    await run.call("POST", "/auth/register", 422, json={
        "email": f"{PREFIX}-short@example.com", "password": short, "display_name": "S"})
    await run.call("POST", "/auth/login", 422, json={
        "email": address, "password": password3, "role": "admin"})
    malformed = run.secret("password in malformed json", f"malformed {uuid.uuid4().hex}")
    await run.call("POST", "/auth/login", 400, headers={"content-type": "application/json"},
                   content=f'{{"email": "{address}", "password": "{malformed}"'.encode())
    await run.call("POST", "/auth/login", 415, headers={"content-type": "text/plain"},
                   content=f"password={password3}".encode())
    bogus = run.secret("bogus refresh token", f"bogus-{uuid.uuid4().hex}")
    await run.call("POST", "/auth/refresh", 401, json={"refresh_token": bogus})
    await run.call("POST", "/auth/password/reset", 410,
                   json={"token": bogus, "new_password": password3})
    forged = run.secret("forged bearer", f"eyJforged.{uuid.uuid4().hex}.sig")
    await run.call("GET", "/users/me", 401, headers=bearer(forged))
    await run.call("PATCH", "/users/me", 401, headers=bearer(access1),
                   json={"display_name": "after logout"})

    # a token in the query string is logged redacted
    in_query = run.secret("token in query", f"querysecret{uuid.uuid4().hex}")
    await run.call("GET", f"/users/me?token={in_query}&lang=en", 401)

    events = log_events(json_logs)
    requests = [e for e in events if e.get("event") == "request"]
    # The capture works: the access log holds the flow's requests.
    assert len(requests) >= 30, f"only {len(requests)} access-log lines captured"
    assert {"/api/v1/auth/register", "/api/v1/auth/refresh", "/api/v1/auth/password/reset",
            "/api/v1/users/me/password", "/api/v1/auth/logout"} <= {e["path"] for e in requests}
    query_lines = [e for e in requests if e.get("query") and "lang=en" in e["query"]]
    assert [e["query"] for e in query_lines] == ["token=[redacted]&lang=en"]
    assert query_lines[0]["path"] == "/api/v1/users/me" and query_lines[0]["status"] == 401

    log_text = app_log_text(json_logs)
    leaked_to_log = [name for name, value in run.secrets.items() if value in log_text]
    assert leaked_to_log == [], f"secrets found in the logs: {leaked_to_log}"

    assert len(run.errors) >= 15
    for where, reply in run.errors:
        assert reply.headers["content-type"] == "application/problem+json", where
        shown = reply.text + "\n" + "\n".join(f"{k}: {v}" for k, v in reply.headers.items())
        leaked = [name for name, value in run.secrets.items() if value in shown]
        assert leaked == [], f"{where} ({reply.status_code}) shows {leaked}: {reply.text}"


async def test_redaction_catches_every_spelling_of_a_token_query(
    json_logs: io.StringIO, svc: Service
) -> None:
    """The access log redacts `token`, `access_token`, `password`, `code` and `signature`
    values in a query, on any route (matched, unmatched, successful or not)."""
    values = {name: f"{name.replace('_', '')}{uuid.uuid4().hex}" for name in (
        "token", "access_token", "refresh_token", "password", "code", "signature", "api_key")}
    query = "&".join(f"{name}={value}" for name, value in values.items())
    for path in ("/users/me", "/no-such-route", "/auth/verify-email"):
        await svc.client.get(f"{API}{path}?{query}")
    events = [e for e in log_events(json_logs) if e.get("event") == "request"]
    logged = [e for e in events if e.get("query")]
    assert len(logged) == 3
    for event in logged:
        for name in values:
            assert f"{name}=[redacted]" in event["query"], event["query"]
    log_text = app_log_text(json_logs)
    assert [name for name, value in values.items() if value in log_text] == []
