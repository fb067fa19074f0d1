"""All SQL of the notifications module."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.kit.ids import uuid7
from epicura.notifications.models import Notification, NotificationPreference, PushToken


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


# --- push tokens ---------------------------------------------------------------------------

async def token_owner(session: AsyncSession, platform: str, token: str) -> uuid.UUID | None:
    owner: uuid.UUID | None = await session.scalar(
        select(PushToken.user_id).where(PushToken.platform == platform, PushToken.token == token))
    return owner


async def upsert_token(session: AsyncSession, user_id: uuid.UUID, platform: str, token: str,
                       app_version: str | None, locale: str | None, now: datetime) -> PushToken:
    """Insert the token, or move it to `user_id` and refresh it (last seen, version, locale)."""
    insert = _insert(session)
    statement = insert(PushToken).values(
        id=uuid7(), user_id=user_id, platform=platform, token=token, app_version=app_version,
        locale=locale, created_at=now, last_seen_at=now,
    )
    statement = statement.on_conflict_do_update(
        index_elements=["platform", "token"],
        set_={"user_id": user_id, "app_version": app_version, "locale": locale,
              "last_seen_at": now},
    ).returning(PushToken.id)
    token_id = (await session.execute(statement)).scalar_one()
    row = await session.get(PushToken, token_id, populate_existing=True)
    assert row is not None
    return row


async def tokens_of(session: AsyncSession, user_id: uuid.UUID) -> Sequence[PushToken]:
    return (await session.scalars(
        select(PushToken).where(PushToken.user_id == user_id)
        .order_by(PushToken.last_seen_at.desc(), PushToken.id))).all()


async def token_by_id(session: AsyncSession, token_id: uuid.UUID) -> PushToken | None:
    return await session.get(PushToken, token_id)


async def delete_token(session: AsyncSession, token_id: uuid.UUID,
                       user_id: uuid.UUID | None = None) -> bool:
    statement = delete(PushToken).where(PushToken.id == token_id)
    if user_id is not None:
        statement = statement.where(PushToken.user_id == user_id)
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0))


async def delete_tokens_beyond(session: AsyncSession, user_id: uuid.UUID, keep: int) -> int:
    """Keep a user's `keep` most recently seen tokens."""
    kept = select(PushToken.id).where(PushToken.user_id == user_id) \
        .order_by(PushToken.last_seen_at.desc(), PushToken.id.desc()).limit(keep)
    result = await session.execute(delete(PushToken).where(
        PushToken.user_id == user_id, PushToken.id.not_in(kept)))
    return int(getattr(result, "rowcount", 0) or 0)


async def prune_tokens(session: AsyncSession, seen_before: datetime) -> int:
    result = await session.execute(delete(PushToken).where(PushToken.last_seen_at < seen_before))
    return int(getattr(result, "rowcount", 0) or 0)


# --- preferences ---------------------------------------------------------------------------

async def preferences(session: AsyncSession, user_id: uuid.UUID) -> NotificationPreference | None:
    return await session.get(NotificationPreference, user_id)


async def save_preferences(session: AsyncSession, user_id: uuid.UUID, values: dict[str, Any],
                           now: datetime) -> NotificationPreference:
    insert = _insert(session)
    row = {**values, "updated_at": now}
    await session.execute(insert(NotificationPreference).values(user_id=user_id, **row)
                          .on_conflict_do_update(index_elements=["user_id"], set_=row))
    found = await session.get(NotificationPreference, user_id, populate_existing=True)
    assert found is not None
    return found


# --- inbox ---------------------------------------------------------------------------------

async def add_notification(session: AsyncSession, values: dict[str, Any]) -> uuid.UUID | None:
    """Insert unless the user already has an entry with this collapse key; the new id or None."""
    insert = _insert(session)
    result = await session.execute(
        insert(Notification).values(id=uuid7(), **values)
        .on_conflict_do_nothing(index_elements=["user_id", "collapse_key"])
        .returning(Notification.id))
    added: uuid.UUID | None = result.scalar()
    return added


async def notification(session: AsyncSession, notification_id: uuid.UUID) -> Notification | None:
    return await session.get(Notification, notification_id)


async def inbox(session: AsyncSession, user_id: uuid.UUID, *, unread: bool | None,
                after: tuple[datetime, uuid.UUID] | None, limit: int) -> Sequence[Notification]:
    query = select(Notification).where(Notification.user_id == user_id) \
        .order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)
    if unread is True:
        query = query.where(Notification.read_at.is_(None))
    elif unread is False:
        query = query.where(Notification.read_at.is_not(None))
    if after is not None:
        moment, last_id = after
        query = query.where(or_(Notification.created_at < moment,
                                (Notification.created_at == moment) & (Notification.id < last_id)))
    return (await session.scalars(query)).all()


async def mark_read(session: AsyncSession, user_id: uuid.UUID, now: datetime,
                    notification_id: uuid.UUID | None = None) -> int:
    statement = update(Notification).where(
        Notification.user_id == user_id, Notification.read_at.is_(None)).values(read_at=now)
    if notification_id is not None:
        statement = statement.where(Notification.id == notification_id)
    result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)


async def unread_count(session: AsyncSession, user_id: uuid.UUID) -> int:
    return int(await session.scalar(select(func.count()).select_from(Notification).where(
        Notification.user_id == user_id, Notification.read_at.is_(None))) or 0)


async def forget_user(session: AsyncSession, user_id: uuid.UUID) -> None:
    for model in (PushToken, Notification, NotificationPreference):
        await session.execute(delete(model).where(model.user_id == user_id))
