"""All SQL of the telemetry queries: the latest sample and series.

On PostgreSQL a series is one statement that returns the `metrics` object as JSON text, built
by the database (no rows reach Python). On SQLite the rows are read with Core and shaped in
Python with the same merge rules (aggregate.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.telemetry.aggregate import mean, merge
from epicura.telemetry.models import (
    TEXT_METRICS,
    TelemetryLatest,
    TelemetrySample,
    telemetry_1h,
    telemetry_1m,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)
ROLLUP_TABLES = {"1m": telemetry_1m, "1h": telemetry_1h}


@dataclass(frozen=True)
class SeriesQuery:
    """What to read: validated and planned by the service."""

    appliance_id: uuid.UUID
    start: datetime  # for rollups, aligned down to `bucket_s`
    end: datetime
    resolution: str  # raw | 1m | 1h
    bucket_s: int  # 0 for raw; else the width of each point (a multiple of the resolution)
    metrics: tuple[str, ...]
    max_points: int


def epoch_ms(moment: datetime) -> int:
    return (moment - EPOCH) // MS


async def latest(session: AsyncSession, appliance_id: uuid.UUID) -> TelemetryLatest | None:
    found: TelemetryLatest | None = await session.get(TelemetryLatest, appliance_id)
    return found


# PostgreSQL -------------------------------------------------------------------------------------
# Metric names and numbers written into these statements come from the models' constants and
# the service's plan (never from the request as text); values are bound parameters.

MS_OF_T = "floor(extract(epoch FROM t) * 1000)::bigint"


def _series_object(metrics: Iterable[str], points: dict[str, str], present: dict[str, str],
                   source: str, order: str) -> str:
    select = "SELECT coalesce(json_agg(json_build_array({}) ORDER BY {}), '[]'::json) FROM {}"
    pairs = [
        f"'{m}', ({select.format(points[m], order, source)} WHERE {present[m]})" for m in metrics
    ]
    return f"SELECT json_build_object({', '.join(pairs)})::text"


def raw_sql(q: SeriesQuery) -> str:
    columns = ", ".join(q.metrics)
    # Decimation: past `max_points` samples (an appliance sampling faster than 1 Hz), every
    # k-th is kept so the series still spans the whole range.
    head = f"""
WITH r AS (
    SELECT t, {columns}, row_number() OVER (ORDER BY t) AS rn, count(*) OVER () AS n
      FROM telemetry_samples
     WHERE appliance_id = :appliance_id AND t >= :start AND t < :end
), d AS (
    SELECT {MS_OF_T} AS ms, {columns} FROM r
     WHERE (rn - 1) % greatest(1, ceil(n / {float(q.max_points)}))::bigint = 0
)
"""  # noqa: S608
    points = {m: f"ms, {m}" for m in q.metrics}
    present = {m: f"{m} IS NOT NULL" for m in q.metrics}
    return head + _series_object(q.metrics, points, present, "d", "ms")


def _group_aggregates(metrics: Sequence[str]) -> str:
    parts = []
    for m in metrics:
        if m in TEXT_METRICS:
            parts.append(f"(array_agg({m}_last ORDER BY bucket DESC) "
                         f"FILTER (WHERE {m}_last IS NOT NULL))[1] AS {m}_last")
        else:
            parts += [f"min({m}_min) AS {m}_min", f"max({m}_max) AS {m}_max",
                      f"(sum({m}_sum) / nullif(sum({m}_count), 0))::real AS {m}_mean",
                      f"sum({m}_count) AS {m}_count"]
    return ",\n           ".join(parts)


def rollup_sql(q: SeriesQuery) -> str:
    table = ROLLUP_TABLES[q.resolution].name
    head = f"""
WITH agg AS (
    SELECT floor(extract(epoch FROM bucket) / {q.bucket_s})::bigint * {q.bucket_s * 1000} AS ms,
           {_group_aggregates(q.metrics)}
      FROM {table}
     WHERE appliance_id = :appliance_id AND bucket >= :start AND bucket < :end
     GROUP BY 1
)
"""  # noqa: S608
    points = {m: f"ms, {m}_last" if m in TEXT_METRICS else f"ms, {m}_min, {m}_mean, {m}_max"
              for m in q.metrics}
    present = {m: f"{m}_last IS NOT NULL" if m in TEXT_METRICS else f"{m}_count > 0"
               for m in q.metrics}
    return head + _series_object(q.metrics, points, present, "agg", "ms")


async def series_json_postgres(session: AsyncSession, q: SeriesQuery) -> bytes:
    sql = raw_sql(q) if q.resolution == "raw" else rollup_sql(q)
    params = {"appliance_id": q.appliance_id, "start": q.start, "end": q.end}
    found = await session.scalar(text(sql), params)
    return str(found).encode()


# SQLite -----------------------------------------------------------------------------------------

async def _raw_points(session: AsyncSession, q: SeriesQuery) -> dict[str, list[list[Any]]]:
    sample = TelemetrySample
    rows = (await session.execute(
        select(sample.t, *(getattr(sample, m) for m in q.metrics))
        .where(sample.appliance_id == q.appliance_id, sample.t >= q.start, sample.t < q.end)
        .order_by(sample.t)
    )).all()
    step = max(1, -(-len(rows) // q.max_points))
    series: dict[str, list[list[Any]]] = {m: [] for m in q.metrics}
    for row in rows[::step]:
        ms = epoch_ms(row[0])
        for index, m in enumerate(q.metrics, start=1):
            if row[index] is not None:
                series[m].append([ms, row[index]])
    return series


def _point(row: dict[str, Any], m: str, ms: int) -> list[Any] | None:
    if m in TEXT_METRICS:
        value = row[f"{m}_last"]
        return None if value is None else [ms, value]
    if not row[f"{m}_count"]:
        return None
    return [ms, row[f"{m}_min"], mean(row, m), row[f"{m}_max"]]


async def _rollup_points(session: AsyncSession, q: SeriesQuery) -> dict[str, list[list[Any]]]:
    table = ROLLUP_TABLES[q.resolution]
    rows = (await session.execute(
        select(table).where(table.c.appliance_id == q.appliance_id, table.c.bucket >= q.start,
                            table.c.bucket < q.end).order_by(table.c.bucket)
    )).mappings().all()
    width = q.bucket_s * 1000
    groups: dict[int, list[Any]] = {}
    for row in rows:
        groups.setdefault(epoch_ms(row["bucket"]) // width * width, []).append(row)
    series: dict[str, list[list[Any]]] = {m: [] for m in q.metrics}
    for ms, members in groups.items():
        merged = merge(members)
        for m in q.metrics:
            if (point := _point(merged, m, ms)) is not None:
                series[m].append(point)
    return series


async def series_json_sqlite(session: AsyncSession, q: SeriesQuery) -> bytes:
    read = _raw_points if q.resolution == "raw" else _rollup_points
    return orjson.dumps(await read(session, q))



# Cooking-session figures (both databases) --------------------------------------------------------

# A sample stands for the time until the next one, at most this long (a gap in the data is not
# assumed to have heated); the last sample stands for one period at 1 Hz.
SAMPLE_SPAN_MAX_S = 5.0
SAMPLE_PERIOD_S = 1.0


async def session_figures(session: AsyncSession, appliance_id: uuid.UUID,
                          session_id: uuid.UUID, start: datetime,
                          end: datetime) -> tuple[int, float | None, float | None, float | None]:
    """(samples, peak and mean bowl temperature, heater energy in Wh) of the appliance's samples
    between `start` and `end` that belong to the session or to none, in one statement."""
    sample = TelemetrySample
    following = func.lead(sample.t).over(order_by=sample.t)
    postgres = session.get_bind().dialect.name == "postgresql"
    span: ColumnElement[Any] = (
        func.extract("epoch", following - sample.t) if postgres
        else (func.julianday(following) - func.julianday(sample.t)) * 86400.0)
    rows = select(sample.bowl_temp_c, sample.heater_w, span.label("span")).where(
        sample.appliance_id == appliance_id, sample.t >= start, sample.t <= end,
        (sample.session_id == session_id) | sample.session_id.is_(None),
    ).subquery()
    shortest = func.least if postgres else func.min  # SQLite's two-argument min is scalar
    weight = shortest(func.coalesce(rows.c.span, SAMPLE_PERIOD_S), SAMPLE_SPAN_MAX_S)
    found = (await session.execute(select(
        func.count(), func.max(rows.c.bowl_temp_c), func.avg(rows.c.bowl_temp_c),
        func.sum(rows.c.heater_w * weight) / 3600.0,
    ))).one()
    count, peak, mean_c, energy = found
    return (int(count), _float(peak), _float(mean_c), _float(energy))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
