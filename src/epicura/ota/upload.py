"""The release upload: a `multipart/form-data` body read as a stream.

The binary part is written to storage chunk by chunk while it is hashed, so a 1 GiB release
costs a few MiB of memory: nothing of the body is buffered whole (the framework's form parser
would spool it to a temporary file first, then the handler would read it back). The small parts
(`manifest`, `signature`) are collected with hard caps.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import obstore
from python_multipart.multipart import MultipartParser, parse_options_header

from epicura.kit.errors import BodyTooLarge, ErrorItem, UnsupportedMediaType, ValidationFailed
from epicura.kit.storage import Storage, check_key

MANIFEST, SIGNATURE, BINARY = "manifest", "signature", "binary"
SMALL_PART_CAPS = {MANIFEST: 16 * 1024, SIGNATURE: 1024}
WRITE_BUFFER = 8 * 1024 * 1024  # S3's parts are at least 5 MiB
WRITE_CONCURRENCY = 2


def bad_part(name: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"The upload is not valid: {message}",
                            errors=[ErrorItem(loc=["body", name], msg=message, type="value_error")])


class BinaryOverSize(Exception):
    """The binary is longer than its manifest says (found out while it streams)."""

    def __init__(self, declared: int, received: int) -> None:
        super().__init__(f"the binary is over the manifest's {declared} bytes")
        self.declared, self.received = declared, received


@dataclass
class Received:
    """What the body held: the small parts' bytes and the binary's size and SHA-256 (the binary
    itself is in storage at `object_key` when `binary_size` is set)."""

    parts: dict[str, bytearray] = field(default_factory=dict)
    binary_size: int | None = None
    binary_sha256: str | None = None


class _Events:
    """Collects the parser's callbacks (it calls them synchronously) for the async consumer."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []
        self._field = bytearray()
        self._value = bytearray()
        self._headers: dict[str, str] = {}

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda data, start, end: self._field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": lambda: self.items.append(("part", self._part_name())),
            "on_part_data": lambda data, start, end: self.items.append(
                ("data", bytes(data[start:end]))),
            "on_part_end": lambda: self.items.append(("end", None)),
        }

    def _begin(self) -> None:
        self._headers = {}

    def _header_end(self) -> None:
        self._headers[self._field.decode("latin-1").lower()] = self._value.decode("latin-1")
        self._field.clear()
        self._value.clear()

    def _part_name(self) -> str:
        _kind, options = parse_options_header(self._headers.get("content-disposition", ""))
        return options.get(b"name", b"").decode("latin-1")

    def drain(self) -> list[tuple[str, Any]]:
        items, self.items = self.items, []
        return items


def boundary_of(content_type: str) -> bytes:
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise UnsupportedMediaType("Send multipart/form-data with manifest, signature and "
                                   "binary parts")
    return options[b"boundary"]


class BinarySink:
    """Streams the binary into storage and hashes it on the way."""

    def __init__(self, storage: Storage, key: str, max_bytes: int,
                 expected_size: Callable[[], int | None]) -> None:
        self.storage, self.key, self.max_bytes = storage, check_key(key), max_bytes
        self.expected_size = expected_size
        self.digest = hashlib.sha256()
        self.size = 0
        self.writer: Any = None

    async def write(self, chunk: bytes) -> None:
        if self.writer is None:
            self.writer = obstore.open_writer_async(
                self.storage.store, self.key, buffer_size=WRITE_BUFFER,
                max_concurrency=WRITE_CONCURRENCY)
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise BodyTooLarge(f"A firmware binary is at most {self.max_bytes} bytes")
        expected = self.expected_size()
        if expected is not None and self.size > expected:
            raise BinaryOverSize(expected, self.size)  # no need to store (or read) the rest
        self.digest.update(chunk)
        await self.writer.write(chunk)

    async def close(self) -> None:
        if self.writer is None:  # an empty binary part still makes an (empty) object
            self.writer = obstore.open_writer_async(self.storage.store, self.key)
        await self.writer.close()


async def receive(chunks: AsyncIterator[bytes], content_type: str, storage: Storage,
                  object_key: str, max_binary_bytes: int,
                  on_small_part: Callable[[str, bytes], Awaitable[int | None]]) -> Received:
    """Parse the body as it arrives. `on_small_part(name, data)` runs as soon as the manifest or
    the signature is complete: it may raise to refuse the upload before the binary arrives, and
    returns the binary's declared size once it knows it (a longer binary is cut short).
    Whatever happens, the caller deletes `object_key` if it does not keep the release."""
    received = Received()
    expected: dict[str, int] = {}
    sink = BinarySink(storage, object_key, max_binary_bytes, lambda: expected.get("size"))
    events = _Events()
    parser = MultipartParser(boundary_of(content_type), events.callbacks())  # type: ignore[arg-type]
    current: str | None = None
    try:
        async for chunk in chunks:
            parser.write(chunk)
            for kind, value in events.drain():
                if kind == "part":
                    current = _start_part(value, received)
                elif kind == "data" and current == BINARY:
                    await sink.write(value)
                elif kind == "data" and current is not None:
                    _append_small(received, current, value)
                elif kind == "end" and current == BINARY:
                    await sink.close()
                    received.binary_size = sink.size
                    received.binary_sha256 = sink.digest.hexdigest()
                elif kind == "end" and current is not None:
                    size = await on_small_part(current, bytes(received.parts[current]))
                    if size is not None:
                        expected["size"] = size
        parser.finalize()
    finally:
        if sink.writer is not None and received.binary_size is None:
            await sink.writer.close()  # broken off mid-binary: the caller deletes the object
    for name in (MANIFEST, SIGNATURE, BINARY):
        if (name != BINARY and name not in received.parts) or (
                name == BINARY and received.binary_size is None):
            raise bad_part(name, f"a `{name}` part is required")
    return received


def _start_part(name: str, received: Received) -> str:
    if name not in (MANIFEST, SIGNATURE, BINARY):
        raise bad_part(name or "part", "only manifest, signature and binary parts are taken")
    if name in received.parts or (name == BINARY and received.binary_size is not None):
        raise bad_part(name, f"the `{name}` part is given twice")
    if name != BINARY:
        received.parts[name] = bytearray()
    return name


def _append_small(received: Received, name: str, data: bytes) -> None:
    part = received.parts[name]
    if len(part) + len(data) > SMALL_PART_CAPS[name]:
        raise bad_part(name, f"the `{name}` part is over {SMALL_PART_CAPS[name]} bytes")
    part.extend(data)
