"""Recipe tests make far more requests per user than the rate limits allow: they run without."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from epicura.config import Settings
from tests.conftest import base_settings
from tests.support import Mailbox, Service, running


@pytest.fixture
def pg_settings(pg_settings: Settings) -> Settings:
    return pg_settings.model_copy(update={"rate_limit_enabled": False})


@pytest.fixture
async def embedded_unlimited(tmp_path: Path, smtp: tuple[int, Mailbox]) -> AsyncIterator[Service]:
    settings = base_settings(tmp_path, smtp[0], rate_limit_enabled=False)
    async with running(settings, smtp[1]) as service:
        yield service


@pytest.fixture(params=["postgres", "embedded"])
def api(request: pytest.FixtureRequest) -> Service:
    service: Service = request.getfixturevalue(
        "svc" if request.param == "postgres" else "embedded_unlimited")
    return service
