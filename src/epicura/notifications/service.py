"""Notification rules: who is told what, when, and on which channel.

`notify()` is the one entry point: it writes the inbox entry (one per collapse key, so a repeat
of the same thing is one entry), queues one push job per token of the user unless an opt-out or
quiet hours say otherwise (safety alerts and security events ignore both), and records the
`notification` live event on the user's channel — all in the caller's transaction.

Triggers: the event outbox's `session.awaiting_user`, `session.finished` and raised `alert` rows
on `user:` channels (`on_outbox_rows`, run inside the relay's transaction, so a relay that runs
twice has one effect), the auth module's security events (`notify_security`), the presence sweep
(`notify_offline_during_session`) and, for the OTA work, `notify_firmware`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.auth import service as auth_service
from epicura.auth.models import User
from epicura.kit import clock, jobs
from epicura.kit.errors import NotFound
from epicura.kit.runtime import Runtime
from epicura.notifications import repository, rules, texts
from epicura.notifications.models import Notification, NotificationPreference, PushToken
from epicura.notifications.schemas import (
    ApnsTokenIn,
    Categories,
    FcmTokenIn,
    NotificationOut,
    PreferencesIn,
    PreferencesOut,
    QuietHoursOut,
)
from epicura.realtime import outbox

log = structlog.get_logger("epicura.notifications")

PUSH_JOB = "notifications.push"
PUSH_MAX_ATTEMPTS = 6
MAX_TOKENS_PER_USER = 20
TOKEN_UNUSED_DAYS = 60
NOTIFICATION_EVENT = "notification"
_WAKE_PENDING = "notifications_wake_pending"
_RUNTIME_KEY = "runtime"  # what appliances.library.install puts in session.info


# --- the one entry point -------------------------------------------------------------------

async def notify(session: AsyncSession, user_id: uuid.UUID, kind: str, params: dict[str, Any],
                 *, collapse_key: str, now: datetime | None = None) -> uuid.UUID | None:
    """Tell `user_id` about `kind`; the new inbox entry's id, or None when it was a repeat (same
    collapse key) or the user is gone."""
    now = now or clock.utcnow()
    try:
        user = await auth_service.get_user(session, user_id)
    except NotFound:
        return None
    if not user.is_active or user.deleted_at is not None:
        return None
    category = rules.KIND_CATEGORY[kind]
    urgent = rules.is_urgent(kind, params)
    prefs = await repository.preferences(session, user_id)
    tokens = await repository.tokens_of(session, user_id)
    push, delay_s = _push_plan(user, prefs, category, urgent, bool(tokens), now)
    title, body = texts.render(kind, params, user.locale)
    notification_id = await repository.add_notification(session, {
        "user_id": user_id, "kind": kind, "category": category, "collapse_key": collapse_key[:200],
        "urgent": urgent, "title": title, "body": body, "params": params, "push": push,
        "created_at": now, "read_at": None,
    })
    if notification_id is None:
        return None  # the same thing again: collapsed into the entry that exists
    if push in (rules.PUSH_QUEUED, rules.PUSH_HELD):
        for token in tokens:
            # Keyed per (notification, token): whatever produces it twice, one send.
            await jobs.add_once(session, PUSH_JOB,
                                {"notification_id": str(notification_id),
                                 "token_id": str(token.id)},
                                key=f"push:{notification_id}:{token.id}", delay_s=delay_s,
                                max_attempts=PUSH_MAX_ATTEMPTS)
    item = NotificationOut(id=notification_id, kind=kind, category=category, urgent=urgent,
                           title=title, body=body, params=params, created_at=now, read_at=None)
    outbox.record(session, user_channel(user_id), NOTIFICATION_EVENT, item.model_dump(mode="json"))
    _wake_after_commit(session)
    log.info("notification", kind=kind, user_id=str(user_id), push=push, urgent=urgent)
    return notification_id


def _push_plan(user: User, prefs: NotificationPreference | None, category: str, urgent: bool,
               has_tokens: bool, now: datetime) -> tuple[str, float]:
    """(push state, delay in seconds)."""
    if not has_tokens:
        return rules.PUSH_NONE, 0.0
    if urgent or prefs is None:
        return rules.PUSH_QUEUED, 0.0
    if not prefs.categories.get(category, True):
        return rules.PUSH_OFF, 0.0
    quiet = rules.QuietHours.parse(prefs.quiet_start, prefs.quiet_end,
                                   prefs.timezone or user.timezone)
    ends = quiet.ends_after(now) if quiet is not None else None
    if ends is not None:
        return rules.PUSH_HELD, (ends - now).total_seconds()
    return rules.PUSH_QUEUED, 0.0


def user_channel(user_id: uuid.UUID) -> str:
    return f"user:{user_id}"


def _wake_after_commit(session: AsyncSession) -> None:
    """Once the transaction commits, wake this process's job runner and outbox relay (when the
    session knows its runtime); otherwise their next poll picks the work up."""
    rt = session.info.get(_RUNTIME_KEY)
    if not isinstance(rt, Runtime) or session.info.get(_WAKE_PENDING):
        return
    session.info[_WAKE_PENDING] = True

    def wake(_session: Any) -> None:
        session.info.pop(_WAKE_PENDING, None)
        rt.jobs.wakeup.set()
        outbox.wake(rt)

    event.listen(session.sync_session, "after_commit", wake, once=True)


# --- triggers --------------------------------------------------------------------------------

FINISHED_KINDS = {"completed": "session_completed", "aborted": "session_aborted",
                  "failed": "session_failed"}


async def on_outbox_rows(session: AsyncSession, rows: Sequence[outbox.OutboxEvent]) -> None:
    """The relay's consumer: outbox rows on `user:` channels that call for a notification.
    Rows on other channels (the same alert on `appliance:`) and `notification` rows (our own)
    are ignored."""
    for row in rows:
        if not row.channel.startswith("user:"):
            continue
        try:
            user_id = uuid.UUID(row.channel.removeprefix("user:"))
        except ValueError:
            continue
        trigger = _trigger_of(row.type, row.data)
        if trigger is None:
            continue
        kind, params, collapse_key = trigger
        await notify(session, user_id, kind, params, collapse_key=collapse_key)


def _trigger_of(event_type: str, data: dict[str, Any]) -> tuple[str, dict[str, Any], str] | None:
    """(kind, params, collapse key) of an outbox event, or None when it tells nobody."""
    if event_type == "session.awaiting_user":
        sid, step = data.get("session_id"), data.get("step_index")
        params = {"session_id": sid, "step_index": step, "prompt": data.get("prompt")}
        return "awaiting_user", params, f"session:{sid}:step:{step}"
    if event_type == "session.finished":
        kind = FINISHED_KINDS.get(str(data.get("status")))
        if kind is None:
            return None
        sid = data.get("session_id")
        return kind, {"session_id": sid, "status": data.get("status")}, f"session:{sid}:finished"
    if event_type == "alert" and data.get("state", "raised") == "raised":
        params = {key: data.get(key) for key in ("alert_id", "appliance_id", "code", "severity")}
        return "alert", params, f"alert:{data.get('alert_id')}"
    return None


async def notify_security(session: AsyncSession, user_id: uuid.UUID, what: str,
                          ref: uuid.UUID | str | None = None) -> None:
    """A security event (`token_reuse`, `password_changed`): urgent, never muted. `ref` makes
    each occurrence its own entry (the login session, or a fresh id)."""
    kind = f"security_{what}"
    if kind not in rules.KIND_CATEGORY:
        raise ValueError(f"unknown security event {what!r}")
    key = f"security:{what}:{ref or uuid.uuid4()}"
    await notify(session, user_id, kind, {}, collapse_key=key)


async def appliances_went_offline(session: AsyncSession, appliance_ids: Sequence[uuid.UUID],
                                  at: datetime) -> None:
    """The presence handling's hook (a last will, a shutdown, the inactivity sweep): the owner
    of each session still live on these appliances is told."""
    from epicura.sessions import service as sessions_service

    for session_id, user_id, appliance_id in await sessions_service.live_on_appliances(
            session, appliance_ids):
        if user_id is not None:
            await notify_offline_during_session(session, user_id, appliance_id, session_id, at)


async def notify_offline_during_session(session: AsyncSession, user_id: uuid.UUID,
                                        appliance_id: uuid.UUID, session_id: uuid.UUID,
                                        went_offline_at: datetime) -> None:
    """The appliance dropped off while cooking; one entry per outage (its moment)."""
    params = {"appliance_id": str(appliance_id), "session_id": str(session_id)}
    key = f"offline:{session_id}:{int(went_offline_at.timestamp())}"
    await notify(session, user_id, "appliance_offline", params, collapse_key=key)


async def notify_firmware(session: AsyncSession, user_id: uuid.UUID, appliance_id: uuid.UUID,
                          outcome: str, version: str, rollout_id: uuid.UUID | None = None) -> None:
    """For the OTA work: `outcome` is `available`, `installed` or `failed`."""
    kind = f"firmware_{outcome}"
    if kind not in rules.KIND_CATEGORY:
        raise ValueError(f"unknown firmware outcome {outcome!r}")
    params = {"appliance_id": str(appliance_id), "version": version}
    key = f"firmware:{appliance_id}:{version}:{outcome}:{rollout_id or ''}"
    await notify(session, user_id, kind, params, collapse_key=key)


# --- push tokens -----------------------------------------------------------------------------

async def register_token(session: AsyncSession, user: User,
                         body: FcmTokenIn | ApnsTokenIn) -> tuple[PushToken, bool]:
    """(token, created): created when it is new to this user (new, or moved from another)."""
    now = clock.utcnow()
    previous_owner = await repository.token_owner(session, body.platform, body.token)
    row = await repository.upsert_token(session, user.id, body.platform, body.token,
                                        body.app_version, body.locale, now)
    if previous_owner != user.id:
        await repository.delete_tokens_beyond(session, user.id, MAX_TOKENS_PER_USER)
    return row, previous_owner != user.id


async def delete_token(session: AsyncSession, user: User, token_id: uuid.UUID) -> None:
    if not await repository.delete_token(session, token_id, user.id):
        raise NotFound()


async def tokens_of(session: AsyncSession, user: User) -> Sequence[PushToken]:
    return await repository.tokens_of(session, user.id)


async def prune_tokens(session: AsyncSession, now: datetime | None = None) -> int:
    """Tokens unused for 60 days."""
    seen_before = (now or clock.utcnow()) - timedelta(days=TOKEN_UNUSED_DAYS)
    return await repository.prune_tokens(session, seen_before)


# --- preferences -----------------------------------------------------------------------------

async def get_preferences(session: AsyncSession, user: User) -> PreferencesOut:
    row = await repository.preferences(session, user.id)
    if row is None:
        return PreferencesOut(categories=Categories(), quiet_hours=None)
    known = {name: bool(row.categories.get(name, True)) for name in rules.OPTIONAL_CATEGORIES}
    quiet = None
    if row.quiet_start and row.quiet_end:
        quiet = QuietHoursOut(start=row.quiet_start, end=row.quiet_end,
                              timezone=row.timezone or user.timezone)
    return PreferencesOut(categories=Categories(**known), quiet_hours=quiet)


async def put_preferences(session: AsyncSession, user: User, body: PreferencesIn) -> PreferencesOut:
    quiet = body.quiet_hours
    if quiet is not None and quiet.start == quiet.end:
        quiet = None  # an empty window
    await repository.save_preferences(session, user.id, {
        "categories": body.categories.model_dump(),
        "quiet_start": quiet.start if quiet else None,
        "quiet_end": quiet.end if quiet else None,
        "timezone": quiet.timezone if quiet else None,
    }, clock.utcnow())
    return await get_preferences(session, user)


# --- inbox -----------------------------------------------------------------------------------

async def inbox(session: AsyncSession, user: User, *, unread: bool | None,
                after: tuple[datetime, uuid.UUID] | None, limit: int) -> Sequence[Notification]:
    return await repository.inbox(session, user.id, unread=unread, after=after, limit=limit)


async def mark_read(session: AsyncSession, user: User, notification_id: uuid.UUID) -> None:
    found = await repository.notification(session, notification_id)
    if found is None or found.user_id != user.id:
        raise NotFound()
    await repository.mark_read(session, user.id, clock.utcnow(), notification_id)


async def mark_all_read(session: AsyncSession, user: User) -> int:
    return await repository.mark_read(session, user.id, clock.utcnow())


async def forget_user(session: AsyncSession, user_id: uuid.UUID) -> None:
    """An erased account: its tokens, inbox and preferences go."""
    await repository.forget_user(session, user_id)


def install(rt: Runtime) -> None:
    """An erased account's tokens, inbox and preferences go with it."""
    hooks = rt.extras.setdefault("account_deleted_hooks", [])
    if forget_user not in hooks:
        hooks.append(forget_user)


# The relay imports this module before its first run (`outbox.load_consumers`), so no relay in
# any process publishes a trigger without its notification.
outbox.on_relay(on_outbox_rows)
