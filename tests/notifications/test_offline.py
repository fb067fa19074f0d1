"""An appliance that drops off during a session (its last will, or silence caught by the sweep)
tells its owner once per outage; an idle appliance going offline tells nobody."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from epicura.bridge import presence
from epicura.kit import clock
from tests.notifications.conftest import inbox_rows
from tests.sessions.support import cook, event, now_ms, send, stored
from tests.support import Service

pytestmark = pytest.mark.anyio


def will(reason: str = "lost") -> dict[str, object]:
    return {"v": 1, "id": str(uuid.uuid4()), "ts": now_ms(), "state": "offline",
            "reason": reason}


async def test_a_last_will_during_a_session_tells_the_cook(svc: Service) -> None:
    cooking, idle = await cook(svc), await cook(svc)
    sid = (await cooking.new_session())["id"]
    await send(svc, cooking.appliance_id, event(sid, 1, "started"))
    assert (await stored(svc, sid)).status == "running"
    await send(svc, cooking.appliance_id, will(), kind="presence")
    await send(svc, cooking.appliance_id, will(), kind="presence")  # the same outage again
    await send(svc, idle.appliance_id, will("shutdown"), kind="presence")
    [entry] = await inbox_rows(svc, cooking.user_id)
    assert (entry.kind, entry.category) == ("appliance_offline", "appliance")
    assert entry.params == {"appliance_id": str(cooking.appliance_id), "session_id": sid}
    assert await inbox_rows(svc, idle.user_id) == []


async def test_the_inactivity_sweep_tells_the_cook_too(svc: Service) -> None:
    c = await cook(svc)
    sid = (await c.new_session())["id"]
    await send(svc, c.appliance_id, event(sid, 1, "started"))
    with clock.frozen(clock.utcnow() + timedelta(seconds=120)):
        assert str(c.appliance_id) in await presence.sweep_once(svc.runtime)
    [entry] = await inbox_rows(svc, c.user_id)
    assert entry.kind == "appliance_offline"
