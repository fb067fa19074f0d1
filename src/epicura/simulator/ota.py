"""Firmware updates of a simulated appliance (`GET /device/firmware/check`, `up/ota`).

An appliance checks once at start, every `ota_check_every_s` (simulated), when a retained
`down/ota` notice arrives and on the `ota.check` command. When the cloud offers a release, it
verifies the Ed25519 signature of the manifest's exact bytes (README: "Firmware releases and OTA
rollouts") with the release keys it trusts (a real appliance ships them in its firmware; the
simulator reads them from `--release-keys`, the JSON of `epicura keys release export`), checks
that the signed manifest says what the offer says and allows this appliance, streams the binary
from the offer's URL while hashing it (never holding it in memory), compares size and SHA-256,
installs (failing at `ota_failure_rate`), reboots with the new version and
reports each step on `up/ota`. It never installs while cooking: it reports `deferred` with reason
`session_running` and checks again once the session is over.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from epicura.simulator.cloud import CloudError
from epicura.simulator.commands import expired

if TYPE_CHECKING:
    from epicura.simulator.device import Device, Identity

log = structlog.get_logger("epicura.simulator")

CHECK_PATH = "/device/firmware/check"
PROGRESS_STEP_PCT = 25
URL_MARGIN_MS = 60_000  # a cached manifest whose URL expires within a minute is not reused
# error codes of `failed` reports
DOWNLOAD_FAILED, SIZE_MISMATCH, HASH_MISMATCH = "download_failed", "size_mismatch", "hash_mismatch"
SIGNATURE_INVALID, INSTALL_FAILED = "signature_invalid", "install_failed"
MANIFEST_MISMATCH = "manifest_mismatch"
SESSION_RUNNING = "session_running"
IN_PROGRESS = frozenset({"downloading", "downloaded", "verified", "installing"})
CHECK_ERRORS = (CloudError, OSError, httpx2.HTTPError, ValueError)


class UpdateFailed(Exception):
    """An update attempt ends `failed`; the message is the error code."""


@dataclass(frozen=True)
class Offer:
    """What `GET /device/firmware/check` answers: the release offered, where to fetch it, and
    `manifest`, the exact bytes the build system signed (sent base64)."""

    rollout_id: str
    version: str
    size: int
    sha256: str
    signature: str
    key_id: str
    url: str
    url_expires_at: Any
    manifest: bytes | None

    @classmethod
    def parse(cls, document: dict[str, Any]) -> Offer:
        try:
            signed = document.get("manifest")
            return cls(rollout_id=str(document["rollout_id"]), version=str(document["version"]),
                       size=int(document["size"]), sha256=str(document["sha256"]).lower(),
                       signature=str(document["signature"]), key_id=str(document["key_id"]),
                       url=str(document["url"]), url_expires_at=document.get("url_expires_at"),
                       manifest=base64.b64decode(signed, validate=True)
                       if isinstance(signed, str) else None)
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ValueError(f"not a firmware offer: {exc}") from exc


# --- trust -------------------------------------------------------------------------------------
def load_release_keys(path: Path) -> dict[str, str]:
    """Trusted release-signing public keys from a JSON file: `{key_id: base64 public key}`, or a
    key set `{"keys": [{"key_id", "public_key"}, …]}` as the service exports it."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return parse_release_keys(data)


def parse_release_keys(data: Any) -> dict[str, str]:
    if isinstance(data, dict) and isinstance(data.get("keys"), list):
        pairs = [(item.get("key_id"), item.get("public_key")) for item in data["keys"]
                 if isinstance(item, dict)]
    elif isinstance(data, dict):
        pairs = list(data.items())
    else:
        raise ValueError("release keys: expected a JSON object")
    keys = {str(key_id): str(public) for key_id, public in pairs
            if isinstance(key_id, str) and isinstance(public, str)}
    if len(keys) != len(pairs):
        raise ValueError("release keys: every key needs a key_id and a base64 public_key")
    return keys


def signature_valid(offer: Offer, keys: dict[str, str]) -> bool:
    """True when the trusted key `key_id` signed the manifest's exact bytes."""
    public_b64 = keys.get(offer.key_id)
    if public_b64 is None or offer.manifest is None:
        return False
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64, validate=True))
        public.verify(base64.b64decode(offer.signature, validate=True), offer.manifest)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def trusted_manifest(offer: Offer, keys: dict[str, str], identity: Identity) -> dict[str, Any]:
    """The signed manifest, once its signature holds (else `signature_invalid`) and it says what
    the offer says and allows this appliance (else `manifest_mismatch`)."""
    if not signature_valid(offer, keys):
        raise UpdateFailed(SIGNATURE_INVALID)
    assert offer.manifest is not None
    try:
        signed = json.loads(offer.manifest)
    except ValueError:
        signed = None
    if not isinstance(signed, dict):
        raise UpdateFailed(MANIFEST_MISMATCH)
    offered = {"version": offer.version, "size": offer.size, "sha256": offer.sha256,
               "key_id": offer.key_id}
    minimum = signed.get("min_from_version")
    if (any(signed.get(name) != value for name, value in offered.items())
            or identity.hw_revision not in (signed.get("hw_revisions") or [])
            or signed.get("channel") != identity.channel
            or (isinstance(minimum, str) and newer(minimum, identity.firmware_version))):
        raise UpdateFailed(MANIFEST_MISMATCH)
    return signed


def newer(candidate: str, current: str) -> bool:
    """Semver precedence of the release part (`1.10.0` > `1.9.3`); a pre-release is older than
    its release. Unparsable versions compare as different-and-newer (the cloud decides)."""
    def key(version: str) -> tuple[tuple[int, ...], int, str]:
        core, _, pre = version.split("+", 1)[0].partition("-")
        return tuple(int(part) for part in core.split(".")), 0 if pre else 1, pre

    try:
        return key(candidate) > key(current)
    except ValueError:
        return candidate != current


# --- the updater -------------------------------------------------------------------------------
class Updater:
    """One appliance's firmware updates; at most one check or update runs at a time."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.phase: str | None = None  # the status of the update under way
        self.cached: tuple[str, Offer] | None = None  # (ETag, offer) of the last check
        self._busy = asyncio.Lock()
        self._waiting_for_idle = False

    @property
    def installing(self) -> bool:
        return self.phase == "installing"

    def on_notice(self, notice: dict[str, Any] | None) -> None:
        """`down/ota` (retained): an update is waiting; empty when the rollout ended for it."""
        if notice is None:
            return
        log.info("simulator.ota_notice", device_id=self.device.device_id,
                 version=notice.get("version"), rollout_id=notice.get("rollout_id"))
        self.device.spawn(self.check_and_update())

    async def check(self) -> Offer | None:
        """Ask the cloud; the release offered, or None. Raises CloudError when it cannot ask."""
        device, identity = self.device, self.device.identity
        headers = {"Authorization": f"Bearer {await device.access_token()}"}
        cached = self.cached
        if cached is not None and not expired(cached[1].url_expires_at,
                                              device.now_ms() + URL_MARGIN_MS):
            headers["If-None-Match"] = cached[0]
        params = {"current": identity.firmware_version, "hw_revision": identity.hw_revision,
                  "channel": identity.channel}
        reply = await device.cloud.client.get(CHECK_PATH, params=params, headers=headers)
        if reply.status_code == 304 and cached is not None:
            return cached[1]
        if reply.status_code == 204:
            self.cached = None
            return None
        if reply.status_code == 401:
            device.forget_token()
        if reply.status_code != 200:
            raise CloudError("firmware check", reply)
        offer = Offer.parse(reply.json())
        etag = reply.headers.get("etag")
        self.cached = (etag, offer) if etag else None
        return offer

    async def check_and_update(self) -> str | None:
        """Check, and update when something is offered; the outcome (`succeeded`, `failed`,
        `deferred`) or None when nothing was done."""
        if self._busy.locked():
            return None
        try:
            offer = await self.check()
        except CHECK_ERRORS as exc:
            log.info("simulator.ota_check_failed", device_id=self.device.device_id,
                     error=str(exc))
            return None
        return None if offer is None else await self.update(offer)

    async def check_now(self) -> bool:
        """`ota.check`: ask at once; an update offered goes on in the background. False when
        the cloud could not be asked."""
        if self._busy.locked():
            return True  # an update is under way
        try:
            offer = await self.check()
        except CHECK_ERRORS as exc:
            log.info("simulator.ota_check_failed", device_id=self.device.device_id,
                     error=str(exc))
            return False
        if offer is not None:
            self.device.spawn(self.update(offer))
        return True

    async def update(self, offer: Offer) -> str | None:
        """Verify, download, install and reboot, reporting each step; one at a time."""
        if self._busy.locked():
            return None
        async with self._busy:
            return await self._update(offer)

    async def _update(self, offer: Offer) -> str | None:
        device = self.device
        if not newer(offer.version, device.identity.firmware_version):
            log.warning("simulator.ota_not_newer", device_id=device.device_id,
                        offered=offer.version, current=device.identity.firmware_version)
            return None
        if self._cooking():
            return self._defer(offer)
        try:
            # untrusted: not even downloaded
            trusted_manifest(offer, device.options.release_keys, device.identity)
            self.report(offer, "downloading", progress_pct=0)
            size, sha256 = await self._download(offer)
            if size != offer.size:
                raise UpdateFailed(SIZE_MISMATCH)
            self.report(offer, "downloaded")
            if sha256 != offer.sha256:
                raise UpdateFailed(HASH_MISMATCH)
            self.report(offer, "verified")
            if self._cooking():  # a cook started while it downloaded
                return self._defer(offer)
            self.report(offer, "installing")
            await asyncio.sleep(device.options.ota_install_s / device.options.time_scale)
            if self._install_fails(offer.version):
                raise UpdateFailed(INSTALL_FAILED)
        except UpdateFailed as exc:
            return self._failed(offer, str(exc))
        device.reboot(offer.version)
        self.cached = None
        device.counters.updates += 1
        self.report(offer, "succeeded", version=device.identity.firmware_version)  # booted
        log.info("simulator.ota_succeeded", device_id=device.device_id, version=offer.version)
        return "succeeded"

    async def _download(self, offer: Offer) -> tuple[int, str]:
        """Stream the binary, hashing it; (bytes received, hex SHA-256). Reports progress every
        25 %; more bytes than the offer says stop the download."""
        digest, received, next_pct = hashlib.sha256(), 0, PROGRESS_STEP_PCT
        url, headers = self._where(offer.url)
        try:
            async with self.device.cloud.client.stream("GET", url, headers=headers) as reply:
                if reply.status_code != 200:
                    log.info("simulator.ota_download_refused", device_id=self.device.device_id,
                             status=reply.status_code)
                    raise UpdateFailed(DOWNLOAD_FAILED)
                async for chunk in reply.aiter_bytes():
                    received += len(chunk)
                    if received > offer.size:
                        raise UpdateFailed(SIZE_MISMATCH)
                    digest.update(chunk)
                    while next_pct < 100 and received * 100 >= next_pct * offer.size:
                        self.report(offer, "downloading", progress_pct=next_pct)
                        next_pct += PROGRESS_STEP_PCT
        except (httpx2.HTTPError, OSError) as exc:
            log.info("simulator.ota_download_failed", device_id=self.device.device_id,
                     error=str(exc))
            raise UpdateFailed(DOWNLOAD_FAILED) from exc
        return received, digest.hexdigest()

    def _where(self, url: str) -> tuple[str, dict[str, str]]:
        """The absolute URL, and the device's token only when the URL is the API's own (a
        pre-signed storage URL must not receive it)."""
        base = self.device.cloud.client.base_url
        target = httpx2.URL(url)
        if not target.is_absolute_url:
            target = base.copy_with(raw_path=target.raw_path)
        token = self.device.current_token()
        same = (target.scheme, target.host, target.port) == (base.scheme, base.host, base.port)
        return str(target), {"Authorization": f"Bearer {token}"} if same and token else {}

    def _cooking(self) -> bool:
        return self.device.model.busy or self.device.prepared is not None

    def _install_fails(self, version: str) -> bool:
        options = self.device.options
        if options.ota_failing_versions and version not in options.ota_failing_versions:
            return False
        return self.device.rng.random() < options.ota_failure_rate

    def _failed(self, offer: Offer, error_code: str) -> str:
        self.device.counters.update_failures += 1
        self.report(offer, "failed", error_code=error_code)
        log.info("simulator.ota_failed", device_id=self.device.device_id,
                 version=offer.version, error_code=error_code)
        return "failed"

    def _defer(self, offer: Offer) -> str:
        self.report(offer, "deferred", reason=SESSION_RUNNING)
        self._waiting_for_idle = True
        return "deferred"

    def tick(self) -> None:
        """Each second: once a deferring session is over, check again."""
        if self._waiting_for_idle and not self._cooking():
            self._waiting_for_idle = False
            self.device.spawn(self.check_and_update())

    def report(self, offer: Offer, status: str, **fields: Any) -> None:
        """`up/ota` (queued in order with everything else the appliance sends)."""
        self.phase = status if status in IN_PROGRESS else None
        body = {"rollout_id": offer.rollout_id, "status": status,
                **{k: v for k, v in fields.items() if v is not None}}
        self.device.send("ota", body)
