"""Alembic, driven from code so `epicura db …` works from any folder."""

from __future__ import annotations

from pathlib import Path

import anyio
from alembic import command
from alembic.config import Config

from epicura.config import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = settings.sqlalchemy_url
    return config


def run(settings: Settings, action: str, revision: str = "head") -> None:
    config = alembic_config(settings)
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    if action == "upgrade":
        command.upgrade(config, revision)
    elif action == "downgrade":
        command.downgrade(config, revision)
    elif action == "current":
        command.current(config, verbose=True)
    else:
        raise ValueError(action)


async def upgrade_to_head(settings: Settings) -> None:
    await anyio.to_thread.run_sync(run, settings, "upgrade", "head")
