"""The fleet analytics' SQL: aggregates computed by the database over the other modules' tables
(read-only), never rows brought into Python. PostgreSQL and SQLite differ only in how a
timestamp is cut to its day."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Result, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.kit.db import UTCDateTime

SESSION_GROUPS = {
    # group_by -> (key expression, extra join, label expression)
    "status": ("s.status", "", "s.status"),
    "recipe": ("s.recipe_id", "LEFT JOIN recipes r ON r.id = s.recipe_id", "MAX(r.title)"),
    "firmware": ("a.firmware_version",
                 "LEFT JOIN appliances a ON a.id = s.appliance_id", "a.firmware_version"),
}
ROLLUP_METRICS = frozenset(
    ("bowl_temp_c", "target_temp_c", "speed", "weight_g", "heater_w", "motor_rpm"))
TELEMETRY_GROUPS = {"firmware": "a.firmware_version", "model": "a.model"}


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _day(session: AsyncSession, column: str) -> str:
    """The UTC day of a timestamp: a timestamp on PostgreSQL (grouped as such, formatted by the
    caller: cheaper than formatting a million rows), the date text on SQLite."""
    if _dialect(session) == "postgresql":
        return f"date_trunc('day', {column} AT TIME ZONE 'UTC')"
    return f"substr({column}, 1, 10)"


async def _run(session: AsyncSession, sql: str, **params: Any) -> Result[Any]:
    """`sql` with its timestamps bound as the models store them (naive UTC text on SQLite)."""
    statement = text(sql).bindparams(*(bindparam(name, type_=UTCDateTime())
                                       for name, value in params.items()
                                       if isinstance(value, datetime)))
    return await session.execute(statement, params)


async def _scalar(session: AsyncSession, sql: str, **params: Any) -> int:
    return int((await _run(session, sql, **params)).scalar() or 0)


async def overview(session: AsyncSession, *, day_start: datetime, week_start: datetime,
                   ingest_since: datetime) -> dict[str, int]:
    """Counts for the dashboard, each one indexed query."""
    return {
        "users": await _scalar(session, "SELECT count(*) FROM users WHERE deleted_at IS NULL"),
        "appliances": await _scalar(
            session, "SELECT count(*) FROM appliances WHERE lifecycle <> 'decommissioned'"),
        "online_now": await _scalar(
            session, "SELECT count(*) FROM appliances WHERE online AND "
                     "lifecycle <> 'decommissioned'"),
        "sessions_today": await _scalar(
            session, "SELECT count(*) FROM cooking_sessions WHERE created_at >= :t",
            t=day_start),
        "sessions_7d": await _scalar(
            session, "SELECT count(*) FROM cooking_sessions WHERE created_at >= :t",
            t=week_start),
        "ingest_samples": await _scalar(
            session, "SELECT count(*) FROM telemetry_samples WHERE received_at >= :t",
            t=ingest_since),
        "failed_jobs": await _scalar(
            session, "SELECT count(*) FROM jobs WHERE state IN ('failed', 'dead')"),
        "open_alerts": await _scalar(
            session, "SELECT count(*) FROM appliance_alerts WHERE state = 'raised'"),
    }


async def sessions_by_day(session: AsyncSession, start: datetime,
                          end: datetime) -> list[dict[str, Any]]:
    day = _day(session, "created_at")
    sql = (f"SELECT {day} AS key, count(*) AS sessions, "  # noqa: S608 - fixed fragments
           "sum(CASE WHEN status = 'completed' THEN 1 ELSE 0 END) AS completed, "
           "avg(duration_s) AS mean_duration_s "
           "FROM cooking_sessions WHERE created_at >= :start AND created_at < :end "
           f"GROUP BY {day} ORDER BY key")
    rows = await _run(session, sql, start=start, end=end)
    days = []
    for row in rows:
        key = row.key if isinstance(row.key, str) else row.key.strftime("%Y-%m-%d")
        days.append(dict(row._mapping, key=key, label=key))
    return days


async def sessions_grouped(session: AsyncSession, group_by: str, start: datetime, end: datetime,
                           limit: int) -> list[dict[str, Any]]:
    key, join, label = SESSION_GROUPS[group_by]
    sql = (f"SELECT {key} AS key, {label} AS label, count(*) AS sessions, "  # noqa: S608
           "sum(CASE WHEN s.status = 'completed' THEN 1 ELSE 0 END) AS completed, "
           "avg(s.duration_s) AS mean_duration_s "
           f"FROM cooking_sessions s {join} "
           "WHERE s.created_at >= :start AND s.created_at < :end "
           f"GROUP BY {key} ORDER BY sessions DESC, key LIMIT :limit")
    rows = await _run(session, sql, start=start, end=end, limit=limit)
    return [dict(row._mapping) for row in rows]


async def telemetry_grouped(session: AsyncSession, metric: str, group_by: str, start: datetime,
                            end: datetime) -> list[dict[str, Any]]:
    """One metric of the hourly rollups over [start, end), per firmware or model: min, max,
    the sample-weighted mean and how many samples and appliances it covers. `metric` is one of
    the rollup's numeric metrics (the caller checks it against a fixed list)."""
    if metric not in ROLLUP_METRICS:
        raise ValueError(f"not a rollup metric: {metric!r}")
    key = TELEMETRY_GROUPS[group_by]
    # Per appliance first (a few hundred groups from the partitions in the window), then per
    # firmware or model: no join of every rollup row, no DISTINCT over them.
    sql = (f"SELECT {key} AS key, min(p.low) AS min, max(p.high) AS max, "  # noqa: S608
           "sum(p.total) / nullif(sum(p.n), 0) AS mean, sum(p.n) AS samples, "
           "count(*) AS appliances FROM ("
           f"SELECT h.appliance_id, min(h.{metric}_min) AS low, max(h.{metric}_max) AS high, "
           f"sum(h.{metric}_sum) AS total, sum(h.{metric}_count) AS n FROM telemetry_1h h "
           "WHERE h.bucket >= :start AND h.bucket < :end GROUP BY h.appliance_id) AS p "
           "JOIN appliances a ON a.id = p.appliance_id "
           f"GROUP BY {key} ORDER BY key")
    rows = await _run(session, sql, start=start, end=end)
    return [dict(row._mapping) for row in rows]
