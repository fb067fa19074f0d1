"""Session events over the real transports: MQTT through the bridge on a private Mosquitto,
and the HTTPS fallback (`POST /device/events`) with a device token."""

from __future__ import annotations

import uuid

import pytest

from tests.appliances.conftest import Factory
from tests.bridge import ingest_support as s
from tests.bridge.bridge_support import running_bridge
from tests.brokers import PrivateBroker
from tests.sessions.support import Heard, cook, event, logged, stored
from tests.support import API, Service

pytestmark = pytest.mark.anyio


async def test_a_session_through_the_bridge(svc: Service, broker: PrivateBroker) -> None:
    rt = svc.runtime
    await rt.bus.ready.wait()
    heard = Heard(svc)
    c = await cook(svc)
    intruder = await cook(svc)
    sid = (await c.new_session())["id"]
    started = event(sid, 1, "started")
    items = [(s.topic(c.appliance_id, "session"), s.dumps(body)) for body in (
        started, started, event(sid, 2, "step_started", step_index=0),
        event(sid, 3, "awaiting_user", step_index=1))]
    items.append((s.topic(intruder.appliance_id, "session"), s.dumps(event(sid, 4, "aborted"))))
    items.append((s.topic(c.appliance_id, "session"), s.dumps(event(sid, 4, "completed"))))
    async with running_bridge(rt, broker.url):
        await s.publish(broker.host, broker.port, items)

        async def finished() -> bool:
            return (await stored(svc, sid)).status == "completed"

        await s.wait_until(finished, 30, "the session to complete")
        (done,) = await heard.wait_for("session.finished", f"user:{c.user_id}")
        assert done["status"] == "completed"
        await heard.wait_for("session.awaiting_user", f"session:{sid}")
        await heard.wait_for("session.updated", f"appliance:{c.appliance_id}", 2)
    assert await logged(svc, sid) == [(1, "started"), (2, "step_started"),
                                      (3, "awaiting_user"), (4, "completed")]


async def test_session_events_over_https_are_applied(svc: Service, factory: Factory) -> None:
    c = await cook(svc)
    device, _appliance = await factory.paired(c.headers)
    c.appliance_id = uuid.UUID(device.id)
    sid = (await c.new_session())["id"]
    batch = {"events": [
        {"topic": "session", **event(sid, 1, "started")},
        {"topic": "session", **event(sid, 2, "step_started", step_index=0)},
        {"topic": "session", **event(sid, "3", "paused")},
        {"topic": "session", **event("not-a-uuid", 3, "paused")},
        {"topic": "session", **event(sid, 3, "exploded")},
        {"topic": "session", **event(sid, 3, "paused", data={"blob": "x" * 20_000})},
    ]}
    reply = await svc.client.post(f"{API}/device/events", json=batch, headers=device.headers)
    assert reply.status_code == 202, reply.text
    results = [(r["status"], r["code"]) for r in reply.json()["results"]]
    assert results == [("stored", None), ("stored", None), ("rejected", "bad_field"),
                       ("rejected", "bad_field"), ("rejected", "bad_field"),
                       ("rejected", "bad_field")]
    found = await c.get(sid)
    assert (found["status"], found["step_title"]) == ("running", "Chop")
    # The same events again (an HTTPS retry): stored once.
    again = await svc.client.post(f"{API}/device/events", json=batch, headers=device.headers)
    assert [r["status"] for r in again.json()["results"]][:2] == ["duplicate", "duplicate"]
    assert await logged(svc, sid) == [(1, "started"), (2, "step_started")]
