"""Cooking sessions and their event log.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSONB = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
LIVE = sa.text("status IN ('running', 'paused', 'awaiting_user')")


def upgrade() -> None:
    op.create_table(
        "cooking_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid()),
        sa.Column("appliance_id", sa.Uuid(), nullable=False),
        sa.Column("recipe_id", sa.Uuid(), nullable=False),
        sa.Column("recipe_version", sa.Integer(), nullable=False),
        sa.Column("servings", sa.Float()),
        sa.Column("origin", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("step_index", sa.Integer()),
        sa.Column("step_title", sa.String(200)),
        sa.Column("step_duration_s", sa.Integer()),
        sa.Column("step_elapsed_s", sa.Float(), nullable=False),
        sa.Column("step_started_at", TS),
        sa.Column("resume_status", sa.String(16)),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_event_at", TS),
        sa.Column("stale_announced_at", TS),
        sa.Column("started_at", TS),
        sa.Column("ended_at", TS),
        sa.Column("duration_s", sa.Integer()),
        sa.Column("summary", JSONB),
        sa.Column("rating", sa.SmallInteger()),
        sa.Column("notes", sa.Text()),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cooking_sessions"),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name="ck_cooking_sessions_rating"),
    )  # no foreign keys: see sessions/models.py
    op.create_index("ix_cooking_sessions_user_created", "cooking_sessions",
                    ["user_id", "created_at", "id"])
    op.create_index("ix_cooking_sessions_user_started", "cooking_sessions",
                    ["user_id", "started_at"])
    op.create_index("ix_cooking_sessions_appliance_created", "cooking_sessions",
                    ["appliance_id", "created_at"])
    op.create_index("ix_cooking_sessions_live", "cooking_sessions", ["last_event_at"],
                    postgresql_where=LIVE, sqlite_where=LIVE)
    op.create_index("ix_cooking_sessions_recipe_id", "cooking_sessions", ["recipe_id"])
    op.create_table(
        "session_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("appliance_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(24), nullable=False),
        sa.Column("step_index", sa.Integer()),
        sa.Column("data", JSONB),
        sa.Column("device_ts", TS),
        sa.Column("received_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_session_events"),
        sa.UniqueConstraint("session_id", "seq", name="uq_session_events_session_seq"),
    )


def downgrade() -> None:
    op.drop_table("session_events")
    op.drop_table("cooking_sessions")
