"""Release uploads: verified, immutable, refused with the reason; listing, notes and yanking."""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from epicura.kit.audit import AuditEvent
from epicura.kit.storage import LocalStorage, storage_of
from epicura.ota import release_signing as rs
from tests.appliances.conftest import assert_problem, user
from tests.ota.conftest import ADMIN_FIRMWARE, Signed, signed, trust_new_key, upload
from tests.support import Service

pytestmark = pytest.mark.anyio


async def stored_keys(svc: Service) -> list[str]:
    storage = storage_of(svc.runtime)
    assert isinstance(storage, LocalStorage)
    root = storage.root
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) \
        if root.exists() else []


async def refusals(svc: Service, reason: str) -> list[dict[str, Any]]:
    async with svc.runtime.db.sessions() as session:
        rows = await session.scalars(select(AuditEvent).where(
            AuditEvent.action == "firmware.upload_refused"))
        return [row.details for row in rows if row.details.get("reason") == reason]


async def test_a_signed_release_becomes_ready_and_its_binary_is_served_as_uploaded(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey) -> None:
    release = signed(release_key, "1.5.0", min_from_version="1.2.0")
    reply = await upload(svc, admin, release)
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert body["status"] == "ready"
    assert body["version"] == "1.5.0" and body["min_from_version"] == "1.2.0"
    assert body["size"] == len(release.binary)
    assert body["sha256"] == hashlib.sha256(release.binary).hexdigest()
    assert body["key_id"] == rs.key_id(release_key)
    assert body["signature"] == release.signature
    assert reply.headers["etag"]

    detail = await svc.client.get(f"{ADMIN_FIRMWARE}/{body['id']}", headers=admin)
    assert detail.status_code == 200 and detail.json() == body
    again = await svc.client.get(f"{ADMIN_FIRMWARE}/{body['id']}", headers={
        **admin, "If-None-Match": detail.headers["etag"]})
    assert again.status_code == 304
    listed = await svc.client.get(ADMIN_FIRMWARE, headers=admin)
    assert [item["id"] for item in listed.json()["items"]] == [body["id"]]

    storage = storage_of(svc.runtime)
    assert await storage.get(f"firmware/{body['id']}/firmware.bin") == release.binary


async def test_the_parts_may_come_in_any_order(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey) -> None:
    release = signed(release_key, "1.6.0")
    parts = release.parts()
    files = {name: parts[name] for name in ("binary", "signature", "manifest")}
    reply = await svc.client.post(ADMIN_FIRMWARE, files=files, headers=admin)
    assert reply.status_code == 201, reply.text
    raw = signed(release_key, "1.6.1")
    raw_signature = Signed(raw.manifest, "", raw.binary).parts()
    raw_signature["signature"] = ("sig", base64.b64decode(raw.signature), "text/plain")
    reply = await svc.client.post(ADMIN_FIRMWARE, files=raw_signature, headers=admin)
    assert reply.status_code == 201, reply.text  # the raw 64 bytes are taken too


async def test_a_tampered_binary_is_refused_and_nothing_is_kept(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey) -> None:
    release = signed(release_key, "2.0.0")
    tampered = bytearray(release.binary)
    tampered[100] ^= 0x01
    reply = await upload(svc, admin, Signed(release.manifest, release.signature, bytes(tampered)))
    assert_problem(reply, 422, "hash_mismatch")
    shorter = await upload(svc, admin, Signed(release.manifest, release.signature,
                                              release.binary[:-1]))
    assert_problem(shorter, 422, "size_mismatch")
    longer = await upload(svc, admin, Signed(release.manifest, release.signature,
                                             release.binary + b"!"))
    assert_problem(longer, 422, "size_mismatch")
    assert (await svc.client.get(ADMIN_FIRMWARE, headers=admin)).json()["items"] == []
    assert await stored_keys(svc) == []
    assert len(await refusals(svc, "hash_mismatch")) >= 1  # the refusal is audited


async def test_a_signature_by_an_unknown_or_retired_key_or_over_other_bytes_is_refused(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey) -> None:
    stranger = rs.generate_key()  # never registered
    reply = await upload(svc, admin, signed(stranger, "3.0.0"))
    assert_problem(reply, 422, "unknown_key")

    # The manifest names the trusted key, but another key signed it.
    genuine = signed(release_key, "3.0.1")
    forged = Signed(genuine.manifest, rs.sign(stranger, genuine.manifest), genuine.binary)
    assert_problem(await upload(svc, admin, forged), 422, "signature_invalid")

    # A signature over different bytes (the manifest edited after signing).
    edited = genuine.manifest.replace(b'"v3.0.1"', b'"v3.0.1 hotfix"')
    assert_problem(await upload(svc, admin, Signed(edited, genuine.signature, genuine.binary)),
                   422, "signature_invalid")
    assert_problem(await upload(svc, admin, Signed(genuine.manifest, "not base64!",
                                                   genuine.binary)), 422, "signature_invalid")

    # Rotation: a second key is trusted alongside; retiring the first refuses its uploads.
    second = await trust_new_key(svc)
    assert (await upload(svc, admin, signed(second, "3.1.0"))).status_code == 201
    from epicura.ota import keys

    async with svc.runtime.db.transaction() as session:
        await keys.retire(session, rs.key_id(release_key))
    assert_problem(await upload(svc, admin, signed(release_key, "3.2.0")), 422, "unknown_key")
    assert (await upload(svc, admin, signed(second, "3.2.0"))).status_code == 201
    assert await stored_keys(svc) == sorted(
        f"firmware/{item['id']}/firmware.bin"
        for item in (await svc.client.get(ADMIN_FIRMWARE, headers=admin)).json()["items"])


async def test_an_invalid_manifest_is_refused_with_the_reason(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey) -> None:
    cases: list[dict[str, Any]] = [
        {"version": "1.5"}, {"channel": "nightly"}, {"hw_revisions": []},
        {"sha256": "abc"}, {"size": 0}, {"min_from_version": "9.0.0"}, {"extra": True},
    ]
    for overrides in cases:
        reply = await upload(svc, admin, signed(release_key, "4.0.0", overrides=overrides))
        body = assert_problem(reply, 422, "manifest_invalid")
        assert body["detail"], overrides
    not_json = signed(release_key, "4.0.0")
    reply = await upload(svc, admin, Signed(b"{not json", not_json.signature, not_json.binary))
    assert_problem(reply, 422, "manifest_invalid")


async def test_a_version_is_released_once_and_its_binary_never_changes(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey) -> None:
    first = signed(release_key, "5.0.0")
    created = (await upload(svc, admin, first)).json()
    second = signed(release_key, "5.0.0", binary=b"another build" * 100)
    assert_problem(await upload(svc, admin, second), 409, "release_exists")
    storage = storage_of(svc.runtime)
    assert await storage.get(f"firmware/{created['id']}/firmware.bin") == first.binary
    assert await stored_keys(svc) == [f"firmware/{created['id']}/firmware.bin"]


async def test_missing_or_unexpected_parts_and_non_admins_are_refused(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey) -> None:
    release = signed(release_key, "6.0.0")
    parts = release.parts()
    del parts["signature"]
    assert_problem(await svc.client.post(ADMIN_FIRMWARE, files=parts, headers=admin),
                   422, "validation_failed")
    extra = {**release.parts(), "readme": ("r.txt", b"hi", "text/plain")}
    assert_problem(await svc.client.post(ADMIN_FIRMWARE, files=extra, headers=admin),
                   422, "validation_failed")
    assert_problem(await svc.client.post(ADMIN_FIRMWARE, json={"manifest": {}}, headers=admin),
                   415, "unsupported_media_type")
    cook = await user(svc, "ota-cook@example.com")
    assert_problem(await svc.client.post(ADMIN_FIRMWARE, files=release.parts(), headers=cook),
                   403, "forbidden")
    assert (await svc.client.get(ADMIN_FIRMWARE, headers=cook)).status_code == 403
    assert await stored_keys(svc) == []


async def test_a_binary_over_the_limit_is_cut_short(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey) -> None:
    svc.runtime.settings.max_firmware_bytes = 4096
    reply = await upload(svc, admin, signed(release_key, "6.5.0", binary=b"x" * 10_000))
    assert_problem(reply, 413, "body_too_large")
    assert await stored_keys(svc) == []


async def test_notes_and_yanking(svc: Service, admin: dict[str, str],
                                 release_key: Ed25519PrivateKey) -> None:
    created = (await upload(svc, admin, signed(release_key, "7.0.0"))).json()
    url = f"{ADMIN_FIRMWARE}/{created['id']}"
    reply = await svc.client.patch(url, headers=admin, json={"notes": "Known issue: none"})
    assert reply.status_code == 200 and reply.json()["notes"] == "Known issue: none"
    stale = await svc.client.patch(url, headers={**admin, "If-Match": '"old"'},
                                   json={"status": "yanked"})
    assert_problem(stale, 412, "version_conflict")
    yanked = await svc.client.patch(url, headers={**admin, "If-Match": reply.headers["etag"]},
                                    json={"status": "yanked"})
    assert yanked.status_code == 200 and yanked.json()["status"] == "yanked"
    assert yanked.json()["yanked_at"] is not None
    refused = await svc.client.patch(url, headers=admin, json={"status": "ready"})
    assert_problem(refused, 422, "validation_failed")
    assert_problem(await svc.client.get(f"{ADMIN_FIRMWARE}/{uuid.uuid4()}", headers=admin),
                   404, "not_found")
    async with svc.runtime.db.sessions() as session:
        actions = list(await session.scalars(select(AuditEvent.action).where(
            AuditEvent.target_id == created["id"]).order_by(AuditEvent.at)))
    assert actions == ["firmware.uploaded", "firmware.updated", "firmware.yanked"]

