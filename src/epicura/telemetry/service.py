"""Rules of the telemetry API: who may read an appliance's telemetry, and which series a query
gets (window, resolution, point cap).

Resolution: by default chosen by span (≤ 1 h raw, ≤ 7 d 1-minute, else 1-hour). A resolution
too fine for the span — raw beyond 10,000 s (10,000 samples at 1 Hz), 1-minute beyond 7 days —
is replaced by the next coarser one; the reply's `resolution` says which was used. The cap of
10,000 points per metric holds for rollups by merging k consecutive buckets into one point
(`bucket_s` is then k × the resolution: a 7-day span at 1-minute gives 2-minute points), and
for raw by keeping every k-th sample when an appliance sent more than 10,000 in the range.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from epicura.appliances import service as appliances_service
from epicura.auth.models import ROLE_ADMIN, User
from epicura.kit import clock
from epicura.kit.errors import ErrorItem, ProblemError, ValidationFailed
from epicura.telemetry import repository
from epicura.telemetry.models import METRICS, TelemetryLatest
from epicura.telemetry.repository import EPOCH, SeriesQuery, epoch_ms

MAX_POINTS = 10_000
RESOLUTION_S = {"raw": 0, "1m": 60, "1h": 3600}
COARSER = {"raw": "1m", "1m": "1h"}
# The longest span each resolution serves before the next coarser one takes over.
SERVES_UP_TO = {"raw": timedelta(seconds=MAX_POINTS), "1m": timedelta(days=7)}
MAX_SPAN = timedelta(days=731)  # the 1-hour rollups' retention
DEFAULT_WINDOW = timedelta(hours=1)
LATEST_MS = 253402300799999  # 9999-12-31T23:59:59.999Z


ApplianceNotFound = appliances_service.ApplianceNotFound


class NoTelemetry(ProblemError):
    status = 404
    code = "no_telemetry"
    title = "The appliance has sent no telemetry yet"


class InvalidTelemetryQuery(ValidationFailed):
    title = "The telemetry query is not valid"


@dataclass(frozen=True)
class Series:
    appliance_id: uuid.UUID
    resolution: str
    bucket_s: int
    start_ms: int
    end_ms: int
    metrics_json: bytes  # the `metrics` object, already JSON


def _invalid(field: str, message: str, kind: str = "value_error") -> InvalidTelemetryQuery:
    return InvalidTelemetryQuery(message, errors=[ErrorItem(loc=["query", field], msg=message,
                                                            type=kind)])


async def visible_appliance(session: AsyncSession, user: User, appliance_id: uuid.UUID) -> None:
    """The owner (of a provisioned appliance) or an admin may read; for anyone else the
    appliance does not exist (404), as everywhere in the appliances module."""
    if user.role == ROLE_ADMIN:
        await appliances_service.admin_get(session, appliance_id)
    else:
        await appliances_service.get_owned_or_404(session, user, appliance_id)


def parse_instant(value: str, field: str) -> datetime:
    """RFC 3339 with an offset, or integer milliseconds since the epoch (as the series' `t`)."""
    value = value.strip()
    if re.fullmatch(r"-?[0-9]+", value):  # ASCII digits only ("²".isdigit() is true)
        ms = int(value)
        if not 0 <= ms <= LATEST_MS:
            raise _invalid(field, "out of range")
        return EPOCH + timedelta(milliseconds=ms)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _invalid(field, "not an RFC 3339 time or epoch milliseconds") from None
    if moment.tzinfo is None:
        raise _invalid(field, "a time needs its UTC offset (e.g. Z)")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise _invalid(field, "out of range") from None
    if not EPOCH <= moment <= EPOCH + timedelta(milliseconds=LATEST_MS):
        raise _invalid(field, "out of range")
    return moment


def parse_metrics(value: str | None) -> tuple[str, ...]:
    if value is None or not value.strip():
        return METRICS
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = sorted({name for name in names if name not in METRICS})
    if unknown:
        raise _invalid("metrics", f"unknown metrics: {', '.join(unknown)[:200]}; "
                                  f"known: {', '.join(METRICS)}")
    return tuple(dict.fromkeys(names))


def window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """Defaults: `to` now, `from` an hour before `to`. `from` < `to`, span ≤ 2 years."""
    end = end or clock.utcnow()
    start = start or end - DEFAULT_WINDOW
    if start >= end:
        raise _invalid("from", "`from` must be before `to`")
    if end - start > MAX_SPAN:
        raise _invalid("to", f"the span is at most {MAX_SPAN.days} days")
    return start, end


def default_resolution(span: timedelta) -> str:
    if span <= timedelta(hours=1):
        return "raw"
    return "1m" if span <= timedelta(days=7) else "1h"


def choose_resolution(span: timedelta, requested: str | None) -> tuple[str, int]:
    """(resolution, bucket_s) for a span: coarser when too fine, merged buckets past the cap."""
    resolution = requested or default_resolution(span)
    while resolution in SERVES_UP_TO and span > SERVES_UP_TO[resolution]:
        resolution = COARSER[resolution]
    if resolution == "raw":
        return resolution, 0
    base = RESOLUTION_S[resolution]
    # A range not aligned to buckets touches one bucket more than span / width: hence cap − 1.
    factor = max(1, math.ceil(span.total_seconds() / (base * (MAX_POINTS - 1))))
    return resolution, base * factor


def plan(appliance_id: uuid.UUID, start: datetime, end: datetime, resolution: str | None,
         metrics: tuple[str, ...]) -> SeriesQuery:
    chosen, bucket_s = choose_resolution(end - start, resolution)
    if bucket_s:  # rollups: from the start of the bucket that holds `from`
        start = EPOCH + timedelta(
            seconds=epoch_ms(start) // 1000 // bucket_s * bucket_s)
    return SeriesQuery(appliance_id=appliance_id, start=start, end=end, resolution=chosen,
                       bucket_s=bucket_s, metrics=metrics, max_points=MAX_POINTS)


async def series(
    session: AsyncSession, user: User, appliance_id: uuid.UUID, *, start: str | None,
    end: str | None, resolution: str | None, metrics: str | None,
) -> Series:
    names = parse_metrics(metrics)
    lo, hi = window(parse_instant(start, "from") if start is not None else None,
                    parse_instant(end, "to") if end is not None else None)
    await visible_appliance(session, user, appliance_id)
    query = plan(appliance_id, lo, hi, resolution, names)
    read = (repository.series_json_sqlite if session.get_bind().dialect.name == "sqlite"
            else repository.series_json_postgres)
    return Series(appliance_id=appliance_id, resolution=query.resolution,
                  bucket_s=query.bucket_s, start_ms=epoch_ms(lo), end_ms=epoch_ms(hi),
                  metrics_json=await read(session, query))


async def latest(session: AsyncSession, user: User, appliance_id: uuid.UUID) -> TelemetryLatest:
    await visible_appliance(session, user, appliance_id)
    found = await repository.latest(session, appliance_id)
    if found is None:
        raise NoTelemetry()
    return found


@dataclass(frozen=True)
class SessionFigures:
    samples: int
    peak_temp_c: float | None
    mean_temp_c: float | None
    energy_wh: float | None


async def session_figures(session: AsyncSession, appliance_id: uuid.UUID,
                          session_id: uuid.UUID, start: datetime,
                          end: datetime) -> SessionFigures:
    """What a cooking session's summary says of its telemetry: the appliance's samples from
    `start` to `end` tagged with the session (or untagged), peak and mean bowl temperature and
    the heater's energy (its power integrated over the samples)."""
    return SessionFigures(*await repository.session_figures(
        session, appliance_id, session_id, start, end))
