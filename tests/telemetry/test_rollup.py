"""Rollups: exact min / mean / max / last per minute and per hour, per appliance; late
(backlog) samples update the buckets they fall in; re-running changes nothing; a sample whose
ingest transaction was still open during a run is picked up by the next (PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Table, insert, select

from epicura.telemetry import rollup
from epicura.telemetry.models import TelemetrySample, telemetry_1h, telemetry_1m
from tests.support import Service
from tests.telemetry.conftest import T0, sample, store

pytestmark = pytest.mark.anyio

M = T0 - timedelta(minutes=10)  # 11:50
HOUR = M.replace(minute=0)  # 11:00


async def rows(svc: Service, table: Table, appliance_id: uuid.UUID) -> dict[datetime, Any]:
    async with svc.runtime.db.sessions() as session:
        found = await session.execute(
            select(table).where(table.c.appliance_id == appliance_id).order_by(table.c.bucket))
        return {row.bucket: row for row in found}


def first_minutes(a: uuid.UUID, b: uuid.UUID) -> list[dict[str, Any]]:
    s = timedelta(seconds=1)
    return [
        sample(a, M, bowl_temp_c=20.5, speed=3.0, weight_g=100.0, lid="open", direction="cw"),
        sample(a, M + 15 * s, bowl_temp_c=23.75, speed=3.0),
        sample(a, M + 30 * s, bowl_temp_c=21.25, speed=3.0, weight_g=150.5, lid="locked"),
        sample(a, M + 45 * s, bowl_temp_c=22.0, speed=3.0),
        sample(a, M + 60 * s, bowl_temp_c=30.0),
        sample(a, M + 90 * s, bowl_temp_c=31.0),
        sample(a, HOUR - 30 * s, bowl_temp_c=10.0),  # 10:59:30, the hour before
        sample(b, M + 10 * s, bowl_temp_c=99.0, lid="open"),  # another appliance, same minute
    ]


async def test_minute_and_hour_rollups_are_exact(at_t0: Service) -> None:
    svc = at_t0
    a, b = uuid.uuid4(), uuid.uuid4()
    await store(svc.runtime.db, first_minutes(a, b))
    done = await rollup.roll_up(svc.runtime.db)
    assert done.minutes >= 4 and done.hours >= 3

    minutes = await rows(svc, telemetry_1m, a)
    assert list(minutes) == [HOUR - timedelta(minutes=1), M, M + timedelta(minutes=1)]
    first = minutes[M]
    assert first.samples == 4
    assert (first.bowl_temp_c_min, first.bowl_temp_c_max) == (20.5, 23.75)
    assert (first.bowl_temp_c_sum, first.bowl_temp_c_count) == (87.5, 4)
    assert first.bowl_temp_c_last == 22.0  # the value at the latest t
    # A metric missing from later samples: `last` is its value at the latest t it was present.
    assert (first.weight_g_count, first.weight_g_min, first.weight_g_max) == (2, 100.0, 150.5)
    assert first.weight_g_last == 150.5
    assert (first.lid_last, first.direction_last) == ("locked", "cw")
    assert (first.heater_w_count, first.heater_w_min, first.heater_w_last) == (0, None, None)
    second = minutes[M + timedelta(minutes=1)]
    assert (second.samples, second.bowl_temp_c_sum, second.bowl_temp_c_last) == (2, 61.0, 31.0)

    hours = await rows(svc, telemetry_1h, a)
    assert list(hours) == [HOUR - timedelta(hours=1), HOUR]
    hour = hours[HOUR]
    assert hour.samples == 6
    assert (hour.bowl_temp_c_min, hour.bowl_temp_c_max) == (20.5, 31.0)
    assert (hour.bowl_temp_c_sum, hour.bowl_temp_c_count) == (148.5, 6)
    assert hour.bowl_temp_c_last == 31.0
    assert (hour.weight_g_last, hour.lid_last) == (150.5, "locked")  # from the earlier minute
    assert hours[HOUR - timedelta(hours=1)].bowl_temp_c_last == 10.0

    other = await rows(svc, telemetry_1m, b)
    assert [(r.samples, r.bowl_temp_c_max, r.lid_last) for r in other.values()] == [
        (1, 99.0, "open")]


async def test_late_samples_update_their_buckets_and_reruns_change_nothing(
    at_t0: Service,
) -> None:
    svc = at_t0
    a, b = uuid.uuid4(), uuid.uuid4()
    await store(svc.runtime.db, first_minutes(a, b))
    await rollup.roll_up(svc.runtime.db)

    # A backlog message arrives later with samples of that minute and of three days ago.
    old = T0 - timedelta(days=3, minutes=7, seconds=30)
    await store(svc.runtime.db, [
        sample(a, M + timedelta(seconds=50), bowl_temp_c=19.0, lid="open"),
        sample(a, old, bowl_temp_c=55.5, motor_rpm=1200.0),
    ])
    await rollup.roll_up(svc.runtime.db)

    minute = (await rows(svc, telemetry_1m, a))[M]
    assert (minute.samples, minute.bowl_temp_c_min, minute.bowl_temp_c_max) == (5, 19.0, 23.75)
    assert (minute.bowl_temp_c_sum, minute.bowl_temp_c_last, minute.lid_last) == (
        106.5, 19.0, "open")
    hour = (await rows(svc, telemetry_1h, a))[HOUR]
    assert (hour.samples, hour.bowl_temp_c_min, hour.bowl_temp_c_sum) == (7, 19.0, 167.5)
    assert (hour.bowl_temp_c_last, hour.lid_last) == (31.0, "open")  # 11:51 is still the latest
    old_hour = (await rows(svc, telemetry_1h, a))[old.replace(minute=0, second=0)]
    assert (old_hour.samples, old_hour.motor_rpm_last, old_hour.bowl_temp_c_max) == (
        1, 1200.0, 55.5)

    before = (await rows(svc, telemetry_1m, a), await rows(svc, telemetry_1h, a))
    await rollup.roll_up(svc.runtime.db)
    await rollup.roll_up(svc.runtime.db)
    assert (await rows(svc, telemetry_1m, a), await rows(svc, telemetry_1h, a)) == before


async def test_rollups_are_served_by_the_api(at_t0: Service) -> None:
    from tests.telemetry.conftest import appliance, ms, person

    svc = at_t0
    cook = await person(svc, "telemetry-rollup-api@example.com")
    a = await appliance(svc, cook.id)
    await store(svc.runtime.db, first_minutes(a, uuid.uuid4()))
    await rollup.roll_up(svc.runtime.db)
    reply = await svc.client.get(
        f"/api/v1/telemetry/{a}", headers=cook.headers,
        params={"from": (HOUR - timedelta(hours=1)).isoformat(), "to": T0.isoformat(),
                "resolution": "1m", "metrics": "bowl_temp_c,lid,heater_w"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["resolution"], body["bucket_s"]) == ("1m", 60)
    assert body["metrics"]["bowl_temp_c"] == [
        [ms(HOUR - timedelta(minutes=1)), 10.0, 10.0, 10.0],
        [ms(M), 20.5, 21.875, 23.75],
        [ms(M + timedelta(minutes=1)), 30.0, 30.5, 31.0],
    ]
    assert body["metrics"]["lid"] == [[ms(M), "locked"]]
    assert body["metrics"]["heater_w"] == []
    hourly = await svc.client.get(
        f"/api/v1/telemetry/{a}", headers=cook.headers,
        params={"from": ms(HOUR - timedelta(hours=1)), "to": ms(T0), "resolution": "1h",
                "metrics": "bowl_temp_c"})
    assert hourly.json()["metrics"]["bowl_temp_c"] == [
        [ms(HOUR - timedelta(hours=1)), 10.0, 10.0, 10.0], [ms(HOUR), 20.5, 24.75, 31.0]]


async def test_a_sample_committed_after_a_run_began_is_rolled_up_next_time(svc: Service) -> None:
    """The overlap: an ingest transaction opened before the run's `now` and committed after it
    has a `received_at` behind the watermark, and is still counted (PostgreSQL)."""
    db = svc.runtime.db
    a = uuid.uuid4()
    t = datetime.now(T0.tzinfo).replace(second=5, microsecond=0) - timedelta(minutes=30)
    await rollup.roll_up(db)  # the watermark exists
    async with db.transaction() as ingest:
        await ingest.execute(insert(TelemetrySample), [sample(a, t, bowl_temp_c=42.0)])
        await ingest.flush()
        await rollup.roll_up(db)  # runs while the ingest transaction is open: sees nothing
        assert await rows(svc, telemetry_1m, a) == {}
    await rollup.roll_up(db)
    found = await rows(svc, telemetry_1m, a)
    assert [(r.samples, r.bowl_temp_c_last) for r in found.values()] == [(1, 42.0)]
