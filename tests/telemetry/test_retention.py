"""Partitions and retention (the clock frozen through kit/clock): daily raw partitions a week
ahead and back to the start of retention, dropped — the table gone, not emptied — once past 14
days; monthly rollup partitions dropped past 90 days (1m) and 2 years (1h); on SQLite the same
retention by deleting rows; device message ids pruned in batches on both."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text

from epicura.appliances.models import DeviceMessage
from epicura.kit import clock
from epicura.kit.db import Database
from epicura.telemetry import retention
from epicura.telemetry.aggregate import from_sample
from epicura.telemetry.models import METRICS, TelemetrySample, telemetry_1h, telemetry_1m
from tests.support import Service
from tests.telemetry.conftest import T0, sample, store

pytestmark = pytest.mark.anyio


async def tables(db: Database, prefix: str) -> set[str]:
    async with db.sessions() as session:
        names = await session.scalars(
            text("SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE :p"),
            {"p": prefix + "%"})
        return set(names)


def days(first: datetime, count: int) -> set[str]:
    return {f"telemetry_samples_{first + timedelta(days=n):%Y%m%d}" for n in range(count)}


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.sessions() as session:
        found = await session.scalar(select(func.count()).select_from(model).where(*where))
        return int(found or 0)


def rollup_row(appliance_id: uuid.UUID, bucket: datetime) -> dict[str, Any]:
    values = from_sample({**dict.fromkeys(METRICS), "bowl_temp_c": 1.0})
    return {"appliance_id": appliance_id, "bucket": bucket, **values}


async def store_rollups(db: Database, table: Any, rows: list[dict[str, Any]]) -> None:
    async with db.transaction() as session:
        await session.execute(insert(table), rows)


async def test_raw_partitions_are_made_ahead_and_dropped_whole(svc: Service) -> None:
    db = svc.runtime.db
    with clock.frozen(T0):
        report = await retention.maintain_partitions(db)
        assert report.failed == []
        window = days(datetime(2021, 2, 24, tzinfo=UTC), 22)  # 14 days back, 7 ahead
        assert window <= await tables(db, "telemetry_samples_2021")
        assert {"telemetry_1m_202102", "telemetry_1m_202103", "telemetry_1h_202102",
                "telemetry_1h_202103"} <= await tables(db, "telemetry_1")
        again = await retention.maintain_partitions(db)
        assert (again.created, again.dropped) == ([], [])  # nothing left to do
        a = uuid.uuid4()
        await store(db, [sample(a, T0 - timedelta(days=5), bowl_temp_c=1.0),  # 5 March, noon
                         sample(a, T0 - timedelta(days=3, hours=23), bowl_temp_c=2.0),
                         sample(a, T0 + timedelta(days=6, hours=23), bowl_temp_c=3.0)])

        clock.advance(timedelta(days=10))  # 20 March, noon: the cutoff is 6 March, noon
        later = await retention.maintain_partitions(db)
    # A day partition goes once the whole day is past 14 days: 24 February to 5 March.
    assert sorted(later.dropped) == sorted(days(datetime(2021, 2, 24, tzinfo=UTC), 10))
    present = await tables(db, "telemetry_samples_2021")
    assert "telemetry_samples_20210305" not in present
    assert days(datetime(2021, 3, 6, tzinfo=UTC), 22) <= present  # and a week past the 20th
    # The rows went with their table (6 March 13:00, 13 days 23 hours old, is kept).
    assert await count(db, TelemetrySample, TelemetrySample.appliance_id == a) == 2

    with clock.frozen(datetime(2021, 3, 21, 0, 1, tzinfo=UTC)):
        await retention.maintain_partitions(db)
    assert "telemetry_samples_20210306" not in await tables(db, "telemetry_samples_2021")
    assert await count(db, TelemetrySample, TelemetrySample.appliance_id == a) == 1


async def test_rollup_partitions_are_dropped_at_their_retention(svc: Service) -> None:
    db = svc.runtime.db
    a = uuid.uuid4()
    with clock.frozen(T0):
        await retention.maintain_partitions(db)
    march = datetime(2021, 3, 2, 10, 0, tzinfo=UTC)
    await store_rollups(db, telemetry_1m, [rollup_row(a, march)])
    await store_rollups(db, telemetry_1h, [rollup_row(a, march.replace(minute=0))])

    with clock.frozen(datetime(2021, 6, 29, tzinfo=UTC)):  # March ended 90 days ago on 30 June
        await retention.maintain_partitions(db)
    minutes = await tables(db, "telemetry_1m_2021")
    assert "telemetry_1m_202102" not in minutes  # February ended 90 days ago on 30 May
    assert "telemetry_1m_202103" in minutes
    assert await count(db, telemetry_1m, telemetry_1m.c.appliance_id == a) == 1
    with clock.frozen(datetime(2021, 6, 30, 0, 1, tzinfo=UTC)):
        report = await retention.maintain_partitions(db)
    assert "telemetry_1m_202103" in report.dropped
    assert "telemetry_1m_202103" not in await tables(db, "telemetry_1m_2021")
    assert await count(db, telemetry_1m, telemetry_1m.c.appliance_id == a) == 0
    assert await count(db, telemetry_1h, telemetry_1h.c.appliance_id == a) == 1  # 2 years
    assert "telemetry_1h_202103" in await tables(db, "telemetry_1h_2021")
    with clock.frozen(datetime(2023, 4, 1, tzinfo=UTC)):
        await retention.maintain_partitions(db)
    assert "telemetry_1h_202103" not in await tables(db, "telemetry_1h_2021")


async def device_messages(db: Database, received: list[datetime]) -> None:
    async with db.transaction() as session:
        await session.execute(insert(DeviceMessage), [
            {"id": uuid.uuid4(), "appliance_id": uuid.uuid4(), "kind": "telemetry",
             "received_at": at} for at in received])


async def test_device_message_ids_are_pruned_in_batches(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = service.runtime.db
    monkeypatch.setattr(retention, "DELETE_BATCH", 100)
    old, fresh = T0 - timedelta(days=14, seconds=1), T0 - timedelta(days=13, hours=23)
    await device_messages(db, [old] * 250 + [fresh] * 3)
    with clock.frozen(T0):
        report = await retention.prune_rows(db)
    assert report.deleted["device_messages"] == 250
    assert await count(db, DeviceMessage, DeviceMessage.received_at >= T0 - timedelta(days=15)
                       ) == 3


async def test_sqlite_keeps_the_same_retention_by_deleting_rows(embedded: Service) -> None:
    db = embedded.runtime.db
    a = uuid.uuid4()
    await store(db, [sample(a, T0 - timedelta(days=14, minutes=1), bowl_temp_c=1.0),
                     sample(a, T0 - timedelta(days=13, hours=23), bowl_temp_c=2.0)])
    await store_rollups(db, telemetry_1m, [rollup_row(a, T0 - timedelta(days=90, minutes=1)),
                                           rollup_row(a, T0 - timedelta(days=89))])
    await store_rollups(db, telemetry_1h, [rollup_row(a, T0 - timedelta(days=731)),
                                           rollup_row(a, T0 - timedelta(days=729))])
    with clock.frozen(T0):
        report = await retention.prune_rows(db)
        assert (await retention.maintain_partitions(db)).created == []  # no partitions here
    assert report.deleted == {"device_messages": 0, "telemetry_samples": 1, "telemetry_1m": 1,
                              "telemetry_1h": 1}
    assert await count(db, TelemetrySample, TelemetrySample.appliance_id == a) == 1
    assert await count(db, telemetry_1m, telemetry_1m.c.appliance_id == a) == 1
    assert await count(db, telemetry_1h, telemetry_1h.c.appliance_id == a) == 1
