"""Signing releases, as Epicura's build system does it (the CLI's `epicura firmware …`, tests and
the simulator use it). The server itself only verifies: it never needs a private key.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from epicura.kit.signing import b64, key_id_of, verify

__all__ = ["BinaryFacts", "describe_binary", "describe_file", "generate_key", "key_id",
           "load_private_key", "load_public_key", "manifest_bytes", "private_pem",
           "public_key_b64", "sign", "verify"]

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class BinaryFacts:
    size: int
    sha256: str


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_key_b64(key: Ed25519PrivateKey) -> str:
    return b64(public_raw(key))


def key_id(key: Ed25519PrivateKey) -> str:
    return key_id_of(public_raw(key))


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def load_private_key(data: bytes) -> Ed25519PrivateKey:
    """A PKCS#8 PEM Ed25519 key, or the base64 of the raw 32-byte seed."""
    if b"-----BEGIN" in data:
        key = load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("not an Ed25519 private key")
        return key
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(data.strip(), validate=True))


def load_public_key(data: bytes) -> str:
    """A PEM (SubjectPublicKeyInfo) Ed25519 public key, or the base64 of its raw 32 bytes;
    returns the base64 of the raw bytes."""
    if b"-----BEGIN" in data:
        key = load_pem_public_key(data)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return b64(key.public_bytes(Encoding.Raw, PublicFormat.Raw))
    raw = base64.b64decode(data.strip(), validate=True)
    Ed25519PublicKey.from_public_bytes(raw)  # 32 bytes, else ValueError
    return b64(raw)


def describe_binary(data: bytes | Iterable[bytes]) -> BinaryFacts:
    digest, size = hashlib.sha256(), 0
    for chunk in [data] if isinstance(data, bytes) else data:
        digest.update(chunk)
        size += len(chunk)
    return BinaryFacts(size, digest.hexdigest())


def describe_file(path: Path) -> BinaryFacts:
    def chunks() -> Iterable[bytes]:
        with path.open("rb") as source:
            while chunk := source.read(CHUNK):
                yield chunk

    return describe_binary(chunks())


def manifest_bytes(facts: BinaryFacts, *, version: str, channel: str, hw_revisions: list[str],
                   key: Ed25519PrivateKey | None = None, key_id_hex: str | None = None,
                   min_from_version: str | None = None, notes: str = "") -> bytes:
    """The manifest document for a binary (pretty-printed JSON; any bytes the server accepts
    would do, since the signature covers them as they are)."""
    kid = key_id_hex or (key_id(key) if key is not None else None)
    if kid is None:
        raise ValueError("give the signing key or its key id")
    doc: dict[str, object] = {
        "version": version, "channel": channel, "hw_revisions": hw_revisions,
        "min_from_version": min_from_version, "size": facts.size, "sha256": facts.sha256,
        "key_id": kid, "notes": notes,
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"


def sign(key: Ed25519PrivateKey, manifest: bytes) -> str:
    """Base64 of the Ed25519 signature of the manifest's exact bytes."""
    return b64(key.sign(manifest))
