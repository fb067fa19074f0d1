"""Ed25519 signing keys of the cloud: appliances verify what the cloud signs (recipe bundles,
later firmware manifests) offline, with the public keys.

- Exactly one key is `active` and signs (a partial unique index guarantees it). A `pending` key
  is published before it signs, so appliances can learn it ahead of a rotation; a `retired` key
  signs nothing more but stays published, so what it signed still verifies.
- A key generated while another is active is endorsed by it: the active key signs
  `ENDORSEMENT_PREFIX + key_id + ":" + public key`, so an appliance that trusts the old key (its
  firmware pins the keys of `epicura keys export-public`) can accept the new one offline.
- Private keys are stored sealed (AES-GCM, a key derived for this purpose only) and never leave
  this module in clear: not logged, listed or exported. `seal_id` names the secret that sealed a
  key, so a changed secret gives a clear error instead of a decryption failure.
- `key_id` is the first 16 hex digits of the SHA-256 of the raw public key: an appliance can
  recompute it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from sqlalchemy import Index, String, Text, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from epicura.kit import audit, clock
from epicura.kit.db import Base
from epicura.kit.errors import Conflict, NotFound, ProblemError
from epicura.kit.security import Sealer

log = structlog.get_logger("epicura.signing")

ALGORITHM = "Ed25519"
PENDING, ACTIVE, RETIRED = "pending", "active", "retired"
ENDORSEMENT_PREFIX = b"epicura-signing-key-endorsement:v1:"
_SEAL_DOMAIN = b"epicura-signing-keys:"
_CREATE_LOCK = 0x45_50_49_4B_45_59  # advisory lock id of "create the first key" ("EPIKEY")


class SigningKeyRow(Base):
    __tablename__ = "signing_keys"
    __table_args__ = (
        Index("uq_signing_keys_one_active", "status", unique=True,
              postgresql_where=text("status = 'active'"), sqlite_where=text("status = 'active'")),
    )

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16), default=ALGORITHM)
    public_key: Mapped[str] = mapped_column(String(64))  # base64 of the 32 raw bytes
    private_key_sealed: Mapped[str] = mapped_column(Text)
    seal_id: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    endorsed_by: Mapped[str | None] = mapped_column(String(32))
    endorsement: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime]
    activated_at: Mapped[datetime | None]
    retired_at: Mapped[datetime | None]


class SigningKeyMissing(ProblemError):
    status = 503
    code = "signing_key_missing"
    title = "No active signing key: an operator must run `epicura keys generate`"


class SigningKeyUnreadable(ProblemError):
    status = 503
    code = "signing_key_unreadable"
    title = "The active signing key was sealed with another secret (JWT_REFRESH_SECRET changed)"


class UnknownSigningKey(NotFound):
    code = "unknown_signing_key"
    title = "No such signing key"


class ActiveKeyCannotRetire(Conflict):
    code = "signing_key_active"
    title = "The active key cannot be retired: activate another key first"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(value: str) -> bytes:
    return base64.b64decode(value.encode(), validate=True)


def key_id_of(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def endorsement_message(key_id: str, public_key_b64: str) -> bytes:
    return ENDORSEMENT_PREFIX + f"{key_id}:{public_key_b64}".encode()


def verify(public_key_b64: str, data: bytes, signature_b64: str) -> bool:
    """What an appliance does: True when `signature_b64` is the key's signature of `data`."""
    try:
        public = Ed25519PublicKey.from_public_bytes(unb64(public_key_b64))
        public.verify(unb64(signature_b64), data)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def _audit(session: AsyncSession, action: str, key_id: str) -> None:
    audit.record(session, action, actor_type="system", target_type="signing_key",
                 target_id=key_id)


@dataclass(frozen=True)
class Signer:
    key_id: str
    _private: Ed25519PrivateKey = field(repr=False)

    def sign(self, data: bytes) -> str:
        """Base64 of the 64-byte Ed25519 signature of `data`."""
        return b64(self._private.sign(data))


class KeyStore:
    """The `signing_keys` table, with private keys sealed by a key derived from `secret`."""

    def __init__(self, secret: bytes) -> None:
        self._sealer = Sealer(_SEAL_DOMAIN + secret)
        self.seal_id = hashlib.sha256(b"epicura-seal-id:" + _SEAL_DOMAIN + secret).hexdigest()[:16]
        self._unsealed: dict[str, Ed25519PrivateKey] = {}  # by key id; keys never change

    async def keys(self, session: AsyncSession) -> list[SigningKeyRow]:
        rows = await session.scalars(select(SigningKeyRow).order_by(SigningKeyRow.created_at))
        return list(rows.all())

    async def active(self, session: AsyncSession) -> SigningKeyRow | None:
        found: SigningKeyRow | None = await session.scalar(
            select(SigningKeyRow).where(SigningKeyRow.status == ACTIVE))
        return found

    async def signer(self, session: AsyncSession, *, create_if_missing: bool) -> Signer:
        """The active key's signer. Without one: a new key when allowed (development), else
        `SigningKeyMissing` (production: the operator generates keys)."""
        row = await self.active(session)
        if row is None and create_if_missing:
            row = await self._create_first(session)
        if row is None:
            raise SigningKeyMissing()
        return Signer(row.key_id, self._private_of(row))

    async def generate(
        self, session: AsyncSession, *, activate: bool | None = None
    ) -> SigningKeyRow:
        """A new key: `pending`, or `active` when asked (or when no key is active yet), in
        which case the previously active key is retired. Endorsed by the active key if any."""
        current = await self.active(session)
        private = Ed25519PrivateKey.generate()
        public_raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        key_id, public_b64 = key_id_of(public_raw), b64(public_raw)
        row = SigningKeyRow(
            key_id=key_id, algorithm=ALGORITHM, public_key=public_b64,
            private_key_sealed=self._seal(private), seal_id=self.seal_id, status=PENDING,
            created_at=clock.utcnow(),
        )
        if current is not None:
            row.endorsed_by = current.key_id
            endorser = self._private_of(current)
            row.endorsement = b64(endorser.sign(endorsement_message(key_id, public_b64)))
        session.add(row)
        await session.flush()
        self._unsealed[key_id] = private
        log.info("signing_key_generated", key_id=key_id, endorsed_by=row.endorsed_by)
        _audit(session, "signing_key.generated", key_id)
        if activate or (activate is None and current is None):
            return await self.activate(session, key_id)
        return row

    async def activate(self, session: AsyncSession, key_id: str) -> SigningKeyRow:
        """Make `key_id` the key that signs; the key active until now is retired."""
        row = await self._locked(session, key_id)
        if row.status == ACTIVE:
            return row
        now = clock.utcnow()
        # Retire first, in its own statement: the one-active index must hold after each one.
        await session.execute(
            update(SigningKeyRow).where(SigningKeyRow.status == ACTIVE)
            .values(status=RETIRED, retired_at=now))
        await session.execute(
            update(SigningKeyRow).where(SigningKeyRow.key_id == key_id)
            .values(status=ACTIVE, activated_at=now, retired_at=None))
        await session.refresh(row)
        log.info("signing_key_activated", key_id=key_id)
        _audit(session, "signing_key.activated", key_id)
        return row

    async def retire(self, session: AsyncSession, key_id: str) -> SigningKeyRow:
        row = await self._locked(session, key_id)
        if row.status == ACTIVE:
            raise ActiveKeyCannotRetire()
        if row.status != RETIRED:
            row.status, row.retired_at = RETIRED, clock.utcnow()
            await session.flush()
            log.info("signing_key_retired", key_id=key_id)
            _audit(session, "signing_key.retired", key_id)
        return row

    async def _locked(self, session: AsyncSession, key_id: str) -> SigningKeyRow:
        row: SigningKeyRow | None = await session.scalar(
            select(SigningKeyRow).where(SigningKeyRow.key_id == key_id).with_for_update())
        if row is None:
            raise UnknownSigningKey(f"No signing key {key_id!r}")
        return row

    async def _create_first(self, session: AsyncSession) -> SigningKeyRow:
        """Create the active key, once even under concurrent first requests: PostgreSQL
        serialises them on an advisory lock (then the loser sees the winner's key); SQLite
        has one writer at a time anyway."""
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                  {"key": _CREATE_LOCK})
            found = await self.active(session)
            if found is not None:
                return found
        row = await self.generate(session, activate=True)
        log.warning("signing_key_created_automatically", key_id=row.key_id)
        return row

    def _seal(self, private: Ed25519PrivateKey) -> str:
        raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return self._sealer.seal({"ed25519": b64(raw)})

    def _private_of(self, row: SigningKeyRow) -> Ed25519PrivateKey:
        cached = self._unsealed.get(row.key_id)
        if cached is not None:
            return cached
        if row.seal_id != self.seal_id:
            raise SigningKeyUnreadable(f"key {row.key_id} was sealed under seal id {row.seal_id}")
        try:
            raw = unb64(self._sealer.unseal(row.private_key_sealed)["ed25519"])
        except (InvalidTag, KeyError, ValueError, binascii.Error) as exc:
            raise SigningKeyUnreadable(f"key {row.key_id} cannot be unsealed") from exc
        private = Ed25519PrivateKey.from_private_bytes(raw)
        self._unsealed[row.key_id] = private
        return private
