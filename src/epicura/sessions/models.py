"""Cooking sessions and their event log.

No foreign keys on purpose (as `appliances/sync_models.py`): the bridge writes these rows in the
same transaction that updates the appliance, and pairing holds `appliances` rows `FOR UPDATE`;
a key-share lock taken by an insert here would order the two against each other. Appliances,
recipes and users are never deleted (decommissioned, archived, anonymised), so the ids stay good.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Index,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from epicura.kit.db import Base, JSONType, uuid_pk

ORIGIN_APP, ORIGIN_DEVICE = "app", "device"
PLANNED, RUNNING, PAUSED, AWAITING_USER = "planned", "running", "paused", "awaiting_user"
COMPLETED, ABORTED, FAILED = "completed", "aborted", "failed"
# Shown, never stored: a live session the appliance has not spoken about for a while.
STALE = "stale"
STATUSES = (PLANNED, RUNNING, PAUSED, AWAITING_USER, COMPLETED, ABORTED, FAILED)
TERMINAL = frozenset({COMPLETED, ABORTED, FAILED})
LIVE = frozenset({RUNNING, PAUSED, AWAITING_USER})
LIVE_SQL = text("status IN ('running', 'paused', 'awaiting_user')")


class CookingSession(Base):
    __tablename__ = "cooking_sessions"
    __table_args__ = (
        Index("ix_cooking_sessions_user_created", "user_id", "created_at", "id"),
        Index("ix_cooking_sessions_user_started", "user_id", "started_at"),
        Index("ix_cooking_sessions_appliance_created", "appliance_id", "created_at"),
        # The analytics windows read every user's sessions by creation time.
        Index("ix_cooking_sessions_created_at", "created_at"),
        # The stale sweep reads only the live ones.
        Index("ix_cooking_sessions_live", "last_event_at", postgresql_where=LIVE_SQL,
              sqlite_where=LIVE_SQL),
        Index("ix_cooking_sessions_recipe_id", "recipe_id"),
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    # None when the appliance had no owner when it started a session on its own.
    user_id: Mapped[uuid.UUID | None]
    appliance_id: Mapped[uuid.UUID]
    recipe_id: Mapped[uuid.UUID]
    recipe_version: Mapped[int]
    servings: Mapped[float | None]
    origin: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default=PLANNED)
    step_index: Mapped[int | None]
    step_title: Mapped[str | None] = mapped_column(String(200))
    # The current step's timer: its programmed duration, the seconds it has run before the
    # current stretch, and when the current stretch began (None while it is not counting:
    # paused, waiting for the cook, done). Remaining time is computed from these at read time.
    step_duration_s: Mapped[int | None]
    step_elapsed_s: Mapped[float] = mapped_column(default=0.0)
    step_started_at: Mapped[datetime | None]
    # What `resumed` returns to (a pause can interrupt a step that waits for the cook).
    resume_status: Mapped[str | None] = mapped_column(String(16))
    # Highest `seq` applied to the state (a lower one is logged, never applied).
    last_seq: Mapped[int] = mapped_column(BigInteger, default=-1)
    last_event_at: Mapped[datetime | None]
    # Set when the sweep has announced the session stale; cleared by the next event.
    stale_announced_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    duration_s: Mapped[int | None]
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    rating: Mapped[int | None] = mapped_column(SmallInteger)
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SessionEvent(Base):
    """One `up/session` event as received: the same `(session_id, seq)` is stored once.
    `appliance_id` is the sender (the topic's device): an event that arrived before the event
    that creates its session waits here, and only its own appliance's session takes it up."""

    __tablename__ = "session_events"
    __table_args__ = (
        UniqueConstraint("session_id", "seq", name="uq_session_events_session_seq"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    session_id: Mapped[uuid.UUID]
    appliance_id: Mapped[uuid.UUID]
    seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(24))
    step_index: Mapped[int | None]
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    device_ts: Mapped[datetime | None]
    received_at: Mapped[datetime]
