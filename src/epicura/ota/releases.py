"""Firmware releases: the verified upload, listing, notes and yanking.

A release is `ready` only once its binary is in storage and the server has checked, itself, the
binary's size and SHA-256 against the manifest and the manifest's Ed25519 signature against a
trusted release key. The stored object is never written again (its key is the release's id).
A refused upload keeps nothing but its audit entry.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.auth.models import User
from epicura.kit import audit, clock
from epicura.kit.errors import Conflict, NotFound, ProblemError
from epicura.kit.ids import uuid7
from epicura.kit.runtime import Runtime
from epicura.kit.signing import verify
from epicura.kit.storage import storage_of
from epicura.ota import keys, repository, upload
from epicura.ota.manifest import (
    Manifest,
    ManifestError,
    SignatureFormatError,
    decode_signature,
    parse_manifest,
)
from epicura.ota.models import READY, YANKED, FirmwareRelease
from epicura.ota.schemas import ReleaseUpdate

log = structlog.get_logger("epicura.ota.releases")


class UploadRefused(ProblemError):
    """422: the upload is not a release the server can vouch for. Its audit entry stays."""

    status = 422
    keeps_changes = True


class ManifestInvalid(UploadRefused):
    code = "manifest_invalid"
    title = "The manifest is not valid"


class UnknownKey(UploadRefused):
    code = "unknown_key"
    title = "The manifest names no trusted release key"


class SignatureInvalid(UploadRefused):
    code = "signature_invalid"
    title = "The signature does not verify over the manifest"


class SizeMismatch(UploadRefused):
    code = "size_mismatch"
    title = "The binary's size is not the manifest's"


class HashMismatch(UploadRefused):
    code = "hash_mismatch"
    title = "The binary's SHA-256 is not the manifest's"


class ReleaseExists(Conflict):
    code = "release_exists"
    title = "A release of this version exists (releases are immutable)"
    keeps_changes = True


class ReleaseNotFound(NotFound):
    title = "No such release"


UPLOAD_ERRORS = (ManifestInvalid, UnknownKey, SignatureInvalid, SizeMismatch, HashMismatch,
                 ReleaseExists)


@dataclass
class _Checked:
    """What the upload's small parts established so far."""

    manifest: Manifest | None = None
    manifest_raw: bytes = b""
    signature: bytes | None = None
    public_key: str | None = None
    verified: bool = False
    errors: list[ProblemError] = field(default_factory=list)


async def _check_manifest(session: AsyncSession, checked: _Checked, raw: bytes) -> int:
    try:
        manifest = parse_manifest(raw)
    except ManifestError as exc:
        raise ManifestInvalid(exc.reason) from None
    if await repository.release_by_version(session, manifest.version) is not None:
        raise ReleaseExists(f"Version {manifest.version} is already released")
    key = await keys.trusted(session, manifest.key_id)
    if key is None:
        raise UnknownKey(f"No active release key {manifest.key_id}")
    checked.manifest, checked.manifest_raw, checked.public_key = manifest, raw, key.public_key
    return manifest.size


def _check_signature(checked: _Checked) -> None:
    if checked.manifest is None or checked.signature is None or checked.public_key is None:
        return
    if not verify(checked.public_key, checked.manifest_raw,
                  base64.b64encode(checked.signature).decode()):
        raise SignatureInvalid(f"Not a signature of this manifest by key {checked.manifest.key_id}")
    checked.verified = True


def _refusal_audit(session: AsyncSession, admin: User, ip: str | None, error: ProblemError,
                   checked: _Checked) -> None:
    version = checked.manifest.version if checked.manifest else None
    audit.record(session, "firmware.upload_refused", actor_id=admin.id, actor_type="admin",
                 target_type="firmware", ip=ip, reason=error.code, version=version,
                 detail=error.detail)


async def upload_release(rt: Runtime, session: AsyncSession, admin: User,
                         body: AsyncIterator[bytes], content_type: str,
                         ip: str | None) -> FirmwareRelease:
    """Stream the body's binary to storage, check everything, and record the release `ready`."""
    release_id = uuid7()
    object_key = f"firmware/{release_id}/firmware.bin"
    storage = storage_of(rt)
    checked = _Checked()

    async def on_small_part(name: str, data: bytes) -> int | None:
        if name == upload.MANIFEST:
            size = await _check_manifest(session, checked, data)
            _check_signature(checked)
            return size
        try:
            checked.signature = decode_signature(data)
        except SignatureFormatError as exc:
            raise SignatureInvalid(str(exc)) from None
        _check_signature(checked)
        return None

    try:
        received = await upload.receive(body, content_type, storage, object_key,
                                        rt.settings.max_firmware_bytes, on_small_part)
        release = _verified(checked, received, release_id, object_key, admin)
        session.add(release)
        await session.flush()
    except upload.BinaryOverSize as exc:
        await storage.delete([object_key])
        error = SizeMismatch(f"The binary is longer than the manifest's {exc.declared} bytes")
        _refusal_audit(session, admin, ip, error, checked)
        raise error from None
    except IntegrityError:  # the same version, uploaded at the same moment
        await session.rollback()
        await storage.delete([object_key])
        raise ReleaseExists() from None
    except BaseException as exc:
        await storage.delete([object_key])
        if isinstance(exc, UploadRefused | ReleaseExists):
            _refusal_audit(session, admin, ip, exc, checked)
        raise
    audit.record(session, "firmware.uploaded", actor_id=admin.id, actor_type="admin",
                 target_type="firmware", target_id=release.id, ip=ip, version=release.version,
                 channel=release.channel, size=release.size, sha256=release.sha256,
                 key_id=release.key_id)
    log.info("firmware_uploaded", release_id=str(release.id), version=release.version,
             size=release.size)
    return release


def _verified(checked: _Checked, received: upload.Received, release_id: uuid.UUID,
              object_key: str, admin: User) -> FirmwareRelease:
    manifest, signature = checked.manifest, checked.signature
    assert manifest is not None and signature is not None  # both parts are required
    if not checked.verified:
        raise SignatureInvalid()
    if received.binary_size != manifest.size:
        raise SizeMismatch(f"The binary has {received.binary_size} bytes, the manifest says "
                           f"{manifest.size}")
    if received.binary_sha256 != manifest.sha256:
        raise HashMismatch(f"The binary's SHA-256 is {received.binary_sha256}")
    now = clock.utcnow()
    return FirmwareRelease(
        id=release_id, version=manifest.version, channel=manifest.channel,
        hw_revisions=list(manifest.hw_revisions), min_from_version=manifest.min_from_version,
        size=manifest.size, sha256=manifest.sha256,
        signature=base64.b64encode(signature).decode(), key_id=manifest.key_id,
        manifest=base64.b64encode(checked.manifest_raw).decode(), notes=manifest.notes,
        status=READY, object_key=object_key, uploaded_by=admin.id, created_at=now,
        updated_at=now, yanked_at=None,
    )


async def get_or_404(session: AsyncSession, release_id: uuid.UUID, *,
                     lock: bool = False) -> FirmwareRelease:
    release = await repository.release(session, release_id, lock=lock)
    if release is None:
        raise ReleaseNotFound()
    return release


async def list_releases(session: AsyncSession, after: tuple[datetime, uuid.UUID] | None,
                        limit: int, status: str | None) -> Sequence[FirmwareRelease]:
    return await repository.releases(session, after, limit, status)


async def update_release(rt: Runtime, session: AsyncSession, admin: User,
                         release: FirmwareRelease, body: ReleaseUpdate,
                         ip: str | None) -> FirmwareRelease:
    """Notes, and yanking: a yanked release is never offered again and its open rollouts end."""
    now = clock.utcnow()
    changed: dict[str, object] = {}
    if body.notes is not None and body.notes != release.notes:
        release.notes = changed["notes"] = body.notes
    if body.status == YANKED and release.status != YANKED:
        release.status, release.yanked_at = YANKED, now
        changed["status"] = YANKED
    if not changed:
        return release
    release.updated_at = now
    await session.flush()
    audit.record(session, "firmware.yanked" if "status" in changed else "firmware.updated",
                 actor_id=admin.id, actor_type="admin", target_type="firmware",
                 target_id=release.id, ip=ip, version=release.version,
                 fields=sorted(changed))
    if "status" in changed:
        from epicura.ota import rollouts

        await rollouts.end_for_release(rt, session, admin, release, ip)
    return release
