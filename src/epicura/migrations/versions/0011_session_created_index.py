"""An index on cooking_sessions(created_at): the analytics windows scan without it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_cooking_sessions_created_at", "cooking_sessions", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_cooking_sessions_created_at", table_name="cooking_sessions")
