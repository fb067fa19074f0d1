"""The event outbox: live events that must not be lost, relayed after their transaction commits.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSONB = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
PENDING = sa.text("relayed_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "event_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(200), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("data", JSONB, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("relayed_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_event_outbox"),
    )
    # The relay reads the pending rows in order; relayed ones wait a day for the prune.
    op.create_index("ix_event_outbox_pending", "event_outbox", ["id"],
                    postgresql_where=PENDING, sqlite_where=PENDING)


def downgrade() -> None:
    op.drop_table("event_outbox")
