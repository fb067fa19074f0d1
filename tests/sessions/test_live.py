"""Live events of sessions: what reaches the session, appliance and user channels, and the
must-not-lose ones written to the event outbox in the transaction that causes them."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from epicura.bridge import ingest
from epicura.kit import clock
from epicura.realtime.outbox import OutboxEvent
from epicura.sessions.models import CookingSession
from tests.sessions.support import Heard, cook, event, message, send
from tests.support import Service

pytestmark = pytest.mark.anyio


async def test_session_events_reach_their_channels(api: Service) -> None:
    rt = api.runtime
    await rt.bus.ready.wait()
    heard = Heard(api)
    c = await cook(api)
    sid = (await c.new_session())["id"]
    on_session, on_appliance, on_user = (f"session:{sid}", f"appliance:{c.appliance_id}",
                                         f"user:{c.user_id}")
    (planned,) = await heard.wait_for("session.updated", on_appliance)
    assert planned["status"] == "planned" and planned["remaining_s"] == 965
    outcome = await send(api, c.appliance_id, event(sid, 1, "started"),
                         event(sid, 2, "step_started", step_index=0))
    await ingest.publish_events(rt, outcome)  # what the bridge does after the commit
    updates = await heard.wait_for("session.updated", on_session, 2)
    assert updates[-1] == {"session_id": sid, "status": "running", "step_index": 0,
                           "step_title": "Chop", "step_remaining_s": 5, "remaining_s": 965}
    await heard.wait_for("session.updated", on_appliance, 2)
    outcome = await send(api, c.appliance_id, event(sid, 3, "awaiting_user", step_index=1))
    await ingest.publish_events(rt, outcome)
    for channel in (on_session, on_user):  # durable: relayed from the outbox
        (awaited,) = await heard.wait_for("session.awaiting_user", channel)
        assert awaited == {"session_id": sid, "step_index": 1, "prompt": "Add the tomatoes"}
    outcome = await send(api, c.appliance_id, event(sid, 4, "user_acknowledged"),
                         event(sid, 5, "completed"))
    await ingest.publish_events(rt, outcome)
    for channel in (on_session, on_user):
        (done,) = await heard.wait_for("session.finished", channel)
        assert done["session_id"] == sid and done["status"] == "completed"
        assert done["summary"]["source"] == "appliance"
    final = await heard.wait_for("session.updated", on_appliance, 6)
    assert final[-1] == {"session_id": sid, "status": "completed", "step_index": 1,
                         "step_title": "Add tomatoes", "step_remaining_s": 0, "remaining_s": 0}
    held = [payload for channel, payload in heard.seen if channel == on_session]
    assert all("id" in payload for payload in held)  # held events carry their channel id
    assert not heard.of("session.awaiting_user", on_appliance)


async def test_must_not_lose_events_are_in_the_outbox_of_the_same_transaction(
    svc: Service,
) -> None:
    rt = svc.runtime
    c = await cook(svc)
    sid = (await c.new_session())["id"]
    await send(svc, c.appliance_id, event(sid, 1, "started"))
    batch = [message(c.appliance_id, event(sid, 2, "awaiting_user", step_index=1,
                                           data={"prompt": "Add the onions"}))]
    with pytest.raises(RuntimeError):
        async with rt.db.sessions() as db, db.begin():
            await ingest.ingest(rt, db, batch, clock.utcnow())
            rows = (await db.scalars(select(OutboxEvent).where(
                OutboxEvent.channel.in_([f"session:{sid}", f"user:{c.user_id}"])))).all()
            assert sorted((row.channel, row.type) for row in rows) == [
                (f"session:{sid}", "session.awaiting_user"),
                (f"user:{c.user_id}", "session.awaiting_user")]
            assert rows[0].data["prompt"] == "Add the onions"
            changed = await db.get(CookingSession, uuid.UUID(sid))
            assert changed is not None and changed.status == "awaiting_user"
            raise RuntimeError("roll the batch back")
    async with rt.db.sessions() as db:
        assert (await db.scalars(select(OutboxEvent).where(
            OutboxEvent.channel == f"session:{sid}"))).all() == []
        row = await db.get(CookingSession, uuid.UUID(sid))
        assert row is not None and row.status == "running"  # nothing of it stayed
