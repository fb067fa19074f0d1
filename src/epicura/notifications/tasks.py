"""The push job (one per notification and token) and the token pruning.

A push job sends nothing when its notification was read meanwhile, when its token now belongs to
somebody else, or when it was held (quiet hours) past its time to live. A dead token is deleted
at its first failed send; 429/5xx honour `Retry-After` through the job runner's retry.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import structlog
from prometheus_client import Counter

from epicura.kit import clock, jobs, schedule
from epicura.kit.metrics import registry
from epicura.kit.runtime import Runtime
from epicura.notifications import providers, repository, rules, service, texts
from epicura.notifications.providers import PushMessage

log = structlog.get_logger("epicura.notifications.push")

PRUNE_EVERY_S = 6 * 3600
KEEP_SUCCEEDED_JOBS = timedelta(days=7)
SEND_TIMEOUT_S = 30.0

push_sends = Counter("epicura_push_sends_total", "Push sends by platform and outcome",
                     ("platform", "outcome"), registry=registry)


@jobs.handler(service.PUSH_JOB, timeout_s=SEND_TIMEOUT_S)
async def send_push(ctx: jobs.JobContext, payload: dict[str, Any]) -> None:
    rt: Runtime = ctx.extras["runtime"]
    notification_id = uuid.UUID(payload["notification_id"])
    token_id = uuid.UUID(payload["token_id"])
    async with rt.db.transaction() as session:
        notification = await repository.notification(session, notification_id)
        token = await repository.token_by_id(session, token_id)
    if notification is None or token is None or token.user_id != notification.user_id:
        return  # deleted, or the token moved to another user: not theirs to see
    now = clock.utcnow()
    if notification.read_at is not None:
        return  # already seen in the app
    age_s = (now - notification.created_at).total_seconds()
    ttl = rules.ttl_s(notification.kind)
    if age_s >= ttl:
        push_sends.labels(token.platform, "expired").inc()
        return  # held past its time (quiet hours): the inbox entry stays
    client = providers.for_runtime(rt).for_platform(token.platform)
    if client is None:
        push_sends.labels(token.platform, "unconfigured").inc()
        log.warning("push_provider_not_configured", platform=token.platform)
        return
    title, body = notification.title, notification.body
    if token.locale:  # the app's own language, when it told us
        title, body = texts.render(notification.kind, notification.params, token.locale)
    message = PushMessage(
        notification_id=str(notification.id), title=title, body=body,
        data=_data(notification.kind, notification.params, notification.id),
        collapse_key=notification.collapse_key,
        high_priority=rules.high_priority(notification.kind),
        ttl_s=max(1, int(ttl - age_s)), urgent=notification.urgent)
    result = await client.send(token.token, message)
    push_sends.labels(token.platform, result.outcome).inc()
    if result.outcome == "sent":
        return
    if result.outcome == "token_invalid":
        async with rt.db.transaction() as session:
            await repository.delete_token(session, token.id)
        log.info("push_token_deleted", platform=token.platform, reason=result.reason)
        return
    if result.outcome == "retry":
        raise jobs.RetryLater(result.retry_after_s or 0.0, result.reason)
    raise jobs.Permanent(result.reason)


def _data(kind: str, params: dict[str, Any], notification_id: uuid.UUID) -> dict[str, str]:
    """Ids and a deep link only (no personal data): strings, as FCM requires."""
    data = {"kind": kind, "link": f"epicura://notifications/{notification_id}"}
    for key in ("session_id", "appliance_id", "alert_id", "step_index"):
        value = params.get(key)
        if value is not None:
            data[key] = str(value)
    if params.get("session_id"):
        data["link"] = f"epicura://sessions/{params['session_id']}"
    return data


@schedule.every(PRUNE_EVERY_S, "notifications.prune_tokens")
async def prune_tokens(ctx: jobs.JobContext) -> None:
    """Tokens unused for 60 days go (an app that runs refreshes its token's last-seen time)."""
    async with ctx.db.transaction() as session:
        pruned = await service.prune_tokens(session)
    if pruned:
        log.info("push_tokens_pruned", count=pruned)


@schedule.every(PRUNE_EVERY_S, "jobs.prune_succeeded")
async def prune_succeeded_jobs(ctx: jobs.JobContext) -> None:
    """Succeeded jobs of every module a week after they ran (pushes are the bulk of them);
    failed and dead ones stay for the admin API."""
    cut = clock.utcnow() - KEEP_SUCCEEDED_JOBS
    while True:
        async with ctx.db.transaction() as session:
            pruned = await jobs.prune_succeeded(session, cut)
        if pruned < 5000:
            return
