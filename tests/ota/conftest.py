"""Fixtures of the OTA tests: a trusted release key, signed releases, rollouts, and appliances
that check for updates and report outcomes (the appliance fixtures come from tests/appliances)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx2
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from epicura.appliances.models import PROVISIONED, Appliance
from epicura.bridge import ingest, payloads
from epicura.config import Settings
from epicura.kit import clock
from epicura.ota import keys
from epicura.ota import release_signing as rs
from epicura.ota.tasks import evaluate_active
from tests.appliances.conftest import Device, Factory, admin, factory  # noqa: F401
from tests.bridge.ingest_support import now_ms
from tests.support import API, Service

ADMIN_FIRMWARE = f"{API}/admin/firmware"
ADMIN_ROLLOUTS = f"{API}/admin/rollouts"
STAGES_3 = [
    {"percent": 10, "soak_s": 600, "success_threshold": 0.9, "failure_threshold": 0.2},
    {"percent": 50, "soak_s": 600, "success_threshold": 0.9, "failure_threshold": 0.2},
    {"percent": 100, "soak_s": 0, "success_threshold": 0.9, "failure_threshold": 0.2},
]


@pytest.fixture
def pg_settings(pg_settings: Settings) -> Settings:
    """Many requests per test, from many pretend addresses."""
    return pg_settings.model_copy(update={"rate_limit_enabled": False,
                                          "trusted_proxies": ["127.0.0.1/32"]})


@pytest.fixture
async def release_key(svc: Service) -> Ed25519PrivateKey:
    """A build-system key whose public half the server trusts."""
    return await trust_new_key(svc)


async def trust_new_key(svc: Service) -> Ed25519PrivateKey:
    key = rs.generate_key()
    async with svc.runtime.db.transaction() as session:
        await keys.add(session, rs.public_key_b64(key), "test build system")
    return key


def appliance_row(**fields: Any) -> Appliance:
    """A provisioned, online appliance row (stable, rev-a, firmware 1.4.2), for tests that write
    fleets directly; `fields` override any column."""
    now = clock.utcnow()
    values: dict[str, Any] = {
        "id": uuid.uuid4(), "serial": f"OTA-{uuid.uuid4().hex[:12].upper()}",
        "model": "epicura-1", "hw_revision": "rev-a", "lifecycle": PROVISIONED,
        "factory_secret_hash": "0" * 64, "device_secret_hash": "1" * 64,
        "firmware_version": "1.4.2", "channel": "stable", "tags": [], "online": True,
        "last_seen_at": now, "settings": {}, "config_version": 0, "provisioned_at": now,
        "created_at": now, "updated_at": now}
    values.update(fields)
    return Appliance(**values)


@dataclass
class Signed:
    manifest: bytes
    signature: str
    binary: bytes

    def parts(self) -> dict[str, tuple[str, bytes, str]]:
        return {"manifest": ("manifest.json", self.manifest, "application/json"),
                "signature": ("manifest.json.sig", self.signature.encode(), "text/plain"),
                "binary": ("firmware.bin", self.binary, "application/octet-stream")}


def signed(key: Ed25519PrivateKey, version: str, *, binary: bytes | None = None,
           channel: str = "stable", hw_revisions: list[str] | None = None,
           min_from_version: str | None = None,
           overrides: dict[str, Any] | None = None) -> Signed:
    binary = binary if binary is not None else f"firmware {version} ".encode() * 1000
    manifest = rs.manifest_bytes(rs.describe_binary(binary), version=version, channel=channel,
                                 hw_revisions=hw_revisions or ["rev-a"], key=key,
                                 min_from_version=min_from_version, notes=f"v{version}")
    if overrides:
        doc = orjson.loads(manifest)
        doc.update(overrides)
        manifest = orjson.dumps(doc)
    return Signed(manifest, rs.sign(key, manifest), binary)


async def upload(svc: Service, auth: dict[str, str], release: Signed) -> httpx2.Response:
    return await svc.client.post(ADMIN_FIRMWARE, files=release.parts(), headers=auth)


async def released(svc: Service, auth: dict[str, str], key: Ed25519PrivateKey, version: str,
                   **options: Any) -> dict[str, Any]:
    reply = await upload(svc, auth, signed(key, version, **options))
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def create_rollout(svc: Service, auth: dict[str, str], release_id: str,
                         stages: list[dict[str, Any]] | None = None, *,
                         channel: str = "stable", hw_revisions: list[str] | None = None,
                         tags: list[str] | None = None) -> dict[str, Any]:
    reply = await svc.client.post(ADMIN_ROLLOUTS, headers=auth, json={
        "release_id": release_id, "stages": stages or STAGES_3,
        "filter": {"channel": channel, "hw_revisions": hw_revisions or ["rev-a"],
                   "tags": tags or []}})
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def act(svc: Service, auth: dict[str, str], rollout_id: str, action: str,
              expect: int = 200) -> dict[str, Any]:
    reply = await svc.client.post(f"{ADMIN_ROLLOUTS}/{rollout_id}/{action}", headers=auth)
    assert reply.status_code == expect, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def rollout_detail(svc: Service, auth: dict[str, str], rollout_id: str) -> dict[str, Any]:
    reply = await svc.client.get(f"{ADMIN_ROLLOUTS}/{rollout_id}", headers=auth)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def check(svc: Service, device: Device, current: str = "1.4.2",
                **params: str) -> httpx2.Response:
    return await svc.client.get(f"{API}/device/firmware/check", headers=device.headers,
                                params={"current": current, **params})


async def report(svc: Service, device: Device, rollout_id: str, status: str,
                 **fields: Any) -> httpx2.Response:
    return await svc.client.post(f"{API}/device/firmware/status", headers=device.headers,
                                 json={"rollout_id": rollout_id, "status": status, **fields})


async def report_over_mqtt_path(svc: Service, device_id: str, rollout_id: str, status: str,
                                **fields: Any) -> ingest.Outcome:
    """An `up/ota` message through the bridge's ingest pipeline (validation, deduplication,
    the registered handler, one transaction, then its live events), as the MQTT consumer
    hands it a batch."""
    doc = {"v": 1, "id": str(uuid.uuid4()), "ts": now_ms(), "rollout_id": rollout_id,
           "status": status, **fields}
    message = payloads.validate(uuid.UUID(device_id), "ota", doc, now_ms())
    outcome = await ingest.store_batch(svc.runtime, [message])
    await ingest.publish_events(svc.runtime, outcome)  # what the consumer does after the ack
    return outcome


async def evaluate(svc: Service) -> dict[str, str]:
    """One run of the periodic rollout evaluation."""
    return await evaluate_active(svc.runtime)


@pytest.fixture
async def fleet(factory: Factory) -> AsyncIterator[list[Device]]:  # noqa: F811
    """Ten provisioned, online appliances (stable, rev-a, firmware 1.4.2)."""
    devices = [await factory.device() for _ in range(10)]
    for device in devices:
        await factory.online(device.id)
    yield devices
