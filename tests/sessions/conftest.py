"""Session tests make many requests per user: they run without rate limits."""

from __future__ import annotations

import pytest

from epicura.config import Settings


@pytest.fixture
def pg_settings(pg_settings: Settings) -> Settings:
    return pg_settings.model_copy(update={"rate_limit_enabled": False})
