"""Recipes: capability profiles (with the default epicura-1/rev-a), recipes, immutable versions,
favourites, images, and full-text search (PostgreSQL tsvector + trigram; SQLite FTS5 + a similarity function).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSONB = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
DEFAULT_PROFILE_ID = uuid.UUID("0190f0d0-0000-7000-8000-000000000001")
ALL_ACTIONS = ["heat", "stir", "blend", "knead", "steam", "weigh", "await_user", "rest", "manual"]


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    profiles = op.create_table(
        "capability_profiles",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("model", sa.String(40), nullable=False),
        sa.Column("hw_revision", sa.String(40), nullable=False),
        sa.Column("min_temp_c", sa.Float(), nullable=False),
        sa.Column("max_temp_c", sa.Float(), nullable=False),
        sa.Column("speed_min", sa.Float(), nullable=False),
        sa.Column("speed_max", sa.Float(), nullable=False),
        sa.Column("max_duration_s", sa.Integer(), nullable=False),
        sa.Column("bowl_capacity_ml", sa.Integer(), nullable=False),
        sa.Column("max_weight_g", sa.Integer(), nullable=False),
        sa.Column("reverse", sa.Boolean(), nullable=False),
        sa.Column("actions", JSONB, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_capability_profiles"),
        sa.UniqueConstraint("model", "hw_revision", name="uq_capability_profiles_model_hw"),
    )
    op.bulk_insert(profiles, [{
        "id": DEFAULT_PROFILE_ID, "model": "epicura-1", "hw_revision": "rev-a",
        "min_temp_c": 37, "max_temp_c": 180, "speed_min": 0, "speed_max": 10,
        "max_duration_s": 12 * 3600, "bowl_capacity_ml": 2200, "max_weight_g": 5000,
        "reverse": True, "actions": ALL_ACTIONS,
    }])
    op.create_table(
        "recipes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("is_official", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("tags", JSONB, nullable=False),
        sa.Column("category", sa.String(40)),
        sa.Column("cuisine", sa.String(40)),
        sa.Column("difficulty", sa.String(8), nullable=False),
        sa.Column("total_minutes", sa.Integer()),
        sa.Column("servings", sa.Integer(), nullable=False),
        sa.Column("cover_image_id", sa.Uuid()),
        sa.Column("profiles", JSONB, nullable=False),
        sa.Column("min_firmware", sa.String(32)),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("rating_avg", sa.Float()),
        sa.Column("rating_count", sa.Integer(), nullable=False),
        sa.Column("cooked_count", sa.Integer(), nullable=False),
        sa.Column("favorite_count", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("published_at", TS),
        sa.Column("archived_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_recipes"),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name="fk_recipes_owner_id_users"),
    )
    op.create_index("ix_recipes_owner_id", "recipes", ["owner_id"])
    op.create_index("ix_recipes_listing", "recipes", ["status", "visibility", "updated_at", "id"])
    op.create_table(
        "recipe_versions",
        sa.Column("recipe_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content", JSONB, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("author_id", sa.Uuid()),
        sa.Column("summary", sa.String(200)),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("recipe_id", "version", name="pk_recipe_versions"),
        sa.ForeignKeyConstraint(["recipe_id"], ["recipes.id"],
                                name="fk_recipe_versions_recipe_id_recipes"),
    )
    op.create_table(
        "recipe_favorites",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("recipe_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "recipe_id", name="pk_recipe_favorites"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_recipe_favorites_user_id_users"),
        sa.ForeignKeyConstraint(["recipe_id"], ["recipes.id"], ondelete="CASCADE",
                                name="fk_recipe_favorites_recipe_id_recipes"),
    )
    op.create_index("ix_recipe_favorites_recipe_id", "recipe_favorites", ["recipe_id"])
    op.create_table(
        "recipe_images",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recipe_id", sa.Uuid(), nullable=False),
        sa.Column("uploaded_by", sa.Uuid(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("renditions", JSONB, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("deleted_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_recipe_images"),
        sa.ForeignKeyConstraint(["recipe_id"], ["recipes.id"],
                                name="fk_recipe_images_recipe_id_recipes"),
    )
    op.create_index("ix_recipe_images_recipe_id", "recipe_images", ["recipe_id"])
    if _is_postgres():
        _postgres_search()
    else:
        _sqlite_search()


def _postgres_search() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("ALTER TABLE recipes ADD COLUMN search_vector tsvector")
    op.execute("CREATE INDEX ix_recipes_search_vector ON recipes USING gin (search_vector)")
    op.execute("CREATE INDEX ix_recipes_search_text_trgm ON recipes USING gin (search_text gin_trgm_ops)")
    op.execute("CREATE INDEX ix_recipes_tags ON recipes USING gin ((tags::jsonb) jsonb_path_ops)")
    # Versions are immutable: the database refuses to change or delete them.
    op.execute(
        "CREATE FUNCTION recipe_versions_immutable() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'recipe_versions are immutable'; END $$ LANGUAGE plpgsql"
    )
    op.execute(
        "CREATE TRIGGER recipe_versions_no_change BEFORE UPDATE OR DELETE ON recipe_versions "
        "FOR EACH ROW EXECUTE FUNCTION recipe_versions_immutable()"
    )


def _sqlite_search() -> None:
    op.execute(
        "CREATE VIRTUAL TABLE recipes_fts USING fts5(recipe_id UNINDEXED, title, keywords, "
        "description, tokenize='porter unicode61 remove_diacritics 2')"
    )


def downgrade() -> None:
    if _is_postgres():
        op.execute("DROP TRIGGER IF EXISTS recipe_versions_no_change ON recipe_versions")
        op.execute("DROP FUNCTION IF EXISTS recipe_versions_immutable()")
    else:
        op.execute("DROP TABLE IF EXISTS recipes_fts")
    for table in ("recipe_images", "recipe_favorites", "recipe_versions", "recipes",
                  "capability_profiles"):
        op.drop_table(table)
