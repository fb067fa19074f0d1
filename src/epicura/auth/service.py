"""The rules of accounts and sign-in. Functions take the request's session and the runtime;
they flush, never commit (the request boundary commits)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.auth import repository, tokens
from epicura.auth.emails import queue_email
from epicura.auth.models import (
    PURPOSE_RESET_PASSWORD,
    PURPOSE_VERIFY_EMAIL,
    ROLE_ADMIN,
    ROLE_USER,
    EmailToken,
    LoginSession,
    User,
)
from epicura.auth.revocation import RevocationSet
from epicura.auth.throttle import LoginThrottle
from epicura.kit import audit, clock, metrics
from epicura.kit.errors import Conflict, NotFound, ProblemError, RateLimited
from epicura.kit.runtime import Runtime
from epicura.kit.security import common_passwords, new_opaque_token, token_digest

log = structlog.get_logger("epicura.auth")

VERIFY_TTL = timedelta(hours=24)
RESET_TTL = timedelta(minutes=30)
RESET_PER_ACCOUNT = "3/hour"
RESET_PER_IP = "10/hour"
REVOCATION_REBUILD_JOB = "auth.revocation.rebuild"
RESET_REQUEST_JOB = "auth.password_reset.request"
REGISTERED_DETAIL = "If the address can be used, a confirmation e-mail is on its way."
FORGOT_DETAIL = "If an account uses this address, a reset link is on its way."


class InvalidCredentials(ProblemError):
    status = 401
    code = "invalid_credentials"
    title = "The e-mail or password is wrong"
    keeps_changes = True


class WrongPassword(ProblemError):
    status = 403
    code = "invalid_password"
    title = "The current password is wrong"
    keeps_changes = True


class PasswordTooCommon(ProblemError):
    status = 422
    code = "password_too_common"
    title = "This password is too common; choose another"


class EmailTokenInvalid(ProblemError):
    status = 410
    code = "token_expired_or_used"
    title = "This link has expired or was already used"


class CannotChangeOwnAccount(Conflict):
    code = "cannot_modify_self"
    title = "Admins cannot demote or disable themselves"


def normalise_email(email: str) -> str:
    return email.strip().lower()


def check_password_policy(password: str) -> None:
    if password.lower() in common_passwords():
        raise PasswordTooCommon()


def services(rt: Runtime) -> tuple[LoginThrottle, RevocationSet]:
    throttle = rt.extras.get("login_throttle")
    revocations = rt.extras.get("revocations")
    if throttle is None or revocations is None:
        throttle = LoginThrottle(rt.redis, rt.keys, rt.limiter, rt.settings.login_ip_per_minute)
        ttl = rt.settings.access_token_ttl_s + rt.settings.jwt_leeway_s + 60
        revocations = RevocationSet(rt.redis, rt.keys, rt.db, ttl)
        rt.extras["login_throttle"], rt.extras["revocations"] = throttle, revocations
    return throttle, revocations


def revocations(rt: Runtime) -> RevocationSet:
    return services(rt)[1]


# --- registration and e-mail verification ------------------------------------------------


async def register(
    rt: Runtime,
    session: AsyncSession,
    *,
    email: str,
    password: str,
    display_name: str,
    locale: str,
    timezone: str,
    ip: str,
) -> None:
    """Create the account and send a verification link; for a taken address create nothing and
    tell its owner. The caller cannot tell which happened (same reply, same work)."""
    check_password_policy(password)
    await rt.limiter.hit("10/hour", "register-ip", ip)
    email = normalise_email(email)
    password_hash = await rt.hasher.hash(password)  # hashed either way: equal timing
    existing = await repository.user_by_email(session, email)
    if existing is not None:
        if existing.is_active:
            queue_email(
                rt, session, to=email, template="already_registered", name=existing.display_name
            )
        audit.record(
            session,
            "auth.register.duplicate",
            actor_id=None,
            actor_type="system",
            target_type="user",
            target_id=existing.id,
            ip=ip,
        )
        return
    now = clock.utcnow()
    user = User(
        email=email,
        display_name=display_name,
        role=ROLE_USER,
        locale=locale,
        timezone=timezone,
        email_verified=False,
        is_active=True,
        password_hash=password_hash,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    await session.flush()
    await _send_verification(rt, session, user, now)
    audit.record(
        session, "auth.register", actor_id=user.id, target_type="user", target_id=user.id, ip=ip
    )


async def _issue_email_token(
    rt: Runtime, session: AsyncSession, user: User, purpose: str, ttl: timedelta, now: datetime
) -> str:
    await repository.retire_email_tokens(session, user.id, purpose, now)
    raw = new_opaque_token(32)
    session.add(
        EmailToken(
            user_id=user.id,
            purpose=purpose,
            token_hash=token_digest(raw, rt.refresh_key),
            created_at=now,
            expires_at=now + ttl,
        )
    )
    return raw


async def _send_verification(rt: Runtime, session: AsyncSession, user: User, now: datetime) -> None:
    raw = await _issue_email_token(rt, session, user, PURPOSE_VERIFY_EMAIL, VERIFY_TTL, now)
    queue_email(
        rt,
        session,
        to=user.email,
        template="verify_email",
        name=user.display_name,
        link_path="/verify-email",
        token=raw,
    )


async def resend_verification(rt: Runtime, session: AsyncSession, user: User) -> None:
    await rt.limiter.hit("3/hour", "verify-resend", str(user.id))
    if not user.email_verified:
        await _send_verification(rt, session, user, clock.utcnow())


async def _consume_email_token(rt: Runtime, session: AsyncSession, raw: str, purpose: str) -> User:
    now = clock.utcnow()
    row = await repository.email_token_by_hash(session, token_digest(raw, rt.refresh_key))
    if row is None or row.purpose != purpose or row.used_at is not None or row.expires_at <= now:
        raise EmailTokenInvalid()
    row.used_at = now
    user = await repository.user_by_id(session, row.user_id)
    if user is None or user.deleted_at is not None:
        raise EmailTokenInvalid()
    return user


async def verify_email(rt: Runtime, session: AsyncSession, raw: str, ip: str) -> None:
    user = await _consume_email_token(rt, session, raw, PURPOSE_VERIFY_EMAIL)
    user.email_verified = True
    user.updated_at = clock.utcnow()
    audit.record(
        session,
        "auth.email_verified",
        actor_id=user.id,
        target_type="user",
        target_id=user.id,
        ip=ip,
    )


# --- sign-in, refresh, sign-out ------------------------------------------------------------


async def login(
    rt: Runtime,
    session: AsyncSession,
    *,
    email: str,
    password: str,
    session_name: str | None,
    ip: str,
    user_agent: str | None,
) -> tokens.IssuedTokens:
    throttle, _ = services(rt)
    email = normalise_email(email)
    try:
        await throttle.check(email, ip)
    except RateLimited:
        metrics.auth_events.labels("login_throttled").inc()
        raise
    user = await repository.user_by_email(session, email)
    matches, new_hash = await rt.hasher.verify(password, user.password_hash if user else None)
    if user is None or not matches or not user.is_active:
        await throttle.failed(email)
        metrics.auth_events.labels("login_failed").inc()
        audit.record(
            session,
            "auth.login.failed",
            actor_id=user.id if user else None,
            actor_type="user" if user else "system",
            target_type="user",
            target_id=user.id if user else None,
            ip=ip,
            email_sha256=hashlib.sha256(email.encode()).hexdigest()[:16],
        )
        raise InvalidCredentials()
    await throttle.clear(email)
    if new_hash is not None:
        user.password_hash = new_hash  # parameters rose since this hash was made
    issued = await tokens.start_family(
        rt, session, user, name=session_name or "Unnamed device", ip=ip, user_agent=user_agent
    )
    audit.record(
        session,
        "auth.login",
        actor_id=user.id,
        target_type="login_session",
        target_id=issued.session_id,
        ip=ip,
        rehashed=new_hash is not None,
    )
    metrics.auth_events.labels("login").inc()
    return issued


async def refresh(rt: Runtime, session: AsyncSession, raw: str, ip: str) -> tokens.IssuedTokens:
    rotation = await tokens.rotate(rt, session, raw)
    if rotation.tokens is not None:
        return rotation.tokens
    family = rotation.reused_family
    assert family is not None
    await _end_sessions(rt, session, family.user_id, "token_reused", only=family.id)
    user = await repository.user_by_id(session, family.user_id)
    if user is not None:
        queue_email(
            rt,
            session,
            to=user.email,
            template="token_reuse",
            name=user.display_name,
            session_name=family.name,
        )
        await _notify_security(session, user.id, "token_reuse", family.id)
    audit.record(
        session,
        "auth.refresh.reuse_detected",
        actor_id=family.user_id,
        target_type="login_session",
        target_id=family.id,
        ip=ip,
    )
    metrics.auth_events.labels("refresh_reuse").inc()
    raise tokens.TokenReused()


async def logout(rt: Runtime, session: AsyncSession, raw: str, ip: str) -> None:
    """End the login session the refresh token belongs to; unknown tokens change nothing."""
    row = await repository.refresh_token_by_hash(session, token_digest(raw, rt.refresh_key))
    if row is None:
        return
    family = await session.get(LoginSession, row.session_id)
    if family is None or family.revoked_at is not None:
        return
    await _end_sessions(rt, session, family.user_id, "logout", only=family.id)
    audit.record(
        session,
        "auth.logout",
        actor_id=family.user_id,
        target_type="login_session",
        target_id=family.id,
        ip=ip,
    )


async def _end_sessions(
    rt: Runtime,
    session: AsyncSession,
    user_id: uuid.UUID,
    reason: str,
    only: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    sids = await repository.revoke_login_sessions(session, user_id, clock.utcnow(), reason, only)
    if not await revocations(rt).add(sids):
        rt.jobs.enqueue(session, REVOCATION_REBUILD_JOB, {})
    return sids


async def end_all_sessions(
    rt: Runtime,
    session: AsyncSession,
    user_id: uuid.UUID,
    reason: str,
    *,
    actor_id: uuid.UUID | None = None,
    ip: str | None = None,
) -> int:
    sids = await _end_sessions(rt, session, user_id, reason)
    audit.record(
        session,
        f"auth.sessions_revoked.{reason}",
        actor_id=actor_id or user_id,
        actor_type="admin" if actor_id and actor_id != user_id else "user",
        target_type="user",
        target_id=user_id,
        ip=ip,
        sessions=len(sids),
    )
    return len(sids)


async def list_sessions(session: AsyncSession, user_id: uuid.UUID) -> Sequence[LoginSession]:
    return await repository.active_login_sessions(session, user_id, clock.utcnow())


async def revoke_session(
    rt: Runtime, session: AsyncSession, user_id: uuid.UUID, sid: uuid.UUID, ip: str
) -> None:
    if not await _end_sessions(rt, session, user_id, "revoked_by_user", only=sid):
        raise NotFound()
    audit.record(
        session,
        "auth.session_revoked",
        actor_id=user_id,
        target_type="login_session",
        target_id=sid,
        ip=ip,
    )


# --- passwords -----------------------------------------------------------------------------


async def forgot_password(rt: Runtime, session: AsyncSession, email: str, ip: str) -> None:
    """Always the same reply. Over 3 an hour per address or 10 per client, nothing is sent."""
    email = normalise_email(email)
    digest = hashlib.sha256(email.encode()).hexdigest()[:32]
    try:
        await rt.limiter.hit(RESET_PER_IP, "reset-ip", ip)
        await rt.limiter.hit(RESET_PER_ACCOUNT, "reset-account", digest)
    except RateLimited:
        metrics.auth_events.labels("reset_suppressed").inc()
        return
    # The lookup happens in a job: known and unknown addresses cost the request the same.
    rt.jobs.enqueue(session, RESET_REQUEST_JOB, {"ip": ip}, secrets={"email": email})


async def send_reset_link(rt: Runtime, session: AsyncSession, email: str, ip: str) -> None:
    """The reset job: issue a link to the account at this address, if there is one."""
    user = await repository.user_by_email(session, email)
    if user is None or not user.is_active:
        return
    raw = await _issue_email_token(
        rt, session, user, PURPOSE_RESET_PASSWORD, RESET_TTL, clock.utcnow()
    )
    queue_email(
        rt,
        session,
        to=user.email,
        template="reset_password",
        name=user.display_name,
        link_path="/reset-password",
        token=raw,
    )
    audit.record(
        session,
        "auth.password_reset.requested",
        actor_id=user.id,
        target_type="user",
        target_id=user.id,
        ip=ip,
    )


async def reset_password(
    rt: Runtime, session: AsyncSession, raw: str, new_password: str, ip: str
) -> None:
    check_password_policy(new_password)
    user = await _consume_email_token(rt, session, raw, PURPOSE_RESET_PASSWORD)
    await _set_password(rt, session, user, new_password)
    await end_all_sessions(rt, session, user.id, "password_reset", ip=ip)
    throttle, _ = services(rt)
    await throttle.clear(user.email)
    user.email_verified = True  # the link proved the address
    await _notify_security(session, user.id, "password_changed")
    audit.record(
        session,
        "auth.password_reset",
        actor_id=user.id,
        target_type="user",
        target_id=user.id,
        ip=ip,
    )


async def change_password(
    rt: Runtime, session: AsyncSession, user: User, current: str, new_password: str, ip: str
) -> None:
    await _require_password(rt, session, user, current, ip)
    check_password_policy(new_password)
    await _set_password(rt, session, user, new_password)
    await end_all_sessions(rt, session, user.id, "password_changed", ip=ip)
    queue_email(rt, session, to=user.email, template="password_changed", name=user.display_name)
    await _notify_security(session, user.id, "password_changed")
    audit.record(
        session,
        "auth.password_changed",
        actor_id=user.id,
        target_type="user",
        target_id=user.id,
        ip=ip,
    )


async def _notify_security(session: AsyncSession, user_id: uuid.UUID, what: str,
                           ref: uuid.UUID | None = None) -> None:
    """A push, inbox entry and live event for a security event (the notifications module;
    imported here, not at the top: it reads users through this module)."""
    from epicura.notifications import service as notifications_service

    await notifications_service.notify_security(session, user_id, what, ref)


async def _require_password(
    rt: Runtime, session: AsyncSession, user: User, password: str, ip: str
) -> None:
    await rt.limiter.hit("10/10minute", "password-check", str(user.id))
    matches, _ = await rt.hasher.verify(password, user.password_hash)
    if not matches:
        audit.record(
            session,
            "auth.password_check.failed",
            actor_id=user.id,
            target_type="user",
            target_id=user.id,
            ip=ip,
        )
        raise WrongPassword()


async def _set_password(rt: Runtime, session: AsyncSession, user: User, password: str) -> None:
    user.password_hash = await rt.hasher.hash(password)
    user.updated_at = clock.utcnow()


# --- the account ---------------------------------------------------------------------------


async def update_profile(session: AsyncSession, user: User, changes: dict[str, object]) -> User:
    for field, value in changes.items():
        setattr(user, field, value)
    user.updated_at = clock.utcnow()
    await session.flush()
    return user


async def delete_account(
    rt: Runtime, session: AsyncSession, user: User, password: str, ip: str
) -> None:
    """Erase personal data but keep the row, so anonymous statistics stay whole. Later modules
    (appliances, push tokens) hook their own clean-up on `account_deleted`."""
    await _require_password(rt, session, user, password, ip)
    await end_all_sessions(rt, session, user.id, "account_deleted", ip=ip)
    now = clock.utcnow()
    user.email = f"deleted-{user.id.hex}@deleted.invalid"
    user.display_name = "Deleted user"
    user.password_hash = None
    user.is_active = False
    user.email_verified = False
    user.deleted_at = user.updated_at = now
    for hook in rt.extras.get("account_deleted_hooks", []):
        await hook(session, user.id)
    audit.record(
        session,
        "auth.account_deleted",
        actor_id=user.id,
        target_type="user",
        target_id=user.id,
        ip=ip,
    )


# --- admin ---------------------------------------------------------------------------------


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await repository.user_by_id(session, user_id)
    if user is None:
        raise NotFound()
    return user


async def admin_update_user(
    rt: Runtime,
    session: AsyncSession,
    admin: User,
    user_id: uuid.UUID,
    role: str | None,
    is_active: bool | None,
    ip: str,
) -> User:
    user = await get_user(session, user_id)
    if user.id == admin.id and (role == ROLE_USER or is_active is False):
        raise CannotChangeOwnAccount()
    if role is not None and role != user.role:
        audit.record(
            session,
            "admin.user.role_changed",
            actor_id=admin.id,
            actor_type="admin",
            target_type="user",
            target_id=user.id,
            ip=ip,
            before=user.role,
            after=role,
        )
        user.role = role
        # Tokens carry the role: end the sessions so the next ones carry the new one.
        await end_all_sessions(rt, session, user.id, "role_changed", actor_id=admin.id, ip=ip)
    if is_active is not None and is_active != user.is_active:
        user.is_active = is_active
        action = "admin.user.enabled" if is_active else "admin.user.disabled"
        audit.record(
            session,
            action,
            actor_id=admin.id,
            actor_type="admin",
            target_type="user",
            target_id=user.id,
            ip=ip,
        )
        if not is_active:
            await end_all_sessions(rt, session, user.id, "user_disabled", actor_id=admin.id, ip=ip)
    user.updated_at = clock.utcnow()
    await session.flush()
    return user


async def create_admin(
    rt: Runtime, session: AsyncSession, email: str, password: str, display_name: str
) -> User:
    """For `epicura admin create`: a new admin, or an existing user promoted (password set)."""
    check_password_policy(password)
    email = normalise_email(email)
    now = clock.utcnow()
    user = await repository.user_by_email(session, email)
    if user is None:
        user = User(
            email=email,
            display_name=display_name,
            locale="en",
            timezone="UTC",
            email_verified=True,
            is_active=True,
            created_at=now,
            updated_at=now,
        )
        session.add(user)
    user.role = ROLE_ADMIN
    user.password_hash = await rt.hasher.hash(password)
    user.updated_at = now
    await session.flush()
    audit.record(
        session, "admin.user.created", actor_type="system", target_type="user", target_id=user.id
    )
    return user


async def search_users(
    session: AsyncSession,
    *,
    q: str | None,
    role: str | None,
    active: bool | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[User]:
    return await repository.search_users(
        session, q=q, role=role, active=active, after=after, limit=limit
    )


# --- the admin portal's cookie sessions ------------------------------------------------------


def is_admin(user: User) -> bool:
    return user.role == ROLE_ADMIN


async def login_session_owner(session: AsyncSession, sid: uuid.UUID) -> User | None:
    """The user a login session (as started by `login`) belongs to."""
    family = await session.get(LoginSession, sid)
    return None if family is None else await repository.user_by_id(session, family.user_id)


async def end_login_session(
    rt: Runtime, session: AsyncSession, user_id: uuid.UUID, sid: uuid.UUID, reason: str,
    ip: str | None,
) -> None:
    """End one login session (the portal's sign-out, or a refused non-admin's sign-in)."""
    await _end_sessions(rt, session, user_id, reason, only=sid)
    audit.record(session, "auth.logout", actor_id=user_id, target_type="login_session",
                 target_id=sid, ip=ip, reason=reason)


def access_token_for(rt: Runtime, user: User, sid: uuid.UUID) -> str:
    """A short-lived access token of an existing login session (the portal hands one to its
    pages for the WebSocket); it dies with the session like any other."""
    return tokens.issue_access_token(rt, user, sid, clock.utcnow())
