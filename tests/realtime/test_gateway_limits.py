"""Bad input and slow clients: every bad frame gets an `error` (or a documented close code) and
no other socket notices; a client that does not read is closed with 1013 rather than held in
memory, except for telemetry, which is conflated."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from epicura.realtime import channels
from tests.realtime.ws_support import Served, authed, socket

pytestmark = pytest.mark.anyio
BIG = "x" * 32_000


async def test_bad_frames_get_errors_and_the_socket_stays(served: Served) -> None:
    _, tokens = await served.user("bad")
    async with authed(served, tokens) as client:
        for raw, code in (("not json", "invalid_json"), ("[1, 2]", "invalid_json"),
                          ('{"data": {}}', "invalid_frame"),
                          ('{"type": "ping", "data": []}', "invalid_frame"),
                          ('{"type": "ping", "ref": {"a": 1}}', "invalid_frame")):
            await client.ws.send(raw)
            answer = await client.frame()
            assert answer["type"] == "error", raw
            assert answer["data"]["code"] == code, raw
            assert set(answer["data"]) == {"code", "message"}
        unknown = await client.request("dance", {})
        assert unknown["type"] == "error" and unknown["data"]["code"] == "unknown_type"
        await client.ws.send(b'{"type": "ping"}')
        binary = await client.frame()
        assert binary["data"]["code"] == "invalid_frame"
        assert (await client.request("ping"))["type"] == "pong"


async def test_an_oversized_frame_closes_1009_and_only_that_socket(served: Served) -> None:
    _, tokens = await served.user("big")
    async with authed(served, tokens) as bystander, authed(served, tokens) as client:
        await client.ws.send('{"type": "ping", "data": {"pad": "' + "x" * (1024 * 1024) + '"}}')
        assert await client.close_code() == 1009
        assert (await bystander.request("ping"))["type"] == "pong"
        metrics = (await served.svc.client.get("/metrics")).text
    assert 'epicura_websocket_closes_total{code="1009"}' in metrics
    assert "epicura_websocket_connections " in metrics
    assert 'epicura_websocket_frames_sent_total{type="pong"}' in metrics


async def test_a_flood_is_refused_then_closed_1008(served: Served) -> None:
    _, tokens = await served.user("flood")
    async with authed(served, tokens) as bystander, authed(served, tokens) as client:
        for _ in range(60):
            await client.send("ping")
        refused = await client.until(lambda f: f["type"] == "error")
        assert refused["data"]["code"] == "rate_limited"
        for _ in range(2000):
            await client.send("ping")
        assert await client.close_code() == 1008
        assert (await bystander.request("ping"))["type"] == "pong"


async def test_a_client_that_does_not_read_is_closed_1013(served: Served) -> None:
    served.limit(send_queue=8)
    user_id, tokens = await served.user("slow")
    appliance = f"appliance:{await served.appliance(user_id)}"
    async with authed(served, tokens, max_queue=1, compression=None) as client:
        await client.subscribe(appliance)
        await _publish_until(served, appliance, "alert", lambda: _user_gone(served, user_id))
        assert await client.close_code() == 1013


async def test_telemetry_for_a_slow_client_is_conflated_not_queued(served: Served) -> None:
    served.limit(send_queue=8)
    user_id, tokens = await served.user("slowtelemetry")
    appliance = f"appliance:{await served.appliance(user_id)}"
    async with authed(served, tokens, max_queue=1, compression=None) as client:
        await client.subscribe(appliance)
        published = 300
        for start in range(0, published, 10):
            await channels.publish(served.runtime, [(appliance, _event("telemetry", n))
                                                    for n in range(start, start + 10)])
        [last] = await channels.publish(served.runtime, [(appliance, _event("alert", -1))])
        received: list[int] = []
        alert_seen = False
        while not alert_seen or not received or received[-1] != published - 1:
            frame = await client.frame()
            if frame["type"] == "telemetry":
                received.append(frame["data"]["n"])
            else:
                alert_seen = frame["id"] == last  # the socket stayed open through it all
    assert received == sorted(received)
    assert len(received) < published / 10  # older telemetry was replaced, newest kept


def _telemetry(n: int) -> dict[str, Any]:
    return {"type": "telemetry", "data": {"n": n}}


def _event(kind: str, n: int) -> dict[str, Any]:
    return {"type": kind, "data": {"n": n, "pad": BIG}}


async def _publish_until(served: Served, channel: str, kind: str, done: Any,
                         batch: int = 10, most: int = 5000) -> int:
    """Publish big events until `done()` holds (the socket's buffers are full by then);
    returns how many were published."""
    count = 0
    while not await done():
        assert count < most, "the condition never came"
        await channels.publish(served.runtime, [(channel, _event(kind, count + i))
                                                for i in range(batch)])
        count += batch
    return count


async def _user_gone(served: Served, user_id: uuid.UUID) -> bool:
    return all(c.user_id != user_id for c in served.hub.connections)


async def test_a_ping_frame_is_answered_with_pong(served: Served) -> None:
    async with socket(served) as client:
        await client.send("ping", {}, "abc")
        assert await client.frame() == {"type": "pong", "ref": "abc", "data": {}}
        await client.ws.send('{"type": "ping", "ref": 7}')
        assert await client.frame() == {"type": "pong", "ref": 7, "data": {}}



async def test_telemetry_reaches_a_socket_at_most_once_a_second_newest_kept(
        served: Served) -> None:
    """Whatever publishes it (several bridges each conflate on their own), a socket gets at
    most one telemetry event a second per channel."""
    user_id, tokens = await served.user("paced")
    appliance = f"appliance:{await served.appliance(user_id)}"
    async with authed(served, tokens) as client:
        await client.subscribe(appliance)
        await channels.publish(served.runtime, [(appliance, _telemetry(0))])
        first = await client.frame()
        await channels.publish(served.runtime, [(appliance, _telemetry(n)) for n in range(1, 5)])
        second = await client.frame()
        [alert] = await channels.publish(served.runtime, [(appliance, _event("alert", 9))])
        after = await client.frame()
    assert [first["data"]["n"], second["data"]["n"]] == [0, 4]
    assert after["id"] == alert
