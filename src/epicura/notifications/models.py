"""Push tokens, notification preferences and the inbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from epicura.kit.db import Base, uuid_pk

UNREAD = text("read_at IS NULL")


class PushToken(Base):
    """One app install's provider token; a token belongs to one user at a time."""

    __tablename__ = "push_tokens"
    __table_args__ = (
        UniqueConstraint("platform", "token", name="uq_push_tokens_platform"),
        Index("ix_push_tokens_user_id", "user_id"),
        Index("ix_push_tokens_last_seen_at", "last_seen_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(8))
    token: Mapped[str] = mapped_column(String(1024))
    app_version: Mapped[str | None] = mapped_column(String(32))
    locale: Mapped[str | None] = mapped_column(String(35))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class NotificationPreference(Base):
    """A user's choices; a user without a row has every category on and no quiet hours."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                               primary_key=True)
    categories: Mapped[dict[str, Any]]
    quiet_start: Mapped[str | None] = mapped_column(String(5))  # "HH:MM"
    quiet_end: Mapped[str | None] = mapped_column(String(5))
    timezone: Mapped[str | None] = mapped_column(String(64))  # else the user's
    updated_at: Mapped[datetime]


class Notification(Base):
    """One inbox entry; `collapse_key` makes repeats of the same thing one entry."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("user_id", "collapse_key", name="uq_notifications_user_id"),
        Index("ix_notifications_user_created", "user_id", "created_at", "id"),
        Index("ix_notifications_user_unread", "user_id", "created_at",
              postgresql_where=UNREAD, sqlite_where=UNREAD),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    category: Mapped[str] = mapped_column(String(16))
    collapse_key: Mapped[str] = mapped_column(String(200))
    urgent: Mapped[bool]
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(String(500))
    params: Mapped[dict[str, Any]]
    # What happened to the push: queued, held (quiet hours), off (opted out), none (no token).
    push: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    read_at: Mapped[datetime | None]
