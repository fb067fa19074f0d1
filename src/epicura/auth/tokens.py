"""Access tokens (JWT) and refresh-token families with rotation and reuse detection.

A login session is a family. Every refresh rotates the token: the presented one becomes
`rotated`, a child becomes the one `active` token. Presenting a rotated token again is reuse and
revokes the whole family, except within the grace window for the immediately previous token while
its successor is still unused (a retried request after a lost reply): then the unused successor is
`superseded` and a fresh one issued, so a family never holds two active tokens.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.auth import repository
from epicura.auth.models import (
    TOKEN_ACTIVE,
    TOKEN_ROTATED,
    TOKEN_SUPERSEDED,
    LoginSession,
    RefreshToken,
    User,
)
from epicura.kit import clock
from epicura.kit.errors import ProblemError
from epicura.kit.ids import uuid7
from epicura.kit.runtime import Runtime
from epicura.kit.security import new_opaque_token, timestamp, token_digest

ACCESS_CLAIMS = ("sub", "email", "role", "sid", "jti", "iat", "exp", "iss", "aud", "typ")


class InvalidToken(ProblemError):
    status = 401
    code = "invalid_token"
    title = "The token is invalid or expired"


class TokenReused(ProblemError):
    status = 401
    code = "token_reused"
    title = "This refresh token was already used; the login session is ended"
    keeps_changes = True


@dataclass
class IssuedTokens:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_at: datetime
    session_id: uuid.UUID


def issue_access_token(rt: Runtime, user: User, sid: uuid.UUID, now: datetime) -> str:
    settings = rt.settings
    claims = {
        "sub": str(user.id),
        "email": user.email,
        "role": user.role,
        "sid": str(sid),
        "jti": uuid7().hex,
        "iat": timestamp(now),
        "exp": timestamp(now) + settings.access_token_ttl_s,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "typ": "access",
    }
    return rt.jwt.sign(claims)


def verify_access_token(rt: Runtime, token: str) -> dict[str, Any]:
    """The claims of a valid user access token; `InvalidTokenError` for anything else."""
    settings = rt.settings
    claims = rt.jwt.verify(
        token,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        leeway_s=settings.jwt_leeway_s,
        now=clock.utcnow(),
        required=ACCESS_CLAIMS,
    )
    if claims.get("typ") != "access":
        raise jwt.InvalidTokenError("not an access token")
    return claims


def _new_refresh(
    rt: Runtime, session: AsyncSession, sid: uuid.UUID, parent: uuid.UUID | None, now: datetime
) -> tuple[str, RefreshToken]:
    raw = new_opaque_token(32)
    row = RefreshToken(
        session_id=sid,
        parent_id=parent,
        token_hash=token_digest(raw, rt.refresh_key),
        state=TOKEN_ACTIVE,
        created_at=now,
        expires_at=now + timedelta(seconds=rt.settings.refresh_idle_ttl_s),
    )
    session.add(row)
    return raw, row


async def start_family(
    rt: Runtime, session: AsyncSession, user: User, *, name: str, ip: str, user_agent: str | None
) -> IssuedTokens:
    now = clock.utcnow()
    family = LoginSession(
        id=uuid7(),
        user_id=user.id,
        name=name,
        ip=ip,
        user_agent=(user_agent or "")[:256] or None,
        created_at=now,
        last_used_at=now,
        expires_at=now + timedelta(seconds=rt.settings.refresh_absolute_ttl_s),
    )
    session.add(family)
    await session.flush()
    raw, row = _new_refresh(rt, session, family.id, None, now)
    return _issued(rt, user, family, raw, row, now)


def _issued(
    rt: Runtime, user: User, family: LoginSession, raw: str, row: RefreshToken, now: datetime
) -> IssuedTokens:
    return IssuedTokens(
        access_token=issue_access_token(rt, user, family.id, now),
        expires_in=rt.settings.access_token_ttl_s,
        refresh_token=raw,
        refresh_expires_at=min(row.expires_at, family.expires_at),
        session_id=family.id,
    )


@dataclass
class Rotation:
    """What a refresh did: new tokens, or the family it found reused (to revoke)."""

    tokens: IssuedTokens | None = None
    reused_family: LoginSession | None = None


async def rotate(rt: Runtime, session: AsyncSession, raw: str) -> Rotation:
    now = clock.utcnow()
    presented = await repository.refresh_token_by_hash(session, token_digest(raw, rt.refresh_key))
    if presented is None:
        raise InvalidToken()
    family = await repository.lock_login_session(session, presented.session_id)
    if family is None or family.revoked_at is not None or family.expires_at <= now:
        raise InvalidToken()
    await session.refresh(presented)  # re-read under the family lock
    user = await repository.user_by_id(session, family.user_id)
    if user is None or not user.is_active:
        raise InvalidToken()
    if presented.state == TOKEN_ACTIVE:
        if presented.expires_at <= now:
            raise InvalidToken()
        if not await repository.mark_token(
            session, presented.id, from_state=TOKEN_ACTIVE, to_state=TOKEN_ROTATED, at=now
        ):
            raise InvalidToken()
        return Rotation(tokens=await _child(rt, session, user, family, presented.id, now))
    if presented.state == TOKEN_ROTATED:
        return await _rotated_again(rt, session, user, family, presented, now)
    raise InvalidToken()  # superseded or revoked: refused, without ending the family


async def _rotated_again(
    rt: Runtime,
    session: AsyncSession,
    user: User,
    family: LoginSession,
    presented: RefreshToken,
    now: datetime,
) -> Rotation:
    successor = await repository.child_token(session, presented.id)
    grace = timedelta(seconds=rt.settings.refresh_grace_s)
    # A grace of 0 means none: a replay at the very instant of the rotation is reuse too.
    in_grace = (
        grace > timedelta(0)
        and presented.rotated_at is not None
        and now - presented.rotated_at <= grace
    )
    if (
        in_grace
        and successor is not None
        and successor.state == TOKEN_ACTIVE
        and await repository.mark_token(
            session, successor.id, from_state=TOKEN_ACTIVE, to_state=TOKEN_SUPERSEDED
        )
    ):
        return Rotation(tokens=await _child(rt, session, user, family, presented.id, now))
    return Rotation(reused_family=family)


async def _child(
    rt: Runtime,
    session: AsyncSession,
    user: User,
    family: LoginSession,
    parent_id: uuid.UUID,
    now: datetime,
) -> IssuedTokens:
    raw, row = _new_refresh(rt, session, family.id, parent_id, now)
    family.last_used_at = now
    await session.flush()
    return _issued(rt, user, family, raw, row, now)
