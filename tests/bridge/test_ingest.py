"""The ingest pipeline (bridge/ingest.py) on PostgreSQL and on SQLite: each kind's effects,
deduplication, unknown devices, the handler registry, live events, the inactivity sweep."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from epicura.appliances.models import Appliance, ApplianceAlert, ApplianceCommand
from epicura.bridge import handlers, ingest, presence
from epicura.bridge.handlers import HandlerContext
from epicura.bridge.payloads import DeviceMessage, parse
from epicura.kit import clock
from epicura.kit.runtime import Runtime
from epicura.telemetry.models import TelemetryLatest
from tests.bridge import ingest_support as s
from tests.support import Service

pytestmark = pytest.mark.anyio


def msg(device_id: uuid.UUID, kind: str, body: dict[str, Any]) -> DeviceMessage:
    return parse(device_id, kind, orjson.dumps(body), s.now_ms())


async def appliance(rt: Runtime, appliance_id: uuid.UUID) -> Appliance:
    async with rt.db.sessions() as session:
        found = await session.get(Appliance, appliance_id)
        assert found is not None
        return found


class Events:
    """What the bus delivered on some channels."""

    def __init__(self, rt: Runtime, *channels: str) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        for channel in channels:
            rt.bus.subscribe(channel, self._recorder(channel))

    def _recorder(self, channel: str) -> Callable[[dict[str, Any]], None]:
        def record(payload: dict[str, Any]) -> None:
            self.seen.append((channel, payload))

        return record

    def of_type(self, event_type: str) -> list[tuple[str, dict[str, Any]]]:
        return [(c, p) for c, p in self.seen if p["type"] == event_type]


@pytest.fixture
def restore_handlers() -> Iterator[None]:
    handlers.load()
    saved = dict(handlers._handlers)
    yield
    handlers._handlers.clear()
    handlers._handlers.update(saved)


async def test_telemetry_stored_in_bulk_with_latest_and_dedupe(svc: Service) -> None:
    rt = svc.runtime
    a, b = await s.make_appliances(rt, 2)
    first = msg(a, "telemetry", s.telemetry(5))
    backlog_body = s.telemetry(3)
    backlog_body["samples"][0]["steam_valve"] = "open"
    backlog = msg(b, "telemetry/backlog", backlog_body)
    outcome = await ingest.store_batch(rt, [first, backlog, first])
    assert outcome.results == {first.id: "stored", backlog.id: "stored"}
    assert await s.count_samples(rt, [a]) == 5 and await s.count_samples(rt, [b]) == 3
    extra = await s.scalar(rt, "SELECT extra::text FROM telemetry_samples WHERE extra IS NOT NULL")
    assert orjson.loads(extra) == {"steam_valve": "open"}
    again = await ingest.store_batch(rt, [first])
    assert again.results == {first.id: "duplicate"} and not again.fresh
    assert await s.count_samples(rt) == 8
    async with rt.db.sessions() as session:
        latest = await session.get(TelemetryLatest, a)
    assert latest is not None
    assert latest.sample["t"] == max(x["t"] for x in first.body["samples"])
    # An older message arriving later does not move `latest` back.
    old = s.telemetry(1)
    old["samples"][0]["t"] -= 60_000
    await ingest.store_batch(rt, [msg(a, "telemetry", old)])
    async with rt.db.sessions() as session:
        assert (await session.get(TelemetryLatest, a)).sample["t"] == latest.sample["t"]  # type: ignore[union-attr]
    assert (await appliance(rt, a)).online


async def test_messages_of_unknown_appliances_are_dropped(svc: Service) -> None:
    rt = svc.runtime
    stranger = msg(uuid.uuid4(), "telemetry", s.telemetry())
    outcome = await ingest.store_batch(rt, [stranger])
    assert outcome.results == {stranger.id: "unknown_device"}
    assert await s.count_samples(rt) == 0 and not await s.stored_message_ids(rt)


async def test_presence_state_alert_effects_and_events(svc: Service) -> None:
    rt = svc.runtime
    tokens = await svc.signed_up(f"owner.{uuid.uuid4().hex[:8]}@example.com")
    me = (await svc.client.get("/api/v1/users/me",
                               headers={"Authorization": f"Bearer {tokens['access_token']}"}))
    owner_id = uuid.UUID(me.json()["id"])
    (device,) = await s.make_appliances(rt, 1, owner_id=owner_id)
    await rt.bus.ready.wait()
    events = Events(rt, f"appliance:{device}", f"user:{owner_id}")

    await ingest.publish_events(rt, await ingest.store_batch(rt, [
        msg(device, "presence", s.presence_online()),
        msg(device, "state", s.state()),
        msg(device, "alert", s.alert("a-7")),
        msg(device, "telemetry", s.telemetry(2)),
    ]))
    found = await appliance(rt, device)
    assert (found.online, found.firmware_version, found.boot_id) == (True, "1.4.2", "boot-1")
    assert found.channel == "beta" and found.state is not None
    assert found.state["wifi_rssi"] == -61 and found.last_seen_at is not None
    await s.wait_until(lambda: _has(events, 5), message="five events")
    # (The raised alert's notification follows on the user channel: tests/notifications.)
    assert {p["type"] for _c, p in events.seen if p["type"] != "notification"} == {
        "appliance.presence", "appliance.state", "alert", "telemetry"}
    assert {c for c, _p in events.of_type("alert")} == {f"appliance:{device}", f"user:{owner_id}"}
    (_c, alert_event), *_ = events.of_type("alert")
    assert alert_event["data"] == {"alert_id": "a-7", "appliance_id": str(device),
                                   "code": "overtemp", "severity": "critical", "state": "raised"}

    await ingest.store_batch(rt, [msg(device, "alert", s.alert("a-7", "cleared")),
                                  msg(device, "presence", s.presence_offline("shutdown"))])
    async with rt.db.sessions() as session:
        alerts = (await session.scalars(select(ApplianceAlert))).all()
    assert [(x.alert_id, x.state, x.cleared_at is not None) for x in alerts] == [
        ("a-7", "cleared", True)]
    found = await appliance(rt, device)
    assert (found.online, found.presence_reason) == (False, "shutdown")
    # Any later message brings it back online.
    await ingest.store_batch(rt, [msg(device, "telemetry", s.telemetry(1))])
    assert (await appliance(rt, device)).online


async def _has(events: Events, count: int) -> bool:
    return len(events.seen) >= count


async def test_an_older_state_report_never_replaces_a_newer_one(svc: Service) -> None:
    rt = svc.runtime
    (device,) = await s.make_appliances(rt, 1)
    newer = s.state(storage_free_mb=100)
    older = {**s.state(storage_free_mb=900), "ts": newer["ts"] - 5000}
    await ingest.store_batch(rt, [msg(device, "state", newer)])
    await ingest.store_batch(rt, [msg(device, "state", older)])
    state = (await appliance(rt, device)).state
    assert state is not None and state["storage_free_mb"] == 100


async def test_command_result_recorded_and_announced(svc: Service) -> None:
    rt = svc.runtime
    (device,) = await s.make_appliances(rt, 1)
    now = clock.utcnow()
    request_id = uuid.uuid4()
    async with rt.db.transaction() as session:
        session.add(ApplianceCommand(request_id=request_id, appliance_id=device, name="identify",
                                     args={}, status="sent", created_at=now,
                                     expires_at=now + timedelta(seconds=60), updated_at=now))
    result = msg(device, "cmd/result", s.envelope(request_id=str(request_id), status="done"))
    outcome = await ingest.store_batch(rt, [result])
    async with rt.db.sessions() as session:
        command = await session.get(ApplianceCommand, request_id)
    assert command is not None and command.status == "done"
    assert ("appliance:" + str(device), {"type": "command.result", "data": {
        "request_id": str(request_id), "status": "done"}}) in outcome.events
    # Someone else's request id changes nothing and announces nothing.
    (other,) = await s.make_appliances(rt, 1)
    foreign = msg(other, "cmd/result", s.envelope(request_id=str(request_id), status="failed"))
    events = (await ingest.store_batch(rt, [foreign])).events
    assert [p["type"] for _c, p in events] == ["appliance.presence"]  # it spoke: online


async def test_registered_handlers_run_once_and_a_failing_one_drops_only_its_message(
    svc: Service, restore_handlers: None
) -> None:
    rt = svc.runtime
    (device,) = await s.make_appliances(rt, 1)
    seen: list[uuid.UUID] = []

    async def on_session(ctx: HandlerContext, message: DeviceMessage) -> None:
        seen.append(message.id)
        ctx.emit(f"session:{message.body['session_id']}", "session.updated", {"ok": True})

    async def broken(ctx: HandlerContext, message: DeviceMessage) -> None:
        await ctx.session.get(Appliance, message.device_id)
        raise RuntimeError("a bug in a handler")

    handlers.register("session", on_session)
    handlers.register("ota", broken)
    handlers._handlers.pop("sync", None)
    session_id = uuid.uuid4()
    event = msg(device, "session", s.session_event(session_id))
    ota = msg(device, "ota", s.envelope(rollout_id=str(uuid.uuid4()), status="failed"))
    sync = msg(device, "sync", s.envelope(cursor="c", installed=[]))
    telemetry = msg(device, "telemetry", s.telemetry(2))
    outcome = await ingest.store_batch(rt, [event, ota, sync, telemetry])
    assert outcome.results == {event.id: "stored", ota.id: "handler_error", sync.id: "stored",
                               telemetry.id: "stored"}
    assert seen == [event.id]
    assert (f"session:{session_id}", {"type": "session.updated", "data": {"ok": True}}) in \
        outcome.events
    assert await s.count_samples(rt) == 2
    await ingest.store_batch(rt, [event])
    assert seen == [event.id]
    with pytest.raises(ValueError):
        handlers.register("telemetry", on_session)


async def test_inactive_appliances_are_marked_offline(svc: Service) -> None:
    rt = svc.runtime
    quiet, chatty = await s.make_appliances(rt, 2)
    await ingest.store_batch(rt, [msg(quiet, "presence", s.presence_online()),
                                  msg(chatty, "presence", s.presence_online())])
    later = clock.utcnow() + timedelta(seconds=95)
    await ingest.store_batch(rt, [msg(chatty, "telemetry", s.telemetry(1))], now=later)
    await rt.bus.ready.wait()
    events = Events(rt, f"appliance:{quiet}")
    assert await presence.sweep_once(rt, later + timedelta(seconds=1)) == [str(quiet)]
    assert not (await appliance(rt, quiet)).online
    assert (await appliance(rt, quiet)).presence_reason == "inactive"
    assert (await appliance(rt, chatty)).online
    assert await presence.sweep_once(rt, later + timedelta(seconds=2)) == []
    await s.wait_until(lambda: _has(events, 1), message="the offline event")
    assert events.seen[0][1]["data"]["online"] is False


async def test_embedded_sqlite_runs_the_same_pipeline(embedded: Service) -> None:
    rt = embedded.runtime
    (device,) = await s.make_appliances(rt, 1)
    telemetry = msg(device, "telemetry", s.telemetry(4))
    outcome = await ingest.store_batch(rt, [telemetry, msg(device, "alert", s.alert()),
                                            msg(device, "state", s.state())])
    assert set(outcome.results.values()) == {"stored"}
    assert (await ingest.store_batch(rt, [telemetry])).results == {telemetry.id: "duplicate"}
    assert await s.count_samples(rt) == 4
    async with rt.db.sessions() as session:
        assert await session.get(TelemetryLatest, device) is not None
        assert len((await session.scalars(select(ApplianceAlert))).all()) == 1
    assert (await appliance(rt, device)).online
    assert await presence.sweep_once(rt, clock.utcnow() + timedelta(seconds=91)) == [str(device)]
