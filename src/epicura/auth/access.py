"""Who is calling: the dependencies every user and admin route declares.

This is the auth module's public face for other modules' routers, alongside `service`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from epicura.auth import service
from epicura.auth.models import ROLE_ADMIN, User
from epicura.auth.tokens import verify_access_token
from epicura.kit import metrics
from epicura.kit.errors import Forbidden, ProblemError
from epicura.kit.runtime import DbSession, RuntimeDep

bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


class NotAuthenticated(ProblemError):
    """One generic 401 for every bad credential: no reason is leaked."""

    status = 401
    code = "unauthorized"
    title = "Authentication required"

    def __init__(self) -> None:
        super().__init__(headers={"WWW-Authenticate": "Bearer"})


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    session_id: uuid.UUID
    role: str
    email: str


async def current_principal(
    request: Request, rt: RuntimeDep, token: Annotated[str | None, Depends(bearer)]
) -> Principal:
    if not token:
        raise NotAuthenticated()
    try:
        claims = verify_access_token(rt, token)
        principal = Principal(
            user_id=uuid.UUID(claims["sub"]),
            session_id=uuid.UUID(claims["sid"]),
            role=str(claims["role"]),
            email=str(claims["email"]),
        )
    except (jwt.InvalidTokenError, ValueError, KeyError, TypeError) as exc:
        metrics.auth_events.labels("bad_access_token").inc()
        raise NotAuthenticated() from exc
    if await service.revocations(rt).is_revoked(principal.session_id):
        raise NotAuthenticated()
    await rt.limiter.hit(
        f"{rt.settings.user_requests_per_minute}/minute", "user", str(principal.user_id)
    )
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def current_user(principal: CurrentPrincipal, session: DbSession) -> User:
    """The caller's row, read fresh: a disabled or deleted account is refused at once."""
    user = await session.get(User, principal.user_id)
    if user is None or not user.is_active:
        raise NotAuthenticated()
    return user


CurrentUser = Annotated[User, Depends(current_user)]


async def current_admin(user: CurrentUser) -> User:
    """Admin routes check the role in the database, not the token's claim."""
    if user.role != ROLE_ADMIN:
        raise Forbidden("This needs the admin role")
    return user


CurrentAdmin = Annotated[User, Depends(current_admin)]


async def optional_user(
    request: Request,
    rt: RuntimeDep,
    session: DbSession,
    token: Annotated[str | None, Depends(bearer)],
) -> User | None:
    """The caller on public routes that show more to a signed-in user; a token that is sent
    must be valid (401 otherwise), no token is an anonymous caller."""
    if not token:
        return None
    principal = await current_principal(request, rt, token)
    return await current_user(principal, session)


OptionalUser = Annotated[User | None, Depends(optional_user)]
