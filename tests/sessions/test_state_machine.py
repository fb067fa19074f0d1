"""The session mirror through the ingest pipeline, on PostgreSQL and on the embedded default:
the state machine, duplicates, events out of order or late, terminal finality, remaining time."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from epicura.kit import clock
from tests.sessions.support import appliance_row, cook, event, logged, recipe_row, send, stored
from tests.support import Service

pytestmark = pytest.mark.anyio


async def test_a_session_follows_its_appliance_to_the_end(api: Service) -> None:
    c = await cook(api)
    with clock.frozen(clock.utcnow()):
        planned = await c.new_session()
        sid = planned["id"]
        assert planned["status"] == "planned" and planned["origin"] == "app"
        assert planned["recipe"] == {"id": str(c.recipe_id), "version": 1,
                                     "title": "Tomato soup", "step_count": 4}
        assert planned["remaining_s"] == 965 and planned["step_remaining_s"] is None
        await send(api, c.appliance_id, event(sid, 1, "started"),
                   event(sid, 2, "step_started", step_index=0))
        running = await c.get(sid)
        assert running["status"] == "running" and running["step_title"] == "Chop"
        assert (running["step_remaining_s"], running["remaining_s"]) == (5, 965)
        assert (await appliance_row(api, c.appliance_id)).current_session_id == uuid.UUID(sid)
        clock.advance(timedelta(seconds=3))
        assert (await c.get(sid))["step_remaining_s"] == 2
        await send(api, c.appliance_id, event(sid, 4, "awaiting_user", step_index=1))
        awaiting = await c.get(sid)
        assert awaiting["status"] == "awaiting_user" and awaiting["step_title"] == "Add tomatoes"
        assert awaiting["remaining_s"] == 960  # cook + blend
        # Seq 3 arrives after seq 4: logged, and the state does not go back.
        await send(api, c.appliance_id, event(sid, 3, "step_completed", step_index=0))
        assert (await c.get(sid))["status"] == "awaiting_user"
        await send(api, c.appliance_id, event(sid, 5, "user_acknowledged", step_index=1),
                   event(sid, 6, "step_started", step_index=2))
        clock.advance(timedelta(seconds=100))
        await send(api, c.appliance_id, event(sid, 7, "paused", step_index=2))
        clock.advance(timedelta(seconds=60))  # a pause does not count down
        paused = await c.get(sid)
        assert paused["status"] == "paused" and paused["step_remaining_s"] == 800
        await send(api, c.appliance_id, event(sid, 8, "resumed", step_index=2))
        clock.advance(timedelta(seconds=50))
        resumed = await c.get(sid)
        assert resumed["status"] == "running"
        assert (resumed["step_remaining_s"], resumed["remaining_s"]) == (750, 810)
        await send(api, c.appliance_id, event(sid, 9, "completed", step_index=3))
        done = await c.get(sid)
        assert done["status"] == "completed" and done["ended_at"] is not None
        assert (done["step_remaining_s"], done["remaining_s"]) == (0, 0)
        assert done["summary"]["duration_s"] == done["duration_s"] == 213
        # Terminal is final: a later event is logged, never applied.
        await send(api, c.appliance_id, event(sid, 10, "step_started", step_index=0))
        assert (await c.get(sid))["status"] == "completed"
    assert [seq for seq, _type in await logged(api, sid)] == list(range(1, 11))
    assert (await appliance_row(api, c.appliance_id)).current_session_id is None
    assert (await recipe_row(api, c.recipe_id)).cooked_count == 1


async def test_the_same_event_twice_is_stored_and_applied_once(api: Service) -> None:
    c = await cook(api)
    sid = (await c.new_session())["id"]
    first = event(sid, 1, "started")
    again = {**first, "id": str(uuid.uuid4())}  # a new message with the same (session, seq)
    await send(api, c.appliance_id, first)
    await send(api, c.appliance_id, again, event(sid, 2, "paused"))
    await send(api, c.appliance_id, first)  # the very same message redelivered
    assert await logged(api, sid) == [(1, "started"), (2, "paused")]
    row = await stored(api, sid)
    assert (row.status, row.last_seq) == ("paused", 2)
    # A different event under an existing seq is the same event: nothing moves.
    await send(api, c.appliance_id, event(sid, 2, "aborted"))
    assert (await stored(api, sid)).status == "paused"


async def test_a_pause_while_the_cook_is_awaited_resumes_to_waiting(api: Service) -> None:
    c = await cook(api)
    sid = (await c.new_session())["id"]
    await send(api, c.appliance_id, event(sid, 1, "started"),
               event(sid, 2, "awaiting_user", step_index=1), event(sid, 3, "paused"),
               event(sid, 4, "resumed"))
    assert (await c.get(sid))["status"] == "awaiting_user"
    await send(api, c.appliance_id, event(sid, 5, "user_acknowledged", step_index=1))
    assert (await c.get(sid))["status"] == "running"


async def test_out_of_order_terminal_and_late_lower_seq(api: Service) -> None:
    c = await cook(api)
    sid = (await c.new_session())["id"]
    # The final event first (two bridges split the stream), then the earlier ones.
    await send(api, c.appliance_id, event(sid, 5, "aborted", data={"reason": "lid"}))
    await send(api, c.appliance_id, event(sid, 1, "started"),
               event(sid, 2, "step_started", step_index=0))
    row = await stored(api, sid)
    assert (row.status, row.last_seq, row.step_index) == ("aborted", 5, None)
    assert row.started_at is not None  # a late `started` still says when it started
    assert (await recipe_row(api, c.recipe_id)).cooked_count == 0
