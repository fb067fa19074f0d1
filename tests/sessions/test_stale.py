"""`stale`: a live session whose appliance has been silent for 90 s is shown stale, announced
stale once by the sweep, and back as soon as the appliance speaks again."""

from __future__ import annotations

from datetime import timedelta

import pytest

from epicura.bridge import ingest
from epicura.kit import clock
from epicura.sessions import tasks
from tests.sessions.support import Heard, cook, event, now_ms, send, telemetry
from tests.support import Service

pytestmark = pytest.mark.anyio


async def test_a_silent_session_reads_stale_until_the_appliance_speaks(api: Service) -> None:
    c = await cook(api)
    with clock.frozen(clock.utcnow()):
        sid = (await c.new_session())["id"]
        await send(api, c.appliance_id, event(sid, 1, "started"))
        clock.advance(timedelta(seconds=89))
        assert (await c.get(sid))["status"] == "running"
        clock.advance(timedelta(seconds=2))
        assert (await c.get(sid))["status"] == "stale"
        # Telemetry alone is the appliance speaking. (Its last-seen time is rewritten at most
        # every 10 s of real time per process: under the frozen clock, forget that.)
        ingest.recently_seen.forget({c.appliance_id})
        await send(api, c.appliance_id, telemetry(sid, [{"t": now_ms(), "bowl_temp_c": 50}]),
                   kind="telemetry")
        assert (await c.get(sid))["status"] == "running"
        clock.advance(timedelta(seconds=91))
        await send(api, c.appliance_id, event(sid, 2, "paused"))
        assert (await c.get(sid))["status"] == "paused"
        clock.advance(timedelta(seconds=91))
        assert (await c.get(sid))["status"] == "stale"
        await send(api, c.appliance_id, event(sid, 3, "completed"))
        clock.advance(timedelta(seconds=91))
        assert (await c.get(sid))["status"] == "completed"  # only live sessions go stale


async def test_the_sweep_announces_stale_once_and_the_return(svc: Service) -> None:
    rt = svc.runtime
    await rt.bus.ready.wait()
    heard = Heard(svc)
    c = await cook(svc)
    channel = f"appliance:{c.appliance_id}"
    with clock.frozen(clock.utcnow()):
        sid = (await c.new_session())["id"]
        await send(svc, c.appliance_id, event(sid, 1, "started"))
        assert await tasks.sweep_once(rt, clock.utcnow()) == (0, 0)
        clock.advance(timedelta(seconds=91))
        assert await tasks.sweep_once(rt, clock.utcnow()) == (1, 0)
        assert await tasks.sweep_once(rt, clock.utcnow()) == (0, 0)  # once
        stale = [e for e in await heard.wait_for("session.updated", f"session:{sid}", 2)
                 if e["status"] == "stale"]
        assert len(stale) == 1 and stale[0]["session_id"] == sid
        await heard.wait_for("session.updated", channel, 2)
        # The appliance speaks (telemetry): the next sweep says so.
        ingest.recently_seen.forget({c.appliance_id})
        await send(svc, c.appliance_id, telemetry(sid, [{"t": now_ms(), "bowl_temp_c": 50}]),
                   kind="telemetry")
        assert await tasks.sweep_once(rt, clock.utcnow()) == (0, 1)
        back = await heard.wait_for("session.updated", f"session:{sid}", 3)
        assert back[-1]["status"] == "running"
        # Stale again, then an event: announced at once by the mirror.
        clock.advance(timedelta(seconds=91))
        assert await tasks.sweep_once(rt, clock.utcnow()) == (1, 0)
        outcome = await send(svc, c.appliance_id, event(sid, 2, "step_completed", step_index=0))
        await ingest.publish_events(rt, outcome)
        updates = await heard.wait_for("session.updated", f"session:{sid}", 5)
        assert [e["status"] for e in updates[-2:]] == ["stale", "running"]
        assert await tasks.sweep_once(rt, clock.utcnow()) == (0, 0)


async def test_a_session_its_appliance_moved_on_from_goes_stale(api: Service) -> None:
    c = await cook(api)
    with clock.frozen(clock.utcnow()):
        first = (await c.new_session())["id"]
        await send(api, c.appliance_id, event(first, 1, "started"))
        second = (await c.new_session())["id"]  # the first's final event never came
        await send(api, c.appliance_id, event(second, 1, "started"))
        clock.advance(timedelta(seconds=91))
        ingest.recently_seen.forget({c.appliance_id})
        await send(api, c.appliance_id, telemetry(second, [{"t": now_ms(), "bowl_temp_c": 60}]),
                   kind="telemetry")
        assert (await c.get(second))["status"] == "running"
        assert (await c.get(first))["status"] == "stale"
