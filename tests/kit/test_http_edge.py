"""The HTTP edge (kit/http.py, kit/errors.py, health.py): problem details for the framework's own
errors, request ids, security headers, CORS, metrics, probes and conditional requests (T18, T25,
T53)."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx2
import pytest
from structlog.testing import capture_logs

from epicura.config import Settings
from epicura.kit.errors import PROBLEM_MEDIA_TYPE
from epicura.kit.logging import add_request_id
from tests.conftest import _truncate, delete_keys
from tests.support import API, Mailbox, Service, bearer, running

pytestmark = pytest.mark.anyio

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ORIGIN = "https://portal.epicura.test"
Start = Callable[..., Awaitable[Service]]


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def variant(pg_settings: Settings, smtp: tuple[int, Mailbox],
                  pg_database: str) -> AsyncIterator[Start]:
    """Start the service with some settings changed; everything is cleaned up afterwards."""
    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> Service:
            settings = pg_settings.model_copy(update=overrides)
            return await stack.enter_async_context(running(settings, smtp[1]))

        yield start
    await _truncate(pg_database)
    await delete_keys(pg_settings.redis_prefix)


def assert_problem(reply: httpx2.Response, status: int, code: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = reply.json()
    assert body["status"] == status and body["code"] == code
    assert body["type"] == "about:blank" and body["title"]
    return body


async def test_unknown_route_is_a_problem_404(svc: Service) -> None:
    for path in ("/nope", f"{API}/nothing/here", f"{API}/users/me/nope"):
        assert_problem(await svc.client.get(path), 404, "not_found")


async def test_wrong_method_is_a_problem_405_listing_every_allowed_method(svc: Service) -> None:
    reply = await svc.client.delete("/healthz")
    assert_problem(reply, 405, "method_not_allowed")
    assert reply.headers["allow"] == "GET"
    # Three routes share /users/me: the Allow header names all of them, not just the first.
    reply = await svc.client.put(f"{API}/users/me", json={})
    assert_problem(reply, 405, "method_not_allowed")
    assert reply.headers["allow"] == "DELETE, GET, PATCH"


async def test_an_unhandled_exception_is_a_generic_500_logged_with_the_request_id(
    svc: Service,
) -> None:
    async def explode() -> None:
        raise RuntimeError("secret internals: /srv/db password=hunter2")

    svc.app.add_api_route("/test-only/explode", explode)
    transport = httpx2.ASGITransport(app=svc.app, raise_app_exceptions=False)
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
        with capture_logs(processors=[add_request_id]) as logs:
            reply = await client.get("/test-only/explode", headers={"X-Request-ID": "boom-42"})
    body = assert_problem(reply, 500, "internal_error")
    assert set(body) == {"type", "title", "status", "code"}
    assert "secret" not in reply.text and "hunter2" not in reply.text
    assert reply.headers["x-request-id"] == "boom-42"
    assert reply.headers["x-content-type-options"] == "nosniff"
    [logged] = [entry for entry in logs if entry["event"] == "unhandled_error"]
    assert logged["request_id"] == "boom-42"
    assert logged["log_level"] == "error" and logged.get("exc_info")
    [access] = [entry for entry in logs if entry["event"] == "request"]
    assert access["status"] == 500 and access["request_id"] == "boom-42"


async def test_request_id_is_echoed_and_a_hostile_one_replaced(svc: Service) -> None:
    reply = await svc.client.get("/healthz", headers={"X-Request-ID": "client-req.1:a_b-C"})
    assert reply.headers["x-request-id"] == "client-req.1:a_b-C"
    for hostile in ("<script>alert(1)</script>", "a b", "x" * 65, "id;drop table users",
                    "\u00e9t\u00e9".encode("latin-1")):
        raw = hostile if isinstance(hostile, bytes) else hostile.encode()
        reply = await svc.client.get("/healthz", headers=[(b"x-request-id", raw)])
        echoed = reply.headers["x-request-id"]
        assert echoed not in (hostile, "\u00e9t\u00e9") and UUID_RE.match(echoed), (hostile, echoed)
    # Without one, every request gets its own.
    first = (await svc.client.get("/healthz")).headers["x-request-id"]
    second = (await svc.client.get("/healthz")).headers["x-request-id"]
    assert UUID_RE.match(first) and first != second


async def test_security_headers_on_success_and_error(svc: Service, variant: Start) -> None:
    for reply in (await svc.client.get("/healthz"), await svc.client.get(f"{API}/users/me"),
                  await svc.client.get("/missing")):
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["x-frame-options"] == "DENY"
        assert reply.headers["referrer-policy"] == "no-referrer"
        assert reply.headers["cross-origin-opener-policy"] == "same-origin"
        assert "camera=()" in reply.headers["permissions-policy"]
        assert "default-src 'none'" in reply.headers["content-security-policy"]
        assert "strict-transport-security" not in reply.headers  # not outside production
    production = await variant(epicura_env="production")
    reply = await production.client.get("/healthz")
    assert reply.headers["strict-transport-security"].startswith("max-age=")


async def test_cors_only_when_configured(svc: Service, variant: Start) -> None:
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "PATCH",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    # Not configured: no CORS headers at all.
    reply = await svc.client.options(f"{API}/users/me", headers=preflight)
    assert "access-control-allow-origin" not in reply.headers
    reply = await svc.client.get("/healthz", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in reply.headers

    cors = await variant(cors_origins=[ORIGIN])
    reply = await cors.client.options(f"{API}/users/me", headers=preflight)
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == ORIGIN
    assert "PATCH" in reply.headers["access-control-allow-methods"]
    assert "authorization" in reply.headers["access-control-allow-headers"].lower()
    simple = await cors.client.get("/healthz", headers={"Origin": ORIGIN})
    assert simple.status_code == 200
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()
    # Another origin gets nothing it could use.
    other = {**preflight, "Origin": "https://evil.example"}
    reply = await cors.client.options(f"{API}/users/me", headers=other)
    assert reply.status_code >= 400
    assert "access-control-allow-origin" not in reply.headers
    reply = await cors.client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in reply.headers


def _sample(metrics_text: str, method: str, route: str, status: str) -> float:
    wanted = (f'epicura_http_requests_total{{method="{method}",route="{route}",'
              f'status="{status}"}} ')
    for line in metrics_text.splitlines():
        if line.startswith(wanted):
            return float(line[len(wanted):])
    return 0.0


async def test_metrics_count_requests_by_route_template(svc: Service) -> None:
    template = f"{API}/admin/users/{{user_id}}"
    before = (await svc.client.get("/metrics")).text
    for _ in range(3):
        await svc.client.get(f"{API}/users/me")  # 401
    for n in range(2):
        await svc.client.get(f"{API}/admin/users/00000000-0000-0000-0000-00000000000{n}")
    reply = await svc.client.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    after = reply.text
    assert _sample(after, "GET", f"{API}/users/me", "401") == \
        _sample(before, "GET", f"{API}/users/me", "401") + 3
    # One series for the template, none per concrete id.
    assert _sample(after, "GET", template, "401") == _sample(before, "GET", template, "401") + 2
    assert "00000000-0000-0000-0000-000000000001" not in after
    assert "epicura_http_request_duration_seconds_bucket" in after


async def test_healthz_and_readyz_on_healthy_dependencies(svc: Service) -> None:
    reply = await svc.client.get("/healthz")
    assert reply.status_code == 200 and reply.json() == {"status": "ok"}
    reply = await svc.client.get("/readyz")
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "ready"
    assert reply.json()["checks"]["database"] == "ok"
    assert reply.json()["checks"]["redis"] == "ok"


async def test_readyz_names_redis_when_it_is_down(variant: Start) -> None:
    service = await variant(redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    assert (await service.client.get("/healthz")).status_code == 200
    reply = await service.client.get("/readyz")
    assert reply.status_code == 503
    assert reply.headers["retry-after"]
    checks = reply.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["redis"].startswith("down")


async def test_readyz_names_the_database_when_it_is_down(variant: Start) -> None:
    service = await variant(database_url=f"postgresql://postgres@127.0.0.1:{closed_port()}/gone")
    assert (await service.client.get("/healthz")).status_code == 200
    reply = await service.client.get("/readyz")
    assert reply.status_code == 503
    checks = reply.json()["checks"]
    assert checks["database"].startswith("down")
    assert checks["redis"] == "ok"


async def test_etag_if_none_match_and_if_match_on_users_me(svc: Service) -> None:
    tokens = await svc.signed_up("test-http-edge-etag@example.com")
    auth = bearer(tokens)
    first = await svc.client.get(f"{API}/users/me", headers=auth)
    etag = first.headers["etag"]
    assert re.match(r'^"[0-9a-f]{32}"$', etag)

    cached = await svc.client.get(f"{API}/users/me", headers={**auth, "If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b""
    assert cached.headers["etag"] == etag
    other = await svc.client.get(f"{API}/users/me", headers={**auth, "If-None-Match": '"x"'})
    assert other.status_code == 200

    wrong = '"0123456789abcdef0123456789abcdef"'
    stale = await svc.client.patch(f"{API}/users/me", json={"display_name": "Changed"},
                                   headers={**auth, "If-Match": wrong})
    assert_problem(stale, 412, "version_conflict")
    unchanged = await svc.client.get(f"{API}/users/me", headers=auth)
    assert unchanged.json()["display_name"] == first.json()["display_name"]

    updated = await svc.client.patch(f"{API}/users/me", json={"display_name": "Changed"},
                                     headers={**auth, "If-Match": etag})
    assert updated.status_code == 200 and updated.json()["display_name"] == "Changed"
    assert updated.headers["etag"] != etag
    again = await svc.client.get(f"{API}/users/me", headers={**auth, "If-None-Match": etag})
    assert again.status_code == 200 and again.headers["etag"] == updated.headers["etag"]
