"""Who is using the portal: the signed-in admin behind the session cookie, with the CSRF check
of every unsafe request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request

from epicura.auth import service as auth_service
from epicura.auth.models import User
from epicura.kit.errors import NotFound
from epicura.kit.runtime import DbSession, RuntimeDep
from epicura.portal import sessions

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class SignInRequired(Exception):
    """No live portal session: the visitor is sent to the sign-in page."""


class NotAnAdmin(Exception):
    """Signed in, but the account does not (or no longer) hold the admin role."""


class CsrfRefused(Exception):
    """An unsafe request without the session's CSRF token (or from another origin)."""


@dataclass(frozen=True)
class Portal:
    admin: User
    session: sessions.PortalSession
    email: str  # read at sign-in time: error pages render after the transaction ended

    @property
    def csrf(self) -> str:
        return self.session.csrf


def same_origin(request: Request) -> bool:
    """A browser says where an unsafe request comes from: `Sec-Fetch-Site` (every current
    browser), else `Origin` (its host must be this one: the scheme may differ behind a TLS
    proxy). The API's `Referrer-Policy: no-referrer` makes Chromium send `Origin: null` on form
    posts, so that value proves nothing either way; the CSRF token is checked regardless."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    return urlsplit(origin).netloc == request.headers.get("host")


async def presented_csrf(request: Request) -> str | None:
    """The header (htmx), else the form field; a multipart body is never read here (a firmware
    upload streams from it), so its token comes in the header or the query string."""
    token = request.headers.get(sessions.CSRF_HEADER)
    content_type = request.headers.get("content-type", "")
    if token is None and content_type.startswith("multipart/"):
        return request.query_params.get(sessions.CSRF_FIELD)
    if token is None and content_type.startswith(FORM_TYPES):
        value = (await request.form()).get(sessions.CSRF_FIELD)
        token = value if isinstance(value, str) else None
    return token


async def portal_admin(request: Request, rt: RuntimeDep, session: DbSession) -> Portal:
    found = await sessions.load(rt, request.cookies.get(sessions.COOKIE))
    if found is None:
        raise SignInRequired()
    try:
        user = await auth_service.get_user(session, found.user_id)
    except NotFound:
        user = None
    if (user is None or not user.is_active or user.deleted_at is not None
            or await auth_service.revocations(rt).is_revoked(found.login_session_id)):
        await sessions.end(rt, found)
        raise SignInRequired()
    if not auth_service.is_admin(user):
        raise NotAnAdmin()
    # The API's per-user budget applies to the portal's requests too (429 page when spent).
    await rt.limiter.hit(f"{rt.settings.user_requests_per_minute}/minute", "user", str(user.id))
    if request.method not in SAFE_METHODS and not (
            same_origin(request)
            and sessions.csrf_matches(found.csrf, await presented_csrf(request))):
        raise CsrfRefused()
    portal = Portal(admin=user, session=found, email=user.email)
    request.state.portal = portal
    return portal


CurrentPortal = Annotated[Portal, Depends(portal_admin)]
