"""The bulk writes of ingest: message ids (deduplication), telemetry samples, latest sample.

PostgreSQL goes through the session's asyncpg connection, inside the batch's transaction: ids by
one `INSERT … SELECT unnest(…) ON CONFLICT DO NOTHING RETURNING`, samples by binary COPY, the
latest samples by one upsert. SQLite (the embedded default, low volume) uses plain SQLAlchemy.
Rows are written in id order so that two bridges writing overlapping sets lock them in the same
order.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from sqlalchemy import insert, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.appliances.models import DeviceMessage as SeenMessage
from epicura.bridge.payloads import DeviceMessage, sample_extra
from epicura.kit.db import Database
from epicura.telemetry.models import NUMERIC_METRICS, TelemetryLatest, TelemetrySample

SAMPLE_COLUMNS = ("appliance_id", "t", "message_id", "session_id", *NUMERIC_METRICS, "direction",
                  "lid", "extra")
RAW_TABLE = "telemetry_samples"

CLAIM_IDS = """
INSERT INTO device_messages (id, appliance_id, kind, received_at)
SELECT m.id, m.appliance_id, m.kind, $4::timestamptz
FROM unnest($1::uuid[], $2::uuid[], $3::varchar[]) AS m(id, appliance_id, kind)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

UPSERT_LATEST = """
INSERT INTO telemetry_latest (appliance_id, t, session_id, sample)
SELECT a, t, s, j::jsonb
FROM unnest($1::uuid[], $2::timestamptz[], $3::uuid[], $4::text[]) AS x(a, t, s, j)
ORDER BY a
ON CONFLICT (appliance_id) DO UPDATE
SET t = EXCLUDED.t, session_id = EXCLUDED.session_id, sample = EXCLUDED.sample
WHERE telemetry_latest.t < EXCLUDED.t
"""


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def _driver(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session, inside the session's transaction."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection  # type: ignore[assignment]
    if not driver.is_in_transaction():
        # SQLAlchemy begins lazily, on its first statement: make it begin now.
        await session.execute(text("SELECT 1"))
    return driver


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


async def claim_ids(session: AsyncSession, messages: Sequence[DeviceMessage],
                    now: datetime) -> set[uuid.UUID]:
    """Record the messages' ids; returns those not seen before (the others are redeliveries)."""
    if not messages:
        return set()
    ordered = sorted(messages, key=lambda m: m.id)
    if is_postgres(session):
        driver = await _driver(session)
        rows = await driver.fetch(
            CLAIM_IDS, [m.id for m in ordered], [m.device_id for m in ordered],
            [m.kind for m in ordered], now)
        return {uuid.UUID(bytes=row[0].bytes) for row in rows}
    statement = sqlite.insert(SeenMessage).values([
        {"id": m.id, "appliance_id": m.device_id, "kind": m.kind, "received_at": now}
        for m in ordered
    ]).on_conflict_do_nothing().returning(SeenMessage.id)
    return set((await session.execute(statement)).scalars().all())


def _sample_row(message: DeviceMessage, sample: dict[str, Any],
                session_id: uuid.UUID | None) -> tuple[Any, ...]:
    extra = sample_extra(sample)
    get = sample.get
    return (
        message.device_id, ms_to_datetime(sample["t"]), message.id, session_id,
        get("bowl_temp_c"), get("target_temp_c"), get("speed"), get("weight_g"),
        get("heater_w"), get("motor_rpm"), get("direction"), get("lid"),
        None if extra is None else orjson.dumps(extra).decode(),
    )


def sample_rows(messages: Iterable[DeviceMessage]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for message in messages:
        session_id = message.session_id
        rows.extend(_sample_row(message, sample, session_id) for sample in message.samples)
    return rows


async def write_samples(session: AsyncSession, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    if is_postgres(session):
        driver = await _driver(session)
        await driver.copy_records_to_table(RAW_TABLE, records=rows, columns=SAMPLE_COLUMNS)
        return
    dicts = [dict(zip(SAMPLE_COLUMNS, row, strict=True)) for row in rows]
    for item in dicts:
        if item["extra"] is not None:
            item["extra"] = orjson.loads(item["extra"])
    await session.execute(insert(TelemetrySample), dicts)


def newest_samples(messages: Iterable[DeviceMessage]) -> dict[uuid.UUID, tuple[int, Any, Any]]:
    """Per appliance, its newest sample in these messages: (t, session id, sample)."""
    newest: dict[uuid.UUID, tuple[int, Any, Any]] = {}
    for message in messages:
        if not message.samples:
            continue
        sample = max(message.samples, key=lambda s: s["t"])
        current = newest.get(message.device_id)
        if current is None or sample["t"] > current[0]:
            newest[message.device_id] = (sample["t"], message.session_id, sample)
    return newest


async def upsert_latest(session: AsyncSession,
                        newest: dict[uuid.UUID, tuple[int, Any, Any]]) -> None:
    if not newest:
        return
    ids = sorted(newest)
    if is_postgres(session):
        driver = await _driver(session)
        await driver.execute(
            UPSERT_LATEST, ids, [ms_to_datetime(newest[i][0]) for i in ids],
            [newest[i][1] for i in ids], [orjson.dumps(newest[i][2]).decode() for i in ids])
        return
    for appliance_id in ids:
        t, session_id, sample = newest[appliance_id]
        statement = sqlite.insert(TelemetryLatest).values(
            appliance_id=appliance_id, t=ms_to_datetime(t), session_id=session_id, sample=sample)
        await session.execute(statement.on_conflict_do_update(
            index_elements=["appliance_id"],
            set_={"t": statement.excluded.t, "session_id": statement.excluded.session_id,
                  "sample": statement.excluded.sample},
            where=TelemetryLatest.t < statement.excluded.t,
        ))


class Partitions:
    """Day partitions of the raw samples known to exist. The worker creates them a week ahead;
    should it have stopped for longer, ingest creates the day it needs rather than failing every
    batch (in its own short transaction, before the batch's)."""

    def __init__(self) -> None:
        self._known: set[date] = set()

    async def ensure(self, db: Database, days: set[date]) -> None:
        missing = days - self._known
        if not missing or db.is_sqlite:
            self._known |= missing
            return
        async with db.engine.begin() as conn:
            await conn.execute(text("SET LOCAL lock_timeout = '5s'"))
            for day in sorted(missing):
                name = f"{RAW_TABLE}_{day:%Y%m%d}"
                exists = await conn.scalar(text("SELECT to_regclass(:name)"), {"name": name})
                if exists is None:
                    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                    end = start + timedelta(days=1)
                    await conn.execute(text(
                        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {RAW_TABLE} FOR VALUES "
                        f"FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
                    ))
        self._known |= missing


def sample_days(rows: Iterable[tuple[Any, ...]]) -> set[date]:
    return {row[1].date() for row in rows}
