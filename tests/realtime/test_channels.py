"""Held live channels (realtime/channels.py): ids increase per channel, `since` replays what a
client missed, and a gap that is no longer whole is reported as such, never papered over."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from epicura.realtime import channels
from tests.bridge.ingest_support import wait_until
from tests.support import Service

pytestmark = pytest.mark.anyio


def event(n: int, kind: str = "alert") -> dict[str, Any]:
    return {"type": kind, "data": {"n": n}}


async def test_ids_increase_and_live_subscribers_get_them(api: Service) -> None:
    rt = api.runtime
    await rt.bus.ready.wait()
    channel = f"appliance:{uuid.uuid4()}"
    seen: list[dict[str, Any]] = []
    rt.bus.subscribe(channel, seen.append)
    ids = await channels.publish(rt, [(channel, event(1)), (channel, event(2, "telemetry")),
                                      (channel, event(3))])
    assert len(ids) == 2 and channels.parse_id(ids[0]) < channels.parse_id(ids[1])

    async def all_three() -> bool:
        return len(seen) == 3

    await wait_until(all_three, 10, "three live events")
    held = [e for e in seen if e["type"] == "alert"]
    assert [(e["id"], e["data"]["n"]) for e in held] == [(ids[0], 1), (ids[1], 3)]
    telemetry = next(e for e in seen if e["type"] == "telemetry")
    assert "id" not in telemetry
    assert await channels.last_id(rt, channel) == ids[1]


async def test_since_replays_exactly_what_came_after(api: Service) -> None:
    rt = api.runtime
    channel = f"session:{uuid.uuid4()}"
    other = f"session:{uuid.uuid4()}"
    before = await channels.last_id(rt, channel)
    ids = await channels.publish(rt, [(channel, event(n)) for n in range(5)]
                                 + [(other, event(99))])
    everything = await channels.replay(rt, channel, before)
    assert everything is not None
    assert [(e["id"], e["data"]["n"]) for e in everything] == list(zip(ids[:5], range(5),
                                                                       strict=True))
    after_two = await channels.replay(rt, channel, ids[1])
    assert after_two is not None and [e["data"]["n"] for e in after_two] == [2, 3, 4]
    assert await channels.replay(rt, channel, ids[4]) == []


async def test_a_since_from_an_empty_channel_gets_what_came_next(api: Service) -> None:
    rt = api.runtime
    channel = f"user:{uuid.uuid4()}"
    await channels.publish(rt, [(f"user:{uuid.uuid4()}", event(0))])  # the epoch exists
    empty_mark = await channels.last_id(rt, channel)
    (first,) = await channels.publish(rt, [(channel, event(1))])
    assert channels.parse_id(first) > channels.parse_id(empty_mark)
    replayed = await channels.replay(rt, channel, empty_mark)
    assert replayed is not None and [e["id"] for e in replayed] == [first]


@pytest.mark.parametrize("since", ["", "abc", "12-", "-1-0", "1-2-3", 17, None, "9" * 16 + "-0"])
async def test_garbage_since_is_refused(svc: Service, since: object) -> None:
    with pytest.raises(channels.InvalidEventId):
        await channels.replay(svc.runtime, "user:x", since)


async def test_a_since_in_the_future_is_refused(svc: Service) -> None:
    rt = svc.runtime
    seconds, _ = await rt.redis.time()
    with pytest.raises(channels.InvalidEventId):
        await channels.replay(rt, "user:x", f"{(int(seconds) + 3600) * 1000}-0")


async def test_gaps_older_than_the_hold_or_lost_by_redis_need_a_resync(svc: Service) -> None:
    rt = svc.runtime
    channel = f"appliance:{uuid.uuid4()}"
    (first, _second) = await channels.publish(rt, [(channel, event(1)), (channel, event(2))])
    seconds, _ = await rt.redis.time()
    too_old = f"{(int(seconds) - channels.HOLD_S - 5) * 1000}-0"
    assert await channels.replay(rt, channel, too_old) is None
    assert await channels.replay(rt, channel, first) is not None
    # Redis lost its data after `first` was handed out and came back a second later.
    await rt.redis.delete(rt.keys("ws", channel), rt.keys("ws", "epoch"))
    await rt.redis.set(rt.keys("ws", "epoch"), channels.parse_id(first)[0] + 1000)
    assert await channels.replay(rt, channel, first) is None


async def test_too_many_missed_events_need_a_resync(svc: Service) -> None:
    rt = svc.runtime
    channel = f"appliance:{uuid.uuid4()}"
    mark = await channels.last_id(rt, channel)
    await channels.publish(rt, [(channel, event(n)) for n in range(channels.MAX_REPLAY + 1)])
    assert await channels.replay(rt, channel, mark) is None
