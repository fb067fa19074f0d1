"""Session tests make many requests per user: they run without rate limits."""

from __future__ import annotations

import pytest

from epicura.config import Settings


@pytest.fixture
def pg_settings(pg_settings: Settings) -> Settings:
    return pg_settings.model_copy(update={"rate_limit_enabled": False})


# The appliance fixtures (an admin, a factory that provisions and pairs real appliances) and
# the private brokers of the bridge tests.
from tests.appliances.conftest import admin, factory  # noqa: E402, F401
from tests.bridge.conftest import broker  # noqa: E402, F401
