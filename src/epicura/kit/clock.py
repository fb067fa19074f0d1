"""The one source of "now": timezone-aware UTC, and freezable by tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

_frozen_at: datetime | None = None


def utcnow() -> datetime:
    return _frozen_at if _frozen_at is not None else datetime.now(UTC)


@contextmanager
def frozen(at: datetime) -> Iterator[None]:
    """Freeze `utcnow()` at `at` for the duration of the block (tests only)."""
    global _frozen_at
    if at.tzinfo is None:
        raise ValueError("frozen() needs a timezone-aware datetime")
    previous, _frozen_at = _frozen_at, at
    try:
        yield
    finally:
        _frozen_at = previous


def advance(delta: timedelta) -> None:
    """Move a frozen clock forward (tests only)."""
    global _frozen_at
    if _frozen_at is None:
        raise RuntimeError("the clock is not frozen")
    _frozen_at += delta
