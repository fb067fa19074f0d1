"""The admin portal's cookie sessions and CSRF tokens.

The cookie holds an opaque random id; Redis (fakeredis in the embedded default) holds, under a
keyed digest of it, who signed in, the login session their sign-in started (so revoking the
user's sessions or disabling the account ends the portal session too), the session's CSRF token
and when it began. The key expires after `IDLE` without a request; a session older than
`ABSOLUTE` is refused whatever its activity. Nothing in the cookie is meaningful without the
store: an API access token (or anything else) presented as the cookie finds no record.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import orjson

from epicura.kit import clock
from epicura.kit.runtime import Runtime
from epicura.kit.security import constant_time_equals, new_opaque_token, timestamp, token_digest

COOKIE = "epicura_portal"
LOGIN_COOKIE = "epicura_portal_login"  # the sign-in form's double-submit CSRF cookie
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=12)
LOGIN_FORM_TTL = timedelta(hours=1)


@dataclass(frozen=True)
class PortalSession:
    key: str
    user_id: uuid.UUID
    login_session_id: uuid.UUID
    csrf: str
    started_at: int  # epoch seconds


def _key(rt: Runtime, raw: str) -> str:
    return rt.keys("portal", "session", token_digest(raw, rt.refresh_key))


async def create(rt: Runtime, user_id: uuid.UUID, login_session_id: uuid.UUID) -> str:
    """A new session; returns the cookie value (never stored as such)."""
    raw = new_opaque_token(32)
    record = {"u": str(user_id), "s": str(login_session_id), "c": new_opaque_token(32),
              "t": timestamp(clock.utcnow())}
    await rt.redis.set(_key(rt, raw), orjson.dumps(record), ex=int(IDLE.total_seconds()))
    return raw


async def load(rt: Runtime, raw: str | None) -> PortalSession | None:
    """The live session behind a cookie, its idle timer restarted; None when unknown, idle too
    long or past its absolute lifetime."""
    if not raw or len(raw) > 128:
        return None
    key = _key(rt, raw)
    stored = await rt.redis.get(key)
    if stored is None:
        return None
    try:
        record = orjson.loads(stored)
        found = PortalSession(key=key, user_id=uuid.UUID(record["u"]),
                              login_session_id=uuid.UUID(record["s"]), csrf=str(record["c"]),
                              started_at=int(record["t"]))
    except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
        await rt.redis.delete(key)
        return None
    if timestamp(clock.utcnow()) - found.started_at >= ABSOLUTE.total_seconds():
        await rt.redis.delete(key)
        return None
    await rt.redis.expire(key, int(IDLE.total_seconds()))
    return found


async def end(rt: Runtime, found: PortalSession) -> None:
    await rt.redis.delete(found.key)


def csrf_matches(expected: str | None, presented: str | None) -> bool:
    return bool(expected and presented) and constant_time_equals(str(expected), str(presented))
