"""Database engine, sessions and the declarative base shared by every module.

Types are declared once here so that one model serves PostgreSQL (asyncpg) and the embedded
SQLite file alike: UTC-aware timestamps, JSONB with a SQLite variant, UUID keys.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import JSON, DateTime, MetaData, TypeDecorator, Uuid, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from epicura.kit.ids import uuid7
from epicura.kit.textsearch import word_similarity

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """`timestamptz` on PostgreSQL; on SQLite, stored naive UTC and handed back aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use kit.clock.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


JSONType = JSONB().with_variant(JSON(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads it as a plain class attribute
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        uuid.UUID: Uuid(),
    }


def uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=uuid7)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, json_serializer=_json_dumps, json_deserializer=orjson.loads
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=5,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        connect_args={
            "timeout": 5,
            "command_timeout": 30,
            # Typo-tolerant search (`<%`) matches from this word similarity on; pg_trgm's
            # default of 0.6 misses common two-letter slips in short words.
            "server_settings": {"pg_trgm.word_similarity_threshold": "0.5"},
        },
    )


def version_key(version: str | None) -> str | None:
    """A text that sorts like the numeric version `MAJOR.MINOR.PATCH` (SQLite has no arrays to
    compare); None for anything else."""
    parts = (version or "").split(".")
    if len(parts) != 3 or not all(part.isdigit() and len(part) <= 9 for part in parts):
        return None
    return ".".join(part.zfill(9) for part in parts)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run while the one writer writes; the busy timeout waits out short locks.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
    dbapi_connection.create_function("word_similarity", 2, word_similarity, deterministic=True)
    dbapi_connection.create_function("version_key", 1, version_key, deterministic=True)
    # SQLAlchemy emits BEGIN itself (below), not the sqlite3 module's implicit deferred BEGIN.
    dbapi_connection.isolation_level = None


def _sqlite_begin_immediate(conn: Any) -> None:
    """Take the write lock when a transaction starts. A deferred transaction that reads and then
    writes fails at once ("database is locked", the busy timeout does not apply) when another
    writer committed in between; an immediate one waits its turn under the busy timeout. The
    embedded default is one process, so serialising its transactions costs little."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """The engine and a session factory. One request or job is one transaction."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session committed when the block ends normally and rolled back otherwise."""
        async with self.sessions() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def dispose(self) -> None:
        await self.engine.dispose()
