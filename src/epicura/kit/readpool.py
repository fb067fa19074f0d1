"""A raw asyncpg pool for the hottest read-only queries (PostgreSQL only).

SQLAlchemy's session costs a BEGIN/ROLLBACK and ORM work per request, and asyncpg's default pool
sends a reset query on every release (see research/performance-anchors.md). Queries on this pool
only read with single statements and never change session state (no SET, LISTEN, advisory locks,
cursors or open transactions), which is what makes skipping the reset safe.
"""

from __future__ import annotations

from typing import Any

import asyncpg


async def _no_reset(_connection: asyncpg.Connection) -> None:
    return None


def plain_dsn(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def create(sqlalchemy_url: str, size: int) -> asyncpg.Pool[Any]:
    pool: asyncpg.Pool[Any] = await asyncpg.create_pool(
        plain_dsn(sqlalchemy_url),
        min_size=0,  # connect on first use: the process starts (and says "not ready") without PG
        max_size=size,
        reset=_no_reset,
        timeout=5,
        command_timeout=10,
        max_inactive_connection_lifetime=60,
        # As the engine's connections (kit/db.py): typo-tolerant search matches from 0.5 on.
        server_settings={"pg_trgm.word_similarity_threshold": "0.5"},
    )
    return pool
