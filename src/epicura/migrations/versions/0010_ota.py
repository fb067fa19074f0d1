"""Firmware releases, release-signing public keys, rollouts and devices' progress in them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSONB = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
OPEN = sa.text("state IN ('draft', 'active', 'paused', 'halted')")


def upgrade() -> None:
    op.create_table(
        "release_keys",
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("retired_at", TS),
        sa.PrimaryKeyConstraint("key_id", name="pk_release_keys"),
    )
    op.create_table(
        "firmware_releases",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("hw_revisions", JSONB, nullable=False),
        sa.Column("min_from_version", sa.String(40)),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(100), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("object_key", sa.String(200), nullable=False),
        sa.Column("uploaded_by", sa.Uuid()),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("yanked_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_firmware_releases"),
        sa.UniqueConstraint("version", name="uq_firmware_releases_version"),
    )
    op.create_index("ix_firmware_releases_created_at", "firmware_releases", ["created_at"])
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("release_id", sa.Uuid(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("hw_revisions", JSONB, nullable=False),
        sa.Column("tags", JSONB, nullable=False),
        sa.Column("stages", JSONB, nullable=False),
        sa.Column("current_stage", sa.Integer(), nullable=False),
        sa.Column("stage_started_at", TS),
        sa.Column("halt_reason", sa.Text()),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Uuid()),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("started_at", TS),
        sa.Column("ended_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_rollouts"),
        sa.ForeignKeyConstraint(["release_id"], ["firmware_releases.id"], ondelete="RESTRICT",
                                name="fk_rollouts_release_id_firmware_releases"),
    )
    op.create_index("ix_rollouts_state", "rollouts", ["state"])
    op.create_index("ix_rollouts_created_at", "rollouts", ["created_at"])
    op.create_index("uq_rollouts_open_release", "rollouts", ["release_id"], unique=True,
                    postgresql_where=OPEN, sqlite_where=OPEN)
    op.create_table(
        "rollout_devices",
        sa.Column("rollout_id", sa.Uuid(), nullable=False),
        sa.Column("appliance_id", sa.Uuid(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress_pct", sa.Float()),
        sa.Column("error_code", sa.String(64)),
        sa.Column("reason", sa.String(500)),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_offer_at", TS),
        sa.Column("notified", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("rollout_id", "appliance_id", name="pk_rollout_devices"),
        sa.ForeignKeyConstraint(["rollout_id"], ["rollouts.id"], ondelete="CASCADE",
                                name="fk_rollout_devices_rollout_id_rollouts"),
        sa.ForeignKeyConstraint(["appliance_id"], ["appliances.id"], ondelete="CASCADE",
                                name="fk_rollout_devices_appliance_id_appliances"),
    )
    op.create_index("ix_rollout_devices_appliance_id", "rollout_devices", ["appliance_id"])


def downgrade() -> None:
    op.drop_table("rollout_devices")
    op.drop_table("rollouts")
    op.drop_table("firmware_releases")
    op.drop_table("release_keys")
