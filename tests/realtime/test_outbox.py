"""The event outbox (realtime/outbox.py): must-not-lose events are written with the change that
causes them and reach their channel after the commit, even when the process that committed them
never got to publish, and never when the change rolled back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import orjson
import pytest
from redis.exceptions import RedisError
from sqlalchemy import func, select

from epicura.bridge import ingest
from epicura.bridge.payloads import DeviceMessage, parse
from epicura.config import Settings
from epicura.kit import clock
from epicura.kit.jobs import JobContext
from epicura.kit.runtime import Runtime
from epicura.realtime import channels, outbox
from epicura.realtime.outbox import OutboxEvent
from tests.bridge import ingest_support as s
from tests.conftest import _truncate

pytestmark = pytest.mark.anyio


@pytest.fixture
async def rt(pg_settings: Settings, pg_database: str) -> AsyncIterator[Runtime]:
    """A runtime with no relay running: the test decides when rows are relayed."""
    runtime = Runtime.build(pg_settings)
    yield runtime
    await runtime.close()
    await _truncate(pg_database)


def alert(device: uuid.UUID, alert_id: str, state: str = "raised") -> DeviceMessage:
    return parse(device, "alert", orjson.dumps(s.alert(alert_id, state)), s.now_ms())


async def queued(rt: Runtime) -> list[tuple[str, str, dict[str, Any]]]:
    """The events still waiting for the relay."""
    async with rt.db.sessions() as session:
        rows = (await session.scalars(select(OutboxEvent).where(OutboxEvent.relayed_at.is_(None))
                                      .order_by(OutboxEvent.id))).all()
        return [(row.channel, row.type, row.data) for row in rows]


async def test_a_raised_alert_is_queued_with_its_batch_and_relayed_once(rt: Runtime) -> None:
    (device,) = await s.make_appliances(rt, 1)
    channel = f"appliance:{device}"
    mark = await channels.last_id(rt, channel)
    outcome = await ingest.store_batch(rt, [alert(device, "a-1"), alert(device, "a-0", "cleared")])
    # The raised alert waits in the outbox; the cleared one is an ordinary live event.
    assert [(c, t, d["alert_id"]) for c, t, d in await queued(rt)] == [(channel, "alert", "a-1")]
    assert [e["data"]["alert_id"] for _c, e in outcome.events if e["type"] == "alert"] == [
        "a-0"]
    assert outcome.durable == 1

    assert await outbox.relay_once(rt) == 1
    assert await outbox.relay_once(rt) == 0
    assert await queued(rt) == []
    held = await channels.replay(rt, channel, mark)
    assert held is not None
    assert [(e["type"], e["data"]["alert_id"], e["data"]["state"]) for e in held] == [
        ("alert", "a-1", "raised")]


async def test_a_batch_that_rolls_back_queues_nothing(rt: Runtime) -> None:
    (device,) = await s.make_appliances(rt, 1)
    with pytest.raises(RuntimeError):
        async with rt.db.transaction() as session:
            await ingest.ingest(rt, session, [alert(device, "a-2")], clock.utcnow())
            inside = await session.scalar(select(func.count()).select_from(OutboxEvent))
            assert inside == 1  # written in the batch's own transaction
            raise RuntimeError("the batch fails after its handlers ran")
    assert await queued(rt) == []


async def test_rows_wait_while_redis_is_away_and_go_when_it_returns(
        rt: Runtime, pg_settings: Settings) -> None:
    channel = f"user:{uuid.uuid4()}"
    mark = await channels.last_id(rt, channel)
    async with rt.db.transaction() as session:
        for n in range(3):
            outbox.record(session, channel, "session.finished", {"n": n})
    no_redis = Runtime.build(pg_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    try:
        with pytest.raises(RedisError):
            await outbox.relay_once(no_redis)
    finally:
        await no_redis.close()
    assert len(await queued(rt)) == 3
    assert await outbox.relay_once(rt) == 3
    held = await channels.replay(rt, channel, mark)
    assert held is not None and [e["data"]["n"] for e in held] == [0, 1, 2]
    assert await queued(rt) == []


async def test_consumers_see_the_rows_inside_the_relay_transaction(rt: Runtime) -> None:
    seen: list[str] = []

    async def consumer(_session: Any, rows: Any) -> None:
        seen.extend(row.type for row in rows)

    outbox.on_relay(consumer)
    try:
        async with rt.db.transaction() as session:
            outbox.record(session, f"user:{uuid.uuid4()}", "session.awaiting_user", {})
        assert await outbox.relay_once(rt) == 1
    finally:
        outbox._consumers.remove(consumer)
    assert seen == ["session.awaiting_user"]


async def test_one_relay_at_a_time_keeps_commit_order(rt: Runtime) -> None:
    channel = f"user:{uuid.uuid4()}"
    mark = await channels.last_id(rt, channel)
    async with rt.db.transaction() as session:
        outbox.record(session, channel, "session.finished", {"n": 1})
    async with rt.db.sessions() as holder, holder.begin():
        assert await holder.scalar(outbox._RELAY_LOCK)  # another relay's turn
        assert await outbox.relay_once(rt) == 0
        assert len(await queued(rt)) == 1
    assert await outbox.relay_once(rt) == 1
    held = await channels.replay(rt, channel, mark)
    assert held is not None and [e["data"]["n"] for e in held] == [1]


async def test_relayed_rows_are_kept_a_day_then_pruned(rt: Runtime) -> None:
    async with rt.db.transaction() as session:
        outbox.record(session, f"user:{uuid.uuid4()}", "alert", {"n": 1})
        outbox.record(session, f"user:{uuid.uuid4()}", "alert", {"n": 2})
    assert await outbox.relay_once(rt, limit=1) == 1
    context = JobContext(db=rt.db, sealer=rt.sealer)
    await outbox.prune_relayed(context)
    assert await total(rt) == 2  # relayed a moment ago: kept
    with clock.frozen(clock.utcnow() + timedelta(seconds=outbox.KEEP_RELAYED_S + 60)):
        await outbox.prune_relayed(context)
    assert await total(rt) == 1
    assert [d["n"] for _c, _t, d in await queued(rt)] == [2]  # pending: never pruned


async def total(rt: Runtime) -> int:
    async with rt.db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxEvent)) or 0)
