"""Telemetry: raw samples (partitioned by day on PostgreSQL) and the latest sample per appliance.

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
    extra jsonb
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


def upgrade() -> None:
    if _is_postgres():
        op.execute(f"CREATE TABLE telemetry_samples ({SAMPLE_COLUMNS}) PARTITION BY RANGE (t)")
        today = datetime.now(UTC).date()
        for offset in range(-DAYS_BACK, DAYS_AHEAD + 1):
            _create_day_partition(today + timedelta(days=offset))
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
        )
    op.create_index("ix_telemetry_samples_appliance_t", "telemetry_samples", ["appliance_id", "t"])
    op.create_table(
        "telemetry_latest",
        sa.Column("appliance_id", sa.Uuid(), nullable=False),
        sa.Column("t", TS, nullable=False),
        sa.Column("session_id", sa.Uuid()),
        sa.Column("sample", JSONB, nullable=False),
        sa.PrimaryKeyConstraint("appliance_id", name="pk_telemetry_latest"),
    )


def downgrade() -> None:
    op.drop_table("telemetry_latest")
    op.drop_table("telemetry_samples")
