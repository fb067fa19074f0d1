"""Helpers of the portal tests: admins and cooks, and signing in through the portal's form as a
browser would (the form's CSRF cookie and hidden field)."""

from __future__ import annotations

import re

import anyio
import httpx2

from epicura.auth import service as auth_service
from tests.support import STRONG_PASSWORD, Service

# anyio imports `open_file` lazily, on the first static file served; under pytest that import is
# compiled by the assertion rewriter deep in the request's stack, where Python 3.11.7's compile()
# can fail ("AST constructor recursion depth mismatch"). Importing it here, shallow, avoids that.
assert anyio.open_file is not None
ORIGIN = "http://testserver"
_HIDDEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_in(html: str) -> str:
    found = _HIDDEN.search(html)
    assert found, html[:2000]
    return found.group(1)


async def make_admin(svc: Service, email: str = "portal-admin@example.com") -> str:
    async with svc.runtime.db.transaction() as session:
        await auth_service.create_admin(svc.runtime, session, email, STRONG_PASSWORD,
                                        "Portal <b>Admin</b>")
    return email


async def sign_in(client: httpx2.AsyncClient, email: str, password: str = STRONG_PASSWORD,
                  next_: str = "") -> httpx2.Response:
    form = await client.get("/admin/login")
    assert form.status_code == 200, form.text
    return await client.post("/admin/login", headers={"Origin": ORIGIN}, data={
        "email": email, "password": password, "csrf_token": csrf_in(form.text), "next": next_})


async def page_csrf(client: httpx2.AsyncClient, path: str = "/admin/") -> str:
    reply = await client.get(path)
    assert reply.status_code == 200, reply.text
    return csrf_in(reply.text)
