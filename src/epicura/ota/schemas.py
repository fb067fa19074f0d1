"""Request and response bodies of the OTA module (admin and Device API)."""

from __future__ import annotations

import uuid
from datetime import datetime
from itertools import pairwise
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from epicura.ota.manifest import HW_REVISION
from epicura.ota.models import PENDING

Channel = Literal["stable", "beta", "dev"]
HwRevision = Annotated[str, StringConstraints(pattern=HW_REVISION)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=40,
                                       pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
RolloutState = Literal["draft", "active", "paused", "halted", "completed", "aborted"]
Outcome = Literal["offered", "downloading", "downloaded", "verified", "installing", "succeeded",
                  "failed", "rolled_back", "deferred"]
PLAIN_TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


class Strict(BaseModel):
    """Request bodies refuse unknown fields."""

    model_config = ConfigDict(extra="forbid")


# --- releases  -----------------------------------------------------------------------------------

class ReleaseOut(BaseModel):
    id: uuid.UUID
    version: str
    channel: Channel
    hw_revisions: list[str]
    min_from_version: str | None
    size: int = Field(description="Bytes")
    sha256: str
    signature: str = Field(description="Base64 Ed25519 signature of the manifest's bytes")
    key_id: str
    notes: str
    status: Literal["draft", "ready", "yanked"]
    uploaded_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    yanked_at: datetime | None


class ReleaseUpdate(Strict):
    notes: str | None = Field(default=None, max_length=4000, pattern=PLAIN_TEXT)
    status: Literal["yanked"] | None = Field(
        default=None, description="Only `yanked`: never offered again (cannot be undone)")


# --- rollouts  -----------------------------------------------------------------------------------

class Stage(Strict):
    percent: float = Field(gt=0, le=100, description="Share of the filtered fleet, cumulative")
    soak_s: int = Field(ge=0, le=30 * 86400, description="Minimum time the stage stays open")
    success_threshold: float = Field(
        ge=0, le=1, description="Share of the stage's devices that must have succeeded to "
                                "advance after the soak")
    failure_threshold: float = Field(
        ge=0, le=1, description="Share of the stage's devices failed or rolled back above "
                                "which the rollout halts itself")
    failure_max_devices: int | None = Field(
        default=None, ge=0, le=10_000_000,
        description="Optional absolute bound next to the share: the rollout also halts itself "
                    "once more than this many devices failed or rolled back")


class RolloutFilter(Strict):
    channel: Channel
    hw_revisions: list[HwRevision] = Field(min_length=1, max_length=20)
    tags: list[Tag] = Field(default_factory=list, max_length=20,
                            description="Devices must carry every tag")


class RolloutCreate(Strict):
    release_id: uuid.UUID
    filter: RolloutFilter
    stages: list[Stage] = Field(min_length=1, max_length=10)

    @field_validator("stages")
    @classmethod
    def _growing(cls, stages: list[Stage]) -> list[Stage]:
        cutoffs = [round(s.percent * 100) for s in stages]
        if any(b <= a for a, b in pairwise(cutoffs)) or cutoffs[0] < 1:
            raise ValueError("stage percents must grow strictly (steps of at least 0.01)")
        return stages


class StageOut(Stage):
    model_config = ConfigDict(extra="ignore")

    index: int
    status: Literal["waiting", "open", "passed"]
    devices: int = Field(description="Devices of the filtered fleet in this stage so far")
    counts: dict[str, int] = Field(
        description=f"Devices by latest outcome (`{PENDING}`: no outcome reported yet)")


class RolloutOut(BaseModel):
    id: uuid.UUID
    release_id: uuid.UUID
    version: str
    state: RolloutState
    filter: RolloutFilter
    stages: list[StageOut]
    current_stage: int | None = Field(description="Index of the open stage (null before start)")
    stage_started_at: datetime | None
    halt_reason: str | None
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


# --- Device API  ---------------------------------------------------------------------------------

class FirmwareOffer(BaseModel):
    release_id: uuid.UUID
    rollout_id: uuid.UUID
    version: str
    size: int
    sha256: str
    signature: str = Field(description="Base64 Ed25519 signature of the manifest's exact bytes")
    key_id: str
    url: str = Field(description="GET-only URL of the binary")
    url_expires_at: datetime = Field(description="Within the hour")
    manifest: str = Field(description="Base64 of the exact signed manifest bytes")


class FirmwareStatus(Strict):
    rollout_id: uuid.UUID
    status: Outcome
    progress_pct: float | None = Field(default=None, ge=0, le=100)
    error_code: str | None = Field(default=None, max_length=64, pattern=PLAIN_TEXT)
    reason: str | None = Field(default=None, max_length=500, pattern=PLAIN_TEXT)
    version: str | None = Field(
        default=None, max_length=40, pattern=PLAIN_TEXT,
        description="Optional (an addition to the spec): the version the appliance runs. With "
                    "`succeeded`, one other than the release's is recorded as `failed` with "
                    "`error_code` `version_mismatch`")
