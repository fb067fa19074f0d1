"""Signing in to the portal and out of it.

Sign-in goes through the API's own `auth.service.login` (same password check, same throttling
per address and per IP, same audit records); the login session it starts backs the cookie
session, so revoking the admin's sessions or disabling the account signs the portal out too.
The sign-in form, which has no session yet, is protected by a double-submit token: a random
value in a SameSite=Strict cookie that the form must repeat.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from epicura.auth import service as auth_service
from epicura.kit.errors import RateLimited
from epicura.kit.runtime import ClientIp, DbSession, RuntimeDep
from epicura.kit.security import new_opaque_token
from epicura.portal import sessions
from epicura.portal.access import CsrfRefused, CurrentPortal
from epicura.portal.web import PREFIX, render

router = APIRouter()
PORTAL_SESSION_NAME = "Admin portal"


def safe_next(target: str | None) -> str:
    """Only a path inside the portal: never another site (`//evil`, `/\\evil`)."""
    if (target and target.startswith(PREFIX + "/") and not target.startswith("//")
            and "\\" not in target and "\n" not in target and "\r" not in target):
        return target
    return PREFIX + "/"


def set_cookie(reply: Response, request: Request, name: str, value: str,
               max_age: int | None = None) -> None:
    """HttpOnly, SameSite=Strict, only for the portal's paths, Secure in production."""
    reply.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict", path=PREFIX,
                     secure=request.app.state.settings.is_production)


def _login_page(request: Request, next_: str | None, *, error: str | None = None,
                status: int = 200, headers: dict[str, str] | None = None) -> Response:
    token = request.cookies.get(sessions.LOGIN_COOKIE)
    if not token or len(token) > 100:
        token = new_opaque_token(24)
    reply = render(request, "login.html", {"login_csrf": token, "next": safe_next(next_),
                                           "error": error}, status=status, headers=headers)
    set_cookie(reply, request, sessions.LOGIN_COOKIE, token,
               max_age=int(sessions.LOGIN_FORM_TTL.total_seconds()))
    return reply


@router.get("/login", include_in_schema=False)
async def login_form(request: Request, rt: RuntimeDep, next: str | None = None) -> Response:
    if await sessions.load(rt, request.cookies.get(sessions.COOKIE)) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, next)


@router.post("/login", include_in_schema=False)
async def login(
    request: Request,
    rt: RuntimeDep,
    session: DbSession,
    ip: ClientIp,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    if not sessions.csrf_matches(request.cookies.get(sessions.LOGIN_COOKIE), csrf_token):
        raise CsrfRefused()
    try:
        issued = await auth_service.login(rt, session, email=email, password=password,
                                          session_name=PORTAL_SESSION_NAME, ip=ip,
                                          user_agent=request.headers.get("user-agent"))
    except auth_service.InvalidCredentials:
        return _login_page(request, next, error="The e-mail or password is wrong.", status=401)
    except RateLimited as exc:
        return _login_page(request, next, status=429, headers=exc.headers,
                           error=f"Too many attempts. Try again in {exc.retry_after_s} s.")
    user = await auth_service.login_session_owner(session, issued.session_id)
    assert user is not None
    if not auth_service.is_admin(user):
        await auth_service.end_login_session(rt, session, user.id, issued.session_id,
                                             "portal_not_admin", ip)
        return render(request, "forbidden.html", status=403)
    raw = await sessions.create(rt, user.id, issued.session_id)
    reply = RedirectResponse(safe_next(next), status_code=303)
    set_cookie(reply, request, sessions.COOKIE, raw)
    reply.delete_cookie(sessions.LOGIN_COOKIE, path=PREFIX)
    return reply


@router.post("/logout", include_in_schema=False)
async def logout(portal: CurrentPortal, rt: RuntimeDep, session: DbSession,
                 ip: ClientIp) -> Response:
    await auth_service.end_login_session(rt, session, portal.admin.id,
                                         portal.session.login_session_id, "portal_logout", ip)
    await sessions.end(rt, portal.session)
    reply = RedirectResponse(PREFIX + "/login", status_code=303)
    reply.delete_cookie(sessions.COOKIE, path=PREFIX)
    return reply

