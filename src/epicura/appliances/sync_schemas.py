"""Bodies of the device sync routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class BundleOut(BaseModel):
    recipe_id: uuid.UUID
    version: int
    bundle: str = Field(description=(
        "Canonical JSON (keys sorted at every level, no whitespace) of `{content, format, "
        "recipe_id, version}`; its UTF-8 bytes are what `sha256` and `signature` cover"))
    sha256: str = Field(description="Hex SHA-256 of the bundle's UTF-8 bytes")
    signature: str = Field(description="Base64 Ed25519 signature of the bundle's UTF-8 bytes")
    key_id: str = Field(description="The signing key (see GET /device/signing-keys)")


class SyncPage(BaseModel):
    changes: list[BundleOut]
    deleted: list[uuid.UUID] = Field(
        description="Recipes to remove: archived, no longer readable or out of the library")
    cursor: str = Field(description="Opaque; send it back as `?cursor=` on the next sync")
    has_more: bool = Field(description="True: ask again with `cursor` at once")


class SigningKeyOut(BaseModel):
    key_id: str = Field(description="First 16 hex digits of the SHA-256 of the raw public key")
    algorithm: Literal["Ed25519"]
    public_key: str = Field(description="Base64 of the 32-byte raw Ed25519 public key")
    status: Literal["pending", "active", "retired"]
    endorsed_by: str | None = Field(
        default=None, description="The key that was active when this one was made")
    endorsement: str | None = Field(default=None, description=(
        "Base64 signature by `endorsed_by` of `epicura-signing-key-endorsement:v1:` + key_id "
        "+ `:` + public_key (UTF-8)"))
    created_at: datetime
    activated_at: datetime | None
    retired_at: datetime | None


class SigningKeySet(BaseModel):
    keys: list[SigningKeyOut]
