"""Signing keys: one active key, rotation with endorsements, sealed private keys, and the
`epicura keys` commands (real processes, on PostgreSQL and on the embedded SQLite file)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from epicura.kit import signing
from epicura.kit.signing import KeyStore, SigningKeyRow
from tests.conftest import TEST_REFRESH_SECRET
from tests.e2e import process_env, run_cli
from tests.support import Service

pytestmark = pytest.mark.anyio
SECRET = TEST_REFRESH_SECRET.encode()


def test_signatures_verify_only_for_the_signed_bytes_and_key() -> None:
    one, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    public = signing.b64(one.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    signature = signing.Signer("k", one).sign(b"bundle bytes")
    assert len(base64.b64decode(signature)) == 64
    assert signing.verify(public, b"bundle bytes", signature)
    assert not signing.verify(public, b"bundle bytes!", signature)
    forged = signing.Signer("k", other).sign(b"bundle bytes")
    assert not signing.verify(public, b"bundle bytes", forged)
    assert not signing.verify(public, b"bundle bytes", "not base64 at all")
    assert not signing.verify("AAAA", b"bundle bytes", signature)
    assert "PrivateKey" not in repr(signing.Signer("k", one))


async def test_rotation_keeps_one_active_key_and_endorses_the_next(svc: Service) -> None:
    store = KeyStore(SECRET)
    async with svc.runtime.db.transaction() as session:
        first = await store.generate(session)  # no key yet: active at once
        second = await store.generate(session)  # one is active: pending, endorsed by it
        assert (first.status, second.status) == ("active", "pending")
        assert second.endorsed_by == first.key_id and second.endorsement is not None
        assert signing.verify(first.public_key,
                              signing.endorsement_message(second.key_id, second.public_key),
                              second.endorsement)
        assert first.key_id == signing.key_id_of(base64.b64decode(first.public_key))
        assert (await store.signer(session, create_if_missing=False)).key_id == first.key_id

        await store.activate(session, second.key_id)
        statuses = {row.key_id: row.status for row in await store.keys(session)}
        assert statuses == {first.key_id: "retired", second.key_id: "active"}
        assert (await store.signer(session, create_if_missing=False)).key_id == second.key_id
        with pytest.raises(signing.ActiveKeyCannotRetire):
            await store.retire(session, second.key_id)
        with pytest.raises(signing.UnknownSigningKey):
            await store.activate(session, "0" * 16)

    with pytest.raises(IntegrityError):  # the database itself refuses a second active key
        async with svc.runtime.db.transaction() as session:
            await session.execute(update(SigningKeyRow).values(status="active"))


async def test_private_keys_are_sealed_and_bound_to_their_secret(svc: Service) -> None:
    store = KeyStore(SECRET)
    async with svc.runtime.db.transaction() as session:
        row = await store.generate(session)
        signer = await store.signer(session, create_if_missing=False)
    raw = signer._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    async with svc.runtime.db.sessions() as session:
        stored = await session.get(SigningKeyRow, row.key_id)
    assert stored is not None
    for encoded in (raw.hex(), base64.b64encode(raw).decode(),
                    base64.urlsafe_b64encode(raw).decode()):
        assert encoded not in stored.private_key_sealed
    async with svc.runtime.db.sessions() as session:  # a fresh store unseals it from the table
        again = await KeyStore(SECRET).signer(session, create_if_missing=False)
        assert signing.verify(row.public_key, b"x", again.sign(b"x"))
        with pytest.raises(signing.SigningKeyUnreadable):
            await KeyStore(b"another secret" * 4).signer(session, create_if_missing=False)


async def test_no_key_is_made_unless_allowed(svc: Service) -> None:
    async with svc.runtime.db.transaction() as session:
        with pytest.raises(signing.SigningKeyMissing):
            await KeyStore(SECRET).signer(session, create_if_missing=False)
        made = await KeyStore(SECRET).signer(session, create_if_missing=True)
        again = await KeyStore(SECRET).signer(session, create_if_missing=True)
        assert again.key_id == made.key_id


# --- `epicura keys` --------------------------------------------------------------------------

async def test_keys_commands_on_postgres(svc: Service, pg_database: str, tmp_path: Path) -> None:
    env = process_env(DATABASE_URL=pg_database, JWT_REFRESH_SECRET=TEST_REFRESH_SECRET)

    async def keys(*args: str) -> str:
        result = await run_cli("keys", *args, cwd=tmp_path, env=env)
        assert result.returncode == 0, result.output
        return result.stdout

    listed = await run_cli("keys", "list", cwd=tmp_path, env=env)
    assert "no active key" in listed.stderr
    first = (await keys("generate")).split()[0]
    second_out = await keys("generate")
    second = second_out.split()[0]
    assert "pending" in second_out and f"epicura keys activate {second}" in second_out
    assert f"{first}  active" in await keys("list")
    await keys("activate", second)
    listing = await keys("list")
    assert f"{first}  retired" in listing and f"{second}  active" in listing
    refused = await run_cli("keys", "retire", second, cwd=tmp_path, env=env)
    assert refused.returncode != 0 and "activate another key first" in refused.output
    exported = json.loads(await keys("export-public"))
    assert [(k["key_id"], k["status"]) for k in exported["keys"]] == [
        (first, "retired"), (second, "active")]
    assert exported["keys"][1]["endorsed_by"] == first
    async with svc.runtime.db.sessions() as session:
        rows = (await session.scalars(select(SigningKeyRow))).all()
    for row in rows:  # nothing secret was printed
        assert row.private_key_sealed not in listing + json.dumps(exported)


async def test_keys_generate_on_the_embedded_default(tmp_path: Path) -> None:
    env = process_env(DATA_DIR=str(tmp_path / "data"))
    made = await run_cli("keys", "generate", cwd=tmp_path, env=env)
    assert made.returncode == 0, made.output
    listing = await run_cli("keys", "list", cwd=tmp_path, env=env)
    assert f"{made.stdout.split()[0]}  active" in listing.stdout
