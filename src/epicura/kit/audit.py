"""The append-only audit log of security-relevant and admin actions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from epicura.kit import clock
from epicura.kit.db import Base, uuid_pk
from epicura.kit.logging import request_id_var


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_at", "at"),
        Index("ix_audit_events_actor_id_at", "actor_id", "at"),
        Index("ix_audit_events_action_at", "action", "at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(64))
    actor_id: Mapped[uuid.UUID | None]
    actor_type: Mapped[str] = mapped_column(String(16))  # user | admin | device | system
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]]


def record(
    session: AsyncSession,
    action: str,
    *,
    actor_id: uuid.UUID | None = None,
    actor_type: str = "user",
    target_type: str | None = None,
    target_id: object | None = None,
    ip: str | None = None,
    **details: Any,
) -> AuditEvent:
    event = AuditEvent(
        at=clock.utcnow(),
        action=action,
        actor_id=actor_id,
        actor_type=actor_type,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        ip=ip,
        request_id=request_id_var.get(),
        details=details,
    )
    session.add(event)
    return event
