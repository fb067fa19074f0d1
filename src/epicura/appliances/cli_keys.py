"""`epicura keys …`: the Ed25519 keys that sign recipe bundles for appliances.

Rotation: `generate` (a `pending` key, published and endorsed by the active one), wait until
appliances have fetched it, `activate` it (the old key is retired and stays published), and
`retire` pending keys that are not wanted. Private keys are never printed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.config import Settings
from epicura.kit.errors import ProblemError
from epicura.kit.signing import KeyStore, SigningKeyRow

T = TypeVar("T")


def _run(work: Callable[[KeyStore, AsyncSession], Awaitable[T]]) -> T:
    async def run() -> T:
        from epicura.kit.db import Database
        from epicura.kit.logging import configure
        from epicura.migrate import upgrade_to_head

        settings = Settings()
        configure("WARNING")  # stdout is the command's output (export-public is JSON)
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(sys.stderr)
        if settings.embedded:
            await upgrade_to_head(settings)
        db = Database(settings.sqlalchemy_url, pool_size=1)
        store = KeyStore(settings.jwt_refresh_secret.get_secret_value().encode())
        try:
            async with db.transaction() as session:
                return await work(store, session)
        except ProblemError as exc:
            raise click.ClickException(exc.detail or exc.title) from exc
        finally:
            await db.dispose()

    return asyncio.run(run())


def _line(row: SigningKeyRow) -> str:
    when = (row.activated_at or row.created_at).isoformat(timespec="seconds")
    endorsed = f"  endorsed by {row.endorsed_by}" if row.endorsed_by else ""
    return f"{row.key_id}  {row.status:<8} {row.algorithm}  since {when}{endorsed}"


@click.group()
def keys() -> None:
    """Keys that sign recipe bundles for appliances (Ed25519)."""


@keys.command()
@click.option("--activate/--pending", "activate", default=None,
              help="Sign with the new key at once, or only publish it (default: activate "
                   "when no key is active, else pending).")
def generate(activate: bool | None) -> None:
    """Generate a key pair; the private key is stored sealed, never shown."""
    row = _run(lambda store, session: store.generate(session, activate=activate))
    click.echo(_line(row))
    if row.status != "active":
        click.echo(f"publish it to the fleet, then: epicura keys activate {row.key_id}")


@keys.command("list")
def list_keys() -> None:
    """Every key with its status (pending, active, retired)."""
    rows = _run(lambda store, session: store.keys(session))
    for row in rows:
        click.echo(_line(row))
    if not any(row.status == "active" for row in rows):
        click.echo("no active key: production refuses to sync until `epicura keys generate`",
                   err=True)


@keys.command()
@click.argument("key_id")
def activate(key_id: str) -> None:
    """Sign with KEY_ID from now on; the key active until now is retired."""
    click.echo(_line(_run(lambda store, session: store.activate(session, key_id))))


@keys.command()
@click.argument("key_id")
def retire(key_id: str) -> None:
    """Stop offering KEY_ID for activation (it stays published for old bundles)."""
    click.echo(_line(_run(lambda store, session: store.retire(session, key_id))))


@keys.command("export-public")
def export_public() -> None:
    """Print the public key set as JSON (what GET /device/signing-keys serves), e.g. to pin
    in firmware."""
    from epicura.appliances.sync_schemas import SigningKeyOut, SigningKeySet

    rows = _run(lambda store, session: store.keys(session))
    keyset = SigningKeySet(keys=[SigningKeyOut.model_validate(r, from_attributes=True)
                                 for r in rows])
    click.echo(json.dumps(keyset.model_dump(mode="json"), indent=2))
