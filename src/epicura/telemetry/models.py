"""Telemetry tables.

On PostgreSQL `telemetry_samples` is partitioned by day on `t` and the rollups by month on
`bucket`; the worker creates partitions ahead and drops them at retention (tasks.py). On SQLite
they are plain tables and retention deletes rows.

The rollups are wide (one row per appliance and bucket, five columns per numeric metric): every
query reads several metrics of one appliance over one time range, so one row per bucket is what
it scans, and it is a sixth of the rows (and index entries) of a narrow layout.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import REAL, Column, Double, Index, Integer, String, Table, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from epicura.kit.db import Base, JSONType, UTCDateTime

# The numeric sample fields, in the order of the COPY columns; `direction` and `lid` are text.
NUMERIC_METRICS = ("bowl_temp_c", "target_temp_c", "speed", "weight_g", "heater_w", "motor_rpm")
TEXT_METRICS = ("direction", "lid")
METRICS = NUMERIC_METRICS + TEXT_METRICS
# What a rollup keeps of each numeric metric (mean = sum / count); of a text metric, `last`.
NUMERIC_PARTS = ("min", "max", "sum", "count", "last")


class TelemetrySample(Base):
    __tablename__ = "telemetry_samples"
    __table_args__ = (Index("ix_telemetry_samples_appliance_t", "appliance_id", "t"),)
    # The table has no key (a key costs an index per COPY and a partitioned table's keys must
    # include `t`); duplicates are kept out by `device_messages`. The mapper needs one to map.
    __mapper_args__ = {"primary_key": ("appliance_id", "t", "message_id")}  # noqa: RUF012

    appliance_id: Mapped[uuid.UUID]
    t: Mapped[datetime]
    message_id: Mapped[uuid.UUID]
    session_id: Mapped[uuid.UUID | None]
    bowl_temp_c: Mapped[float | None]
    target_temp_c: Mapped[float | None]
    speed: Mapped[float | None]
    direction: Mapped[str | None] = mapped_column(String(8))
    weight_g: Mapped[float | None]
    heater_w: Mapped[float | None]
    motor_rpm: Mapped[float | None]
    lid: Mapped[str | None] = mapped_column(String(8))
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # When the row was stored, set by the database (ingest leaves the column out of its COPY).
    # The rollup task finds the minutes to recompute through it, so a backlog message with old
    # `t` updates old buckets. BRIN-indexed on PostgreSQL: rows arrive in this order.
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())


class TelemetryLatest(Base):
    """The newest sample of each appliance, upserted by every ingest batch."""

    __tablename__ = "telemetry_latest"

    appliance_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    t: Mapped[datetime]
    session_id: Mapped[uuid.UUID | None]
    sample: Mapped[dict[str, Any]] = mapped_column(JSONType)


class RollupState(Base):
    """How far (in ingest time, the database's clock) each rollup has read the raw samples."""

    __tablename__ = "telemetry_rollup_state"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    received_up_to: Mapped[datetime]


def rollup_columns() -> list[Column[Any]]:
    columns: list[Column[Any]] = [
        Column("appliance_id", Uuid(), primary_key=True),
        Column("bucket", UTCDateTime(), primary_key=True),
        Column("samples", Integer(), nullable=False),
    ]
    for metric in NUMERIC_METRICS:
        columns += [
            Column(f"{metric}_min", REAL()),
            Column(f"{metric}_max", REAL()),
            Column(f"{metric}_sum", Double()),
            Column(f"{metric}_count", Integer(), nullable=False),
            Column(f"{metric}_last", REAL()),
        ]
    columns += [Column(f"{metric}_last", String(8)) for metric in TEXT_METRICS]
    return columns


# 1-minute buckets from raw (kept 90 days) and 1-hour buckets from 1-minute (kept 2 years).
telemetry_1m = Table("telemetry_1m", Base.metadata, *rollup_columns())
telemetry_1h = Table("telemetry_1h", Base.metadata, *rollup_columns())
