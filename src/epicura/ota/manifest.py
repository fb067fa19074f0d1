"""The release manifest: the JSON document Epicura's build system signs for each firmware binary.

The signature is Ed25519 over the manifest's exact bytes (no canonicalisation); appliances get
those bytes verbatim with each offer, so they verify exactly what the build system signed.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from epicura.ota import versions

MAX_MANIFEST_BYTES = 16 * 1024
SIGNATURE_BYTES = 64
HW_REVISION = r"^[a-z0-9][a-z0-9-]{0,39}$"  # as appliances' hw_revision
KEY_ID = re.compile(r"^[0-9a-f]{16}$")

HwRevision = Annotated[str, StringConstraints(pattern=HW_REVISION)]


class ManifestError(ValueError):
    """The manifest (or its signature's encoding) is not acceptable; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(max_length=versions.MAX_LENGTH)
    channel: Literal["stable", "beta", "dev"]
    hw_revisions: list[HwRevision] = Field(min_length=1, max_length=20)
    min_from_version: str | None = Field(default=None, max_length=versions.MAX_LENGTH)
    size: int = Field(gt=0, le=2**40)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    key_id: str = Field(pattern=KEY_ID.pattern)
    notes: str = Field(default="", max_length=4000)

    @field_validator("version", "min_from_version")
    @classmethod
    def _semver(cls, value: str | None) -> str | None:
        if value is not None:
            versions.parse(value)  # InvalidVersion is a ValueError: pydantic reports it
        return value

    @field_validator("hw_revisions")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("hw_revisions repeat a revision")
        return value

    @property
    def parsed_version(self) -> versions.Version:
        return versions.parse(self.version)


def parse_manifest(raw: bytes) -> Manifest:
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"the manifest is over {MAX_MANIFEST_BYTES} bytes")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ManifestError(f"the manifest is not UTF-8 JSON: {exc}"[:200]) from None
    if type(doc) is not dict:
        raise ManifestError("the manifest is not a JSON object")
    try:
        manifest = Manifest.model_validate(doc, strict=True)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'manifest'}: {e['msg']}"
                             for e in exc.errors()[:5])
        raise ManifestError(problems[:500]) from None
    if manifest.min_from_version is not None and (
            versions.parse(manifest.min_from_version) > manifest.parsed_version):
        raise ManifestError("min_from_version is above version")
    return manifest


class SignatureFormatError(ValueError):
    pass


def decode_signature(raw: bytes) -> bytes:
    """The detached signature: base64 text (whitespace around it ignored) or the raw 64 bytes
    (base64 of 64 bytes is 88 characters, so the two cannot be confused)."""
    if len(raw) == SIGNATURE_BYTES:
        return raw
    try:
        decoded = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureFormatError("the signature is neither base64 nor 64 raw bytes") from None
    if len(decoded) != SIGNATURE_BYTES:
        raise SignatureFormatError("an Ed25519 signature is 64 bytes")
    return decoded
