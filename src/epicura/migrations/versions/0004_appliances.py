"""Appliances, claim codes, commands, alerts, and the ids of device messages already stored.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSONB = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "appliances",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("model", sa.String(40), nullable=False),
        sa.Column("hw_revision", sa.String(40), nullable=False),
        sa.Column("lifecycle", sa.String(16), nullable=False),
        sa.Column("factory_secret_hash", sa.String(64), nullable=False),
        sa.Column("device_secret_hash", sa.String(64)),
        sa.Column("owner_id", sa.Uuid()),
        sa.Column("name", sa.String(80)),
        sa.Column("paired_at", TS),
        sa.Column("firmware_version", sa.String(40)),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("tags", JSONB, nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("presence_reason", sa.String(32)),
        sa.Column("boot_id", sa.String(64)),
        sa.Column("last_seen_at", TS),
        sa.Column("state", JSONB),
        sa.Column("state_updated_at", TS),
        sa.Column("settings", JSONB, nullable=False),
        sa.Column("config_version", sa.Integer(), nullable=False),
        sa.Column("current_session_id", sa.Uuid()),
        sa.Column("provisioned_at", TS),
        sa.Column("decommissioned_at", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_appliances"),
        sa.UniqueConstraint("serial", name="uq_appliances_serial"),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name="fk_appliances_owner_id_users",
                                ondelete="SET NULL"),
    )
    op.create_index("ix_appliances_owner_id", "appliances", ["owner_id"])
    op.create_index("ix_appliances_lifecycle_online", "appliances", ["lifecycle", "online"])
    op.create_table(
        "claim_codes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("appliance_id", sa.Uuid(), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS),
        sa.Column("used_by", sa.Uuid()),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_claim_codes"),
        sa.UniqueConstraint("code_hash", name="uq_claim_codes_code_hash"),
        sa.ForeignKeyConstraint(["appliance_id"], ["appliances.id"],
                                name="fk_claim_codes_appliance_id_appliances", ondelete="CASCADE"),
    )
    op.create_index("ix_claim_codes_appliance_id", "claim_codes", ["appliance_id"])
    op.create_table(
        "appliance_commands",
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("appliance_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid()),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("args", JSONB, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_appliance_commands"),
        sa.ForeignKeyConstraint(["appliance_id"], ["appliances.id"],
                                name="fk_appliance_commands_appliance_id_appliances",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_appliance_commands_appliance_created", "appliance_commands",
                    ["appliance_id", "created_at"])
    op.create_index("ix_appliance_commands_status_expires", "appliance_commands",
                    ["status", "expires_at"])
    op.create_table(
        "appliance_alerts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("appliance_id", sa.Uuid(), nullable=False),
        sa.Column("alert_id", sa.String(64), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("session_id", sa.Uuid()),
        sa.Column("data", JSONB),
        sa.Column("raised_at", TS, nullable=False),
        sa.Column("cleared_at", TS),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_appliance_alerts"),
        sa.UniqueConstraint("appliance_id", "alert_id", name="uq_appliance_alerts_appliance_alert"),
        sa.ForeignKeyConstraint(["appliance_id"], ["appliances.id"],
                                name="fk_appliance_alerts_appliance_id_appliances",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_appliance_alerts_appliance_state", "appliance_alerts",
                    ["appliance_id", "state", "raised_at"])
    op.create_table(
        "device_messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("appliance_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_device_messages"),
    )
    op.create_index("ix_device_messages_received_at", "device_messages", ["received_at"])


def downgrade() -> None:
    for table in ("device_messages", "appliance_alerts", "appliance_commands", "claim_codes",
                  "appliances"):
        op.drop_table(table)
