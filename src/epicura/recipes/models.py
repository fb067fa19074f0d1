"""Recipes, their immutable versions, favourites, images and capability profiles."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from epicura.kit.db import Base, uuid_pk

JSONList = JSONB().with_variant(JSON(), "sqlite")

DRAFT, PUBLISHED, ARCHIVED = "draft", "published", "archived"
PRIVATE, PUBLIC = "private", "public"


class CapabilityProfileRow(Base):
    __tablename__ = "capability_profiles"
    __table_args__ = (
        UniqueConstraint("model", "hw_revision", name="uq_capability_profiles_model_hw"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    model: Mapped[str] = mapped_column(String(40))
    hw_revision: Mapped[str] = mapped_column(String(40))
    min_temp_c: Mapped[float]
    max_temp_c: Mapped[float]
    speed_min: Mapped[float]
    speed_max: Mapped[float]
    max_duration_s: Mapped[int]
    bowl_capacity_ml: Mapped[int]
    max_weight_g: Mapped[int]
    reverse: Mapped[bool]
    actions: Mapped[list[str]] = mapped_column(JSONList)


class Recipe(Base):
    """The mutable head of a recipe. Content fields are copied from the current version so that
    lists and search read one row per recipe."""

    __tablename__ = "recipes"
    __table_args__ = (
        Index("ix_recipes_owner_id", "owner_id"),
        Index("ix_recipes_listing", "status", "visibility", "updated_at", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    visibility: Mapped[str] = mapped_column(String(16), default=PRIVATE)
    is_official: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), default=DRAFT)
    current_version: Mapped[int] = mapped_column(default=1)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str] = mapped_column(String(8), default="en")
    tags: Mapped[list[str]] = mapped_column(JSONList, default=list)
    category: Mapped[str | None] = mapped_column(String(40))
    cuisine: Mapped[str | None] = mapped_column(String(40))
    difficulty: Mapped[str] = mapped_column(String(8))
    total_minutes: Mapped[int | None]
    servings: Mapped[int]
    cover_image_id: Mapped[uuid.UUID | None]
    profiles: Mapped[list[str]] = mapped_column(JSONList, default=list)
    min_firmware: Mapped[str | None] = mapped_column(String(32))
    search_text: Mapped[str] = mapped_column(Text, default="")
    rating_avg: Mapped[float | None]
    rating_count: Mapped[int] = mapped_column(default=0)
    cooked_count: Mapped[int] = mapped_column(default=0)
    favorite_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    published_at: Mapped[datetime | None]
    archived_at: Mapped[datetime | None]


class RecipeVersion(Base):
    """Immutable: written once, never updated or deleted."""

    __tablename__ = "recipe_versions"

    recipe_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("recipes.id"), primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    content: Mapped[dict[str, Any]]
    sha256: Mapped[str] = mapped_column(String(64))
    author_id: Mapped[uuid.UUID | None]
    summary: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]


class Favorite(Base):
    __tablename__ = "recipe_favorites"
    __table_args__ = (Index("ix_recipe_favorites_recipe_id", "recipe_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    recipe_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("recipes.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime]


class RecipeImage(Base):
    __tablename__ = "recipe_images"
    __table_args__ = (Index("ix_recipe_images_recipe_id", "recipe_id"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    recipe_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("recipes.id"))
    uploaded_by: Mapped[uuid.UUID]
    width: Mapped[int]
    height: Mapped[int]
    renditions: Mapped[list[int]] = mapped_column(JSONList)  # widths stored, e.g. [320, 640, 1280]
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]
