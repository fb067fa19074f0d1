"""Release-signing public keys: the build system's Ed25519 keys the server checks uploads against.

Several keys may be active at once (a rotation publishes the new key before the build system
signs with it); a retired key verifies no new upload but what it signed stays released. The
private keys never reach the server.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.kit import audit, clock
from epicura.kit.errors import Conflict, NotFound
from epicura.kit.signing import key_id_of, unb64
from epicura.ota.models import KEY_ACTIVE, KEY_RETIRED, ReleaseKey


class UnknownReleaseKey(NotFound):
    code = "unknown_release_key"
    title = "No such release key"


class ReleaseKeyRetired(Conflict):
    code = "release_key_retired"
    title = "This release key was retired; a retired key is never trusted again"


def _audit(session: AsyncSession, action: str, key_id: str) -> None:
    audit.record(session, action, actor_type="system", target_type="release_key",
                 target_id=key_id)


async def add(session: AsyncSession, public_key_b64: str, name: str | None = None) -> ReleaseKey:
    """Trust a public key (base64 of its raw 32 bytes); adding it again changes nothing."""
    key_id = key_id_of(unb64(public_key_b64))
    row = await session.get(ReleaseKey, key_id)
    if row is not None:
        if row.status == KEY_RETIRED:
            raise ReleaseKeyRetired()
        return row
    row = ReleaseKey(key_id=key_id, public_key=public_key_b64, name=name, status=KEY_ACTIVE,
                     created_at=clock.utcnow())
    session.add(row)
    await session.flush()
    _audit(session, "release_key.added", key_id)
    return row


async def retire(session: AsyncSession, key_id: str) -> ReleaseKey:
    row = await session.get(ReleaseKey, key_id, with_for_update=True)
    if row is None:
        raise UnknownReleaseKey(f"No release key {key_id!r}")
    if row.status != KEY_RETIRED:
        row.status, row.retired_at = KEY_RETIRED, clock.utcnow()
        await session.flush()
        _audit(session, "release_key.retired", key_id)
    return row


async def all_keys(session: AsyncSession) -> Sequence[ReleaseKey]:
    return (await session.scalars(select(ReleaseKey).order_by(ReleaseKey.created_at))).all()


async def trusted(session: AsyncSession, key_id: str) -> ReleaseKey | None:
    """The active key `key_id`, or None (unknown or retired)."""
    row = await session.get(ReleaseKey, key_id)
    return row if row is not None and row.status == KEY_ACTIVE else None
