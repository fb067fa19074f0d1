"""The `notification` event on a real socket: a cook subscribed to `user` receives the inbox item
(after the session event that caused it), on PostgreSQL + Redis and on the embedded default."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from epicura.config import Settings
from epicura.realtime import outbox
from epicura.realtime.channels import parse_id
from tests.conftest import base_settings, truncate_tables
from tests.notifications.test_triggers import awaiting
from tests.realtime.ws_support import Served, authed, serving
from tests.support import API, Mailbox, bearer

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["postgres", "embedded"])
async def served(request: pytest.FixtureRequest, tmp_path: Path, smtp: tuple[int, Mailbox],
                 pg_settings: Settings, pg_database: str) -> AsyncIterator[Served]:
    if request.param == "postgres":
        async with serving(pg_settings, smtp[1]) as found:
            yield found
        await truncate_tables(await asyncpg.connect(pg_database))
    else:
        async with serving(base_settings(tmp_path, smtp[0]), smtp[1]) as found:
            yield found


async def test_the_cook_receives_the_notification_event(served: Served) -> None:
    user_id, tokens = await served.user("notified")
    async with authed(served, tokens) as ws:
        await ws.subscribe("user")
        async with served.runtime.db.transaction() as session:
            for channel, event_type, data in awaiting(user_id, str(uuid.uuid4()), 4):
                outbox.record(session, channel, event_type, data)
        outbox.wake(served.runtime)
        awaited = await ws.until(lambda f: f["type"] == "session.awaiting_user")
        note = await ws.until(lambda f: f["type"] == "notification")
    assert awaited["data"]["step_index"] == 4
    assert note["channel"] == "user" and parse_id(note["id"]) > parse_id(awaited["id"])
    item = note["data"]
    assert (item["kind"], item["title"], item["body"]) == (
        "awaiting_user", "Your Epicura needs you", "Step 5: Add the onions")
    inbox = (await served.svc.client.get(f"{API}/notifications",
                                         headers=bearer(tokens))).json()["items"]
    assert inbox == [item]  # the event carries exactly the inbox item
