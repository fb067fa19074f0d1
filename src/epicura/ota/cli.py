"""`epicura firmware …` (sign releases, offline, as the build system does) and
`epicura keys release …` (the release-signing public keys the server trusts)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.ota import release_signing as rs

T = TypeVar("T")


def _read_private(path: Path) -> Ed25519PrivateKey:
    try:
        return rs.load_private_key(path.read_bytes())
    except ValueError as exc:
        raise click.ClickException(f"{path}: not an Ed25519 private key ({exc})") from exc


@click.group()
def firmware() -> None:
    """Sign firmware releases (offline; the server only verifies)."""


@firmware.command()
@click.option("--out", "out", type=click.Path(path_type=Path), required=True,
              help="Where to write the private key (PKCS#8 PEM, mode 0600).")
def keygen(out: Path) -> None:
    """Make a release-signing key pair; prints the key id and the public key to register with
    `epicura keys release add`."""
    if out.exists():
        raise click.ClickException(f"{out} exists: refusing to overwrite a key")
    key = rs.generate_key()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as sink:
        sink.write(rs.private_pem(key))
    click.echo(f"key_id {rs.key_id(key)}")
    click.echo(f"public_key {rs.public_key_b64(key)}")


@firmware.command()
@click.argument("binary", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--version", "version", required=True, help="Semantic version, e.g. 1.5.0.")
@click.option("--channel", type=click.Choice(["stable", "beta", "dev"]), required=True)
@click.option("--hw-revision", "hw_revisions", multiple=True, required=True,
              help="A hardware revision it runs on (repeat for several).")
@click.option("--min-from", "min_from", default=None, help="Lowest version it updates from.")
@click.option("--notes", default="", help="Release notes.")
@click.option("--key", "key_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="The private key that will sign it (for its key id).")
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Write the manifest here (default: standard output).")
def manifest(binary: Path, version: str, channel: str, hw_revisions: tuple[str, ...],
             min_from: str | None, notes: str, key_path: Path, out: Path | None) -> None:
    """Write the manifest of BINARY (its size and SHA-256 computed by streaming it)."""
    from epicura.ota.manifest import ManifestError, parse_manifest

    data = rs.manifest_bytes(rs.describe_file(binary), version=version, channel=channel,
                             hw_revisions=list(hw_revisions), key=_read_private(key_path),
                             min_from_version=min_from, notes=notes)
    try:
        parse_manifest(data)  # what the server will accept
    except ManifestError as exc:
        raise click.ClickException(exc.reason) from exc
    if out is None:
        sys.stdout.buffer.write(data)
    else:
        out.write_bytes(data)


@firmware.command()
@click.argument("manifest_path", metavar="MANIFEST",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", "key_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="PKCS#8 PEM Ed25519 private key (or base64 of the raw seed).")
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Write the signature here (default: standard output).")
def sign(manifest_path: Path, key_path: Path, out: Path | None) -> None:
    """Sign MANIFEST's exact bytes: base64 Ed25519 signature, the upload's `signature` part."""
    signature = rs.sign(_read_private(key_path), manifest_path.read_bytes())
    if out is None:
        click.echo(signature)
    else:
        out.write_text(signature + "\n")


def _run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def run() -> T:
        from epicura.config import Settings
        from epicura.kit.db import Database
        from epicura.kit.errors import ProblemError
        from epicura.migrate import upgrade_to_head

        settings = Settings()
        if settings.embedded:
            await upgrade_to_head(settings)
        db = Database(settings.sqlalchemy_url, pool_size=1)
        try:
            async with db.transaction() as session:
                return await work(session)
        except ProblemError as exc:
            raise click.ClickException(exc.detail or exc.title) from exc
        finally:
            await db.dispose()

    return asyncio.run(run())


def _line(row: object) -> str:
    from epicura.ota.models import ReleaseKey

    assert isinstance(row, ReleaseKey)
    name = f"  {row.name}" if row.name else ""
    since = row.created_at.isoformat(timespec="seconds")
    return f"{row.key_id}  {row.status:<8} since {since}{name}"


@click.group("release")
def release_keys() -> None:
    """Public keys of the build system that sign firmware releases."""


@release_keys.command("add")
@click.argument("public_key_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", default=None, help="A label, e.g. the build system's name.")
def add_key(public_key_file: Path, name: str | None) -> None:
    """Trust PUBLIC_KEY_FILE (PEM or base64 of the raw 32 bytes) for release uploads."""
    from epicura.ota import keys

    try:
        public = rs.load_public_key(public_key_file.read_bytes())
    except ValueError as exc:
        raise click.ClickException(f"{public_key_file}: not an Ed25519 public key") from exc
    click.echo(_line(_run(lambda session: keys.add(session, public, name))))


@release_keys.command("list")
def list_keys() -> None:
    """Every release key and its status."""
    from epicura.ota import keys

    for row in _run(keys.all_keys):
        click.echo(_line(row))


@release_keys.command("retire")
@click.argument("key_id")
def retire_key(key_id: str) -> None:
    """Refuse new uploads signed by KEY_ID (what it signed stays released)."""
    from epicura.ota import keys

    click.echo(_line(_run(lambda session: keys.retire(session, key_id))))


@release_keys.command("export")
def export_keys() -> None:
    """The release keys as JSON (to pin in firmware)."""
    from epicura.ota import keys

    rows = _run(keys.all_keys)
    click.echo(json.dumps({"keys": [{"key_id": r.key_id, "public_key": r.public_key,
                                     "status": r.status} for r in rows]}, indent=2))
