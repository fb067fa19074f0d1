"""An appliance's own credentials: provisioning with the factory secret, device access tokens.

Factory and device secrets are high-entropy, so they are stored as SHA-256 and compared as
digests in constant time (hash what was sent, compare the two digests): an unknown serial is
compared against a dummy digest, so the answer takes as long whatever failed. Every refusal is
the same 403 (or 401 for tokens): nothing says whether the serial, the secret or the state was
wrong; the audit log and the server log say it for the operator.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.appliances import repository
from epicura.appliances.access import issue_device_token
from epicura.appliances.models import DECOMMISSIONED, PROVISIONED, Appliance
from epicura.appliances.schemas import (
    DeviceTokenRequest,
    MqttAccess,
    ProvisionRequest,
    normalise_serial,
)
from epicura.bridge import broker_tasks
from epicura.kit import audit, clock, metrics
from epicura.kit.errors import ProblemError
from epicura.kit.runtime import Runtime

log = structlog.get_logger("epicura.appliances.provisioning")

PROVISIONS_PER_SERIAL = "10/hour"
TOKENS_PER_DEVICE = "30/hour"
_DUMMY_DIGEST = hashlib.sha256(secrets.token_bytes(32)).hexdigest()


class ProvisionRefused(ProblemError):
    status = 403
    code = "provision_refused"
    title = "Provisioning refused"
    keeps_changes = True  # the audit record of the refusal is kept


class DeviceCredentialsInvalid(ProblemError):
    status = 401
    code = "invalid_credentials"
    title = "Invalid device credentials"

    def __init__(self) -> None:
        super().__init__(headers={"WWW-Authenticate": "Bearer"})


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def digest_matches(secret: str, stored: str | None) -> bool:
    """Constant time whether `stored` is None or not: both sides are fixed-length digests."""
    matches = hmac.compare_digest(secret_digest(secret), stored or _DUMMY_DIGEST)
    return matches and stored is not None


def _refusal_reason(appliance: Appliance | None, body: ProvisionRequest,
                    secret_ok: bool) -> str | None:
    if appliance is None:
        return "unknown_serial"
    if not secret_ok:
        return "wrong_factory_secret"
    if appliance.lifecycle == DECOMMISSIONED:
        return "decommissioned"
    # The imported record is binding: the capability profile (what may be cooked) follows it.
    if (body.model.strip().lower(), body.hw_revision.strip().lower()) != (
            appliance.model, appliance.hw_revision):
        return "hardware_mismatch"
    return None


async def provision(rt: Runtime, session: AsyncSession, body: ProvisionRequest,
                    ip: str) -> tuple[Appliance, str]:
    """First boot or a factory reset: a new device secret (the old one and every token issued
    with it stop working), and broker credentials to match. Returns (appliance, secret)."""
    serial = normalise_serial(body.serial)
    await rt.limiter.hit(f"{rt.settings.device_provision_ip_per_minute}/minute",
                         "provision-ip", ip)
    await rt.limiter.hit(PROVISIONS_PER_SERIAL, "provision-serial", serial)
    appliance = await repository.by_serial(session, serial, lock=True)
    secret_ok = digest_matches(body.factory_secret,
                               appliance.factory_secret_hash if appliance else None)
    reason = _refusal_reason(appliance, body, secret_ok)
    if reason is not None:
        metrics.auth_events.labels("provision_refused").inc()
        log.warning("provision_refused", serial=serial, reason=reason, ip=ip)
        audit.record(session, "device.provision_refused", actor_type="device",
                     target_type="appliance", target_id=appliance.id if appliance else None,
                     ip=ip, serial=serial, reason=reason)
        raise ProvisionRefused()
    assert appliance is not None
    device_secret = secrets.token_urlsafe(32)  # 256 bits
    _mark_provisioned(appliance, device_secret, body.firmware_version)
    broker_tasks.enqueue_upsert(rt, session, appliance.id, device_secret)
    audit.record(session, "device.provision", actor_id=appliance.id, actor_type="device",
                 target_type="appliance", target_id=appliance.id, ip=ip, serial=serial)
    await session.flush()
    return appliance, device_secret


def _mark_provisioned(appliance: Appliance, device_secret: str, firmware_version: str) -> None:
    now = clock.utcnow()
    previous = appliance.provisioned_at
    # Tokens carry the provisioning time in ms (`pv`): it must change on every provisioning.
    if previous is not None and now <= previous + timedelta(milliseconds=1):
        now = previous + timedelta(milliseconds=2)
    appliance.device_secret_hash = secret_digest(device_secret)
    appliance.lifecycle = PROVISIONED
    appliance.provisioned_at = now
    appliance.firmware_version = firmware_version
    appliance.updated_at = now


async def device_token(rt: Runtime, session: AsyncSession, body: DeviceTokenRequest,
                       ip: str) -> tuple[str, int]:
    """(access token, lifetime in s) for a provisioned appliance's id and current secret."""
    await rt.limiter.hit(f"{rt.settings.device_token_ip_per_minute}/minute", "device-token-ip",
                         ip)
    await rt.limiter.hit(TOKENS_PER_DEVICE, "device-token", body.device_id)
    device_id = _parse_uuid(body.device_id)
    appliance = None if device_id is None else await repository.by_id(session, device_id)
    stored = appliance.device_secret_hash if appliance is not None else None
    if not digest_matches(body.device_secret, stored) or appliance is None or (
            appliance.lifecycle != PROVISIONED):
        metrics.auth_events.labels("device_token_refused").inc()
        raise DeviceCredentialsInvalid()
    return issue_device_token(rt, appliance)


def _parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def mqtt_access(rt: Runtime, appliance: Appliance) -> MqttAccess | None:
    """Where the appliance connects: the public address if set, else MQTT_BROKER_URL's; None
    without a broker (the appliance then uses the HTTPS device API only)."""
    settings = rt.settings
    url = urlsplit(settings.mqtt_broker_url) if settings.mqtt_broker_url else None
    host = settings.mqtt_public_host or (url.hostname if url else None)
    if host is None:
        return None
    secure = url is not None and url.scheme in ("mqtts", "ssl")
    port = settings.mqtt_public_port or (url.port if url and url.port else None) or (
        8883 if secure else 1883)
    device = str(appliance.id)
    return MqttAccess(host=host, port=port, username=device, client_id=device)
