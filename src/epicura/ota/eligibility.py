"""What an update check may offer: pure functions over facts, so that the rules can be tested
exhaustively (tests/ota/test_eligibility_property.py) apart from the database.

A device falls into a rollout's stage by a stable hash of (rollout, device): its bucket is in
0..9999 and it belongs to the first stage whose `percent × 100` is above its bucket. Stages only
grow, so a device's place never changes and a device in stage k is in every later stage.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from epicura.ota import versions
from epicura.ota.models import R_ACTIVE, R_COMPLETED, READY

BUCKETS = 10_000
FINAL_OUTCOMES = frozenset({"succeeded", "rolled_back"})


def bucket_of(rollout_id: uuid.UUID, device_id: uuid.UUID) -> int:
    digest = hashlib.sha256(f"{rollout_id}:{device_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def cutoff(percent: float) -> int:
    """Buckets below this are in a stage of `percent` (0 < percent <= 100)."""
    return min(BUCKETS, round(percent * 100))


def stage_of(bucket: int, percents: Sequence[float]) -> int | None:
    """The first stage whose share holds the bucket, None when no stage does."""
    for index, percent in enumerate(percents):
        if bucket < cutoff(percent):
            return index
    return None


def open_stage(state: str, current_stage: int, stage_count: int) -> int | None:
    """The last stage open to devices: the current one while active, every stage once completed
    (stragglers that come online later still update), none while draft, paused, halted or
    aborted."""
    if state == R_ACTIVE and current_stage >= 0:
        return current_stage
    if state == R_COMPLETED:
        return stage_count - 1
    return None


@dataclass(frozen=True)
class DeviceFacts:
    id: uuid.UUID
    current: str | None
    hw_revision: str
    channel: str
    tags: frozenset[str]
    busy: bool  # a cooking session runs on it


@dataclass(frozen=True)
class ReleaseFacts:
    id: uuid.UUID
    version: str
    channel: str
    hw_revisions: tuple[str, ...]
    min_from_version: str | None
    status: str


@dataclass(frozen=True)
class RolloutFacts:
    id: uuid.UUID
    state: str
    channel: str
    hw_revisions: tuple[str, ...]
    tags: tuple[str, ...]
    percents: tuple[float, ...]
    current_stage: int
    release: ReleaseFacts


@dataclass(frozen=True)
class DeviceProgress:
    """The device's latest outcome in a rollout, and when it may be offered again."""

    status: str
    next_offer_at: datetime | None
    failures: int


def matches_filter(device: DeviceFacts, rollout: RolloutFacts) -> bool:
    return (device.channel == rollout.channel and device.hw_revision in rollout.hw_revisions
            and set(rollout.tags) <= device.tags)


def release_allowed(device: DeviceFacts, release: ReleaseFacts) -> bool:
    """domain.md's rules for one release, whatever the rollout says."""
    current = versions.parse_or_none(device.current)
    target = versions.parse_or_none(release.version)
    if current is None or target is None or release.status != READY:
        return False
    if not target > current:  # never a downgrade, nor the same version again
        return False
    floor = versions.parse_or_none(release.min_from_version)
    if release.min_from_version is not None and (floor is None or current < floor):
        return False
    return device.channel == release.channel and device.hw_revision in release.hw_revisions


def in_open_stage(device: DeviceFacts, rollout: RolloutFacts) -> bool:
    last = open_stage(rollout.state, rollout.current_stage, len(rollout.percents))
    if last is None:
        return False
    stage = stage_of(bucket_of(rollout.id, device.id), rollout.percents)
    return stage is not None and stage <= last


def may_offer_again(progress: DeviceProgress | None, now: datetime, max_failures: int) -> bool:
    if progress is None:
        return True
    if progress.status in FINAL_OUTCOMES:
        return False
    if progress.status == "failed" and progress.failures >= max_failures:
        return False
    return progress.next_offer_at is None or progress.next_offer_at <= now


def choose(device: DeviceFacts, rollouts: Iterable[RolloutFacts],
           progress: dict[uuid.UUID, DeviceProgress], now: datetime,
           max_failures: int) -> RolloutFacts | None:
    """The rollout whose release to offer (the newest allowed one), or None."""
    if device.busy:
        return None
    best: RolloutFacts | None = None
    for rollout in rollouts:
        release = rollout.release
        if not (matches_filter(device, rollout) and release_allowed(device, release)
                and in_open_stage(device, rollout)
                and may_offer_again(progress.get(rollout.id), now, max_failures)):
            continue
        if best is None or versions.parse(release.version) > versions.parse(best.release.version):
            best = rollout
    return best
