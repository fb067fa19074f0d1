"""Fleet analytics: the time windows and their rules; the aggregates are the repository's SQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from epicura.analytics import repository
from epicura.analytics.schemas import (
    Metric,
    Overview,
    SessionAnalytics,
    SessionGroup,
    SessionGroupBy,
    TelemetryAnalytics,
    TelemetryGroup,
    TelemetryGroupBy,
)
from epicura.kit import clock
from epicura.kit.errors import ErrorItem, ValidationFailed

DEFAULT_SPAN = timedelta(days=30)
MAX_SPAN = timedelta(days=400)
INGEST_WINDOW = timedelta(minutes=1)
MAX_GROUPS = 100
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """[from, to): `to` defaults to now, `from` to 30 days before it; at most 400 days."""
    end = _aware(end) if end else clock.utcnow()
    if not EARLIEST <= end <= LATEST or (start is not None and not EARLIEST <= _aware(start)
                                         <= LATEST):
        raise ValidationFailed(errors=[ErrorItem(loc=["query", "from"],
                                                 msg="from and to lie between 1970 and 9000",
                                                 type="value_error")])
    start = _aware(start) if start else end - DEFAULT_SPAN
    if start >= end:
        raise ValidationFailed(errors=[ErrorItem(loc=["query", "from"],
                                                 msg="from must be before to",
                                                 type="value_error")])
    if end - start > MAX_SPAN:
        raise ValidationFailed(errors=[ErrorItem(loc=["query", "from"],
                                                 msg="the window is at most 400 days",
                                                 type="value_error")])
    return start, end


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def overview(session: AsyncSession) -> Overview:
    now = clock.utcnow()
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    counts = await repository.overview(
        session, day_start=day_start, week_start=now - timedelta(days=7),
        ingest_since=now - INGEST_WINDOW)
    samples = counts.pop("ingest_samples")
    return Overview(at=now, ingest_rate_per_s=round(samples / INGEST_WINDOW.total_seconds(), 2),
                    **counts)


def _key(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return str(uuid.UUID(bytes=value))
    text = str(value)
    if len(text) == 32:  # a UUID as SQLite keeps it
        try:
            return str(uuid.UUID(hex=text))
        except ValueError:
            return text
    return text


async def sessions(session: AsyncSession, group_by: SessionGroupBy, start: datetime | None,
                   end: datetime | None) -> SessionAnalytics:
    start, end = window(start, end)
    if group_by == "day":
        found = {row["key"]: row for row in await repository.sessions_by_day(session, start, end)}
        rows = [found.get(day) or {"key": day, "label": day, "sessions": 0, "completed": 0,
                                   "mean_duration_s": None}
                for day in _days(start, end)]
    else:
        rows = await repository.sessions_grouped(session, group_by, start, end, MAX_GROUPS)
    items = [SessionGroup(key=_key(row["key"]),
                          label=None if row["label"] is None else str(row["label"]),
                          sessions=int(row["sessions"]), completed=int(row["completed"] or 0),
                          mean_duration_s=_float(row["mean_duration_s"]))
             for row in rows]
    return SessionAnalytics(from_=start, to=end, group_by=group_by, items=items)


def _days(start: datetime, end: datetime) -> list[str]:
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    days = []
    while day < end:
        days.append(day.strftime("%Y-%m-%d"))
        day += timedelta(days=1)
    return days


def _float(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


async def telemetry(session: AsyncSession, metric: Metric, group_by: TelemetryGroupBy,
                    start: datetime | None, end: datetime | None) -> TelemetryAnalytics:
    start, end = window(start, end)
    rows = await repository.telemetry_grouped(session, metric, group_by, start, end)
    items = [TelemetryGroup(key=_key(row["key"]), min=_float(row["min"]),
                            max=_float(row["max"]), mean=_float(row["mean"]),
                            samples=int(row["samples"] or 0), appliances=int(row["appliances"]))
             for row in rows]
    return TelemetryAnalytics(from_=start, to=end, metric=metric, group_by=group_by,
                              items=items)
