"""Telemetry: raw samples (partitioned by day on PostgreSQL), the latest sample per appliance,
1-minute and 1-hour rollups (partitioned by month on PostgreSQL), the rollups' watermark, and
the worker's periodic schedules.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSONB = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# Partitions made by the migration; afterwards the worker keeps them ahead of time.
DAYS_BACK, DAYS_AHEAD = 14, 7
ROLLUPS = ("telemetry_1m", "telemetry_1h")
NUMERIC_METRICS = ("bowl_temp_c", "target_temp_c", "speed", "weight_g", "heater_w", "motor_rpm")
TEXT_METRICS = ("direction", "lid")

# `received_at` is last and filled by its default: ingest's COPY names the columns it sends.
SAMPLE_COLUMNS = """
    appliance_id uuid NOT NULL,
    t timestamptz NOT NULL,
    message_id uuid NOT NULL,
    session_id uuid,
    bowl_temp_c real,
    target_temp_c real,
    speed real,
    direction varchar(8),
    weight_g real,
    heater_w real,
    motor_rpm real,
    lid varchar(8),
    extra jsonb,
    received_at timestamptz NOT NULL DEFAULT now()
"""


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def partition_name(day: date) -> str:
    return f"telemetry_samples_{day:%Y%m%d}"


def _create_day_partition(day: date) -> None:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    op.execute(
        f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF telemetry_samples "
        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{(start + timedelta(days=1)).isoformat()}')"
    )


def _month_start(day: date) -> datetime:
    return datetime(day.year, day.month, 1, tzinfo=UTC)


def _next_month(start: datetime) -> datetime:
    return (start + timedelta(days=32)).replace(day=1)


def _create_month_partitions(table: str, first: date, last: date) -> None:
    start = _month_start(first)
    while start.date() <= last:
        end = _next_month(start)
        op.execute(
            f"CREATE TABLE IF NOT EXISTS {table}_{start:%Y%m} PARTITION OF {table} "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
        start = end


def _rollup_columns() -> list[sa.Column[object]]:
    columns: list[sa.Column[object]] = [
        sa.Column("appliance_id", sa.Uuid(), nullable=False),
        sa.Column("bucket", TS, nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
    ]
    for metric in NUMERIC_METRICS:
        columns += [
            sa.Column(f"{metric}_min", sa.REAL()),
            sa.Column(f"{metric}_max", sa.REAL()),
            sa.Column(f"{metric}_sum", sa.Double()),
            sa.Column(f"{metric}_count", sa.Integer(), nullable=False),
            sa.Column(f"{metric}_last", sa.REAL()),
        ]
    columns += [sa.Column(f"{metric}_last", sa.String(8)) for metric in TEXT_METRICS]
    return columns


def _create_samples(today: date) -> None:
    if _is_postgres():
        op.execute(f"CREATE TABLE telemetry_samples ({SAMPLE_COLUMNS}) PARTITION BY RANGE (t)")
        for offset in range(-DAYS_BACK, DAYS_AHEAD + 1):
            _create_day_partition(today + timedelta(days=offset))
        # BRIN: a few pages per partition, next to nothing per COPY; rows arrive in ingest order,
        # so the rollup's "received since" scan reads only the newest block ranges.
        op.execute("CREATE INDEX ix_telemetry_samples_received_at ON telemetry_samples "
                   "USING brin (received_at) WITH (autosummarize = on)")
    else:
        op.create_table(
            "telemetry_samples",
            sa.Column("appliance_id", sa.Uuid(), nullable=False),
            sa.Column("t", TS, nullable=False),
            sa.Column("message_id", sa.Uuid(), nullable=False),
            sa.Column("session_id", sa.Uuid()),
            sa.Column("bowl_temp_c", sa.Float()),
            sa.Column("target_temp_c", sa.Float()),
            sa.Column("speed", sa.Float()),
            sa.Column("direction", sa.String(8)),
            sa.Column("weight_g", sa.Float()),
            sa.Column("heater_w", sa.Float()),
            sa.Column("motor_rpm", sa.Float()),
            sa.Column("lid", sa.String(8)),
            sa.Column("extra", JSONB),
            # Same text form as SQLAlchemy's naive UTC timestamps, so the two compare as text.
            sa.Column("received_at", TS, nullable=False,
                      server_default=sa.text("(strftime('%Y-%m-%d %H:%M:%f', 'now'))")),
        )
        op.create_index("ix_telemetry_samples_received_at", "telemetry_samples", ["received_at"])
    op.create_index("ix_telemetry_samples_appliance_t", "telemetry_samples", ["appliance_id", "t"])


def _create_rollups(today: date) -> None:
    for table in ROLLUPS:
        if _is_postgres():
            op.create_table(
                table, *_rollup_columns(),
                sa.PrimaryKeyConstraint("appliance_id", "bucket", name=f"pk_{table}"),
                postgresql_partition_by="RANGE (bucket)",
            )
            _create_month_partitions(table, today - timedelta(days=DAYS_BACK),
                                     today + timedelta(days=DAYS_AHEAD + 1))
        else:
            op.create_table(
                table, *_rollup_columns(),
                sa.PrimaryKeyConstraint("appliance_id", "bucket", name=f"pk_{table}"),
            )


def upgrade() -> None:
    today = datetime.now(UTC).date()
    _create_samples(today)
    op.create_table(
        "telemetry_latest",
        sa.Column("appliance_id", sa.Uuid(), nullable=False),
        sa.Column("t", TS, nullable=False),
        sa.Column("session_id", sa.Uuid()),
        sa.Column("sample", JSONB, nullable=False),
        sa.PrimaryKeyConstraint("appliance_id", name="pk_telemetry_latest"),
    )
    _create_rollups(today)
    op.create_table(
        "telemetry_rollup_state",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("received_up_to", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_telemetry_rollup_state"),
    )
    op.create_table(
        "schedules",
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("next_run_at", TS, nullable=False),
        sa.Column("locked_until", TS),
        sa.Column("last_started_at", TS),
        sa.Column("last_finished_at", TS),
        sa.Column("last_error", sa.Text()),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_schedules"),
    )


def downgrade() -> None:
    for table in ("schedules", "telemetry_rollup_state", *ROLLUPS, "telemetry_latest",
                  "telemetry_samples"):
        op.drop_table(table)
