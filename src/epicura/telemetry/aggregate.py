"""How aggregates combine: one set of rules for raw → 1-minute, 1-minute → 1-hour and the
coarser buckets of a long query, in Python (SQLite) and mirrored in SQL (PostgreSQL).

A numeric metric keeps min, max, sum and count (mean = sum / count, exact when buckets merge)
and `last`, its value at the latest time it was present. A text metric keeps `last` only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from epicura.telemetry.models import NUMERIC_METRICS, NUMERIC_PARTS, TEXT_METRICS


def rollup_fields() -> list[str]:
    """The metric columns of a rollup row, in table order."""
    fields = [f"{m}_{part}" for m in NUMERIC_METRICS for part in NUMERIC_PARTS]
    return fields + [f"{m}_last" for m in TEXT_METRICS]


def from_sample(sample: Mapping[Any, Any]) -> dict[str, Any]:
    """A raw sample as a rollup row of one sample."""
    row: dict[str, Any] = {"samples": 1}
    for m in NUMERIC_METRICS:
        value = sample[m]
        row.update({f"{m}_min": value, f"{m}_max": value, f"{m}_sum": value,
                    f"{m}_count": 0 if value is None else 1, f"{m}_last": value})
    for m in TEXT_METRICS:
        row[f"{m}_last"] = sample[m]
    return row


def _numeric(rows: Sequence[Mapping[str, Any]], m: str) -> dict[str, Any]:
    present = [r for r in rows if r[f"{m}_count"]]
    if not present:
        return {f"{m}_min": None, f"{m}_max": None, f"{m}_sum": None, f"{m}_count": 0,
                f"{m}_last": None}
    return {
        f"{m}_min": min(r[f"{m}_min"] for r in present),
        f"{m}_max": max(r[f"{m}_max"] for r in present),
        f"{m}_sum": sum(r[f"{m}_sum"] for r in present),
        f"{m}_count": sum(r[f"{m}_count"] for r in present),
        f"{m}_last": present[-1][f"{m}_last"],
    }


def merge(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Rollup rows (in time order) merged into one."""
    merged: dict[str, Any] = {"samples": sum(r["samples"] for r in rows)}
    for m in NUMERIC_METRICS:
        merged.update(_numeric(rows, m))
    for m in TEXT_METRICS:
        values = [r[f"{m}_last"] for r in rows if r[f"{m}_last"] is not None]
        merged[f"{m}_last"] = values[-1] if values else None
    return merged


def mean(row: Mapping[str, Any], m: str) -> float | None:
    count = row[f"{m}_count"]
    return None if not count else float(row[f"{m}_sum"]) / count
