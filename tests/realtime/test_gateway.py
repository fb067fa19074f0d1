"""The WebSocket gateway over real sockets (websocket-events.md): authentication, subscriptions
of the owner only, live events from the bus, `since` replay, and replies to every client frame."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from epicura.kit import clock
from epicura.realtime import channels
from epicura.sessions.models import CookingSession
from tests.bridge.ingest_support import wait_until
from tests.realtime.ws_support import Client, Served, authed, socket
from tests.support import API, bearer

pytestmark = pytest.mark.anyio


FLOW_EVENTS = 150


def event(n: int, kind: str = "appliance.state") -> dict[str, object]:
    return {"type": kind, "data": {"n": n}}


async def test_auth_subscribe_and_live_events(served: Served) -> None:
    rt = served.runtime
    user_id, tokens = await served.user("live")
    appliance_id = await served.appliance(user_id)
    async with authed(served, tokens) as client:
        subscribed = await client.subscribe("user")
        assert subscribed["type"] == "subscribed" and subscribed["channel"] == "user"
        assert subscribed["data"]["channel"] == "user"
        channels.parse_id(subscribed["data"]["last_id"])
        appliance = f"appliance:{appliance_id}"
        assert (await client.subscribe(appliance))["type"] == "subscribed"

        [user_event] = await channels.publish(rt, [(f"user:{user_id}", event(1, "notification"))])
        got = await client.frame()
        assert got == {"type": "notification", "id": user_event, "channel": "user",
                       "data": {"n": 1}}
        ids = await channels.publish(rt, [(appliance, event(2)),
                                          (appliance, event(3, "telemetry"))])
        both = sorted([await client.frame(), await client.frame()], key=lambda f: f["type"])
        assert both == [
            {"type": "appliance.state", "id": ids[0], "channel": appliance, "data": {"n": 2}},
            {"type": "telemetry", "channel": appliance, "data": {"n": 3}},  # no id: not held
        ]
        pong = await client.request("ping")
        assert pong["type"] == "pong" and pong["data"] == {}


async def test_auth_ok_names_the_user_and_the_expiry(served: Served) -> None:
    user_id, tokens = await served.user("authok")
    async with socket(served) as client:
        ok = await client.auth(tokens)
    assert ok["type"] == "auth.ok"
    assert ok["data"]["user_id"] == str(user_id)
    assert ok["data"]["expires_at"].endswith("+00:00")


async def test_only_the_owner_may_subscribe(served: Served) -> None:
    owner_id, _ = await served.user("owner")
    _, stranger = await served.user("stranger")
    theirs = await served.appliance(owner_id)
    unowned = await served.appliance(None)
    async with authed(served, stranger) as client:
        answers = [await client.subscribe(channel) for channel in (
            f"appliance:{theirs}", f"appliance:{unowned}", f"appliance:{uuid.uuid4()}",
            f"session:{uuid.uuid4()}", "appliance:not-a-uuid")]
        for answer, channel in zip(answers, (f"appliance:{theirs}", f"appliance:{unowned}"),
                                   strict=False):
            assert answer["channel"] == channel
        assert {a["type"] for a in answers} == {"error"}
        assert {a["data"]["code"] for a in answers} == {"not_found"}
        assert len({a["data"]["message"] for a in answers}) == 1  # existence is not told
        bad = await client.subscribe("kitchen")
        assert bad["type"] == "error" and bad["data"]["code"] == "invalid_channel"
        # Nothing of the owner's reaches the stranger's socket.
        await channels.publish(served.runtime, [(f"appliance:{theirs}", event(1))])
        mine = await client.subscribe("user")
        assert mine["type"] == "subscribed"


async def test_since_replays_what_was_missed_then_goes_live(served: Served) -> None:
    rt = served.runtime
    user_id, tokens = await served.user("since")
    appliance = f"appliance:{await served.appliance(user_id)}"
    ids = await channels.publish(rt, [(appliance, event(n)) for n in range(4)])
    async with authed(served, tokens) as client:
        subscribed = await client.subscribe(appliance, since=ids[0])
        assert subscribed["data"]["last_id"] == ids[3]
        replayed = [await client.frame() for _ in range(3)]
        assert [(f["id"], f["data"]["n"]) for f in replayed] == list(
            zip(ids[1:], range(1, 4), strict=True))
        [live] = await channels.publish(rt, [(appliance, event(4))])
        assert (await client.frame())["id"] == live


async def test_a_gap_too_old_asks_for_a_resync_and_bad_since_is_refused(served: Served) -> None:
    user_id, tokens = await served.user("resync")
    appliance = f"appliance:{await served.appliance(user_id)}"
    await channels.publish(served.runtime, [(appliance, event(0))])
    async with authed(served, tokens) as client:
        subscribed = await client.subscribe(appliance, since="1000-0")
        assert subscribed["type"] == "subscribed"
        resync = await client.frame()
        assert resync == {"type": "resync.required", "channel": appliance,
                          "data": {"channel": appliance}}
        for garbage in ("yesterday", "12", "-1-0", "99999999999999-0"):
            refused = await client.subscribe(appliance, since=garbage)
            assert refused["type"] == "error", garbage
            assert refused["data"]["code"] == "invalid_since", garbage
        # A refused subscribe leaves the channel unsubscribed; subscribing again works.
        assert (await client.subscribe(appliance))["type"] == "subscribed"
        [fresh] = await channels.publish(served.runtime, [(appliance, event(1))])
        assert (await client.until(lambda f: f["type"] == "appliance.state"))["id"] == fresh


async def test_unsubscribe_stops_the_channel(served: Served) -> None:
    rt = served.runtime
    user_id, tokens = await served.user("unsub")
    appliance = f"appliance:{await served.appliance(user_id)}"
    async with authed(served, tokens) as client:
        await client.subscribe("user")
        await client.subscribe(appliance)
        gone = await client.request("unsubscribe", {"channel": appliance})
        assert gone["type"] == "unsubscribed" and gone["data"] == {"channel": appliance}
        await channels.publish(rt, [(appliance, event(1))])
        await channels.publish(rt, [(f"user:{user_id}", event(2, "notification"))])
        assert (await client.frame())["type"] == "notification"


async def test_subscribing_while_events_flow_loses_and_repeats_nothing(served: Served) -> None:
    """Live events are buffered while the replay is read: every event after `since` (or after
    `last_id`) arrives exactly once and in order, whatever was in flight."""
    rt = served.runtime
    user_id, tokens = await served.user("flow")
    appliance = f"appliance:{await served.appliance(user_id)}"
    published: list[str] = []

    async def publisher() -> None:
        for n in range(FLOW_EVENTS):
            published.extend(await channels.publish(rt, [(appliance, event(n))]))
            await asyncio.sleep(0.005)  # a steady flow (pacing, not synchronisation)

    task = asyncio.create_task(publisher())
    try:
        await wait_until(lambda: _at_least(published, 10), 20, "the first events")
        async with authed(served, tokens) as resumed, authed(served, tokens) as fresh:
            since = published[4]
            await resumed.subscribe(appliance, since=since)
            subscribed = await fresh.subscribe(appliance)
            last_id = subscribed["data"]["last_id"]
            await task
            final = published[-1]
            resumed_ids = await _ids_until(resumed, final)
            fresh_ids = await _ids_until(fresh, final) if last_id != final else []
    finally:
        await task
    assert len(published) == FLOW_EVENTS
    assert resumed_ids == published[5:]
    assert fresh_ids == published[published.index(last_id) + 1:]


async def _at_least(items: list[str], count: int) -> bool:
    return len(items) >= count


async def _ids_until(client: Client, final: str) -> list[str]:
    ids: list[str] = []
    while not ids or ids[-1] != final:
        ids.append((await client.frame())["id"])
    return ids


async def test_too_many_subscriptions(served: Served) -> None:
    served.limit(max_subscriptions=2)
    user_id, tokens = await served.user("manysubs")
    appliances = [f"appliance:{await served.appliance(user_id)}" for _ in range(2)]
    async with authed(served, tokens) as client:
        assert (await client.subscribe("user"))["type"] == "subscribed"
        assert (await client.subscribe(appliances[0]))["type"] == "subscribed"
        assert (await client.subscribe("user"))["type"] == "subscribed"  # again: replaces
        refused = await client.subscribe(appliances[1])
        assert refused["type"] == "error"
        assert refused["data"]["code"] == "too_many_subscriptions"
        await client.request("unsubscribe", {"channel": "user"})
        assert (await client.subscribe(appliances[1]))["type"] == "subscribed"


async def test_after_the_bus_reconnects_subscriptions_catch_up(served: Served) -> None:
    """While the bus listener is away, events are missed on this instance; once it is back each
    subscription is caught up from the held events: nothing lost, nothing twice. (The listener's
    loss is signalled as the bus does it: `ready` cleared, then the reset handlers.)"""
    rt = served.runtime
    user_id, tokens = await served.user("reset")
    appliance = f"appliance:{await served.appliance(user_id)}"
    async with authed(served, tokens) as client:
        await client.subscribe(appliance)
        [before] = await channels.publish(rt, [(appliance, event(0))])
        assert (await client.frame())["id"] == before
        rt.bus.ready.clear()
        served.hub.on_bus_reset()
        listeners, rt.bus._any_handlers = rt.bus._any_handlers, []  # this instance hears none
        during = await channels.publish(rt, [(appliance, event(n)) for n in (1, 2)])
        await channels.publish(rt, [(appliance, event(3, "telemetry"))])  # lost: not held
        rt.bus._any_handlers = listeners
        rt.bus.ready.set()
        [after] = await channels.publish(rt, [(appliance, event(4))])
        frames = [await client.frame() for _ in range(3)]
        assert [f["id"] for f in frames] == [*during, after]


async def test_an_unpaired_appliance_is_unsubscribed(served: Served) -> None:
    served.limit(sweep_every_s=0.1, ownership_every_s=0.2)
    user_id, tokens = await served.user("unpair")
    appliance_id = await served.appliance(user_id)
    appliance = f"appliance:{appliance_id}"
    async with authed(served, tokens) as client:
        await client.subscribe(appliance)
        await client.subscribe("user")
        gone = await served.svc.client.delete(f"{API}/appliances/{appliance_id}",
                                              headers=bearer(tokens))
        assert gone.status_code == 204, gone.text
        ended = await client.until(lambda f: f["type"] == "error")
        assert ended["channel"] == appliance and ended["data"]["code"] == "not_found"
        await channels.publish(served.runtime, [(appliance, event(1))])
        [mine] = await channels.publish(served.runtime, [(f"user:{user_id}", event(2))])
        assert (await client.frame())["id"] == mine


async def test_a_cooking_session_is_subscribed_by_its_owner_only(served: Served) -> None:
    user_id, tokens = await served.user("cook")
    _, stranger = await served.user("cook-stranger")
    appliance_id = await served.appliance(user_id)
    now = clock.utcnow()
    session_id = uuid.uuid4()
    async with served.runtime.db.transaction() as db:
        db.add(CookingSession(id=session_id, user_id=user_id, appliance_id=appliance_id,
                              recipe_id=uuid.uuid4(), recipe_version=1, origin="app",
                              created_at=now, updated_at=now))
    channel = f"session:{session_id}"
    async with authed(served, tokens) as client, authed(served, stranger) as other:
        assert (await client.subscribe(channel))["type"] == "subscribed"
        refused = await other.subscribe(channel)
        assert refused["type"] == "error" and refused["data"]["code"] == "not_found"
        [sent] = await channels.publish(served.runtime, [(channel, event(1, "session.updated"))])
        assert (await client.frame())["id"] == sent
