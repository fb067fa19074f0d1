"""The Device API side: update checks and the outcomes appliances report.

An offer is recorded (`offered`) when the check makes it. Outcomes move a device forward within
an attempt (`offered` → `downloading` → … → `succeeded`); a repeated report changes nothing, a
report that would go back is refused (409 over HTTPS, ignored over MQTT, where redelivery may
reorder). `failed` ends an attempt: the device is offered the release again after a backoff, up to
`MAX_FAILURES` times; `rolled_back` and `succeeded` are final. `deferred` waits a little.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.appliances import service as appliances_service
from epicura.kit import clock
from epicura.kit.errors import Conflict, NotFound
from epicura.kit.etag import make_etag
from epicura.kit.runtime import Runtime
from epicura.kit.storage import storage_of, window_expiry
from epicura.notifications import service as notifications_service
from epicura.ota import eligibility, fleet, repository, rollouts, versions
from epicura.ota.models import PENDING, FirmwareRelease, Rollout, RolloutDevice
from epicura.ota.schemas import FirmwareOffer, FirmwareStatus

if TYPE_CHECKING:
    from epicura.appliances.models import Appliance

log = structlog.get_logger("epicura.ota.updates")

MAX_FAILURES = 3
RETRY_BASE = timedelta(minutes=5)
RETRY_MAX = timedelta(hours=6)
DEFER_RETRY = timedelta(minutes=5)
URL_WINDOW = timedelta(minutes=30)  # stable URLs live one to two windows: at most an hour
ATTEMPT_ORDER = {"offered": 0, "downloading": 1, "downloaded": 2, "verified": 3,
                 "installing": 4, "succeeded": 5}
ATTEMPT_ENDS = frozenset({"failed", "rolled_back", "deferred", PENDING})
FINAL = frozenset({"succeeded", "rolled_back"})


class NotInRollout(NotFound):
    code = "not_in_rollout"
    title = "This appliance has no part in that rollout"


class StatusOutOfOrder(Conflict):
    code = "invalid_status_transition"
    title = "That status cannot follow the appliance's previous one"


# --- checks  -------------------------------------------------------------------------------------

async def offer(rt: Runtime, session: AsyncSession, appliance: Appliance, current: str | None,
                hw_revision: str | None, channel: str | None) -> tuple[FirmwareOffer, str] | None:
    """The update to offer, with its ETag, or None."""
    if (hw_revision is not None and hw_revision != appliance.hw_revision) or (
            channel is not None and channel != appliance.channel):
        return None  # the appliance and its record disagree: offer nothing until they agree
    device = fleet.facts_of(appliance, current)
    if device.busy:
        return None
    now = clock.utcnow()
    serving = await repository.serving_rollouts(session, device.channel)
    if not serving:
        return None
    rows = await repository.device_rows(session, appliance.id, [r.id for r, _ in serving])
    progress = {row.rollout_id: eligibility.DeviceProgress(row.status, row.next_offer_at,
                                                           row.failures) for row in rows}
    chosen = eligibility.choose(device, [fleet.rollout_facts(r, f) for r, f in serving],
                                progress, now, MAX_FAILURES)
    if chosen is None:
        return None
    rollout, release = next((r, f) for r, f in serving if r.id == chosen.id)
    row = next((row for row in rows if row.rollout_id == rollout.id), None)
    await _record_offer(session, rollout, appliance.id, row, now)
    if row is None and appliance.owner_id is not None:  # it came before the evaluation did
        await fleet.tell_owners(session, rollout, release, [(appliance.owner_id, appliance.id)])
    return _manifest(rt, rollout, release, now)


async def _record_offer(session: AsyncSession, rollout: Rollout, appliance_id: uuid.UUID,
                        row: RolloutDevice | None, now: datetime) -> None:
    if row is None:
        bucket = eligibility.bucket_of(rollout.id, appliance_id)
        stage = eligibility.stage_of(bucket, [float(s["percent"]) for s in rollout.stages])
        assert stage is not None  # it was chosen: its bucket is in an open stage
        await repository.add_members(session, [{
            "rollout_id": rollout.id, "appliance_id": appliance_id, "bucket": bucket,
            "stage": stage, "status": "offered", "failures": 0, "notified": False,
            "created_at": now, "updated_at": now}])
    elif row.status in ATTEMPT_ENDS:
        row.status, row.progress_pct, row.updated_at = "offered", None, now
        await session.flush()


def _manifest(rt: Runtime, rollout: Rollout, release: FirmwareRelease,
              now: datetime) -> tuple[FirmwareOffer, str]:
    expires = window_expiry(int(now.timestamp()), int(URL_WINDOW.total_seconds()))
    url = storage_of(rt).url(release.object_key, URL_WINDOW)
    offered = FirmwareOffer(
        release_id=release.id, rollout_id=rollout.id, version=release.version,
        size=release.size, sha256=release.sha256, signature=release.signature,
        key_id=release.key_id, url=url,
        url_expires_at=datetime.fromtimestamp(expires, tz=now.tzinfo),
        manifest=release.manifest)
    return offered, make_etag(release.id, rollout.id, expires)


# --- outcomes  -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recorded:
    """A status taken: the live event's data, and whether the rollout halted because of it."""

    event: dict[str, Any]
    halted: bool


async def record_status(rt: Runtime, session: AsyncSession, appliance_id: uuid.UUID,
                        body: FirmwareStatus, now: datetime, *, strict: bool) -> Recorded | None:
    """Take a device's report. `strict` (HTTPS) refuses what the MQTT path silently drops: an
    unknown rollout (404) and a report out of order (409). None: nothing changed."""
    rollout = await repository.rollout(session, body.rollout_id)
    row = None if rollout is None else await repository.device_row(
        session, rollout.id, appliance_id, lock=True)
    if rollout is None or row is None:
        if strict:
            raise NotInRollout()
        return None
    if not _allowed(row.status, body.status):
        if strict:
            raise StatusOutOfOrder(f"{body.status} cannot follow {row.status}")
        return None
    release = await rollouts.release_of(session, rollout)
    body = _check_version(body, release, appliance_id)
    changed = row.status != body.status
    _apply(row, body, now)
    await session.flush()
    if changed:
        await _consequences(rt, session, rollout, release, row, appliance_id)
    halted = changed and body.status in rollouts.FAILING and await rollouts.check_failures(
        rt, session, rollout.id)
    event: dict[str, Any] = {"appliance_id": str(appliance_id), "version": release.version,
                             "status": body.status}
    if body.progress_pct is not None:
        event["progress_pct"] = body.progress_pct
    return Recorded(event, halted)


def _check_version(body: FirmwareStatus, release: FirmwareRelease,
                   appliance_id: uuid.UUID) -> FirmwareStatus:
    """T41: `succeeded` while running another version than the release's is no success."""
    if body.status != "succeeded" or body.version is None:
        return body
    reported, target = versions.parse_or_none(body.version), versions.parse(release.version)
    if reported == target:
        return body
    log.warning("ota_version_mismatch", appliance_id=str(appliance_id),
                release=release.version, reported=body.version)
    return body.model_copy(update={
        "status": "failed", "error_code": "version_mismatch",
        "reason": f"reported succeeded running {body.version}"[:500]})


def _allowed(previous: str, status: str) -> bool:
    if previous == status:
        return True  # a repeat (QoS 1 redelivery, an HTTPS retry, a progress update)
    if previous in FINAL:
        return False
    if previous in ATTEMPT_ENDS or status not in ATTEMPT_ORDER:
        return True  # a new attempt, or an attempt ending (failed, rolled back, deferred)
    return ATTEMPT_ORDER[status] > ATTEMPT_ORDER.get(previous, -1)


def _apply(row: RolloutDevice, body: FirmwareStatus, now: datetime) -> None:
    if body.status == "failed" and row.status != "failed":
        row.failures += 1
        row.next_offer_at = now + min(RETRY_MAX, RETRY_BASE * 2 ** (row.failures - 1))
    elif body.status == "deferred":
        row.next_offer_at = now + DEFER_RETRY
    row.status, row.updated_at = body.status, now
    row.progress_pct = body.progress_pct
    row.error_code = body.error_code if body.status == "failed" else None
    row.reason = body.reason


async def _consequences(rt: Runtime, session: AsyncSession, rollout: Rollout,
                        release: FirmwareRelease, row: RolloutDevice,
                        appliance_id: uuid.UUID) -> None:
    """Success: the appliance's firmware version, its notice cleared, its owner told. A final
    failure: its notice cleared, its owner told."""
    final_failure = row.status == "rolled_back" or (
        row.status == "failed" and row.failures >= MAX_FAILURES)
    if row.status != "succeeded" and not final_failure:
        return
    if row.status == "succeeded":
        await appliances_service.record_firmware_version(session, appliance_id, release.version)
    if row.notified:
        await fleet.clear(rt, session, rollout.id, [appliance_id])
    owner = await appliances_service.owner_of(session, appliance_id)
    if owner is not None:
        outcome = "installed" if row.status == "succeeded" else "failed"
        await notifications_service.notify_firmware(session, owner, appliance_id, outcome,
                                                    release.version, rollout.id)
    log.info("ota_outcome", appliance_id=str(appliance_id), rollout_id=str(rollout.id),
             status=row.status, failures=row.failures)
