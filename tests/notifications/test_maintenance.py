"""Housekeeping: tokens unused for 60 days are pruned (a token seen again is kept), succeeded jobs
go after a week (failed and dead stay), and an erased account takes its tokens, inbox and
preferences with it."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from epicura.app import job_context
from epicura.kit import clock, jobs
from epicura.notifications import service, tasks
from epicura.notifications.models import Notification, NotificationPreference, PushToken
from tests.notifications.conftest import APNS_TOKEN, FCM_TOKEN, add_token, cook
from tests.support import API, STRONG_PASSWORD, Service

pytestmark = pytest.mark.anyio


Owned = type[PushToken] | type[Notification] | type[NotificationPreference]


async def count(svc: Service, model: Owned, user_id: uuid.UUID) -> int:
    async with svc.runtime.db.sessions() as session:
        found = await session.scalar(select(func.count()).select_from(model).where(
            model.user_id == user_id))
        return int(found or 0)


async def test_tokens_unused_for_60_days_are_pruned(svc: Service) -> None:
    ann = await cook(svc, "ann@example.com")
    now = clock.utcnow()
    await add_token(svc, ann, "fcm", FCM_TOKEN)
    await add_token(svc, ann, "apns", APNS_TOKEN)
    with clock.frozen(now + timedelta(minutes=10)):
        await add_token(svc, ann, "apns", APNS_TOKEN)  # the app ran and registered again
    with clock.frozen(now + timedelta(days=60, minutes=5)):
        await tasks.prune_tokens(job_context(svc.runtime))
    left = (await svc.client.get(f"{API}/push/tokens", headers=ann.headers)).json()
    assert [t["platform"] for t in left] == ["apns"]


async def test_succeeded_jobs_go_after_a_week(svc: Service) -> None:
    async with svc.runtime.db.transaction() as session:
        await jobs.add_once(session, "notifications.push", {"notification_id": str(uuid.uuid4()),
                                                           "token_id": str(uuid.uuid4())},
                            key="test:old")
    await jobs.run_due(job_context(svc.runtime))  # nothing to send: succeeds
    async with svc.runtime.db.sessions() as session:
        job = await session.scalar(select(jobs.Job).where(jobs.Job.key == "test:old"))
    assert job is not None and job.state == jobs.SUCCEEDED and job.finished_at is not None
    with clock.frozen(job.finished_at + timedelta(days=6)):
        await tasks.prune_succeeded_jobs(job_context(svc.runtime))
        assert await jobs_with_key(svc, "test:old") == 1
    with clock.frozen(job.finished_at + timedelta(days=8)):
        await tasks.prune_succeeded_jobs(job_context(svc.runtime))
        assert await jobs_with_key(svc, "test:old") == 0


async def jobs_with_key(svc: Service, key: str) -> int:
    async with svc.runtime.db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(jobs.Job)
                                        .where(jobs.Job.key == key)) or 0)


async def test_an_erased_account_takes_its_tokens_inbox_and_preferences(svc: Service) -> None:
    ann = await cook(svc, "ann@example.com")
    await add_token(svc, ann, "fcm", FCM_TOKEN)
    assert (await svc.client.put(f"{API}/push/preferences", headers=ann.headers,
                                 json={"categories": {"firmware": False}})).status_code == 200
    async with svc.runtime.db.transaction() as session:
        await service.notify_firmware(session, ann.id, uuid.uuid4(), "available", "2.1.0")
    assert await count(svc, Notification, ann.id) == 1
    reply = await svc.client.request("DELETE", f"{API}/users/me", headers=ann.headers,
                                     json={"password": STRONG_PASSWORD})
    assert reply.status_code == 204, reply.text
    for model in (PushToken, Notification, NotificationPreference):
        assert await count(svc, model, ann.id) == 0, model
    # An erased user is told nothing any more.
    async with svc.runtime.db.transaction() as session:
        await service.notify_security(session, ann.id, "password_changed")
    assert await count(svc, Notification, ann.id) == 0
