"""A large release streams through: the upload of an 80 MiB binary neither buffers the body nor
the binary (Python's allocations stay within the store writer's buffers, the process's resident
memory grows far less than the binary), and the stored object is the binary, byte for byte.

The issue asks that 1 GiB work: `EPICURA_FIRMWARE_TEST_MIB=1024 uv run pytest
tests/ota/test_upload_streaming.py` runs the same with 1 GiB, under the same bounds (nothing in
them grows with the size)."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from epicura.kit.storage import storage_of
from epicura.ota import release_signing as rs
from epicura.ota.upload import WRITE_BUFFER, WRITE_CONCURRENCY
from tests.ota.conftest import ADMIN_FIRMWARE
from tests.support import Service

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024
BINARY_MIB = int(os.environ.get("EPICURA_FIRMWARE_TEST_MIB", "80"))
# The store's writer holds the chunks of the buffer it fills and of each part in flight (Python
# bytes it references until written): the bound on what Python holds, whatever the binary's size.
WRITER_HOLDS = WRITE_BUFFER * (WRITE_CONCURRENCY + 1)
CHUNK = 64 * 1024


def binary_chunks() -> Iterator[bytes]:
    """BINARY_MIB MiB that are not all alike (each MiB is the hash chain of its index), made on
    the fly."""
    for index in range(BINARY_MIB):
        seed = hashlib.sha256(index.to_bytes(4, "big")).digest()
        block = seed * (MIB // len(seed))
        for start in range(0, MIB, CHUNK):
            yield block[start:start + CHUNK]


def multipart(boundary: str, manifest: bytes, signature: str) -> AsyncIterator[bytes]:
    async def body() -> AsyncIterator[bytes]:
        def head(name: str, filename: str, media: str) -> bytes:
            return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                    f"filename=\"{filename}\"\r\nContent-Type: {media}\r\n\r\n").encode()

        yield head("manifest", "manifest.json", "application/json") + manifest + b"\r\n"
        yield head("signature", "manifest.json.sig", "text/plain") + signature.encode() + b"\r\n"
        yield head("binary", "firmware.bin", "application/octet-stream")
        for chunk in binary_chunks():
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    return body()


def resident_peak_reset() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux: `echo 5 > clear_refs`)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def resident_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


async def test_a_large_release_streams_to_storage_in_small_memory(
        svc: Service, admin: dict[str, str], release_key: Ed25519PrivateKey) -> None:
    facts = rs.describe_binary(binary_chunks())
    assert facts.size == BINARY_MIB * MIB
    manifest = rs.manifest_bytes(facts, version="9.0.0", channel="stable",
                                 hw_revisions=["rev-a"], key=release_key)
    boundary = uuid.uuid4().hex
    headers = {**admin, "Content-Type": f"multipart/form-data; boundary={boundary}"}

    can_reset = resident_peak_reset()
    rss_before = resident_kib("VmRSS")
    tracemalloc.start()
    try:
        reply = await svc.client.post(ADMIN_FIRMWARE, headers=headers,
                                      content=multipart(boundary, manifest,
                                                        rs.sign(release_key, manifest)))
        _current, python_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_peak = resident_kib("VmHWM")
    assert reply.status_code == 201, reply.text
    assert reply.json()["size"] == BINARY_MIB * MIB and reply.json()["sha256"] == facts.sha256

    # Python never held more of it than the writer's buffers (and a few chunks)...
    assert python_peak < WRITER_HOLDS + 4 * MIB, python_peak
    # ...and neither did the store's writer underneath (its buffer is 8 MiB).
    if can_reset:
        assert (rss_peak - rss_before) * 1024 < 40 * MIB, (rss_before, rss_peak)

    stored = await storage_of(svc.runtime).open(f"firmware/{reply.json()['id']}/firmware.bin")
    digest = hashlib.sha256()
    async for chunk in stored.chunks:
        digest.update(chunk)
    assert stored.size == facts.size and digest.hexdigest() == facts.sha256
