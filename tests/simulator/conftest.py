"""Fixtures of the simulator tests that run against the real pieces."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.brokers import PrivateBroker, private_broker
from tests.conftest import REDIS_URL, base_settings, delete_keys, truncate_tables
from tests.support import Mailbox, Service, running


@pytest.fixture
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    """One per test: a bridge's persistent session (its shared subscription) outlives its test
    and would take a share of the next test's messages."""
    with private_broker(tmp_path_factory.mktemp("simulator-broker"), dynsec=True) as started:
        yield started


@pytest.fixture
async def stack(tmp_path: Path, smtp: tuple[int, Mailbox], pg_database: str, redis_prefix: str,
                broker: PrivateBroker) -> AsyncIterator[Service]:
    """The service with its job runner (broker credentials are jobs) and a bridge."""
    from tests.bridge.bridge_support import running_bridge

    settings = base_settings(tmp_path, smtp[0], database_url=pg_database, redis_url=REDIS_URL,
                             redis_prefix=redis_prefix, mqtt_broker_url=broker.url)
    async with (running(settings, smtp[1], run_jobs=True) as service,
                running_bridge(service.runtime, broker.url)):
        yield service
    await truncate_tables(await asyncpg.connect(pg_database))
    await delete_keys(redis_prefix)
