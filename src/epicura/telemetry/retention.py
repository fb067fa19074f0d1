"""Partitions and retention of telemetry.

PostgreSQL: raw samples live in daily partitions, created 7 days ahead (and back to the start
of raw retention, for appliances' offline backlogs) and dropped whole once every row in them is
older than 14 days. The rollups live in monthly partitions, dropped once older than their
retention (90 days for 1-minute, 2 years for 1-hour): a monthly partition keeps its rows up to a
month past the promise, and in exchange nothing is ever deleted row by row (no dead tuples, no
vacuum debt on tables of billions of rows). Partitions are found by name (`<table>_YYYYMMDD`,
`<table>_YYYYMM`); tables named otherwise are left alone.

Every DDL statement runs in its own short transaction with a lock timeout: creating or dropping
a partition locks the parent, and waiting behind a long query would queue ingest behind it. A
statement that times out is tried again at the next run.

SQLite (the embedded default) has no partitions: retention deletes rows in batches.
`device_messages` (the deduplication ids) is pruned in batches on both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import structlog
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.kit import clock
from epicura.kit.db import Database, UTCDateTime

log = structlog.get_logger("epicura.telemetry.retention")

RAW_TABLE = "telemetry_samples"
RAW_RETENTION = timedelta(days=14)
RAW_DAYS_AHEAD = 7
ROLLUP_RETENTION = {"telemetry_1m": timedelta(days=90), "telemetry_1h": timedelta(days=730)}
DEVICE_MESSAGES_RETENTION = timedelta(days=14)
DELETE_BATCH = 5000
MAX_BATCHES_PER_RUN = 200  # a backlog is worked off over several runs, not in one long one
LOCK_TIMEOUT = "5s"


@dataclass(frozen=True)
class Partition:
    name: str
    start: datetime
    end: datetime


@dataclass
class Report:
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    deleted: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def month_start(day: date) -> datetime:
    return datetime(day.year, day.month, 1, tzinfo=UTC)


def next_month(start: datetime) -> datetime:
    return (start + timedelta(days=32)).replace(day=1)


def day_partition(table: str, day: date) -> Partition:
    start = day_start(day)
    return Partition(f"{table}_{day:%Y%m%d}", start, start + timedelta(days=1))


def month_partition(table: str, day: date) -> Partition:
    start = month_start(day)
    return Partition(f"{table}_{start:%Y%m}", start, next_month(start))


def parse_partition(table: str, name: str) -> Partition | None:
    """The partition a name of ours stands for, or None for any other table."""
    match = re.fullmatch(re.escape(table) + r"_(\d{4})(\d{2})(\d{2})?", name)
    if match is None:
        return None
    year, month, day = match.groups()
    try:
        when = date(int(year), int(month), int(day or 1))
    except ValueError:
        return None
    return day_partition(table, when) if day else month_partition(table, when)


def raw_window(now: datetime) -> list[Partition]:
    """The day partitions that must exist: back to raw retention, and a week ahead."""
    today = now.date()
    first = (now - RAW_RETENTION).date()
    days = (today - first).days + RAW_DAYS_AHEAD + 1
    return [day_partition(RAW_TABLE, first + timedelta(days=n)) for n in range(days)]


def rollup_window(table: str, now: datetime) -> list[Partition]:
    """Month partitions covering every day raw samples may have, so a rollup always has a home."""
    raw = raw_window(now)
    wanted: dict[str, Partition] = {}
    for day in (p.start.date() for p in raw):
        partition = month_partition(table, day)
        wanted[partition.name] = partition
    return list(wanted.values())


async def existing_partitions(session: AsyncSession, table: str) -> list[Partition]:
    names = await session.scalars(
        text(
            "SELECT c.relname FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE p.relname = :table"
        ),
        {"table": table},
    )
    found = (parse_partition(table, name) for name in names)
    return [p for p in found if p is not None]


async def _ddl(db: Database, statement: str) -> None:
    async with db.transaction() as session:
        await session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        await session.execute(text(statement))


async def _create(db: Database, table: str, partition: Partition, report: Report) -> None:
    statement = (
        f"CREATE TABLE IF NOT EXISTS {partition.name} PARTITION OF {table} "
        f"FOR VALUES FROM ('{partition.start.isoformat()}') TO ('{partition.end.isoformat()}')"
    )
    try:
        await _ddl(db, statement)
        report.created.append(partition.name)
    except Exception as exc:
        log.warning("partition_create_failed", partition=partition.name, error=type(exc).__name__)
        report.failed.append(partition.name)


async def _drop(db: Database, partition: Partition, report: Report) -> None:
    try:
        await _ddl(db, f"DROP TABLE IF EXISTS {partition.name}")
        report.dropped.append(partition.name)
    except Exception as exc:
        log.warning("partition_drop_failed", partition=partition.name, error=type(exc).__name__)
        report.failed.append(partition.name)


async def _maintain(db: Database, table: str, wanted: list[Partition], keep: timedelta,
                    now: datetime, report: Report) -> None:
    async with db.sessions() as session:
        existing = await existing_partitions(session, table)
    have = {p.name for p in existing}
    for partition in wanted:
        if partition.name not in have:
            await _create(db, table, partition, report)
    cutoff = now - keep
    for partition in existing:
        if partition.end <= cutoff:  # every row in it is past retention
            await _drop(db, partition, report)


async def maintain_partitions(db: Database) -> Report:
    """Create the partitions needed ahead and drop those past retention (PostgreSQL only)."""
    report = Report()
    if db.is_sqlite:
        return report
    now = clock.utcnow()
    await _maintain(db, RAW_TABLE, raw_window(now), RAW_RETENTION, now, report)
    for table, keep in ROLLUP_RETENTION.items():
        await _maintain(db, table, rollup_window(table, now), keep, now, report)
    if report.created or report.dropped:
        log.info("telemetry_partitions", created=report.created, dropped=report.dropped)
    return report


async def delete_before(db: Database, table: str, column: str, cutoff: datetime) -> int:
    """Delete rows with `column < cutoff` in batches, one short transaction each."""
    # `table` and `column` are this module's constants; the cutoff is a bound parameter.
    batch = f"SELECT {{id}} FROM {table} WHERE {column} < :cutoff LIMIT {DELETE_BATCH}"  # noqa: S608
    if db.is_sqlite:
        sql = f"DELETE FROM {table} WHERE rowid IN ({batch.format(id='rowid')})"  # noqa: S608
    else:  # `= ANY(ARRAY(...))` plans as a TID scan; `IN (subquery)` may scan the whole table
        sql = f"DELETE FROM {table} WHERE ctid = ANY(ARRAY({batch.format(id='ctid')}))"  # noqa: S608
    statement = text(sql).bindparams(bindparam("cutoff", cutoff, type_=UTCDateTime()))
    total = 0
    for _ in range(MAX_BATCHES_PER_RUN):
        async with db.transaction() as session:
            deleted = int(getattr(await session.execute(statement), "rowcount", 0) or 0)
        total += deleted
        if deleted < DELETE_BATCH:
            break
    return total


async def prune_rows(db: Database) -> Report:
    """Row-by-row retention: device message ids everywhere; raw and rollups on SQLite."""
    report = Report()
    now = clock.utcnow()
    targets = [("device_messages", "received_at", DEVICE_MESSAGES_RETENTION)]
    if db.is_sqlite:
        targets.append((RAW_TABLE, "t", RAW_RETENTION))
        targets += [(table, "bucket", keep) for table, keep in ROLLUP_RETENTION.items()]
    for table, column, keep in targets:
        report.deleted[table] = await delete_before(db, table, column, now - keep)
    if any(report.deleted.values()):
        log.info("telemetry_pruned", deleted=report.deleted)
    return report
