"""Done-when of the push work: a cooking session through the bridge (a private Mosquitto, the real
ingest and outbox relay) reaches the local FCM and APNs servers as exactly one "awaiting you"
push per step and one "finished" push, however often the appliance repeats itself."""

from __future__ import annotations

import pytest

from epicura.kit import jobs
from tests.bridge import ingest_support as s
from tests.bridge.bridge_support import running_bridge
from tests.brokers import PrivateBroker
from tests.notifications.conftest import (
    APNS_TOKEN,
    FCM_TOKEN,
    Cook,
    Fakes,
    add_token,
    inbox_rows,
    push_jobs,
)
from tests.sessions.support import cook as cook_with_appliance
from tests.sessions.support import event, stored
from tests.support import Service

pytestmark = pytest.mark.anyio


async def test_a_session_pushes_once_per_awaited_step_and_once_at_the_end(
        svc: Service, fakes: Fakes, broker: PrivateBroker) -> None:
    rt = svc.runtime
    await rt.bus.ready.wait()
    c = await cook_with_appliance(svc)
    ann = Cook(c.user_id, c.headers, "")
    await add_token(svc, ann, "fcm", FCM_TOKEN)
    await add_token(svc, ann, "apns", APNS_TOKEN)
    await svc.run_jobs()  # the sign-up e-mail and session.prepare: only pushes are counted below
    sid = (await c.new_session())["id"]
    await svc.run_jobs()
    awaited_1 = event(sid, 3, "awaiting_user", step_index=1, data={"prompt": "Add the onions"})
    awaited_2 = event(sid, 5, "awaiting_user", step_index=2, data={"prompt": "Stir well"})
    bodies = [
        event(sid, 1, "started"), event(sid, 2, "step_started", step_index=0),
        awaited_1, awaited_1,  # a QoS 1 redelivery
        event(sid, 4, "step_started", step_index=2), awaited_2,
        event(sid, 6, "completed"), event(sid, 6, "completed"),
    ]
    topic = s.topic(c.appliance_id, "session")
    async with running_bridge(rt, broker.url):
        await s.publish(broker.host, broker.port, [(topic, s.dumps(body)) for body in bodies])

        async def done() -> bool:
            return (await stored(svc, sid)).status == "completed"

        await s.wait_until(done, 30, "the session to complete")

        async def notified() -> bool:  # the bridge's own relay made the notifications
            return len(await inbox_rows(svc, c.user_id)) == 3

        await s.wait_until(notified, 30, "three notifications")
    while await svc.run_jobs():
        pass
    assert {job.state for job in await push_jobs(svc)} == {jobs.SUCCEEDED}
    for provider in (fakes.fcm, fakes.apns):
        kinds = [r.body["data"]["kind"] for r in provider.sent]
        assert kinds == ["awaiting_user", "awaiting_user", "session_completed"], kinds
    bodies_sent = [r.body["notification"]["body"] for r in fakes.fcm.sent]
    assert bodies_sent[:2] == ["Step 2: Add the onions", "Step 3: Stir well"]
