"""Pairing: the appliance shows a claim code, a signed-in user redeems it and becomes the owner.

A code is 8 Crockford base32 characters (40 bits), valid 10 minutes, single use, bound to the
appliance that asked for it, and stored only as a keyed hash: with 40 bits a plain hash of a
leaked table could be reversed by brute force, a keyed one cannot without the service's key.
There is no claim by serial or device id (a static identifier is no proof of possession).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.appliances import library, repository
from epicura.appliances.models import Appliance, ClaimCode
from epicura.auth.models import User
from epicura.kit import audit, clock, metrics
from epicura.kit.errors import Conflict, NotFound
from epicura.kit.runtime import Runtime

log = structlog.get_logger("epicura.appliances.pairing")

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
CODE_LENGTH = 8
CODE_TTL = timedelta(minutes=10)
QR_PREFIX = "epicura://claim/"
# Redemption attempts (successful ones count too: nobody pairs ten appliances in ten minutes).
CLAIMS_PER_USER = "10/10 minutes"
CLAIMS_PER_IP = "30/10 minutes"
CODES_PER_APPLIANCE = "30/hour"
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})


class ClaimCodeInvalid(NotFound):
    """Wrong, used, expired or superseded: one answer for all, so nothing is learnt."""

    code = "claim_code_invalid"
    title = "The claim code is not valid"


class AlreadyPaired(Conflict):
    code = "appliance_already_paired"
    title = "The appliance is paired; its owner must unpair it first"


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(text: str) -> str | None:
    """What a person types or a scanner reads (QR payload, lower case, dashes, O for 0) → the
    code, or None when it cannot be one."""
    text = text.strip()
    if text.lower().startswith(QR_PREFIX):
        text = text[len(QR_PREFIX):]
    code = text.upper().replace("-", "").replace(" ", "").translate(_LOOKALIKES)
    if len(code) != CODE_LENGTH or any(char not in ALPHABET for char in code):
        return None
    return code


def code_hash(rt: Runtime, code: str) -> str:
    key = hashlib.sha256(b"epicura-claim-code:" + rt.refresh_key).digest()
    return hmac.new(key, code.encode(), hashlib.sha256).hexdigest()


async def issue_code(rt: Runtime, session: AsyncSession,
                     appliance: Appliance) -> tuple[str, datetime]:
    """A fresh code for the appliance, superseding its unused ones; 409 while it has an owner
    (a code must not let a second user take a paired appliance)."""
    await rt.limiter.hit(CODES_PER_APPLIANCE, "claim-code", str(appliance.id))
    if appliance.owner_id is not None:
        raise AlreadyPaired()
    await repository.drop_open_codes(session, appliance.id)
    now = clock.utcnow()
    expires_at = now + CODE_TTL
    for _attempt in range(5):  # a hash collision with a stored (used or old) code: draw again
        code = new_code()
        try:
            async with session.begin_nested():
                session.add(ClaimCode(appliance_id=appliance.id, code_hash=code_hash(rt, code),
                                      expires_at=expires_at, created_at=now))
                await session.flush()
        except IntegrityError:
            continue
        return code, expires_at
    raise RuntimeError("could not draw an unused claim code")


async def claim(rt: Runtime, session: AsyncSession, user: User, claim_code: str,
                name: str | None, ip: str) -> Appliance:
    """Redeem a code: the caller becomes the owner. Throttled per user and per address before
    anything is looked up; exactly one of any number of concurrent redemptions wins."""
    await rt.limiter.hit(CLAIMS_PER_USER, "claim-user", str(user.id))
    await rt.limiter.hit(CLAIMS_PER_IP, "claim-ip", ip)
    code = normalise_code(claim_code)
    now = clock.utcnow()
    appliance_id = None if code is None else await repository.redeem_code(
        session, code_hash(rt, code), user.id, now)
    if appliance_id is None or not await repository.take_ownership(
            session, appliance_id, user.id, name, now):
        # Nothing was changed for good: the request's transaction rolls back on this error.
        metrics.auth_events.labels("claim_code_invalid").inc()
        log.info("claim_refused", user_id=str(user.id))
        raise ClaimCodeInvalid()
    appliance = await session.get(Appliance, appliance_id, populate_existing=True)
    assert appliance is not None
    if appliance.name is None:
        appliance.name = appliance.model
    audit.record(session, "appliance.claim", actor_id=user.id, target_type="appliance",
                 target_id=appliance.id, ip=ip, serial=appliance.serial)
    await session.flush()
    await library.owner_changed(session, appliance.id)  # the new owner's library, nudged now
    return appliance


def qr_payload(code: str) -> str:
    return QR_PREFIX + code
