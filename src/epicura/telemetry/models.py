"""Telemetry tables. On PostgreSQL `telemetry_samples` is partitioned by day on `t` (partitions
are created ahead and dropped at retention by the worker); on SQLite it is a plain table."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from epicura.kit.db import Base, JSONType

# The numeric sample fields, in the order of the COPY columns; `direction` and `lid` are text.
NUMERIC_METRICS = ("bowl_temp_c", "target_temp_c", "speed", "weight_g", "heater_w", "motor_rpm")
TEXT_METRICS = ("direction", "lid")


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


class TelemetryLatest(Base):
    """The newest sample of each appliance, upserted by every ingest batch."""

    __tablename__ = "telemetry_latest"

    appliance_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    t: Mapped[datetime]
    session_id: Mapped[uuid.UUID | None]
    sample: Mapped[dict[str, Any]] = mapped_column(JSONType)
