"""Portal sign-in: admins only, a server-side cookie session (HttpOnly, SameSite, expiring), a
CSRF token on every unsafe request, sign-out, and what is refused: a cook, a wrong or missing
token, an API token presented as the cookie, an expired or revoked session."""

from __future__ import annotations

from datetime import timedelta

import pytest

from epicura.kit import clock
from epicura.portal import sessions
from tests.portal.support import ORIGIN, csrf_in, make_admin, page_csrf, sign_in
from tests.support import API, Service, bearer

pytestmark = pytest.mark.anyio


async def test_a_visitor_is_sent_to_sign_in_and_comes_back(svc: Service) -> None:
    reply = await svc.client.get("/admin/?q=x")
    assert reply.status_code == 303
    assert reply.headers["location"] == "/admin/login?next=%2Fadmin%2F%3Fq%3Dx"
    htmx = await svc.client.get("/admin/", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/admin/login")
    email = await make_admin(svc)
    signed = await sign_in(svc.client, email, next_="/admin/?q=x")
    assert signed.status_code == 303 and signed.headers["location"] == "/admin/?q=x"
    for elsewhere in ("https://evil.example/", "//evil.example/admin/", "/api/v1/users/me"):
        svc.client.cookies.clear()
        signed = await sign_in(svc.client, email, next_=elsewhere)
        assert signed.headers["location"] == "/admin/", elsewhere


async def test_sign_in_sets_a_strict_http_only_cookie_and_the_portal_csp(svc: Service) -> None:
    email = await make_admin(svc)
    reply = await sign_in(svc.client, email)
    assert reply.status_code == 303 and reply.headers["location"] == "/admin/"
    cookie = next(c for c in reply.headers.get_list("set-cookie")
                  if c.startswith(sessions.COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie  # only in production (plain HTTP here)
    page = await svc.client.get("/admin/")
    assert page.status_code == 200 and "Dashboard" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'self'" in csp and "cdn" not in csp
    assert "'unsafe-inline'" not in csp
    assert page.headers["cache-control"] == "no-store"
    # The name is escaped where it is shown (the admin's display name holds markup).
    assert "<b>Admin</b>" not in page.text
    asset = await svc.client.get("/admin/static/vendor/htmx.min.js")
    assert asset.status_code == 200 and "htmx" in asset.text[:2000]


async def test_a_wrong_password_shows_the_form_again_and_throttles(svc: Service) -> None:
    email = await make_admin(svc)
    reply = await sign_in(svc.client, email, password="not the password at all")
    assert reply.status_code == 401 and "The e-mail or password is wrong." in reply.text
    assert sessions.COOKIE not in svc.client.cookies
    statuses = [(await sign_in(svc.client, email, password="still wrong here")).status_code
                for _ in range(6)]
    assert statuses[-1] == 429, statuses
    throttled = await sign_in(svc.client, email)
    assert throttled.status_code == 429 and "Too many attempts" in throttled.text
    assert "retry-after" in throttled.headers


async def test_a_cook_is_refused_with_a_clear_page(svc: Service) -> None:
    await svc.signed_up("portal-cook@example.com")
    reply = await sign_in(svc.client, "portal-cook@example.com")
    assert reply.status_code == 403 and "Admins only" in reply.text
    assert sessions.COOKIE not in svc.client.cookies
    assert (await svc.client.get("/admin/")).status_code == 303


async def test_the_sign_in_form_needs_its_csrf_pair(svc: Service) -> None:
    email = await make_admin(svc)
    await svc.client.get("/admin/login")
    for token in ("", "forged-token-value"):
        reply = await svc.client.post("/admin/login", data={
            "email": email, "password": "x", "csrf_token": token})
        assert reply.status_code == 403 and "This form has expired" in reply.text
    assert sessions.COOKIE not in svc.client.cookies


async def test_unsafe_requests_need_the_session_csrf_token_and_same_origin(svc: Service) -> None:
    email = await make_admin(svc)
    await sign_in(svc.client, email)
    token = await page_csrf(svc.client)
    for headers in ({}, {"X-CSRF-Token": "forged"},
                    {"X-CSRF-Token": token, "Origin": "http://evil.example"},
                    {"X-CSRF-Token": token, "Sec-Fetch-Site": "cross-site"},
                    {"X-CSRF-Token": token, "Sec-Fetch-Site": "same-site"}):
        reply = await svc.client.post("/admin/logout", headers=headers)
        assert reply.status_code == 403, headers
    assert (await svc.client.get("/admin/")).status_code == 200  # still signed in
    reply = await svc.client.post("/admin/logout", data={"csrf_token": token},
                                  headers={"Origin": ORIGIN})
    assert reply.status_code == 303 and reply.headers["location"] == "/admin/login"
    assert (await svc.client.get("/admin/")).status_code == 303


async def test_sign_out_ends_the_login_session_behind_it(svc: Service) -> None:
    email = await make_admin(svc)
    await sign_in(svc.client, email)
    raw = svc.client.cookies[sessions.COOKIE]
    found = await sessions.load(svc.runtime, raw)
    assert found is not None
    await svc.client.post("/admin/logout", headers={"X-CSRF-Token": found.csrf})
    assert await sessions.load(svc.runtime, raw) is None
    from epicura.auth import service as auth_service
    assert await auth_service.revocations(svc.runtime).is_revoked(found.login_session_id)
    # The old cookie, replayed, is refused.
    svc.client.cookies.set(sessions.COOKIE, raw, path="/admin")
    assert (await svc.client.get("/admin/")).status_code == 303


async def test_an_api_token_is_no_portal_cookie(svc: Service) -> None:
    email = await make_admin(svc)
    tokens = (await svc.login(email)).json()
    for value in (tokens["access_token"], tokens["refresh_token"]):
        svc.client.cookies.set(sessions.COOKIE, value, path="/admin")
        assert (await svc.client.get("/admin/")).status_code == 303
    svc.client.cookies.clear()
    assert (await svc.client.get("/admin/", headers=bearer(tokens))).status_code == 303


async def test_a_session_ends_after_its_absolute_lifetime(svc: Service) -> None:
    email = await make_admin(svc)
    with clock.frozen(clock.utcnow()):
        await sign_in(svc.client, email)
        assert (await svc.client.get("/admin/")).status_code == 200
        clock.advance(sessions.ABSOLUTE - timedelta(seconds=5))
        assert (await svc.client.get("/admin/")).status_code == 200
        clock.advance(timedelta(seconds=10))
        assert (await svc.client.get("/admin/")).status_code == 303


async def test_idle_sessions_expire_in_the_store(svc: Service) -> None:
    email = await make_admin(svc)
    await sign_in(svc.client, email)
    found = await sessions.load(svc.runtime, svc.client.cookies[sessions.COOKIE])
    assert found is not None
    ttl = await svc.runtime.redis.ttl(found.key)
    assert 0 < ttl <= sessions.IDLE.total_seconds()


async def test_revoking_the_admins_sessions_or_demoting_signs_the_portal_out(
        svc: Service) -> None:
    email = await make_admin(svc)
    other = await make_admin(svc, "portal-other-admin@example.com")
    await sign_in(svc.client, email)
    headers = bearer((await svc.login(other)).json())
    me = (await svc.client.get(f"{API}/admin/users", params={"q": email},
                               headers=headers)).json()["items"][0]
    reply = await svc.client.post(f"{API}/admin/users/{me['id']}/revoke-sessions",
                                  headers=headers)
    assert reply.status_code == 204
    assert (await svc.client.get("/admin/")).status_code == 303
    await sign_in(svc.client, email)
    assert (await svc.client.get("/admin/")).status_code == 200
    reply = await svc.client.patch(f"{API}/admin/users/{me['id']}", json={"role": "user"},
                                   headers=headers)
    assert reply.status_code == 200
    assert (await svc.client.get("/admin/")).status_code == 303


async def test_the_portal_works_on_the_embedded_default(embedded: Service) -> None:
    email = await make_admin(embedded)
    reply = await sign_in(embedded.client, email)
    assert reply.status_code == 303
    page = await embedded.client.get("/admin/")
    assert page.status_code == 200 and csrf_in(page.text)


async def test_the_per_user_request_budget_applies_to_the_portal(
        svc: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    await sign_in(svc.client, await make_admin(svc))
    monkeypatch.setattr(svc.runtime.settings, "user_requests_per_minute", 3)
    statuses = [(await svc.client.get("/admin/")).status_code for _ in range(5)]
    assert statuses[:3] == [200, 200, 200] and statuses[-1] == 429, statuses
    reply = await svc.client.get("/admin/")
    assert "Too many requests" in reply.text and "retry-after" in reply.headers
