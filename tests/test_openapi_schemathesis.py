"""Contract test (T24): Schemathesis over every auth, users/me and admin-users operation of the
published OpenAPI document, against the app on PostgreSQL + Redis, with every check on.

Schemathesis drives the app in-process through its own ASGI transport (its own event loop runs
the app's lifespan), so these tests are synchronous. Users get a valid bearer token, admin routes
an admin token; `bearer_is_enforced` (Schemathesis' `ignored_auth` for a bearer token) then
proves each of them refuses no token and a bad one. Every built-in check runs with its defaults
(the stateful ones, `use_after_free`, `ensure_resource_availability` and
`object_level_authorization`, have nothing to compare in one-operation runs). Schemathesis'
lazy pytest plugin does not run on pytest 9, so each operation is one parametrized test built
with the same builder the plugin uses.
"""

from __future__ import annotations

import os
import re
import uuid
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import anyio
import jwt as pyjwt
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pydantic import EmailStr, TypeAdapter, ValidationError
from schemathesis.checks import load_all_checks
from schemathesis.core.failures import FailureGroup, as_reported_failure
from schemathesis.core.result import Err
from schemathesis.filters import FilterSet
from schemathesis.pytest.lazy import get_all_tests
from schemathesis.python import asgi
from schemathesis.specs.openapi.formats import email_values, unregister_string_format

from epicura.app import create_app
from epicura.auth import service
from epicura.config import Settings
from epicura.kit.runtime import Runtime
from tests.conftest import REDIS_URL, RUN_ID, _truncate, base_settings, delete_keys
from tests.support import API, STRONG_PASSWORD, Mailbox

USER_EMAIL = "test-openapi-schemathesis-user@example.com"
ADMIN_EMAIL = "test-openapi-schemathesis-admin@example.com"
UNDER_TEST = re.compile(rf"^{API}/(auth|users/me|admin/users)(/|$)")
DEVICE_TOKEN = "device"  # the cache's key for the appliance's token (device paths)
# Operations after which the caller's token no longer works: each case gets a fresh login.
SESSION_ENDING = {("POST", f"{API}/auth/logout-all")}
MAX_EXAMPLES = 25
EMAIL: TypeAdapter[str] = TypeAdapter(EmailStr)
# Well-formed and signed, but with a key the service does not have.
FORGED = pyjwt.encode({"sub": str(uuid.uuid4()), "typ": "access"}, "k" * 32, algorithm="HS256",
                      headers={"typ": "at+jwt"})
POSITIVE_DEFAULT = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
# Every check is on with its defaults. Two documented answers to schema-valid input are added to
# the positive-data check where no schema can tell the value is wrong: a random e-mailed token is
# `410 token_expired_or_used`, a random opaque cursor is `400 invalid_cursor`, a random firmware
# manifest and signature are `422 manifest_invalid` (or another upload error), and rollout stages
# whose percents do not grow are `422 validation_failed` (tests/ota/test_contract.py).
CONFIG = schemathesis.Config.from_dict({
    # The same cases every run; set EPICURA_SCHEMATHESIS_SEED to explore others.
    "seed": int(os.environ.get("EPICURA_SCHEMATHESIS_SEED", "20261127")),
    "operations": [
        {"include-path-regex": f"^{API}/auth/(password/reset|verify-email)$",
         "checks": {"positive_data_acceptance": {"expected-statuses": [*POSITIVE_DEFAULT, "410"]}}},
        {"include-path": f"{API}/admin/users", "include-method": "GET",
         "checks": {"positive_data_acceptance": {"expected-statuses": [*POSITIVE_DEFAULT, "400"]}}},
        {"include-path-regex": f"^{API}/admin/(firmware|rollouts)$", "include-method": "POST",
         "checks": {"positive_data_acceptance": {"expected-statuses": [*POSITIVE_DEFAULT, "422"]}}},
    ],
})


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation under test, read from the app's own document."""
    document = create_app(Settings(_env_file=None)).openapi()
    return [
        (method.upper(), path)
        for path, item in document["paths"].items() if UNDER_TEST.match(path)
        for method in item
    ]


OPERATIONS = _operations()
# Schemathesis imports most of itself lazily, and pytest rewrites its modules (it is a plugin) as
# they are imported. Import them now, at collection: CPython 3.11.7's `ast.parse` can fail with
# "AST constructor recursion depth mismatch" when that happens deep in a long run (gh-106905).
load_all_checks()
list(get_all_tests(
    schema=schemathesis.openapi.from_dict(
        create_app(Settings(_env_file=None)).openapi()
    ).include(method="PATCH", path=f"{API}/users/me"),
    test_func=lambda case: None, settings=None, given_kwargs={}))


def _accepted_address(address: str) -> bool:
    try:
        EMAIL.validate_python(address)
    except ValidationError:
        return False
    return True


async def _make_admin(settings: Settings) -> None:
    rt = Runtime.build(settings)
    try:
        async with rt.db.transaction() as session:
            await service.create_admin(rt, session, ADMIN_EMAIL, STRONG_PASSWORD, "Contract Admin")
    finally:
        await rt.close()


class Accounts:
    """Logs the test accounts in through the app itself; a token is reused until a case ends
    the caller's sessions."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.cached: dict[str, str] = {}

    def login(self, email: str) -> str:
        with asgi.get_client(self.app) as client:
            reply = client.post(f"{API}/auth/login",
                                json={"email": email, "password": STRONG_PASSWORD})
        assert reply.status_code == 200, reply.text
        token: str = reply.json()["access_token"]
        return token

    def device_token(self) -> str:
        """An appliance's token: imported by the admin, provisioned, exchanged (once)."""
        if DEVICE_TOKEN not in self.cached:
            admin = {"Authorization": f"Bearer {self.login(ADMIN_EMAIL)}"}
            row = {"serial": f"CONTRACT-{uuid.uuid4().hex[:8].upper()}", "model": "epicura-1",
                   "hw_revision": "rev-a", "factory_secret": "contract-factory-secret-0123"}
            with asgi.get_client(self.app) as client:
                imported = client.post(f"{API}/admin/appliances/import", json=[row],
                                       headers=admin)
                assert imported.status_code == 200, imported.text
                provisioned = client.post(f"{API}/device/provision",
                                          json={**row, "firmware_version": "1.4.2"})
                assert provisioned.status_code == 201, provisioned.text
                body = provisioned.json()
                token = client.post(f"{API}/device/token", json={
                    "device_id": body["device_id"], "device_secret": body["device_secret"]})
                assert token.status_code == 200, token.text
            self.cached[DEVICE_TOKEN] = str(token.json()["access_token"])
        return self.cached[DEVICE_TOKEN]

    def token_for(self, method: str, path: str) -> str:
        if path.startswith(f"{API}/device/"):
            return self.device_token()
        email = ADMIN_EMAIL if path.startswith(f"{API}/admin/") else USER_EMAIL
        if (method, path) in SESSION_ENDING or email not in self.cached:
            self.cached[email] = self.login(email)
        return self.cached[email]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory, smtp: tuple[int, Mailbox],
               pg_database: str) -> Iterator[Any]:
    prefix = f"epicura-test-{RUN_ID}-st-{uuid.uuid4().hex[:8]}:"
    settings = base_settings(
        tmp_path_factory.mktemp("schemathesis"), smtp[0], database_url=pg_database,
        redis_url=REDIS_URL, redis_prefix=prefix, rate_limit_enabled=False,
    )
    app = create_app(settings)
    # The document's own format for time zones: real zone names.
    schemathesis.openapi.format(
        "iana-time-zone", st.sampled_from(sorted(zoneinfo.available_timezones())))
    # `format: email` as the service reads it (email-validator): Schemathesis' addresses, except
    # those on special-use domains such as `.test`, which it generates on purpose and the
    # service refuses by design.
    schemathesis.openapi.format("email", email_values().filter(_accepted_address))
    try:
        with asgi.get_client(cast(Any, app)) as client:  # a FastAPI app is an ASGI callable
            reply = client.post(f"{API}/auth/register", json={
                "email": USER_EMAIL, "password": STRONG_PASSWORD, "display_name": "Contract"})
            assert reply.status_code == 202, reply.text
        anyio.run(_make_admin, settings)
        loaded = schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)
        accounts = Accounts(app)

        @loaded.auth(refresh_interval=None)
        class BearerTokens:
            def get(self, case: Any, ctx: Any) -> str:
                return accounts.token_for(case.operation.method.upper(), case.operation.path)

            def set(self, case: Any, data: str, ctx: Any) -> None:
                case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

        yield loaded
    finally:
        unregister_string_format("iana-time-zone")
        unregister_string_format("email")
        asgi.shutdown_lifespans()
        anyio.run(_truncate, pg_database)
        anyio.run(delete_keys, prefix)


def bearer_is_enforced(ctx: Any, response: Any, case: Any) -> None:
    """Schemathesis' own `ignored_auth` check skips OAuth2 schemes (the document's, for the
    docs page's Authorize button), so the same check for a bearer token: a request that
    succeeded with the token is refused, 401, without one and with a bad one."""
    operation = case.operation
    if not operation.definition.raw.get("security") or not 200 <= response.status_code < 300:
        return
    sent = response.request
    headers = {k: v for k, v in sent.headers.items() if k.lower() != "authorization"}
    with asgi.get_client(operation.app) as client:
        for credentials in (None, "Bearer not-a-token", f"Bearer {FORGED}"):
            probe = {**headers, "Authorization": credentials} if credentials else headers
            reply = client.request(sent.method, sent.url, data=sent.body, headers=probe)
            assert reply.status_code == 401, (
                f"{operation.label} answered {reply.status_code} to credentials {credentials!r}")
            assert reply.json()["code"] == "unauthorized"


def _call_and_validate(case: Any) -> None:
    case.call_and_validate(additional_checks=[bearer_is_enforced])


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms_to_the_document(api_schema: Any, method: str, path: str) -> None:
    wanted = FilterSet().with_include(method=method.lower(), path=path)
    selected = api_schema.clone(filter_set=api_schema.config.operations.filter_set_with(wanted))
    hypothesis_settings = settings(
        max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck),
    )
    tests = list(get_all_tests(schema=selected, test_func=_call_and_validate,
                               settings=hypothesis_settings, given_kwargs={}))
    assert len(tests) == 1
    found = tests[0]
    assert not isinstance(found, Err), found
    operation, run = found.ok()
    assert (operation.method.upper(), operation.path) == (method, path)
    try:
        run()
    except FailureGroup as exc:
        raise as_reported_failure(exc) from None


def test_the_operations_under_test_are_the_foundation(tmp_path: Path,
                                                      smtp: tuple[int, Mailbox]) -> None:
    """The filter selects what the brief names, and errors are documented as problem details."""
    assert len(OPERATIONS) >= 20
    for expected in (("POST", f"{API}/auth/register"), ("GET", f"{API}/users/me"),
                     ("PATCH", f"{API}/admin/users/{{user_id}}"),
                     ("POST", f"{API}/admin/users/{{user_id}}/revoke-sessions")):
        assert expected in OPERATIONS
    document = create_app(base_settings(tmp_path, smtp[0])).openapi()
    error = document["paths"][f"{API}/auth/login"]["post"]["responses"]["401"]["content"]
    assert list(error) == ["application/problem+json"]
