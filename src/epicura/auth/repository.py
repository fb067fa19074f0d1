"""All SQL of the auth module."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.auth.models import (
    TOKEN_ACTIVE,
    TOKEN_REVOKED,
    EmailToken,
    LoginSession,
    RefreshToken,
    User,
)


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    found: User | None = await session.scalar(select(User).where(User.email == email))
    return found


async def user_by_id(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def count_users(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def search_users(
    session: AsyncSession,
    *,
    q: str | None,
    role: str | None,
    active: bool | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[User]:
    query = select(User).where(User.deleted_at.is_(None))
    if q:
        pattern = (
            "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        query = query.where(
            or_(
                User.email.like(pattern, escape="\\"),
                func.lower(User.display_name).like(pattern, escape="\\"),
            )
        )
    if role:
        query = query.where(User.role == role)
    if active is not None:
        query = query.where(User.is_active == active)
    if after is not None:
        created, last_id = after
        query = query.where(
            or_(User.created_at < created, (User.created_at == created) & (User.id < last_id))
        )
    query = query.order_by(User.created_at.desc(), User.id.desc()).limit(limit)
    return (await session.scalars(query)).all()


async def lock_login_session(session: AsyncSession, sid: uuid.UUID) -> LoginSession | None:
    """The family row, locked for the rest of the transaction (serialises refreshes)."""
    found: LoginSession | None = await session.scalar(
        select(LoginSession).where(LoginSession.id == sid).with_for_update()
    )
    return found


async def refresh_token_by_hash(session: AsyncSession, token_hash: str) -> RefreshToken | None:
    found: RefreshToken | None = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == token_hash)
    )
    return found


async def child_token(session: AsyncSession, parent_id: uuid.UUID) -> RefreshToken | None:
    """The successor of a token: its active child if it has one, else its newest child.
    (After grace retries a token has several children with equal or out-of-order `created_at`:
    picking a superseded one would take a concurrent retry for reuse.)"""
    found: RefreshToken | None = await session.scalar(
        select(RefreshToken)
        .where(RefreshToken.parent_id == parent_id)
        .order_by((RefreshToken.state == TOKEN_ACTIVE).desc(), RefreshToken.created_at.desc())
        .limit(1)
    )
    return found


async def mark_token(
    session: AsyncSession,
    token_id: uuid.UUID,
    *,
    from_state: str,
    to_state: str,
    at: datetime | None = None,
) -> bool:
    """Compare-and-set the state of one token; False if someone else changed it first."""
    values: dict[str, object] = {"state": to_state}
    if at is not None:
        values["rotated_at"] = at
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token_id, RefreshToken.state == from_state)
        .values(**values)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def revoke_family_tokens(session: AsyncSession, sid: uuid.UUID) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.session_id == sid, RefreshToken.state == TOKEN_ACTIVE)
        .values(state=TOKEN_REVOKED)
    )


async def active_login_sessions(
    session: AsyncSession, user_id: uuid.UUID, now: datetime
) -> Sequence[LoginSession]:
    query = (
        select(LoginSession)
        .where(
            LoginSession.user_id == user_id,
            LoginSession.revoked_at.is_(None),
            LoginSession.expires_at > now,
        )
        .order_by(LoginSession.last_used_at.desc())
    )
    return (await session.scalars(query)).all()


async def revoke_login_sessions(
    session: AsyncSession,
    user_id: uuid.UUID,
    now: datetime,
    reason: str,
    only: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """Revoke the user's live sessions (or just `only`) and their tokens; returns their ids."""
    query = select(LoginSession.id).where(
        LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None)
    )
    if only is not None:
        query = query.where(LoginSession.id == only)
    sids = list((await session.scalars(query)).all())
    if not sids:
        return []
    await session.execute(
        update(LoginSession)
        .where(LoginSession.id.in_(sids))
        .values(revoked_at=now, revoked_reason=reason)
    )
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.session_id.in_(sids), RefreshToken.state == TOKEN_ACTIVE)
        .values(state=TOKEN_REVOKED)
    )
    return sids


async def live_sessions_among(session: AsyncSession,
                              sids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Those of `sids` that exist and are not revoked."""
    if not sids:
        return set()
    query = select(LoginSession.id).where(LoginSession.id.in_(sids),
                                          LoginSession.revoked_at.is_(None))
    return set((await session.scalars(query)).all())


async def recently_revoked_sessions(session: AsyncSession, since: datetime) -> Sequence[uuid.UUID]:
    query = select(LoginSession.id).where(LoginSession.revoked_at >= since)
    return (await session.scalars(query)).all()


async def email_token_by_hash(session: AsyncSession, token_hash: str) -> EmailToken | None:
    found: EmailToken | None = await session.scalar(
        select(EmailToken).where(EmailToken.token_hash == token_hash).with_for_update()
    )
    return found


async def retire_email_tokens(
    session: AsyncSession, user_id: uuid.UUID, purpose: str, now: datetime
) -> None:
    """A newer link supersedes the older ones of the same purpose."""
    await session.execute(
        update(EmailToken)
        .where(
            EmailToken.user_id == user_id,
            EmailToken.purpose == purpose,
            EmailToken.used_at.is_(None),
        )
        .values(used_at=now)
    )
