"""Firmware updates of a simulated appliance (issue 7, item 5) against a small HTTP server written
here: it answers the device token and the update check with a manifest signed by a real Ed25519
key, and streams the binary. The appliance must verify the signature and the hash for real,
report each step on `up/ota`, install and reboot with the new version, fail at the configured
rate, and never install while cooking."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from epicura.simulator import messages
from epicura.simulator.cloud import Cloud
from epicura.simulator.commands import handle_down, run_command
from epicura.simulator.device import Device, Identity, Options
from epicura.simulator.ota import load_release_keys, newer
from epicura.simulator.program import from_content
from epicura.simulator.recipes import RecipeBook
from tests.bridge.ingest_support import wait_until
from tests.simulator.test_device import FakeClock, UpLink, command, content, results, sent

pytestmark = pytest.mark.anyio
NEW_VERSION = "1.5.0"
ROLLOUT_ID = str(uuid.uuid4())
BINARY = bytes(random.Random(7).getrandbits(8) for _ in range(200_000))
CHUNK = 16_384


def raw_public(private: Ed25519PrivateKey) -> str:
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def key_id_of(public_b64: str) -> str:
    return hashlib.sha256(base64.b64decode(public_b64)).hexdigest()[:16]


RELEASE_KEY = Ed25519PrivateKey.generate()
RELEASE_PUBLIC = raw_public(RELEASE_KEY)
RELEASE_KEY_ID = key_id_of(RELEASE_PUBLIC)


def signed_manifest(key: Ed25519PrivateKey = RELEASE_KEY, *, version: str = NEW_VERSION,
                    binary: bytes = BINARY, url: str = "/firmware/fw.bin",
                    **fields: Any) -> dict[str, Any]:
    """What the check answers (README, "What an appliance does"): the release offered, its URL,
    and the manifest file the build system signed (pretty-printed: its exact bytes count)."""
    release = {"version": version, "size": len(binary),
               "sha256": hashlib.sha256(binary).hexdigest(), "key_id": key_id_of(raw_public(key))}
    document = {**release, "channel": "stable", "hw_revisions": ["rev-a", "rev-b"],
                "min_from_version": "1.2.0", "notes": "Faster preheating"} | fields
    manifest = json.dumps(document, indent=2).encode() + b"\n"
    return {**release, "release_id": str(uuid.uuid4()), "rollout_id": ROLLOUT_ID,
            "signature": base64.b64encode(key.sign(manifest)).decode(), "url": url,
            "url_expires_at": "2100-01-01T00:00:00Z",
            "manifest": base64.b64encode(manifest).decode()}


@dataclass
class FirmwareServer:
    """HTTP/1.1 on 127.0.0.1: `POST /api/v1/device/token`, `GET /api/v1/device/firmware/check`
    (the manifest with an ETag, 304 on a matching If-None-Match, 204 when none) and
    `GET /firmware/fw.bin` (the binary in chunks)."""

    manifest: dict[str, Any] | None = None
    binary: bytes = BINARY
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    on_download: Callable[[], Any] | None = None
    port: int = 0

    def served(self, path: str) -> list[dict[str, str]]:
        return [headers for _, target, headers in self.requests
                if target.split("?", 1)[0] == path]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request := await reader.readline():
                method, target, _ = request.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((method, target, headers))
                await self.answer(writer, method, target.split("?", 1)[0], headers)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def answer(self, writer: asyncio.StreamWriter, method: str, path: str,
                     headers: dict[str, str]) -> None:
        if method == "POST" and path == "/api/v1/device/token":
            await self.reply(writer, 200, orjson.dumps(
                {"access_token": "device-token", "expires_in": 3600}))
        elif path == "/api/v1/device/firmware/check":
            if self.manifest is None:
                await self.reply(writer, 204, b"")
                return
            body = orjson.dumps(self.manifest)
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if headers.get("if-none-match") == etag:
                await self.reply(writer, 304, b"", etag=etag)
            else:
                await self.reply(writer, 200, body, etag=etag)
        elif path == "/firmware/fw.bin":
            if self.on_download is not None:
                self.on_download()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(self.binary))
            for start in range(0, len(self.binary), CHUNK):
                writer.write(self.binary[start:start + CHUNK])
                await writer.drain()
        else:
            await self.reply(writer, 404, b"")

    async def reply(self, writer: asyncio.StreamWriter, status: int, body: bytes,
                    etag: str | None = None) -> None:
        head = f"HTTP/1.1 {status} X\r\n"
        if status not in (204, 304):
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        if etag:
            head += f"ETag: {etag}\r\n"
        writer.write(head.encode() + b"\r\n" + body)
        await writer.drain()


@pytest.fixture
async def server() -> AsyncIterator[FirmwareServer]:
    firmware = FirmwareServer()
    listening = await asyncio.start_server(firmware.handle, "127.0.0.1", 0)
    firmware.port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield firmware


def make_device(server: FirmwareServer, **options: Any) -> Device:
    cloud = Cloud(f"http://127.0.0.1:{server.port}")
    identity = Identity(serial="SIM-OTA-1", device_id=str(uuid.uuid4()), device_secret="s" * 43)
    settings: dict[str, Any] = {"session_every_s": 1e12, "lid_alert_per_s": 0,
                                "ota_install_s": 0.0, "release_keys": {RELEASE_KEY_ID:
                                                                       RELEASE_PUBLIC}}
    dev = Device(identity, cloud, RecipeBook(cloud), Options(**(settings | options)),
                 random.Random(3), FakeClock())
    dev.link = UpLink()
    return dev


@pytest.fixture
async def device(server: FirmwareServer) -> AsyncIterator[Device]:
    dev = make_device(server)
    yield dev
    await dev.cloud.aclose()


def reports(device: Device) -> list[tuple[Any, ...]]:
    return [(p["status"], p.get("progress_pct"), p.get("error_code") or p.get("reason"))
            for p in sent(device, "ota")]


def restarts(device: Device) -> int:
    assert isinstance(device.link, UpLink)
    return device.link.restarts


async def test_an_offered_update_is_verified_installed_and_reported(
        server: FirmwareServer, device: Device) -> None:
    server.manifest = signed_manifest()
    boot_id = device.boot_id
    assert await device.ota.check_and_update() == "succeeded"
    assert reports(device) == [
        ("downloading", 0, None), ("downloading", 25, None), ("downloading", 50, None),
        ("downloading", 75, None), ("downloaded", None, None), ("verified", None, None),
        ("installing", None, None), ("succeeded", None, None)]
    assert {p["rollout_id"] for p in sent(device, "ota")} == {ROLLOUT_ID}
    assert sent(device, "ota")[-1]["version"] == NEW_VERSION  # the version it booted
    assert device.identity.firmware_version == NEW_VERSION
    assert restarts(device) == 1 and device.boot_id != boot_id
    presence, state = (payload for _, payload, _ in device.birth())
    assert presence["firmware_version"] == state["firmware_version"] == NEW_VERSION
    [check] = server.served("/api/v1/device/firmware/check")
    assert check["authorization"] == "Bearer device-token"
    [download] = server.served("/firmware/fw.bin")
    assert download["authorization"] == "Bearer device-token"  # the API's own URL
    assert (device.counters.updates, device.counters.update_failures) == (1, 0)

    # The cloud stops offering it; the appliance asks with its new version.
    server.manifest = None
    assert await device.ota.check_and_update() is None
    assert server.requests[-1][1].startswith(
        f"/api/v1/device/firmware/check?current={NEW_VERSION}&hw_revision=rev-a&channel=stable")


async def test_what_it_sends_is_valid_per_the_spec(server: FirmwareServer,
                                                   device: Device) -> None:
    payloads = pytest.importorskip("epicura.bridge.payloads")
    server.manifest = signed_manifest()
    await device.ota.check_and_update()
    for name, payload, _ in device.pending:
        payloads.parse(uuid.UUID(device.device_id), name, orjson.dumps(payload),
                       device.now_ms())


async def test_a_binary_that_does_not_match_its_hash_is_never_installed(
        server: FirmwareServer, device: Device) -> None:
    server.manifest = signed_manifest()
    server.binary = bytes(b ^ 1 if i == 1000 else b for i, b in enumerate(BINARY))
    assert await device.ota.check_and_update() == "failed"
    assert [r[0] for r in reports(device)][-3:] == ["downloading", "downloaded", "failed"]
    assert reports(device)[-1] == ("failed", None, "hash_mismatch")
    assert device.identity.firmware_version == messages.FIRMWARE_VERSION
    assert restarts(device) == 0


async def test_a_binary_longer_than_the_manifest_says_is_refused(
        server: FirmwareServer, device: Device) -> None:
    server.manifest = signed_manifest()
    server.binary = BINARY + b"trailing"
    assert await device.ota.check_and_update() == "failed"
    assert reports(device)[-1] == ("failed", None, "size_mismatch")
    assert device.identity.firmware_version == messages.FIRMWARE_VERSION


def tampered(manifest: dict[str, Any]) -> dict[str, Any]:
    signed = base64.b64decode(manifest["manifest"]).replace(b'"rev-b"', b'"rev-c"')
    return manifest | {"manifest": base64.b64encode(signed).decode()}


@pytest.mark.parametrize(("offer", "error_code"), [
    (lambda: signed_manifest(Ed25519PrivateKey.generate()), "signature_invalid"),
    (lambda: signed_manifest() | {"signature": "bm90IGEgc2lnbmF0dXJl"}, "signature_invalid"),
    (lambda: tampered(signed_manifest()), "signature_invalid"),
    (lambda: {k: v for k, v in signed_manifest().items() if k != "manifest"},
     "signature_invalid"),
    (lambda: signed_manifest() | {"version": "9.9.9"}, "manifest_mismatch"),
    (lambda: signed_manifest() | {"sha256": hashlib.sha256(b"other").hexdigest()},
     "manifest_mismatch"),
    (lambda: signed_manifest(hw_revisions=["rev-b"]), "manifest_mismatch"),
    (lambda: signed_manifest(channel="beta"), "manifest_mismatch"),
    (lambda: signed_manifest(min_from_version="1.5.0"), "manifest_mismatch"),
], ids=["unknown_key", "garbage_signature", "tampered_manifest", "no_manifest",
        "offer_not_the_signed_version", "offer_not_the_signed_hash", "other_hw_revision",
        "other_channel", "above_min_from_version"])
async def test_an_offer_without_a_trusted_manifest_is_not_even_downloaded(
        server: FirmwareServer, device: Device, offer: Callable[[], dict[str, Any]],
        error_code: str) -> None:
    server.manifest = offer()
    assert await device.ota.check_and_update() == "failed"
    assert reports(device) == [("failed", None, error_code)]
    assert server.served("/firmware/fw.bin") == []
    assert device.identity.firmware_version == messages.FIRMWARE_VERSION


async def test_at_a_failure_rate_of_one_every_install_fails(server: FirmwareServer) -> None:
    device = make_device(server, ota_failure_rate=1.0)
    try:
        server.manifest = signed_manifest()
        assert await device.ota.check_and_update() == "failed"
        assert [r[0] for r in reports(device)][-3:] == ["verified", "installing", "failed"]
        assert reports(device)[-1] == ("failed", None, "install_failed")
        assert device.identity.firmware_version == messages.FIRMWARE_VERSION
        assert restarts(device) == 0 and device.counters.update_failures == 1
        # Asked again (the 304 of an unchanged offer reuses the manifest): fails again.
        assert await device.ota.check_and_update() == "failed"
        again = server.served("/api/v1/device/firmware/check")[-1]
        assert again.get("if-none-match")
        assert len(server.served("/firmware/fw.bin")) == 2
    finally:
        await device.cloud.aclose()


async def test_only_the_failing_versions_fail(server: FirmwareServer) -> None:
    device = make_device(server, ota_failure_rate=1.0,
                         ota_failing_versions=frozenset({NEW_VERSION}))
    try:
        server.manifest = signed_manifest()
        assert await device.ota.check_and_update() == "failed"
        server.manifest = signed_manifest(version="1.5.1")  # the fixed release
        assert await device.ota.check_and_update() == "succeeded"
        assert device.identity.firmware_version == "1.5.1"
    finally:
        await device.cloud.aclose()


async def test_never_installed_while_cooking_but_once_the_session_ends(
        server: FirmwareServer, device: Device) -> None:
    server.manifest = signed_manifest()
    device.start_session(from_content(content()), None)
    assert await device.ota.check_and_update() == "deferred"
    assert reports(device) == [("deferred", None, "session_running")]
    assert server.served("/firmware/fw.bin") == []
    device.tick()  # still cooking: nothing more
    assert not device.tasks

    device.model.abort("remote")
    device.tick()  # the session is over: it checks again
    await asyncio.gather(*device.tasks)
    assert [r[0] for r in reports(device)][-1] == "succeeded"
    assert device.identity.firmware_version == NEW_VERSION


async def test_a_cook_who_starts_during_the_download_defers_the_install(
        server: FirmwareServer, device: Device) -> None:
    server.manifest = signed_manifest()
    server.on_download = lambda: device.start_session(from_content(content()), None)
    assert await device.ota.check_and_update() == "deferred"
    assert [r[0] for r in reports(device)][-2:] == ["verified", "deferred"]
    assert device.identity.firmware_version == messages.FIRMWARE_VERSION


async def test_a_down_ota_notice_and_the_ota_check_command_start_an_update(
        server: FirmwareServer, device: Device) -> None:
    server.manifest = signed_manifest()
    handle_down(device, "ota", None)  # a cleared notice: nothing
    assert not device.tasks
    handle_down(device, "ota", {"rollout_id": ROLLOUT_ID, "version": NEW_VERSION})
    await asyncio.gather(*device.tasks)
    assert device.identity.firmware_version == NEW_VERSION

    server.manifest = signed_manifest(version="1.6.0")
    await run_command(device, command("ota.check"))
    assert results(device) == [("accepted", None), ("done", None)]
    await asyncio.gather(*device.tasks)
    assert device.identity.firmware_version == "1.6.0"


async def test_the_ota_check_command_fails_when_the_cloud_cannot_be_asked(
        server: FirmwareServer) -> None:
    device = make_device(server)
    await device.cloud.aclose()
    device.cloud = Cloud("http://127.0.0.1:9")  # nothing listens there
    try:
        await run_command(device, command("ota.check"))
        assert results(device) == [("accepted", None), ("failed", "check_failed")]
    finally:
        await device.cloud.aclose()


async def test_an_offer_that_is_not_newer_is_ignored(server: FirmwareServer,
                                                     device: Device) -> None:
    server.manifest = signed_manifest(version=messages.FIRMWARE_VERSION)
    assert await device.ota.check_and_update() is None
    assert reports(device) == []


def test_versions_compare_by_semver() -> None:
    assert newer("1.10.0", "1.9.3") and newer("1.5.0", "1.5.0-rc.1")
    assert not newer("1.4.2", "1.4.2") and not newer("1.4.1", "1.4.2")
    assert not newer("1.5.0-rc.1", "1.5.0")


def test_release_keys_load_from_a_map_or_a_key_set(tmp_path: Path) -> None:
    plain, keyset = tmp_path / "plain.json", tmp_path / "set.json"
    plain.write_text(json.dumps({RELEASE_KEY_ID: RELEASE_PUBLIC}))
    keyset.write_text(json.dumps({"keys": [{"key_id": RELEASE_KEY_ID,
                                            "public_key": RELEASE_PUBLIC, "status": "active"}]}))
    assert load_release_keys(plain) == load_release_keys(keyset) == {RELEASE_KEY_ID:
                                                                     RELEASE_PUBLIC}
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"keys": [{"key_id": RELEASE_KEY_ID}]}))
    with pytest.raises(ValueError, match="public_key"):
        load_release_keys(broken)


async def test_a_reboot_over_mqtt_says_goodbye_and_comes_back_with_the_new_version(
        server: FirmwareServer, tmp_path: Path) -> None:
    """The link to a real (private, anonymous) Mosquitto: presence online with the old version,
    offline/shutdown, then online with the new one and a new boot id, and the state says so."""
    import aiomqtt

    from epicura.simulator.transport import MqttLink
    from tests.brokers import private_broker

    device = make_device(server, sync_on_boot=False, boot_sync_within_s=0)
    seen: list[tuple[str, dict[str, Any]]] = []
    stop = asyncio.Event()
    with private_broker(tmp_path / "broker", dynsec=False) as broker:
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="watcher") as watcher:
            await watcher.subscribe(f"{messages.TOPIC_ROOT}/{device.device_id}/up/#", qos=1)

            async def watch() -> None:
                async for message in watcher.messages:
                    assert isinstance(message.payload, bytes)
                    name = str(message.topic).rsplit("/up/", 1)[-1]
                    seen.append((name, orjson.loads(message.payload)))

            watching = asyncio.create_task(watch())
            running = asyncio.create_task(
                device.run(stop, MqttLink(device, f"mqtt://127.0.0.1:{broker.port}")))
            try:
                await until(lambda: any(name == "presence" for name, _ in seen))
                boot_id = device.boot_id
                device.reboot(NEW_VERSION)
                await until(lambda: len(presences(seen)) >= 3 and any(
                    name == "state" and body["firmware_version"] == NEW_VERSION
                    for name, body in seen))
            finally:
                stop.set()
                await asyncio.wait_for(running, timeout=30)
                watching.cancel()
    await device.cloud.aclose()
    assert presences(seen)[:3] == [("online", messages.FIRMWARE_VERSION, boot_id),
                                   ("offline", None, None),
                                   ("online", NEW_VERSION, device.boot_id)]
    assert [body.get("reason") for name, body in seen if name == "presence"][1] == "shutdown"


def presences(seen: list[tuple[str, dict[str, Any]]]) -> list[tuple[Any, ...]]:
    return [(body["state"], body.get("firmware_version"), body.get("boot_id"))
            for name, body in seen if name == "presence"]


async def until(check: Callable[[], bool]) -> None:
    async def holds() -> bool:
        return check()

    await wait_until(holds, timeout_s=30, message="the appliance's messages")
