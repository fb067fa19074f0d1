"""`epicura watch` as a real process against the gateway: it prints each event on a line and,
after its socket is dropped, resumes with `since` (an event published while it was away is
printed once)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from epicura.realtime import channels
from tests.e2e import process_env, started
from tests.realtime.ws_support import Served
from tests.support import STRONG_PASSWORD, bearer

pytestmark = pytest.mark.anyio


async def test_watch_prints_events_and_resumes_after_a_drop(pg_served: Served,
                                                            tmp_path: Path) -> None:
    rt = pg_served.runtime
    email = f"ws.watch.{uuid.uuid4().hex[:8]}@example.com"
    await pg_served.svc.signed_up(email)
    login = await pg_served.svc.login(email)
    me = await pg_served.svc.client.get("/api/v1/users/me", headers=bearer(login.json()))
    user_id = uuid.UUID(me.json()["id"])
    appliance = f"appliance:{await pg_served.appliance(user_id)}"
    env = process_env(EPICURA_PASSWORD=STRONG_PASSWORD)
    async with started("watch", "--url", pg_served.url, "--email", email, "--appliance",
                       appliance.removeprefix("appliance:"), cwd=tmp_path, env=env) as watcher:
        await watcher.output.wait_for(f"{appliance} subscribed")
        await watcher.output.wait_for(" user subscribed")
        [first] = await channels.publish(rt, [(appliance, _alert(1))])
        line = await watcher.output.wait_for(first)
        assert f"{appliance} alert {first} " in line and '"n":1' in line

        for connection in list(pg_served.hub.connections):
            connection.close(1012, "test drops it")  # from here on it gets nothing live
        [missed] = await channels.publish(rt, [(appliance, _alert(2))])
        await watcher.output.wait_for("disconnected (1012)")
        await watcher.output.wait_for(missed)
        [after] = await channels.publish(rt, [(f"user:{user_id}", _alert(3))])
        await watcher.output.wait_for(after)
    printed = watcher.output.text
    assert printed.count(f" alert {missed} ") == 1 and printed.count(f" alert {first} ") == 1


def _alert(n: int) -> dict[str, object]:
    return {"type": "alert", "data": {"n": n}}
