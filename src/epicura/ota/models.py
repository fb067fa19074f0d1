"""Tables of the OTA module: release-signing public keys, releases, rollouts and each device's
progress in a rollout."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from epicura.kit.db import Base, JSONType, uuid_pk

# Release-key and release statuses.
KEY_ACTIVE, KEY_RETIRED = "active", "retired"
DRAFT, READY, YANKED = "draft", "ready", "yanked"

# Rollout states (domain.md).
R_DRAFT, R_ACTIVE, R_PAUSED, R_HALTED, R_COMPLETED, R_ABORTED = (
    "draft", "active", "paused", "halted", "completed", "aborted")
ROLLOUT_STATES = (R_DRAFT, R_ACTIVE, R_PAUSED, R_HALTED, R_COMPLETED, R_ABORTED)
# A rollout that may still change (one per release at a time).
OPEN_STATES = (R_DRAFT, R_ACTIVE, R_PAUSED, R_HALTED)

# Device outcomes (domain.md); `pending`: in an open stage, no outcome yet.
PENDING = "pending"
OUTCOMES = ("offered", "downloading", "downloaded", "verified", "installing", "succeeded",
            "failed", "rolled_back", "deferred")


class ReleaseKey(Base):
    """A public key of Epicura's build system; releases must be signed by an active one."""

    __tablename__ = "release_keys"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64))  # base64 of the raw 32 bytes
    name: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default=KEY_ACTIVE)
    created_at: Mapped[datetime]
    retired_at: Mapped[datetime | None]


class FirmwareRelease(Base):
    __tablename__ = "firmware_releases"
    __table_args__ = (Index("ix_firmware_releases_created_at", "created_at"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    version: Mapped[str] = mapped_column(String(40), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    hw_revisions: Mapped[list[str]] = mapped_column(JSONType)
    min_from_version: Mapped[str | None] = mapped_column(String(40))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(100))  # base64
    key_id: Mapped[str] = mapped_column(String(16))
    manifest: Mapped[str] = mapped_column(Text)  # base64 of the exact signed bytes
    notes: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=DRAFT)
    object_key: Mapped[str] = mapped_column(String(200))
    uploaded_by: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    yanked_at: Mapped[datetime | None]


class Rollout(Base):
    __tablename__ = "rollouts"
    __table_args__ = (
        Index("ix_rollouts_state", "state"),
        Index("ix_rollouts_created_at", "created_at"),
        # One rollout at a time per release that can still change.
        Index("uq_rollouts_open_release", "release_id", unique=True,
              postgresql_where=text("state IN ('draft', 'active', 'paused', 'halted')"),
              sqlite_where=text("state IN ('draft', 'active', 'paused', 'halted')")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    release_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("firmware_releases.id", ondelete="RESTRICT"))
    state: Mapped[str] = mapped_column(String(16), default=R_DRAFT)
    channel: Mapped[str] = mapped_column(String(16))
    hw_revisions: Mapped[list[str]] = mapped_column(JSONType)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    stages: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    current_stage: Mapped[int] = mapped_column(default=-1)  # -1 before the start
    stage_started_at: Mapped[datetime | None]
    halt_reason: Mapped[str | None] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(default=1)  # bumps on every change (ETag)
    created_by: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]


class RolloutDevice(Base):
    """A device in a rollout's open stages: its bucket, its stage and its latest outcome."""

    __tablename__ = "rollout_devices"
    __table_args__ = (Index("ix_rollout_devices_appliance_id", "appliance_id"),)

    rollout_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("rollouts.id", ondelete="CASCADE"), primary_key=True)
    appliance_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("appliances.id", ondelete="CASCADE"), primary_key=True)
    bucket: Mapped[int]
    stage: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    progress_pct: Mapped[float | None]
    error_code: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(500))
    failures: Mapped[int] = mapped_column(default=0)
    next_offer_at: Mapped[datetime | None]
    notified: Mapped[bool] = mapped_column(default=False)  # a retained down/ota is out
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
