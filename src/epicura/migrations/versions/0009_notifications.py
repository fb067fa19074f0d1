"""Push tokens, notification preferences, the inbox; job keys and per-job timeouts.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSONB = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UNREAD = sa.text("read_at IS NULL")


def upgrade() -> None:
    # A job may carry a key: a second enqueue with the same key adds nothing (idempotency).
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("key", sa.String(200)))
        batch.add_column(sa.Column("timeout_s", sa.Float()))
    op.create_index("uq_jobs_key", "jobs", ["key"], unique=True)
    op.create_index("ix_jobs_state_created", "jobs", ["state", "created_at"])

    op.create_table(
        "push_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("platform", sa.String(8), nullable=False),
        sa.Column("token", sa.String(1024), nullable=False),
        sa.Column("app_version", sa.String(32)),
        sa.Column("locale", sa.String(35)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_push_tokens"),
        sa.UniqueConstraint("platform", "token", name="uq_push_tokens_platform"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_push_tokens_user_id_users"),
    )
    op.create_index("ix_push_tokens_user_id", "push_tokens", ["user_id"])
    op.create_index("ix_push_tokens_last_seen_at", "push_tokens", ["last_seen_at"])

    op.create_table(
        "notification_preferences",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("categories", JSONB, nullable=False),
        sa.Column("quiet_start", sa.String(5)),
        sa.Column("quiet_end", sa.String(5)),
        sa.Column("timezone", sa.String(64)),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_notification_preferences"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_notification_preferences_user_id_users"),
    )

    op.create_table(
        "notifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("collapse_key", sa.String(200), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.String(500), nullable=False),
        sa.Column("params", JSONB, nullable=False),
        sa.Column("push", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("read_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
        sa.UniqueConstraint("user_id", "collapse_key", name="uq_notifications_user_id"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_notifications_user_id_users"),
    )
    op.create_index("ix_notifications_user_created", "notifications",
                    ["user_id", "created_at", "id"])
    op.create_index("ix_notifications_user_unread", "notifications", ["user_id", "created_at"],
                    postgresql_where=UNREAD, sqlite_where=UNREAD)


def downgrade() -> None:
    op.drop_table("notifications")
    op.drop_table("notification_preferences")
    op.drop_table("push_tokens")
    op.drop_index("ix_jobs_state_created", table_name="jobs")
    op.drop_index("uq_jobs_key", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("timeout_s")
        batch.drop_column("key")
