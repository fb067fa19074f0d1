"""Fixtures of the gateway tests: the app behind a real uvicorn on PostgreSQL + Redis, and on
the embedded default."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from epicura.config import Settings
from tests.conftest import base_settings, truncate_tables
from tests.realtime.ws_support import Served, serving
from tests.support import Mailbox


@pytest.fixture
async def pg_served(pg_settings: Settings, smtp: tuple[int, Mailbox],
                    pg_database: str) -> AsyncIterator[Served]:
    async with serving(pg_settings, smtp[1]) as served:
        yield served
    await truncate_tables(await asyncpg.connect(pg_database))


@pytest.fixture
async def embedded_served(tmp_path: Path, smtp: tuple[int, Mailbox]) -> AsyncIterator[Served]:
    async with serving(base_settings(tmp_path, smtp[0]), smtp[1]) as served:
        yield served


@pytest.fixture(params=["postgres", "embedded"])
def served(request: pytest.FixtureRequest) -> Served:
    """The same test on PostgreSQL + Redis and on the embedded default."""
    fixture = "pg_served" if request.param == "postgres" else "embedded_served"
    found: Served = request.getfixturevalue(fixture)
    return found
