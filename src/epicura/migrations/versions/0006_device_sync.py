"""Device sync: Ed25519 signing keys, appliance libraries (with tombstones) and their change
counters, the appliances' sync reports.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSONB = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ONE_ACTIVE = sa.text("status = 'active'")


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("private_key_sealed", sa.Text(), nullable=False),
        sa.Column("seal_id", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("endorsed_by", sa.String(32)),
        sa.Column("endorsement", sa.String(128)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("activated_at", TS),
        sa.Column("retired_at", TS),
        sa.PrimaryKeyConstraint("key_id", name="pk_signing_keys"),
    )
    # At most one key signs.
    op.create_index("uq_signing_keys_one_active", "signing_keys", ["status"], unique=True,
                    postgresql_where=ONE_ACTIVE, sqlite_where=ONE_ACTIVE)
    op.create_table(
        "appliance_sync",
        sa.Column("appliance_id", sa.Uuid(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("owner_id", sa.Uuid()),
        sa.Column("report_cursor", sa.String(200)),
        sa.Column("report_installed", JSONB),
        sa.Column("reported_at", TS),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("appliance_id", name="pk_appliance_sync"),
    )
    op.create_table(
        "appliance_library",
        sa.Column("appliance_id", sa.Uuid(), nullable=False),
        sa.Column("recipe_id", sa.Uuid(), nullable=False),
        sa.Column("favorite", sa.Boolean(), nullable=False),
        sa.Column("sent", sa.Boolean(), nullable=False),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("appliance_id", "recipe_id", name="pk_appliance_library"),
    )  # no foreign keys: see appliances/sync_models.py
    op.create_index("ix_appliance_library_appliance_seq", "appliance_library",
                    ["appliance_id", "seq", "recipe_id"])
    op.create_index("ix_appliance_library_recipe_id", "appliance_library", ["recipe_id"])


def downgrade() -> None:
    for table in ("appliance_library", "appliance_sync", "signing_keys"):
        op.drop_table(table)
