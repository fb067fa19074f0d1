"""Appliances and what hangs off them: claim codes, commands, alerts, and the message ids seen
from devices (deduplication of QoS 1 redeliveries and HTTPS retries)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from epicura.kit.db import Base, JSONType, uuid_pk

# Lifecycle of an appliance record.
IMPORTED, PROVISIONED, DECOMMISSIONED = "imported", "provisioned", "decommissioned"
CHANNELS = ("stable", "beta", "dev")

# Command results, as domain.md names them; `sent` until the appliance answers.
CMD_SENT, CMD_ACCEPTED, CMD_REJECTED, CMD_DONE, CMD_FAILED, CMD_EXPIRED = (
    "sent", "accepted", "rejected", "done", "failed", "expired",
)
CMD_FINAL = frozenset({CMD_REJECTED, CMD_DONE, CMD_FAILED, CMD_EXPIRED})


class Appliance(Base):
    """One physical appliance. `id` is its device id (the MQTT client id and username)."""

    __tablename__ = "appliances"
    __table_args__ = (
        Index("ix_appliances_owner_id", "owner_id"),
        Index("ix_appliances_lifecycle_online", "lifecycle", "online"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    model: Mapped[str] = mapped_column(String(40))
    hw_revision: Mapped[str] = mapped_column(String(40))
    lifecycle: Mapped[str] = mapped_column(String(16), default=IMPORTED)
    # SHA-256 of high-entropy secrets (factory secrets are at least 16 characters, device secrets
    # 256 random bits): a slow hash adds nothing there and would make imports of 10k rows slow.
    factory_secret_hash: Mapped[str] = mapped_column(String(64))
    device_secret_hash: Mapped[str | None] = mapped_column(String(64))
    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str | None] = mapped_column(String(80))
    paired_at: Mapped[datetime | None]
    firmware_version: Mapped[str | None] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(16), default="stable")
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    online: Mapped[bool] = mapped_column(default=False)
    presence_reason: Mapped[str | None] = mapped_column(String(32))
    boot_id: Mapped[str | None] = mapped_column(String(64))
    last_seen_at: Mapped[datetime | None]
    state: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    state_updated_at: Mapped[datetime | None]
    # Desired config (PATCH settings), versioned so the appliance can tell a newer one apart.
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    config_version: Mapped[int] = mapped_column(default=0)
    current_session_id: Mapped[uuid.UUID | None]
    provisioned_at: Mapped[datetime | None]
    decommissioned_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ClaimCode(Base):
    """A pairing code shown by the appliance: 10 minutes, single use, stored only as a hash."""

    __tablename__ = "claim_codes"
    __table_args__ = (Index("ix_claim_codes_appliance_id", "appliance_id"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    appliance_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("appliances.id", ondelete="CASCADE")
    )
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    used_by: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime]


class ApplianceCommand(Base):
    __tablename__ = "appliance_commands"
    __table_args__ = (
        Index("ix_appliance_commands_appliance_created", "appliance_id", "created_at"),
        Index("ix_appliance_commands_status_expires", "status", "expires_at"),
    )

    request_id: Mapped[uuid.UUID] = uuid_pk()
    appliance_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("appliances.id", ondelete="CASCADE")
    )
    user_id: Mapped[uuid.UUID | None]
    name: Mapped[str] = mapped_column(String(40))
    args: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=CMD_SENT)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ApplianceAlert(Base):
    """An alert raised (and later cleared) by an appliance; `alert_id` is the appliance's own."""

    __tablename__ = "appliance_alerts"
    __table_args__ = (
        UniqueConstraint("appliance_id", "alert_id", name="uq_appliance_alerts_appliance_alert"),
        Index("ix_appliance_alerts_appliance_state", "appliance_id", "state", "raised_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    appliance_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("appliances.id", ondelete="CASCADE")
    )
    alert_id: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    session_id: Mapped[uuid.UUID | None]
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    raised_at: Mapped[datetime]
    cleared_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class DeviceMessage(Base):
    """Ids of device messages already stored: a redelivered message is stored once. Pruned by the
    worker after the longest redelivery window (the device's offline backlog, 14 days)."""

    __tablename__ = "device_messages"
    __table_args__ = (Index("ix_device_messages_received_at", "received_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    appliance_id: Mapped[uuid.UUID]
    kind: Mapped[str] = mapped_column(String(24))
    received_at: Mapped[datetime]
