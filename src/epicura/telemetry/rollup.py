"""1-minute and 1-hour rollups of raw telemetry, computed incrementally.

Which buckets to compute is decided by ingest time, not sample time: each run reads the raw rows
stored since the last run (`received_at`, set by the database), takes the distinct
(appliance, minute) pairs of their `t`, and recomputes those whole minutes from raw, then the
hours containing them from the 1-minute rows. So a backlog message holding samples from days ago
recomputes exactly the old buckets it touched, and a bucket is always rebuilt from everything
stored for it (an upsert), never patched: running a window twice gives the same rows.

The window is [watermark, upper): `received_at` is its transaction's start (`now()`), so a
transaction still open when a run reads would, once committed, add rows behind where the run
read. On PostgreSQL `upper` is therefore the start of the oldest transaction still open in the
database (from `pg_stat_activity`; never more than 10 minutes back, so a forgotten session
cannot stall the rollups): everything received before it is committed and visible, and nothing
is read twice. (`pg_stat_activity` shows other roles' transactions only to members of
`pg_read_all_stats`: the bridge and the worker use the same role, or the worker's is granted it.)
SQLite has one writer and a few appliances: there the window simply starts two minutes before
the watermark. The watermark moves in the same transaction as the upserts.

PostgreSQL does the work in two statements per window. SQLite (embedded, a handful of
appliances) aggregates in Python with the same merge rules as the query path (`merge`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, select, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.kit.db import Database
from epicura.telemetry.aggregate import from_sample, merge, rollup_fields
from epicura.telemetry.models import (
    NUMERIC_METRICS,
    TEXT_METRICS,
    RollupState,
    TelemetrySample,
    telemetry_1h,
    telemetry_1m,
)

STATE_NAME = "rollups"
SQLITE_OVERLAP = timedelta(minutes=2)
MAX_WINDOW = timedelta(minutes=15)  # a long backlog of ingest is worked off in bounded steps
FIRST_LOOKBACK = timedelta(days=15)  # the first run covers everything raw retention keeps
MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)

Key = tuple[Any, datetime]  # (appliance_id, bucket)


@dataclass
class RollupRun:
    windows: int = 0
    minutes: int = 0
    hours: int = 0


def _last(column: str, order: str, present: str) -> str:
    return f"(array_agg({column} ORDER BY {order}) FILTER (WHERE {present}))[1]"


def _minute_aggregates() -> str:
    order = "s.t DESC, s.received_at DESC, s.message_id DESC"
    parts = []
    for m in NUMERIC_METRICS:
        parts += [f"min(s.{m})", f"max(s.{m})", f"sum(s.{m}::float8)", f"count(s.{m})",
                  _last(f"s.{m}", order, f"s.{m} IS NOT NULL")]
    parts += [_last(f"s.{m}", order, f"s.{m} IS NOT NULL") for m in TEXT_METRICS]
    return ",\n       ".join(parts)


def _hour_aggregates() -> str:
    order = "m.bucket DESC"
    parts = []
    for m in NUMERIC_METRICS:
        parts += [f"min(m.{m}_min)", f"max(m.{m}_max)", f"sum(m.{m}_sum)", f"sum(m.{m}_count)",
                  _last(f"m.{m}_last", order, f"m.{m}_count > 0")]
    parts += [_last(f"m.{m}_last", order, f"m.{m}_last IS NOT NULL") for m in TEXT_METRICS]
    return ",\n       ".join(parts)


def _upsert_tail() -> str:
    fields = ["samples", *rollup_fields()]
    updates = ", ".join(f"{f} = excluded.{f}" for f in fields)
    return f"ON CONFLICT (appliance_id, bucket) DO UPDATE SET {updates}"


COLUMNS = ", ".join(["appliance_id", "bucket", "samples", *rollup_fields()])

# Identifiers in these statements are this module's constants; every value is a bound parameter.
UPSERT_1M = f"""
WITH dirty AS (
    SELECT DISTINCT appliance_id, date_trunc('minute', t, 'UTC') AS bucket
      FROM telemetry_samples
     WHERE received_at >= :lo AND received_at < :hi
)
INSERT INTO telemetry_1m ({COLUMNS})
SELECT d.appliance_id, d.bucket, count(*),
       {_minute_aggregates()}
  FROM dirty d
  JOIN telemetry_samples s
    ON s.appliance_id = d.appliance_id AND s.t >= d.bucket AND s.t < d.bucket + interval '1 minute'
 GROUP BY d.appliance_id, d.bucket
{_upsert_tail()}
RETURNING appliance_id, bucket
"""  # noqa: S608

UPSERT_1H = f"""
WITH dirty AS (
    SELECT * FROM unnest(CAST(:appliances AS uuid[]), CAST(:hours AS timestamptz[]))
        AS d(appliance_id, bucket)
)
INSERT INTO telemetry_1h ({COLUMNS})
SELECT d.appliance_id, d.bucket, sum(m.samples),
       {_hour_aggregates()}
  FROM dirty d
  JOIN telemetry_1m m
    ON m.appliance_id = d.appliance_id AND m.bucket >= d.bucket
   AND m.bucket < d.bucket + interval '1 hour'
 GROUP BY d.appliance_id, d.bucket
{_upsert_tail()}
"""  # noqa: S608


def floor_to(moment: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((moment - epoch) // step) * step


def hours_of(minutes: Iterable[Key]) -> list[Key]:
    return sorted({(appliance, floor_to(bucket, HOUR)) for appliance, bucket in minutes})


async def _postgres_window(session: AsyncSession, lo: datetime, hi: datetime) -> RollupRun:
    minutes = (await session.execute(text(UPSERT_1M), {"lo": lo, "hi": hi})).all()
    hours = hours_of((row[0], row[1]) for row in minutes)
    if hours:
        await session.execute(text(UPSERT_1H), {"appliances": [h[0] for h in hours],
                                                "hours": [h[1] for h in hours]})
    return RollupRun(windows=1, minutes=len(minutes), hours=len(hours))


# SQLite ---------------------------------------------------------------------------------------

async def _raw_minutes(session: AsyncSession, lo: datetime, hi: datetime) -> set[Key]:
    rows = await session.execute(
        select(TelemetrySample.appliance_id, TelemetrySample.t)
        .where(TelemetrySample.received_at >= lo, TelemetrySample.received_at < hi)
    )
    return {(appliance, floor_to(t, MINUTE)) for appliance, t in rows}


async def _upsert_sqlite(session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    statement = sqlite_insert(table)
    fields = ["samples", *rollup_fields()]
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["appliance_id", "bucket"],
            set_={f: statement.excluded[f] for f in fields},
        ),
        rows,
    )


def _group(rows: Iterable[dict[str, Any]], step: timedelta, wanted: set[Key]
           ) -> list[dict[str, Any]]:
    """Rows (sorted by time) merged per (appliance, bucket of `step`) for the wanted buckets."""
    groups: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        key = (row["appliance_id"], floor_to(row["time"], step))
        if key in wanted:
            groups[key].append(row)
    return [{"appliance_id": a, "bucket": b, **merge(parts)} for (a, b), parts in groups.items()]


async def _sqlite_minutes(session: AsyncSession, minutes: set[Key]) -> list[dict[str, Any]]:
    sample = TelemetrySample
    columns = [getattr(sample, m) for m in (*NUMERIC_METRICS, *TEXT_METRICS)]
    rows: list[dict[str, Any]] = []
    for appliance in {a for a, _ in minutes}:
        buckets = [b for a, b in minutes if a == appliance]
        found = await session.execute(
            select(sample.appliance_id, sample.t, *columns)
            .where(sample.appliance_id == appliance, sample.t >= min(buckets),
                   sample.t < max(buckets) + MINUTE)
            .order_by(sample.t, sample.received_at)
        )
        for found_row in found.mappings():  # (`Row.t` is a Row method: read by mapping)
            rows.append({"appliance_id": found_row["appliance_id"], "time": found_row["t"],
                         **from_sample(found_row)})
    return _group(rows, MINUTE, minutes)


async def _sqlite_hours(session: AsyncSession, hours: list[Key]) -> list[dict[str, Any]]:
    table = telemetry_1m
    rows: list[dict[str, Any]] = []
    for appliance, hour in hours:
        found = await session.execute(
            select(table).where(table.c.appliance_id == appliance, table.c.bucket >= hour,
                                table.c.bucket < hour + HOUR).order_by(table.c.bucket)
        )
        rows += [{**r._mapping, "time": r.bucket} for r in found]
    return _group(rows, HOUR, set(hours))


async def _sqlite_window(session: AsyncSession, lo: datetime, hi: datetime) -> RollupRun:
    minutes = await _raw_minutes(session, lo, hi)
    await _upsert_sqlite(session, telemetry_1m, await _sqlite_minutes(session, minutes))
    hours = hours_of(minutes)
    await _upsert_sqlite(session, telemetry_1h, await _sqlite_hours(session, hours))
    return RollupRun(windows=1, minutes=len(minutes), hours=len(hours))


# The loop ---------------------------------------------------------------------------------------

# Everything received before this is committed: no transaction that began earlier is open.
# (`least` and `greatest` skip NULL: with no other transaction open, it is `now()`.)
SETTLED_POSTGRES = """
SELECT greatest(least(now(), min(xact_start)), now() - interval '10 minutes')
  FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
"""


async def _settled(session: AsyncSession, sqlite: bool) -> datetime:
    """Where the window may end. `received_at` is the database's clock, so this is too."""
    if sqlite:
        raw = await session.scalar(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')"))
        return datetime.fromisoformat(str(raw)).replace(tzinfo=UTC)
    found = await session.scalar(text(SETTLED_POSTGRES))
    assert isinstance(found, datetime)
    return found


async def _watermark(session: AsyncSession, sqlite: bool) -> RollupState | None:
    query = select(RollupState).where(RollupState.name == STATE_NAME)
    if not sqlite:
        query = query.with_for_update()  # a second concurrent run waits, then sees our window
    found: RollupState | None = await session.scalar(query)
    return found


async def _one_window(db: Database) -> tuple[RollupRun, bool]:
    """Roll up one window; returns what it did and whether it reached `now`."""
    async with db.transaction() as session:
        state = await _watermark(session, db.is_sqlite)
        upper = await _settled(session, db.is_sqlite)
        if state is None:
            lo, hi = upper - FIRST_LOOKBACK, upper
            state = RollupState(name=STATE_NAME, received_up_to=hi)
            session.add(state)
        else:
            lo = state.received_up_to - (SQLITE_OVERLAP if db.is_sqlite else timedelta(0))
            hi = min(upper, state.received_up_to + MAX_WINDOW)
        window = _sqlite_window if db.is_sqlite else _postgres_window
        run = await window(session, lo, hi) if hi > lo else RollupRun()
        state.received_up_to = max(state.received_up_to, hi)
        return run, hi >= upper


async def roll_up(db: Database, *, max_windows: int = 100) -> RollupRun:
    """Bring the 1-minute and 1-hour rollups up to date with what raw has received."""
    total = RollupRun()
    for _ in range(max_windows):
        run, caught_up = await _one_window(db)
        total.windows += run.windows
        total.minutes += run.minutes
        total.hours += run.hours
        if caught_up:
            break
    return total

