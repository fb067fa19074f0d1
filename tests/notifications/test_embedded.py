"""The embedded default (SQLite, in-process Redis stand-in, jobs inside `serve`): the same outbox
consumer and push job deliver to the local providers with nobody running `run_jobs`."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from epicura.realtime import outbox
from tests.bridge.ingest_support import wait_until
from tests.conftest import base_settings
from tests.notifications.conftest import (
    APNS_TOKEN,
    FCM_TOKEN,
    Fakes,
    add_token,
    cook,
    inbox_rows,
    push_settings,
)
from tests.notifications.test_triggers import alert, awaiting
from tests.support import Mailbox, running, startup_tasks_done

pytestmark = pytest.mark.anyio


async def test_the_embedded_default_pushes_by_itself(
        tmp_path: Path, smtp: tuple[int, Mailbox], fakes: Fakes) -> None:
    settings = push_settings(base_settings(tmp_path, smtp[0], rate_limit_enabled=False), fakes)
    assert settings.embedded
    async with running(settings, smtp[1]) as svc:
        await startup_tasks_done(svc)
        ann = await cook(svc, "ann@example.com", locale="de")
        await add_token(svc, ann, "fcm", FCM_TOKEN)
        await add_token(svc, ann, "apns", APNS_TOKEN)
        async with svc.runtime.db.transaction() as session:
            for channel, event_type, data in (*awaiting(ann.id, str(uuid.uuid4()), 0),
                                              *alert(ann.id, "overtemp", "critical")):
                outbox.record(session, channel, event_type, data)
        outbox.wake(svc.runtime)

        async def delivered() -> bool:
            return len(fakes.fcm.sent) == 2 and len(fakes.apns.sent) == 2

        await wait_until(delivered, timeout_s=30, message="both pushes on both providers")
        assert len(await inbox_rows(svc, ann.id)) == 2
    assert {r.body["notification"]["title"] for r in fakes.fcm.sent} == {
        "Dein Epicura braucht dich", "Warnung: Überhitzung"}
